// SentencePiece-style BPE tokenizer with byte fallback, for Llama vocabularies from GGUF files and
// from llama2.c tokenizer.bin files. Encoding reproduces llama.cpp's SPM tokenizer: score-ordered
// merges of adjacent symbols, then byte tokens "<0xXX>" for characters the vocabulary lacks.
//
// Ownership and threads: SpmTokenizer owns a copy of its vocabulary and is immutable after
// create(); any number of threads may call its const methods at once. Ids outside 0..size()-1
// decode to "" and never fault.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "status.h"

namespace llmops::engine {

// The values of GGUF's tokenizer.ggml.token_type array.
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct SpmVocab {
  // Token text as stored: GGUF Llama vocabularies write spaces as U+2581 "▁"; llama2.c
  // tokenizer.bin files write them as ' '.
  std::vector<std::string> pieces;
  std::vector<float> scores;  // one per piece; higher merges first
  // One per piece, or empty: create() then derives them ("<0xXX>" kByte, "<unk>" and unk_id
  // kUnknown, "<s>", "</s>", bos_id and eos_id kControl, the rest kNormal).
  std::vector<TokenType> types;
  int32_t bos_id = 1, eos_id = 2, unk_id = 0;  // -1: the vocabulary has none
  bool add_space_prefix = true;  // prepend one space before encoding (SentencePiece add_dummy_prefix)
  bool escape_spaces = true;     // encode ' ' as "▁" before lookup; false for llama2.c vocabularies
};

class SpmTokenizer {
 public:
  // Refuses (kInvalidArgument) mismatched array sizes, NaN scores, token types outside 0..6,
  // special ids out of range, and a vocabulary with neither all 256 byte tokens nor an unknown
  // token. Duplicate pieces: the last one wins, as in llama.cpp.
  static Result<SpmTokenizer> create(SpmVocab vocab);

  // Token ids for text; no BOS/EOS added. "" gives no ids. A character missing from the
  // vocabulary becomes its byte tokens, or one unk_id when the vocabulary lacks byte tokens; a
  // byte that does not start well-formed UTF-8 is a character of its own.
  std::vector<int32_t> encode(std::string_view text) const;
  // The same, and with parse_special the text of control and user-defined tokens ("</s>" in a
  // rendered chat template) becomes those tokens; as llama.cpp does, the text between them is
  // encoded fragment by fragment, each with the dummy-prefix space.
  std::vector<int32_t> encode(std::string_view text, bool parse_special) const;

  // Text of one token: normal pieces with "▁" turned back into ' ' (when escape_spaces), byte
  // tokens as their raw byte, user-defined pieces verbatim, control/unknown/unused as "".
  // after_bos_or_start: this is the first piece of a text (or follows BOS), so with
  // add_space_prefix one leading ' ' is the dummy prefix and is dropped.
  std::string decode_piece(int32_t id, bool after_bos_or_start) const;

  // Concatenated pieces; drops the dummy leading space of the first piece that has text (and of
  // the first one after each BOS). decode(encode(s)) == s when encode needs no unknown token
  // and, with escape_spaces, the vocabulary has a "▁" piece (byte tokens decode raw, so a "▁"
  // spelled in bytes stays "▁"; every Llama vocabulary has the piece).
  std::string decode(const std::vector<int32_t>& ids) const;

  int32_t size() const { return static_cast<int32_t>(vocab_.pieces.size()); }
  const SpmVocab& vocab() const { return vocab_; }  // with types filled in

 private:
  SpmTokenizer() = default;

  // Transparent hashing so encode() looks pieces up by string_view without allocating.
  struct PieceHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  int32_t find_piece(std::string_view text) const;
  std::vector<int32_t> encode_special(std::string_view text) const;  // -1 when absent
  void emit_unknown(std::string_view text, std::vector<int32_t>& out) const;

  SpmVocab vocab_;
  std::unordered_map<std::string, int32_t, PieceHash, std::equal_to<>> piece_ids_;
  int32_t byte_ids_[256] = {};
  bool has_all_bytes_ = false;
  std::vector<int32_t> specials_;  // control and user-defined tokens, longest text first
  bool special_first_[256] = {};   // bytes that begin one of them
};

// Reads a llama2.c tokenizer.bin: int32 max_token_length, then vocab_size records of
// {float32 score, int32 len, len bytes}, little-endian. vocab_size is not in the file (the model
// header has it). Every record is bounds-checked against the file size, lengths must be 0..1024,
// and the records must end exactly at the end of the file (a mismatch means a wrong vocab_size);
// violations are kInvalidArgument naming the record. The result has escape_spaces=false,
// add_space_prefix=true, bos 1, eos 2, unk 0 and empty types.
Result<SpmVocab> load_llama2c_tokenizer(const std::string& path, int32_t vocab_size);

}  // namespace llmops::engine
