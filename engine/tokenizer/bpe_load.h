// Byte-level BPE vocabularies from GGUF metadata and from GPT-2's original encoder.json +
// vocab.bpe, and the pieces the Hugging Face loader (hf_tokenizer.h) shares with them. Every
// loader checks the limits of bpe.h (kMaxBpeVocab, kMaxBpeTokenBytes, kMaxBpeMerges) before it
// copies, and names the offending entry in its kInvalidArgument. Pure functions; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "formats/gguf.h"
#include "json.h"
#include "status.h"
#include "tokenizer/bpe.h"

namespace llmops::engine {

// Largest encoder.json, vocab.bpe, tokenizer.json or tokenizer_config.json read (Llama 3's
// tokenizer.json is 9 MB, Gemma's 17 MB).
inline constexpr size_t kMaxTokenizerFileBytes = size_t{256} << 20;
// Nesting allowed in those JSON files; real ones stay under 10.
inline constexpr size_t kMaxTokenizerJsonDepth = 64;
// Ids that no entry names, in all: placeholders for them cost memory, so a sparse id space is
// refused rather than allocated.
inline constexpr size_t kMaxUnnamedTokenIds = 65536;

// tokenizer.ggml.model must be "gpt2" (else kInvalidArgument: that is SentencePiece's
// spm_vocab_from_gguf). Reads tokens, merges ("a b"), token_type, the bos/eos/unknown/padding
// ids (which must be inside the vocabulary) and tokenizer.ggml.pre: "gpt-2" and "default" (and
// an absent key) select the GPT-2 regex, "llama-bpe", "llama3", "llama-v3" and "smaug-bpe" the
// Llama 3 one ("llama-bpe", "llama3", "llama-v3" also set ignore_merges, as llama.cpp does),
// "qwen2" Qwen2's; any other value is kUnimplemented naming it. Note llama.cpp applies a
// different chain of regexes for "default"; files that old are rare.
Result<BpeVocab> bpe_vocab_from_gguf(const GgufFile& g);

// GPT-2's encoder.json ({"token": id, ...}) and vocab.bpe ("#version: 0.2" then one "a b" merge
// per line). "<|endoftext|>" becomes a control token and the bos and eos id.
Result<BpeVocab> bpe_vocab_from_gpt2_files(const std::string& encoder_json_path, const std::string& vocab_bpe_path);
Result<BpeVocab> bpe_vocab_from_gpt2_text(std::string_view encoder_json, std::string_view vocab_bpe);

// A token some file names with its id.
struct NamedToken {
  int64_t id;
  std::string text;
  TokenType type;
};

// Lays tokens out by id. Refuses (kInvalidArgument naming source and the entry) an id outside
// 0..kMaxBpeVocab-1, a text longer than kMaxBpeTokenBytes, two different texts for one id, and
// more than kMaxUnnamedTokenIds ids below the highest that nobody names (those become "" of type
// kUnused). The same text named twice for one id keeps the later type (an added token marking a
// vocabulary entry special).
Status lay_out_tokens(std::vector<NamedToken> named, std::string_view source, std::vector<std::string>& tokens,
                      std::vector<TokenType>& types);

// An integer JSON value (is_number_integer()) as a token id; unsigned values past INT64_MAX
// become INT64_MAX rather than wrapping negative, so errors show a large id.
int64_t json_token_id(const Json& value);

// Splits a merge rule "a b" at its first space after the first character (so a token may start
// with a space). where names the entry for the error when there is no such space.
Result<std::pair<std::string, std::string>> parse_merge_rule(std::string_view rule, std::string_view where);

}  // namespace llmops::engine
