// One tokenizer type for every vocabulary the engine reads: SentencePiece-style BPE (spm.h;
// Llama 2, Mistral, Phi-3, llama2.c) or byte-level BPE (bpe.h; GPT-2, Llama 3, Qwen2), built from
// a GGUF file, a Hugging Face tokenizer directory, a llama2.c tokenizer.bin or GPT-2's original
// encoder.json + vocab.bpe. Callers encode, decode and stream through it without knowing which.
//
// Ownership and threads: a Tokenizer owns its vocabulary (nothing points into the file it came
// from) and is immutable after construction; any number of threads may call its const methods
// at once. Ids outside 0..size()-1 decode to "", have text "" and are not end-of-generation.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "formats/gguf.h"
#include "status.h"
#include "tokenizer/bpe.h"
#include "tokenizer/spm.h"

namespace llmops::engine {

class Tokenizer {
 public:
  // tokenizer.ggml.model "llama" → SentencePiece (spm_vocab_from_gguf), "gpt2" → byte-level BPE
  // (bpe_vocab_from_gguf); another model is kUnimplemented naming it. add_bos from
  // tokenizer.ggml.add_bos_token, else true for SentencePiece and Llama 3, false otherwise;
  // tokenizer.ggml.eot_token_id and eom_token_id join the end-of-generation set.
  static Result<Tokenizer> from_gguf(const GgufFile& g);
  // dir/tokenizer.json (+ dir/tokenizer_config.json when present); see hf_tokenizer.h.
  static Result<Tokenizer> from_hf_dir(const std::string& dir);
  // The same from the files' contents (tests, fuzzing); tokenizer_config_json may be "".
  static Result<Tokenizer> from_hf_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json = {});
  // A llama2.c tokenizer.bin for a model of vocab_size tokens (load_llama2c_tokenizer); add_bos.
  static Result<Tokenizer> from_llama2c(const std::string& path, int32_t vocab_size);
  // GPT-2's encoder.json + vocab.bpe (bpe_vocab_from_gpt2_files); no BOS.
  static Result<Tokenizer> from_gpt2_files(const std::string& encoder_json, const std::string& vocab_bpe);

  // Wraps a tokenizer built by hand. extra_eog_ids: end-of-generation tokens besides EOS and the
  // ones recognised by text (see is_eog); ids outside the vocabulary are ignored.
  Tokenizer(SpmTokenizer spm, bool add_bos, const std::vector<int32_t>& extra_eog_ids = {});
  Tokenizer(BpeTokenizer bpe, bool add_bos, const std::vector<int32_t>& extra_eog_ids = {});

  // Token ids of text; never adds BOS (add_bos() says whether the caller should). parse_special:
  // the text of control and user-defined tokens ("<|im_end|>", "</s>" in a rendered chat
  // template) becomes those tokens (BpeTokenizer::encode and SpmTokenizer::encode say how).
  std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const;

  // Text of the ids; control tokens (BOS, EOS, <|im_end|>...) show as nothing.
  // decode(encode(s)) == s for any text with SentencePiece vocabularies that have byte tokens,
  // and for any bytes with byte-level BPE unless s holds the text of a control token.
  std::string decode(const std::vector<int32_t>& ids) const;

  // One token's text, for streaming. after_bos_or_start (SentencePiece): this is the first piece
  // of a text or follows BOS, so the dummy-prefix space is dropped. Byte-level BPE pieces are raw
  // bytes that may stop in the middle of a UTF-8 character (an emoji is often 2-4 tokens):
  // append them to a buffer and show complete_utf8_prefix() of it (bpe.h). SentencePiece byte
  // tokens (<0xE2>...) behave the same way.
  std::string decode_piece(int32_t id, bool after_bos_or_start) const;

  int32_t size() const;
  int32_t bos_id() const;  // -1: none
  int32_t eos_id() const;  // -1: none
  bool add_bos() const { return add_bos_; }
  // EOS, the extra ids given at construction, and control or user-defined tokens whose text is
  // a known end-of-turn marker (<|eot_id|>, <|eom_id|>, <|im_end|>, <|endoftext|>, <|end|>,
  // <end_of_turn>, <|end_of_text|>).
  bool is_eog(int32_t id) const;
  const std::vector<int32_t>& eog_ids() const { return eog_ids_; }  // sorted
  // A token's text as the vocabulary stores it ("▁the", "Ġthe", "<|im_end|>"); "" out of range.
  const std::string& token_text(int32_t id) const;
  TokenType token_type(int32_t id) const;  // kUndefined out of range

  bool is_byte_level() const { return std::holds_alternative<BpeTokenizer>(impl_); }
  const SpmTokenizer* spm() const { return std::get_if<SpmTokenizer>(&impl_); }
  const BpeTokenizer* bpe() const { return std::get_if<BpeTokenizer>(&impl_); }

 private:
  void collect_eog_ids(const std::vector<int32_t>& extra);

  std::variant<SpmTokenizer, BpeTokenizer> impl_;
  bool add_bos_ = false;
  std::vector<int32_t> eog_ids_;
};

}  // namespace llmops::engine
