// The paired bootstrap: identical systems are never significant, a real difference is, and the
// interval brackets the observed delta.
#include <gtest/gtest.h>

#include <random>

#include "eval/bootstrap.h"
#include "eval/metrics.h"

namespace llmops::eval {
namespace {

TEST(Bootstrap, IdenticalSystemsHavePValueOne) {
  auto m = make_metric("em");
  ASSERT_TRUE(m.ok());
  std::vector<std::vector<double>> a;
  for (int i = 0; i < 200; ++i) a.push_back((*m)->example_stats(i % 3 == 0 ? "yes" : "no", {"yes"}));
  PairedResult r = paired_bootstrap(**m, a, a, 500, 7);
  EXPECT_EQ(r.delta, 0.0);
  EXPECT_EQ(r.p_value, 1.0);
  EXPECT_EQ(r.ci_low, 0.0);
  EXPECT_EQ(r.ci_high, 0.0);
  EXPECT_EQ(r.examples, 200u);
}

TEST(Bootstrap, ClearImprovementIsSignificant) {
  auto m = make_metric("em");
  ASSERT_TRUE(m.ok());
  std::mt19937 rng(3);
  std::bernoulli_distribution weak(0.3), strong(0.7);
  std::vector<std::vector<double>> a, b;
  for (int i = 0; i < 300; ++i) {
    a.push_back((*m)->example_stats(weak(rng) ? "yes" : "no", {"yes"}));
    b.push_back((*m)->example_stats(strong(rng) ? "yes" : "no", {"yes"}));
  }
  PairedResult r = paired_bootstrap(**m, a, b, 1000, 11);
  EXPECT_GT(r.delta, 25.0);
  EXPECT_LT(r.p_value, 0.01);
  EXPECT_LT(r.ci_low, r.delta);
  EXPECT_GT(r.ci_high, r.delta);
  EXPECT_GT(r.ci_low, 0.0);
  // Seeded: the same call gives the same interval.
  PairedResult again = paired_bootstrap(**m, a, b, 1000, 11);
  EXPECT_EQ(again.ci_low, r.ci_low);
  EXPECT_EQ(again.p_value, r.p_value);
}

TEST(Bootstrap, CorpusBleuIsResampledFromStatistics) {
  auto m = make_metric("bleu");
  ASSERT_TRUE(m.ok());
  std::vector<std::vector<double>> a, b;
  for (int i = 0; i < 50; ++i) {
    a.push_back((*m)->example_stats("the cat sat on a mat", {"the cat sat on the mat"}));
    b.push_back((*m)->example_stats("the cat sat on the mat", {"the cat sat on the mat"}));
  }
  b.push_back({});  // left out of the metric in one system: dropped from both
  a.push_back((*m)->example_stats("x", {"y"}));
  PairedResult r = paired_bootstrap(**m, a, b, 200, 1);
  EXPECT_EQ(r.examples, 50u);
  EXPECT_NEAR(r.b, 100.0, 1e-9);
  EXPECT_GT(r.delta, 0.0);
}

}  // namespace
}  // namespace llmops::eval
