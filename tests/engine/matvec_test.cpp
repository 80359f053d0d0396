// Every dot-product kernel (portable, AVX2, AVX-512) against the scalar reference (dequantise the
// row, then an fp64 dot product), on random blocks of each type; levels this CPU lacks are skipped.
#include "kernels/matvec.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <random>
#include <tuple>
#include <utility>

#include "kernels/thread_pool.h"

namespace llmops::engine {
namespace {

// Random bytes, with every fp16 scale field set to a sane value so blocks stay finite.
std::vector<uint8_t> random_row(GgmlType type, uint64_t n, std::mt19937& rng) {
  auto info = *ggml_type_info(static_cast<uint32_t>(type));
  uint64_t bytes = *ggml_row_bytes(type, n);
  std::vector<uint8_t> row(bytes);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(0.001f, 0.05f), value(-1.0f, 1.0f);
  for (auto& b : row) b = static_cast<uint8_t>(byte(rng));
  auto put = [&](uint64_t at, float v) {
    uint16_t h = fp32_to_fp16(v);
    std::memcpy(row.data() + at, &h, 2);
  };
  for (uint64_t blk = 0; blk < n / info.block_elements; ++blk) {
    uint64_t o = blk * info.block_bytes;
    switch (type) {
      case GgmlType::kF16: put(o, value(rng)); break;
      case GgmlType::kBF16: {
        float f = value(rng);
        uint32_t bits;
        std::memcpy(&bits, &f, 4);
        uint16_t top = static_cast<uint16_t>(bits >> 16);
        std::memcpy(row.data() + o, &top, 2);
        break;
      }
      case GgmlType::kF32: {
        float f = value(rng);
        std::memcpy(row.data() + o, &f, 4);
        break;
      }
      case GgmlType::kQ4_1:
      case GgmlType::kQ5_1:
      case GgmlType::kQ4_K:
      case GgmlType::kQ5_K:
        put(o, scale(rng));
        put(o + 2, scale(rng));
        break;
      case GgmlType::kQ6_K: put(o + 208, scale(rng)); break;
      default: put(o, scale(rng)); break;
    }
  }
  return row;
}

double reference_dot(GgmlType type, const std::vector<uint8_t>& row, const std::vector<float>& x, double* magnitude) {
  std::vector<float> w(x.size());
  dequantize_row(type, row.data(), w.data(), x.size());
  double sum = 0, mag = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sum += static_cast<double>(w[i]) * x[i];
    mag += std::fabs(static_cast<double>(w[i]) * x[i]);
  }
  *magnitude = mag;
  return sum;
}

const KernelIsa kAllIsas[] = {KernelIsa::kPortable, KernelIsa::kAvx2, KernelIsa::kAvx512};

#define SKIP_IF_UNSUPPORTED(isa)                                                                    \
  if (!isa_supported(isa)) GTEST_SKIP() << "this CPU (or its OS) lacks " << isa_name(isa)

class MatvecKernels : public ::testing::TestWithParam<std::tuple<GgmlType, KernelIsa>> {};

TEST_P(MatvecKernels, MatchTheScalarReference) {
  const auto [type, isa] = GetParam();
  SKIP_IF_UNSUPPORTED(isa);
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> value(-2.0f, 2.0f);
  bool q8 = type_uses_q8(type);
  // Quantising x to 8 bits costs about 1% on a sum of mixed signs; the rest is float rounding.
  const double tolerance = q8 ? 2e-2 : 1e-5;
  // 1024 and 1280 (an odd number of 32-blocks per 64, and F32/F16 tails past 16 floats); the
  // K-quants need whole super-blocks.
  for (uint64_t n : {uint64_t{1024}, uint64_t{1280}, uint64_t{1056}}) {
    if (n % ggml_type_info(static_cast<uint32_t>(type))->block_elements != 0) continue;
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<float> x(n);
      for (auto& v : x) v = value(rng);
      auto row = random_row(type, n, rng);
      double mag = 0;
      double want = reference_dot(type, row, x, &mag);
      PreparedVector pv;
      prepare_vector(x.data(), n, q8, &pv);
      float got = dot_row(type, row.data(), pv, isa);
      EXPECT_NEAR(got, want, tolerance * mag) << isa_name(isa) << " n " << n << " trial " << trial;
      float portable = dot_row(type, row.data(), pv, KernelIsa::kPortable);
      EXPECT_NEAR(got, portable, 1e-5 * mag) << isa_name(isa) << " and portable kernels compute the same sum, n " << n;
      PreparedVector exact;
      prepare_vector(x.data(), n, false, &exact);
      EXPECT_NEAR(dot_row(type, row.data(), exact, isa), want, 1e-5 * mag) << "without the Q8 vector the dot is exact";
      // matvec_rows takes its own route to the AVX-512 kernels.
      float y = 0;
      matvec_rows(type, row.data(), 1, row.size(), pv, &y, nullptr, isa);
      EXPECT_EQ(y, got);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, MatvecKernels,
                         ::testing::Combine(::testing::Values(GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ4_0,
                                                              GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kQ8_0,
                                                              GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K),
                                            ::testing::ValuesIn(kAllIsas)),
                         [](const auto& info) {
                           return ggml_type_name(static_cast<uint32_t>(std::get<0>(info.param))) + "_" +
                                  isa_name(std::get<1>(info.param));
                         });

class MatvecF32 : public ::testing::TestWithParam<KernelIsa> {};

TEST_P(MatvecF32, DotAndAxpyMatchScalarAtEveryLength) {
  const KernelIsa isa = GetParam();
  SKIP_IF_UNSUPPORTED(isa);
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  for (uint64_t n : {0, 1, 7, 8, 15, 16, 17, 31, 33, 64, 65, 100, 255}) {
    std::vector<float> a(n), b(n), y(n), want_y(n);
    for (uint64_t i = 0; i < n; ++i) a[i] = value(rng), b[i] = value(rng), y[i] = want_y[i] = value(rng);
    double want = 0, mag = 0;
    for (uint64_t i = 0; i < n; ++i) want += static_cast<double>(a[i]) * b[i], mag += std::fabs(static_cast<double>(a[i]) * b[i]);
    EXPECT_NEAR(dot_f32(a.data(), b.data(), n, isa), want, 1e-6 * (mag + 1)) << isa_name(isa) << " n " << n;
    for (uint64_t i = 0; i < n; ++i) want_y[i] += 0.75f * a[i];
    axpy_f32(0.75f, a.data(), y.data(), n, isa);
    for (uint64_t i = 0; i < n; ++i) EXPECT_NEAR(y[i], want_y[i], 1e-6f) << isa_name(isa) << " n " << n << " i " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, MatvecF32, ::testing::ValuesIn(kAllIsas),
                         [](const auto& info) { return std::string(isa_name(info.param)); });

// The decode and prefill paths quantise activations with whichever level is best; the bytes must
// not depend on it, ties (x · 127 / amax exactly k + ½, which the hardware's nearest mode would
// round to even) included.
TEST(MatvecQuantize, EveryIsaWritesTheSameBytes) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> value(-3.0f, 3.0f);
  std::uniform_int_distribution<int> step(-126, 126);
  const uint64_t n = 1024;
  std::vector<float> x(n);
  for (int trial = 0; trial < 8; ++trial) {
    for (uint64_t i = 0; i < n; ++i) {
      // Every 32 (and so every 256) holds ±127 once, making the scale exactly 1: the others are
      // then ties k + ½, their neighbours one ulp off, or random.
      if (i % 32 == 0) x[i] = i % 64 == 0 ? 127.0f : -127.0f;
      else if (trial % 2 == 0) x[i] = static_cast<float>(step(rng)) + (i % 3 == 0 ? 0.5f : i % 3 == 1 ? -0.5f : std::nextafter(0.5f, 0.0f));
      else x[i] = value(rng) * (i % 7 == 0 ? 40.0f : 1.0f);
    }
    for (auto [block, fp16] : {std::pair{uint64_t{32}, true}, std::pair{uint64_t{256}, false}}) {
      std::vector<int8_t> want(n), got(n);
      std::vector<float> want_scale(n / block), got_scale(n / block);
      quantize_q8(x.data(), n, block, fp16, want.data(), want_scale.data(), KernelIsa::kPortable);
      for (KernelIsa isa : kAllIsas) {
        if (!isa_supported(isa)) continue;
        quantize_q8(x.data(), n, block, fp16, got.data(), got_scale.data(), isa);
        EXPECT_EQ(got, want) << isa_name(isa) << " block " << block << " trial " << trial;
        EXPECT_EQ(got_scale, want_scale) << isa_name(isa) << " block " << block << " trial " << trial;
      }
    }
  }
}

TEST(MatvecIsa, BestIsSupportedAndNamed) {
  EXPECT_TRUE(isa_supported(KernelIsa::kPortable));
  EXPECT_TRUE(isa_supported(best_isa()));
  std::printf("[ info     ] best ISA: %s (avx2 %s, avx512 %s)\n", isa_name(best_isa()), isa_supported(KernelIsa::kAvx2) ? "yes" : "no",
              isa_supported(KernelIsa::kAvx512) ? "yes" : "no");
}

TEST(MatvecThreadPool, CoversEveryIndexOnceAndMatchesSerial) {
  ThreadPool pool(3);
  EXPECT_EQ(pool.size(), 3);
  for (size_t n : {size_t{0}, size_t{1}, size_t{2}, size_t{7}, size_t{1000}}) {
    std::vector<std::atomic<int>> hits(n);
    pool.parallel_for(n, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) ++hits[i];
    });
    for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  }
  std::mt19937 rng(5);
  const uint64_t rows = 300, n = 512;
  std::vector<uint8_t> data;
  for (uint64_t r = 0; r < rows; ++r) {
    auto row = random_row(GgmlType::kQ8_0, n, rng);
    data.insert(data.end(), row.begin(), row.end());
  }
  std::vector<float> x(n, 0.5f), serial(rows), parallel(rows);
  PreparedVector pv;
  prepare_vector(x.data(), n, true, &pv);
  uint64_t row_bytes = *ggml_row_bytes(GgmlType::kQ8_0, n);
  matvec_rows(GgmlType::kQ8_0, data.data(), rows, row_bytes, pv, serial.data(), nullptr, best_isa());
  matvec_rows(GgmlType::kQ8_0, data.data(), rows, row_bytes, pv, parallel.data(), &pool, best_isa());
  EXPECT_EQ(serial, parallel);
}

}  // namespace
}  // namespace llmops::engine
