#include "data/minhash.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "data/text.h"

namespace llmops::data {
namespace {

// Area under f on [a, b] by the midpoint rule.
template <typename F>
double integrate(F f, double a, double b) {
  const int steps = 200;
  double h = (b - a) / steps, sum = 0;
  for (int k = 0; k < steps; ++k) sum += f(a + (k + 0.5) * h);
  return sum * h;
}

}  // namespace

LshShape lsh_shape(double threshold, int permutations) {
  // A missed duplicate stays in the data; a false candidate only costs one signature compare.
  // These weights give 16 bands of 8 rows at 0.8 and 128 permutations: pairs at the threshold
  // become candidates 95% of the time, at 0.85 99%.
  const double fp_weight = 0.05, fn_weight = 0.95;
  LshShape best{1, permutations};
  double best_error = std::numeric_limits<double>::max();
  for (int b = 1; b <= permutations; ++b) {
    for (int r = 1; r * b <= permutations; ++r) {
      auto p = [&](double s) { return 1 - std::pow(1 - std::pow(s, r), b); };
      double fp = integrate(p, 0, threshold);
      double fn = integrate([&](double s) { return 1 - p(s); }, threshold, 1);
      double err = fp_weight * fp + fn_weight * fn;
      if (err < best_error) {
        best_error = err;
        best = {b, r};
      }
    }
  }
  return best;
}

std::vector<uint64_t> shingles(std::string_view key, int words) {
  // Each word is hashed once; a shingle's hash combines its words' hashes in order.
  std::vector<uint64_t> word_hashes;
  for (size_t i = 0; i < key.size();) {
    while (i < key.size() && key[i] == ' ') ++i;
    size_t j = i;
    while (j < key.size() && key[j] != ' ') ++j;
    if (j > i) word_hashes.push_back(hash64(key.substr(i, j - i), 0x5eed));
    i = j;
  }
  std::vector<uint64_t> out;
  if (word_hashes.empty()) return out;
  const size_t w = static_cast<size_t>(std::max(words, 1));
  const size_t n = word_hashes.size() <= w ? 1 : word_hashes.size() - w + 1;
  const size_t span = std::min(w, word_hashes.size());
  out.reserve(n);
  for (size_t k = 0; k < n; ++k) {
    uint64_t h = 0x9E3779B97F4A7C15ULL;
    for (size_t j = 0; j < span; ++j) h = mix64(h ^ word_hashes[k + j]) + j;
    out.push_back(h);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

double jaccard(std::vector<uint64_t> a, std::vector<uint64_t> b) {
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  a.erase(std::unique(a.begin(), a.end()), a.end());
  b.erase(std::unique(b.begin(), b.end()), b.end());
  if (a.empty() && b.empty()) return 1.0;
  std::vector<uint64_t> common;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(common));
  return static_cast<double>(common.size()) / static_cast<double>(a.size() + b.size() - common.size());
}

MinHasher::MinHasher(const MinHashParams& p) {
  uint64_t state = p.seed * 0x9E3779B97F4A7C15ULL + 1;
  for (int i = 0; i < p.permutations; ++i) {
    state = mix64(state + 0x9E3779B97F4A7C15ULL);
    mul_.push_back(static_cast<uint32_t>(state) | 1);
    add_.push_back(static_cast<uint32_t>(state >> 32));
  }
}

namespace {
// Per permutation i, a bijection of 32-bit keys: xor a seed, multiply by an odd constant,
// xor-shift, multiply again. 32-bit lanes so that AVX2 runs eight permutations at a time (the
// clone is picked at load time; the default one is plain SSE2).
__attribute__((target_clones("avx2", "default"))) void min_hashes(const uint32_t* __restrict keys, size_t n_keys,
                                                                  const uint32_t* __restrict mul, const uint32_t* __restrict seed,
                                                                  size_t n, uint32_t* __restrict out) {
  for (size_t k = 0; k < n_keys; ++k) {
    const uint32_t key = keys[k];
    for (size_t i = 0; i < n; ++i) {
      uint32_t v = (key ^ seed[i]) * mul[i];
      v ^= v >> 15;
      v *= 0x2c1b3c6dU;
      v ^= v >> 12;
      out[i] = v < out[i] ? v : out[i];
    }
  }
}
}  // namespace

void MinHasher::signature(const std::vector<uint64_t>& sh, uint32_t* out) const {
  const size_t n = mul_.size();
  std::fill(out, out + n, std::numeric_limits<uint32_t>::max());
  std::vector<uint32_t> keys(sh.size());
  for (size_t k = 0; k < sh.size(); ++k) keys[k] = static_cast<uint32_t>(sh[k] ^ (sh[k] >> 32));
  min_hashes(keys.data(), keys.size(), mul_.data(), add_.data(), n, out);
}

double estimate_jaccard(const uint32_t* a, const uint32_t* b, int n) {
  int same = 0;
  for (int i = 0; i < n; ++i) same += a[i] == b[i];
  return n > 0 ? static_cast<double>(same) / n : 0;
}

void BandTable::insert(uint64_t key, uint32_t slot) {
  if ((used_ + 1) * 2 > cells_.size()) {
    std::vector<uint64_t> old = std::move(cells_);
    cells_.assign(std::max<size_t>(1024, old.size() * 2), 0);
    used_ = 0;
    const size_t mask = cells_.size() - 1;
    for (uint64_t c : old) {
      if (c == 0) continue;
      for (size_t i = home(c >> 32) & mask;; i = (i + 1) & mask) {
        if (cells_[i] == 0) {
          cells_[i] = c;
          ++used_;
          break;
        }
      }
    }
  }
  const size_t mask = cells_.size() - 1;
  const uint64_t fp = key >> 32;
  for (size_t i = home(fp) & mask;; i = (i + 1) & mask) {
    if (cells_[i] == 0) {
      cells_[i] = fp << 32 | (static_cast<uint64_t>(slot) + 1);
      ++used_;
      return;
    }
  }
}

namespace {
inline uint16_t squeeze(uint32_t v) { return static_cast<uint16_t>((v * 0x9E3779B1U) >> 16); }
}  // namespace

NearDedup::NearDedup(const MinHashParams& p)
    : params_(p), shape_(lsh_shape(p.threshold, p.permutations)), hasher_(p), buckets_(shape_.bands) {}

void NearDedup::sketch(std::string_view key, Sketch* out) const {
  std::vector<uint64_t> sh = shingles(key, params_.shingle_words);
  out->empty = sh.empty();
  if (out->empty) return;
  out->signature.resize(params_.permutations);
  hasher_.signature(sh, out->signature.data());
  out->band_keys.resize(shape_.bands);
  for (int b = 0; b < shape_.bands; ++b) {
    out->band_keys[b] = hash64({reinterpret_cast<const char*>(out->signature.data() + b * shape_.rows), shape_.rows * sizeof(uint32_t)},
                               static_cast<uint64_t>(b));
  }
}

NearDedup::Verdict NearDedup::add(std::string_view key) {
  Sketch s;
  sketch(key, &s);
  return add(s);
}

NearDedup::Verdict NearDedup::add(const Sketch& s) {
  const uint32_t index = next_++;
  const int n = params_.permutations;
  if (s.empty) return {false, index, 0};  // empty text: exact dedup's business
  Verdict best{false, index, 0};
  for (int b = 0; b < shape_.bands; ++b) {
    buckets_[b].find(s.band_keys[b], [&](uint32_t slot) {
      const uint16_t* kept = signatures_.data() + static_cast<size_t>(slot) * n;
      int same = 0;
      for (int i = 0; i < n; ++i) same += squeeze(s.signature[i]) == kept[i];
      const double sim = static_cast<double>(same) / n;
      if (sim >= params_.threshold && sim > best.similarity) best = {true, kept_index_[slot], sim};
    });
  }
  if (best.duplicate) return best;
  const uint32_t slot = static_cast<uint32_t>(kept_index_.size());
  kept_index_.push_back(index);
  for (uint32_t v : s.signature) signatures_.push_back(squeeze(v));
  for (int b = 0; b < shape_.bands; ++b) buckets_[b].insert(s.band_keys[b], slot);
  ++kept_;
  return {false, index, 1.0};
}

size_t NearDedup::memory_bytes() const {
  size_t bytes = signatures_.capacity() * sizeof(uint16_t) + kept_index_.capacity() * sizeof(uint32_t);
  for (const auto& b : buckets_) bytes += b.bytes();
  return bytes;
}

}  // namespace llmops::data
