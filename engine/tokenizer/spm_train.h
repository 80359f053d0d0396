// Learning a SentencePiece-style BPE vocabulary from text, for models trained from scratch.
//
// The result is an SpmVocab that SpmTokenizer (and llama.cpp's "llama" tokenizer) reads: the
// specials <unk> <s> </s>, the 256 byte tokens <0x00>..<0xFF> (so every text encodes), each
// character seen at least min_char_count times, then one piece per learned merge with the score
// -(rank + 1), so score-ordered merging at encode time replays the merges in the order learned.
// Text is seen as SentencePiece sees it: a space prefix, spaces as "▁", and words that begin
// at each "▁"; a newline is a word of its own. Merges never cross a word, a newline, or a rare
// character (those encode as bytes), and a piece is at most max_piece_bytes long.
//
// Deterministic: the same texts in any order give the same vocabulary (ties go to the pair of
// lower symbol ids, and symbol ids follow (count desc, text asc)).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "status.h"
#include "tokenizer/spm.h"

namespace llmops::engine {

struct SpmTrainOptions {
  int vocab_size = 2048;       // all of it: specials, bytes, characters and merges
  int64_t min_char_count = 2;  // rarer characters have no piece of their own
  size_t max_piece_bytes = 16;
};

class SpmTrainer {
 public:
  // Counts the words of one text.
  void add(std::string_view text);
  uint64_t texts() const { return texts_; }
  // Learns the merges; kInvalidArgument when vocab_size cannot hold the specials and bytes, or
  // nothing was added.
  Result<SpmVocab> train(const SpmTrainOptions& opt) const;

 private:
  std::unordered_map<std::string, int64_t> words_;  // "▁word" (or "\n") → count
  uint64_t texts_ = 0;
};

}  // namespace llmops::engine
