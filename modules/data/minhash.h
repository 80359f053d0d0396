// Near-duplicate detection with MinHash signatures and banded locality-sensitive hashing, in
// one streaming pass: each text is compared with the kept texts that share a band with it, and
// is a near duplicate when its estimated Jaccard similarity with one of them reaches the
// threshold; the first text of a cluster is kept as its representative.
//
// Memory: the kept texts' signatures (4 bytes per permutation) and one bucket entry per band.
// One NearDedup per pass, one thread.
#pragma once

#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace llmops::data {

struct MinHashParams {
  int shingle_words = 5;   // word n-grams (on the dedup key: NFKC, case-folded)
  int permutations = 128;
  double threshold = 0.8;  // Jaccard similarity at or above which two texts are near duplicates
  uint64_t seed = 1;
};

// Bands and rows per band (bands * rows <= permutations) minimising the weighted sum of the
// false-positive and false-negative areas of the LSH S-curve at the threshold (as datasketch).
struct LshShape {
  int bands = 0, rows = 0;
};
LshShape lsh_shape(double threshold, int permutations);

// The set of hashed word shingles of text (already a dedup key); texts shorter than one
// shingle give one shingle of all their words.
std::vector<uint64_t> shingles(std::string_view key, int words);
// Exact Jaccard similarity of two shingle sets (for tests and reports).
double jaccard(std::vector<uint64_t> a, std::vector<uint64_t> b);

class MinHasher {
 public:
  explicit MinHasher(const MinHashParams& p);
  // The signature of a shingle set: per permutation, the minimum of its hash over the set.
  void signature(const std::vector<uint64_t>& shingles, uint32_t* out) const;
  int permutations() const { return static_cast<int>(mul_.size()); }

 private:
  std::vector<uint32_t> mul_, add_;
};

// Fraction of equal positions: an unbiased estimate of the Jaccard similarity.
double estimate_jaccard(const uint32_t* a, const uint32_t* b, int n);

// What NearDedup needs of one text, computed apart from the index (on any thread).
struct Sketch {
  std::vector<uint32_t> signature;
  std::vector<uint64_t> band_keys;
  bool empty = true;  // no words
};

class NearDedup {
 public:
  explicit NearDedup(const MinHashParams& p);
  // The sketch of a dedup key; const and thread-safe, so workers can make sketches while one
  // thread feeds them to add() in order.
  void sketch(std::string_view key, Sketch* out) const;
  struct Verdict {
    bool duplicate = false;
    uint32_t representative = 0;  // the kept text's index (its own index when kept)
    double similarity = 0;        // estimated, with the representative
  };
  // Considers the next text (indices count up from 0 per call) given its dedup key.
  Verdict add(std::string_view key);
  Verdict add(const Sketch& s);
  LshShape shape() const { return shape_; }
  uint64_t kept() const { return kept_; }
  size_t memory_bytes() const;

 private:
  MinHashParams params_;
  LshShape shape_;
  MinHasher hasher_;
  uint32_t next_ = 0;
  uint64_t kept_ = 0;
  std::vector<uint32_t> signatures_;             // kept texts', permutations each
  std::vector<uint32_t> kept_index_;             // position in signatures_ → text index
  std::vector<std::unordered_multimap<uint64_t, uint32_t>> buckets_;  // per band: band hash → kept slot
};

}  // namespace llmops::data
