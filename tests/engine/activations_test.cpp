// The element-wise kernels (kernels/activations.h) at every ISA level against double-precision
// references: exp within 2 ulp over the clamped range, SiLU·u and the norms within float rounding,
// at lengths that leave every tail.
#include "kernels/activations.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace llmops::engine {
namespace {

class Activations : public ::testing::TestWithParam<KernelIsa> {
 protected:
  void SetUp() override {
    if (!isa_supported(GetParam())) GTEST_SKIP() << "this CPU (or its OS) lacks " << isa_name(GetParam());
  }
};

std::vector<float> randoms(size_t n, float lo, float hi, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

TEST_P(Activations, ExpIsWithinTwoUlpOverItsRange) {
  std::vector<float> x = randoms(4099, -87.0f, 88.0f, 1);
  for (float edge : {-87.0f, -20.5f, -1.0f, -0.3465736f, 0.0f, 0.3465736f, 1e-8f, 1.0f, 10.0f, 88.0f}) x.push_back(edge);
  std::vector<float> y(x.size());
  exp_row(x.data(), y.data(), x.size(), GetParam());
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = std::exp(static_cast<double>(x[i]));
    const double ulp = std::nextafter(static_cast<float>(want), INFINITY) - static_cast<float>(want);
    EXPECT_LE(std::fabs(y[i] - want), 2 * ulp) << "exp(" << x[i] << ") = " << y[i] << ", want " << want;
  }
}

TEST_P(Activations, SiluMulMatchesTheDefinition) {
  for (size_t n : {1u, 7u, 8u, 15u, 16u, 17u, 33u, 2048u, 2051u}) {
    std::vector<float> g = randoms(n, -12.0f, 12.0f, static_cast<unsigned>(n)), u = randoms(n, -3.0f, 3.0f, static_cast<unsigned>(n) + 1);
    g[0] = n > 1 ? -100.0f : g[0];  // far below the clamp: the gate is 0
    if (n > 2) g[1] = 100.0f;       // far above: the gate is 1
    std::vector<float> out = g;
    silu_mul(out.data(), u.data(), n, GetParam());
    for (size_t i = 0; i < n; ++i) {
      const double gi = g[i], want = gi / (1.0 + std::exp(-gi)) * u[i];
      EXPECT_NEAR(out[i], want, 6e-7 * std::fabs(want) + 1e-30) << "n " << n << " at " << i << " g " << gi;
    }
  }
}

TEST_P(Activations, NormsMatchTheDefinition) {
  for (bool layer_norm : {false, true}) {
    for (size_t n : {1u, 5u, 16u, 31u, 32u, 48u, 768u, 770u}) {
      const std::vector<float> x = randoms(n, -2.0f, 3.0f, static_cast<unsigned>(n)), w = randoms(n, 0.5f, 1.5f, 7), b = randoms(n, -1.0f, 1.0f, 8);
      double mean = 0, ss = 0;
      if (layer_norm) {
        for (float v : x) mean += v;
        mean /= static_cast<double>(n);
      }
      for (float v : x) ss += (v - mean) * (v - mean);
      const double scale = 1.0 / std::sqrt(ss / static_cast<double>(n) + 1e-5);
      std::vector<float> out(n), in_place = x;
      norm_row(x.data(), w.data(), layer_norm ? b.data() : nullptr, out.data(), n, 1e-5f, layer_norm, GetParam());
      norm_row(in_place.data(), w.data(), layer_norm ? b.data() : nullptr, in_place.data(), n, 1e-5f, layer_norm, GetParam());
      for (size_t i = 0; i < n; ++i) {
        const double want = w[i] * ((x[i] - mean) * scale) + (layer_norm ? b[i] : 0.0);
        EXPECT_NEAR(out[i], want, 2e-5 * (std::fabs(want) + 1)) << (layer_norm ? "LayerNorm" : "RMSNorm") << " n " << n << " at " << i;
      }
      EXPECT_EQ(in_place, out) << "in place differs";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, Activations, ::testing::Values(KernelIsa::kPortable, KernelIsa::kAvx2, KernelIsa::kAvx512),
                         [](const auto& info) { return std::string(isa_name(info.param)); });

}  // namespace
}  // namespace llmops::engine
