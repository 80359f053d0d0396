#include "keys.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace llmops {
namespace {

TEST(Keys, ByteOrderIsNumericOrder) {
  std::mt19937_64 rng(7);
  std::vector<uint64_t> nums;
  for (int i = 0; i < 1000; ++i) nums.push_back(rng() >> (rng() % 64));
  nums.push_back(0);
  nums.push_back(UINT64_MAX);
  std::vector<std::string> keys;
  for (auto n : nums) keys.push_back(u64_key(n));
  std::sort(nums.begin(), nums.end());
  std::sort(keys.begin(), keys.end());
  for (size_t i = 0; i < nums.size(); ++i) EXPECT_EQ(KeyReader(keys[i]).u64(), nums[i]);
}

TEST(Keys, CompositeKeysRoundTrip) {
  std::string k = KeyBuilder().str("model").u32(7).u64(1ull << 40).take();
  KeyReader r(k);
  EXPECT_EQ(r.str(), "model");
  EXPECT_EQ(r.u32(), 7u);
  EXPECT_EQ(r.u64(), 1ull << 40);
  EXPECT_TRUE(r.empty());
  EXPECT_FALSE(r.u64().has_value());  // reading past the end is refused, not undefined
}

TEST(Keys, StringTerminatorKeepsPrefixesApart) {
  std::string a = KeyBuilder().str("ab").u32(9).take();
  std::string b = KeyBuilder().str("abc").u32(1).take();
  EXPECT_LT(a, b);
  EXPECT_FALSE(KeyReader("no-terminator").str().has_value());
}

}  // namespace
}  // namespace llmops
