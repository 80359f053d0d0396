// Byte-level BPE (GPT-2, Llama 3, Qwen2 vocabularies). Encoding reproduces llama.cpp's and
// Hugging Face's: control and user-defined tokens are cut out of the text first (longest token
// first), the rest is split into words by the pre-tokenizer regex (pretokenize.h), each word's
// bytes are spelled through GPT-2's byte map (unicode.h) and merged pairwise by merge rank, lowest
// rank first, ties to the leftmost pair. Decoding maps tokens back to their exact bytes.
//
// Ownership and threads: BpeTokenizer owns its tables and is immutable after create(); any number
// of threads may call its const methods at once. Ids outside 0..size()-1 decode to "" and never
// fault.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "status.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/spm.h"  // TokenType

namespace llmops::engine {

// Limits every loader enforces (house rule 5).
inline constexpr size_t kMaxBpeVocab = size_t{4} << 20;       // tokens
inline constexpr size_t kMaxBpeTokenBytes = size_t{64} << 10;  // bytes in one token's text
inline constexpr size_t kMaxBpeMerges = size_t{16} << 20;      // merge rules

struct BpeVocab {
  // Token text by id. Normal tokens are spelled in GPT-2's byte map (' ' is "Ġ", '\n' is "Ċ");
  // control and user-defined tokens are the raw text they stand for ("<|endoftext|>").
  std::vector<std::string> tokens;
  // One per token, or empty: then every token is kNormal.
  std::vector<TokenType> types;
  // Merge rules in rank order (the first merges first): the two token texts that join.
  std::vector<std::pair<std::string, std::string>> merges;
  BpePreTokenizer pre_tokenizer = BpePreTokenizer::kGpt2;
  // A word that is a token by itself becomes that token without merging (Llama 3; Hugging Face's
  // "ignore_merges"). Some of those words cannot be reached through the merges.
  bool ignore_merges = false;
  int32_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;  // -1: the vocabulary has none
};

class BpeTokenizer {
 public:
  // Refuses (kInvalidArgument, naming the entry) an empty vocabulary or one past kMaxBpeVocab
  // tokens, a token longer than kMaxBpeTokenBytes, a types array of another length or with
  // values outside 0..6, special ids outside the vocabulary, more than kMaxBpeMerges merges, and
  // a merge whose either side is not a token. A duplicate token text maps to its last id (as in
  // llama.cpp); a repeated merge keeps its first rank. The merges are consumed: vocab().merges
  // is empty afterwards (they live on as an id-pair table).
  static Result<BpeTokenizer> create(BpeVocab vocab);

  // Token ids for text; no BOS/EOS added. "" gives no ids. parse_special: the text of a control
  // token ("<|im_start|>") becomes that token; false matches only user-defined tokens, so
  // untrusted text cannot smuggle control tokens in (llama.cpp's parse_special). Any bytes are
  // accepted, invalid UTF-8 included. A byte whose single-byte token is missing (never in a
  // proper byte-level vocabulary) becomes unk_id, or is dropped when there is none.
  std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const;

  // The bytes of one token: normal tokens through the byte map back to raw bytes, user-defined
  // tokens verbatim, control/unknown/unused tokens "" (render_special: their text). A piece can
  // end or start inside a UTF-8 character (e.g. one byte of an emoji); a streaming caller holds
  // back incomplete characters until the next pieces complete them (complete_utf8_prefix()).
  std::string decode_piece(int32_t id, bool render_special = false) const;

  // Concatenated pieces. decode(encode(s)) == s for any bytes s when every byte has its token and
  // s holds no control token text (which encodes to a control token, and that decodes to "").
  std::string decode(const std::vector<int32_t>& ids, bool render_special = false) const;

  int32_t size() const { return static_cast<int32_t>(vocab_.tokens.size()); }
  const BpeVocab& vocab() const { return vocab_; }  // with types filled in, merges consumed
  // The merge rules in rank order, as the vocabulary gave them (a repeated rule once): what a
  // writer needs to store the vocabulary again (GGUF tokenizer.ggml.merges).
  std::vector<std::pair<std::string, std::string>> merge_rules() const;
  // The id of a token's text as stored (byte-map spelling for normal tokens), or -1.
  int32_t find_token(std::string_view text) const;

 private:
  BpeTokenizer() = default;

  struct TextHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Merge {
    int32_t rank;
    int32_t result;  // the token of the joined text, or -1 when the vocabulary lacks it
  };
  // One piece of input: raw text to pre-tokenize, or a special token cut out of it.
  struct Fragment {
    std::string_view text;
    int32_t special_id;  // -1: raw text
  };

  std::vector<Fragment> split_specials(std::string_view text, bool parse_special) const;
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  void emit_bytes(std::string_view bytes, std::vector<int32_t>& out) const;
  const Merge* find_merge(int32_t left, int32_t right) const;

  BpeVocab vocab_;
  std::unordered_map<std::string, int32_t, TextHash, std::equal_to<>> token_ids_;
  std::unordered_map<uint64_t, Merge> merges_;  // key: left id << 32 | right id
  std::vector<std::string> pieces_;             // decode_piece() text of each token (not rendering specials)
  std::vector<int32_t> specials_;               // control and user-defined tokens, longest text first
  std::string special_first_bytes_;             // the first byte of each, to skip text without any
  int32_t byte_ids_[256] = {};                  // the token of each byte's one-character spelling, or -1
};

// The length of the longest prefix of bytes that does not end inside a UTF-8 character: what a
// streaming decoder can show now. A sequence that can never complete (an invalid byte) is not
// held back.
size_t complete_utf8_prefix(std::string_view bytes);

}  // namespace llmops::engine
