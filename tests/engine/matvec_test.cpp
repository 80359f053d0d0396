// Every quantized dot-product kernel (portable and AVX2) against the scalar reference
// (dequantise the row, then an fp64 dot product), on random blocks of each type.
#include "kernels/matvec.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <random>

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

class Kernels : public ::testing::TestWithParam<GgmlType> {};

TEST_P(Kernels, MatchTheScalarReference) {
  GgmlType type = GetParam();
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> value(-2.0f, 2.0f);
  const uint64_t n = 1024;
  bool q8 = type_uses_q8(type);
  // Quantising x to 8 bits costs about 1% on a sum of mixed signs; the rest is float rounding.
  const double tolerance = q8 ? 2e-2 : 1e-5;
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<float> x(n);
    for (auto& v : x) v = value(rng);
    auto row = random_row(type, n, rng);
    double mag = 0;
    double want = reference_dot(type, row, x, &mag);
    PreparedVector pv;
    prepare_vector(x.data(), n, q8, &pv);
    float portable = dot_row(type, row.data(), pv, KernelIsa::kPortable);
    EXPECT_NEAR(portable, want, tolerance * mag) << ggml_type_name(static_cast<uint32_t>(type)) << " portable, trial " << trial;
    if (best_isa() == KernelIsa::kAvx2) {
      float avx2 = dot_row(type, row.data(), pv, KernelIsa::kAvx2);
      EXPECT_NEAR(avx2, want, tolerance * mag) << "avx2, trial " << trial;
      EXPECT_NEAR(avx2, portable, 1e-5 * mag) << "avx2 and portable kernels compute the same sum";
    }
    PreparedVector exact;
    prepare_vector(x.data(), n, false, &exact);
    EXPECT_NEAR(dot_row(type, row.data(), exact, best_isa()), want, 1e-5 * mag) << "without the Q8 vector the dot is exact";
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, Kernels,
                         ::testing::Values(GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ4_0, GgmlType::kQ4_1,
                                           GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kQ8_0, GgmlType::kQ4_K, GgmlType::kQ5_K,
                                           GgmlType::kQ6_K),
                         [](const auto& info) { return std::string(ggml_type_name(static_cast<uint32_t>(info.param))); });

TEST(ThreadPool, CoversEveryIndexOnceAndMatchesSerial) {
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
