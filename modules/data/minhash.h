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

// A multimap from one band's hash to kept slots: open addressing over (32-bit fingerprint,
// slot) cells of 8 bytes, at most half full. A fingerprint match is only a candidate; the
// signatures decide.
class BandTable {
 public:
  void insert(uint64_t key, uint32_t slot);
  template <typename F>
  void find(uint64_t key, F&& fn) const {
    if (cells_.empty()) return;
    const size_t mask = cells_.size() - 1;
    const uint64_t fp = key >> 32;
    for (size_t i = home(fp) & mask;; i = (i + 1) & mask) {
      const uint64_t c = cells_[i];
      if (c == 0) return;
      if ((c >> 32) == fp) fn(static_cast<uint32_t>(c) - 1);
    }
  }
  size_t bytes() const { return cells_.capacity() * sizeof(uint64_t); }

 private:
  // A cell's first probe position comes from its fingerprint, so growing moves cells without
  // their full keys.
  static size_t home(uint64_t fp) { return static_cast<size_t>((fp * 0x9E3779B97F4A7C15ULL) >> 20); }
  std::vector<uint64_t> cells_;  // fingerprint << 32 | (slot + 1); 0: empty
  size_t used_ = 0;
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
  // Kept texts' signatures, 16 bits per permutation (a hash of each minimum: equal minima stay
  // equal, different ones collide 1 time in 65536), half the memory of the full values.
  std::vector<uint16_t> signatures_;
  std::vector<uint32_t> kept_index_;  // slot → text index
  std::vector<BandTable> buckets_;    // per band: band hash → kept slots
};

}  // namespace llmops::data
