// The text units the reference metrics count, split the way their Python implementations
// split: str.split() whitespace, code points, and 64-bit n-gram keys. Pure functions; any
// thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llmops::eval {

// Python's str.isspace(): Unicode White_Space plus the separators U+001C..U+001F.
bool py_space(uint32_t cp);
// Python's str.split() with no argument: runs of py_space separate, no empty pieces.
std::vector<std::string_view> py_split(std::string_view text);
// The code points of text (a byte of bad UTF-8 counts as one unit of its own).
std::vector<uint32_t> code_points(std::string_view text);

// A 64-bit key for a token (hash of its bytes) and for an n-gram of token keys. Distinct
// n-grams collide with probability ~2^-64 per pair: the counts equal exact string counting.
uint64_t unit_key(std::string_view token);
uint64_t ngram_key(const uint64_t* keys, int n);

// Sorted n-gram keys of one order, with counts: counts(min(hyp, ref)) by a merge.
struct NgramCounts {
  std::vector<uint64_t> keys;   // sorted, unique
  std::vector<uint32_t> counts;  // parallel to keys
  uint64_t total = 0;
  static NgramCounts of(const std::vector<uint64_t>& unit_keys, int n);
  uint32_t count(uint64_t key) const;  // 0 when absent
};
// Sum over hyp's n-grams of min(hyp count, ref count).
uint64_t clipped_matches(const NgramCounts& hyp, const NgramCounts& ref);

}  // namespace llmops::eval
