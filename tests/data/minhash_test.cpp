// MinHash + LSH near-duplicate detection: exact Jaccard of shingles, the LSH shape, and
// detection of edited copies just above and well below the threshold.
#include <gtest/gtest.h>

#include <random>

#include "data/minhash.h"
#include "data/text.h"

namespace llmops::data {
namespace {

std::string words_text(const std::vector<int>& words) {
  std::string s;
  for (int w : words) s += (s.empty() ? "w" : " w") + std::to_string(w);
  return s;
}

// A copy of base with words replaced until the shingle Jaccard drops to target or below.
std::vector<int> edited(const std::vector<int>& base, double target, std::mt19937& rng, int shingle, double* actual) {
  std::vector<int> copy = base;
  std::uniform_int_distribution<size_t> pos(0, base.size() - 1);
  int fresh = 1000000 + static_cast<int>(rng() % 1000000);
  while (true) {
    double j = jaccard(shingles(words_text(base), shingle), shingles(words_text(copy), shingle));
    if (j <= target) {
      *actual = j;
      return copy;
    }
    copy[pos(rng)] = fresh++;
  }
}

TEST(DataMinHash, ShinglesAndExactJaccard) {
  EXPECT_EQ(shingles("a b c d e f", 5).size(), 2u);
  EXPECT_EQ(shingles("a b", 5).size(), 1u);  // shorter than one shingle: the whole text
  EXPECT_TRUE(shingles("", 5).empty());
  EXPECT_DOUBLE_EQ(jaccard(shingles("a b c d e f", 5), shingles("a b c d e f", 5)), 1.0);
  EXPECT_DOUBLE_EQ(jaccard(shingles("a b c d e f", 5), shingles("a b c d e g", 5)), 1.0 / 3.0);
}

TEST(DataMinHash, LshShapeFavoursRecallAtTheThreshold) {
  LshShape s = lsh_shape(0.8, 128);
  ASSERT_GT(s.bands, 0);
  ASSERT_LE(s.bands * s.rows, 128);
  auto p = [&](double j) { return 1 - std::pow(1 - std::pow(j, s.rows), s.bands); };
  EXPECT_GT(p(0.8), 0.8);   // pairs at the threshold mostly become candidates
  EXPECT_LT(p(0.4), 0.05);  // dissimilar pairs rarely do
}

TEST(DataMinHash, SignatureEstimatesJaccard) {
  MinHashParams mp;
  mp.permutations = 256;
  MinHasher h(mp);
  std::mt19937 rng(3);
  std::vector<int> base(300);
  for (auto& w : base) w = static_cast<int>(rng() % 5000);
  double actual = 0;
  auto copy = edited(base, 0.7, rng, 5, &actual);
  std::vector<uint32_t> a(256), b(256);
  h.signature(shingles(words_text(base), 5), a.data());
  h.signature(shingles(words_text(copy), 5), b.data());
  EXPECT_NEAR(estimate_jaccard(a.data(), b.data(), 256), actual, 0.1);
}

TEST(DataMinHash, NearDuplicatesAboveTheThresholdAreFoundAndDissimilarOnesKept) {
  MinHashParams mp;  // 5-word shingles, 128 permutations, threshold 0.8
  std::mt19937 rng(11);
  int found_near = 0, found_far = 0, n = 60;
  NearDedup nd(mp);
  for (int i = 0; i < n; ++i) {
    std::vector<int> base(250);
    for (auto& w : base) w = static_cast<int>(rng() % 20000);
    double j_near = 0, j_far = 0;
    auto near = edited(base, 0.9, rng, 5, &j_near);
    auto far = edited(base, 0.6, rng, 5, &j_far);
    ASSERT_GT(j_near, 0.85);
    ASSERT_LT(j_far, 0.65);
    auto first = nd.add(dedup_key(words_text(base)));
    EXPECT_FALSE(first.duplicate);
    found_near += nd.add(dedup_key(words_text(near))).duplicate;
    found_far += nd.add(dedup_key(words_text(far))).duplicate;
  }
  EXPECT_GE(found_near, n * 95 / 100) << "recall of copies at Jaccard ~0.9";
  EXPECT_LE(found_far, n * 5 / 100) << "false positives at Jaccard ~0.6";
  // Everything not found to be a near duplicate is kept.
  EXPECT_EQ(nd.kept(), static_cast<uint64_t>(n + (n - found_near) + (n - found_far)));
}

}  // namespace
}  // namespace llmops::data
