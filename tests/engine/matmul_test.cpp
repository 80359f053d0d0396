// matmul_rows (the prefill product) on every path this CPU has: the integer GEMM (AVX-512 VNNI)
// for Q8_0/Q4_0/Q4_K/Q6_K, dequantise + sgemm for the rest and for lower ISA levels. Checked
// against an fp64 reference computed here from the dequantised weights, and, on the integer
// path, against the decode path's matrix-vector product of each token (same activation
// quantisation, so they agree to float summation order).
#include "kernels/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <tuple>

#include "formats/quantize.h"
#include "kernels/matvec.h"
#include "kernels/thread_pool.h"

namespace llmops::engine {
namespace {

struct Weights {
  std::vector<uint8_t> bytes;
  uint64_t row_bytes;
  std::vector<float> dequantised;  // rows × cols
};

// Gaussian rows quantised to the type (rows of different magnitudes, like trained weights).
Weights make_weights(GgmlType type, uint64_t rows, uint64_t cols, std::mt19937& rng) {
  Weights w;
  w.row_bytes = *ggml_row_bytes(type, cols);
  w.bytes.resize(rows * w.row_bytes);
  w.dequantised.resize(rows * cols);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> row(cols);
  for (uint64_t r = 0; r < rows; ++r) {
    const float scale = 0.02f * static_cast<float>(1 + r % 5);
    for (auto& v : row) v = scale * dist(rng);
    quantize_row(type, row.data(), w.bytes.data() + r * w.row_bytes, cols);
    dequantize_row(type, w.bytes.data() + r * w.row_bytes, w.dequantised.data() + r * cols, cols);
  }
  return w;
}

// Activations like a normed hidden state: mostly unit scale, a few larger outliers.
std::vector<float> make_activations(uint64_t t, uint64_t cols, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(t * cols);
  for (uint64_t i = 0; i < x.size(); ++i) x[i] = dist(rng) * (i % 97 == 0 ? 8.0f : 1.0f);
  return x;
}

class PrefillMatmul : public ::testing::TestWithParam<std::tuple<GgmlType, KernelIsa>> {};

// The tolerance: on the integer path every product sees x rounded to 8 bits per block of 32
// (Q8_0) or 256 (Q8_K), an error of at most half a step (amax/254) per value; summed with random
// signs this stays well under 1% of Σ|w·x| per output, and the test allows 2% (as the decode
// kernels' test). The fp32 paths must match to float rounding.
TEST_P(PrefillMatmul, MatchesTheFp32ReferenceAndTheDecodePath) {
  const auto [type, isa] = GetParam();
  if (!isa_supported(isa)) GTEST_SKIP() << "this CPU (or its OS) lacks " << isa_name(isa);
  const bool int8 = matmul_uses_int8(type, isa);
  const double tolerance = int8 ? 2e-2 : 1e-5;
  std::mt19937 rng(77);
  // 40 rows: two whole panels of 16 and a partial one; tokens cover whole and partial tiles.
  const uint64_t rows = 40, cols = 512;
  const Weights w = make_weights(type, rows, cols, rng);
  std::vector<float> scratch;
  double worst = 0;
  for (uint64_t t : {1, 5, 8, 9, 13, 37}) {
    const std::vector<float> x = make_activations(t, cols, rng);
    std::vector<float> y(t * rows, -1.0f);
    matmul_rows(type, w.bytes.data(), rows, w.row_bytes, cols, x.data(), t, y.data(), &scratch, nullptr, isa);
    for (uint64_t i = 0; i < t; ++i) {
      PreparedVector pv;
      prepare_vector(x.data() + i * cols, cols, vector_forms(type), &pv);
      std::vector<float> decoded(rows);
      matvec_rows(type, w.bytes.data(), rows, w.row_bytes, pv, decoded.data(), nullptr, isa);
      for (uint64_t r = 0; r < rows; ++r) {
        double want = 0, mag = 0;
        for (uint64_t c = 0; c < cols; ++c) {
          const double p = static_cast<double>(w.dequantised[r * cols + c]) * x[i * cols + c];
          want += p;
          mag += std::fabs(p);
        }
        const double got = y[i * rows + r];
        worst = std::max(worst, std::fabs(got - want) / mag);
        ASSERT_NEAR(got, want, tolerance * mag) << "token " << i << " of " << t << ", row " << r;
        if (int8) {
          ASSERT_NEAR(got, decoded[r], 1e-5 * mag) << "the decode path, token " << i << " of " << t << ", row " << r;
        }
      }
    }
  }
  std::printf("[ info     ] %s %s: worst |y − fp64| / Σ|w·x| = %.2e (%s path)\n", ggml_type_name(static_cast<uint32_t>(type)).c_str(),
              isa_name(isa), worst, int8 ? "int8" : "sgemm");
}

TEST_P(PrefillMatmul, ThePoolGivesTheSameResult) {
  const auto [type, isa] = GetParam();
  if (!isa_supported(isa)) GTEST_SKIP() << "this CPU (or its OS) lacks " << isa_name(isa);
  std::mt19937 rng(5);
  const uint64_t rows = 100, cols = 768, t = 11;
  const Weights w = make_weights(type, rows, cols, rng);
  const std::vector<float> x = make_activations(t, cols, rng);
  std::vector<float> serial(t * rows), parallel(t * rows), scratch;
  ThreadPool pool(3);
  matmul_rows(type, w.bytes.data(), rows, w.row_bytes, cols, x.data(), t, serial.data(), &scratch, nullptr, isa);
  matmul_rows(type, w.bytes.data(), rows, w.row_bytes, cols, x.data(), t, parallel.data(), &scratch, &pool, isa);
  EXPECT_EQ(serial, parallel);
}

TEST_P(PrefillMatmul, WeightsPackedOnceGiveTheSameResult) {
  const auto [type, isa] = GetParam();
  if (!isa_supported(isa)) GTEST_SKIP() << "this CPU (or its OS) lacks " << isa_name(isa);
  const uint64_t rows = 40, cols = 512;  // a last panel of 8 rows
  const uint64_t bytes = int8_packed_bytes(type, rows, cols, isa);
  if (bytes == 0) GTEST_SKIP() << "no integer path for this type at " << isa_name(isa);
  std::mt19937 rng(9);
  const Weights w = make_weights(type, rows, cols, rng);
  std::vector<uint8_t> packed(bytes);
  ThreadPool pool(2);
  pack_int8_weights(type, w.bytes.data(), rows, w.row_bytes, cols, packed.data(), &pool);
  for (uint64_t t : {1, 5, 16}) {
    const std::vector<float> x = make_activations(t, cols, rng);
    std::vector<float> repacked(t * rows), prepacked(t * rows), scratch;
    matmul_rows(type, w.bytes.data(), rows, w.row_bytes, cols, x.data(), t, repacked.data(), &scratch, nullptr, isa);
    matmul_rows(type, w.bytes.data(), rows, w.row_bytes, cols, x.data(), t, prepacked.data(), &scratch, &pool, isa, packed.data());
    EXPECT_EQ(repacked, prepacked) << "T=" << t;
  }
}

// Attention's strided kernels over fp32 and fp16 caches, at every ISA level, against per-position
// sums in double.
TEST(AttentionKernels, StridedScoresAndValuesMatchThePerPositionOnes) {
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (KernelIsa isa : {KernelIsa::kPortable, KernelIsa::kAvx2, KernelIsa::kAvx512}) {
    if (!isa_supported(isa)) continue;
    for (uint64_t d : {8, 64, 128}) {
      const uint64_t stride = 3 * d + 16;
      const int n = 37;
      std::vector<float> q(d), cache(stride * n), p(n), o(d, 0.5f), o_ref(d, 0.5f), scores(n);
      for (auto& v : q) v = dist(rng);
      for (auto& v : cache) v = dist(rng);
      for (auto& v : p) v = std::abs(dist(rng));
      dot_f32_strided(q.data(), cache.data(), stride, n, d, 0.125f, scores.data(), isa);
      axpy_f32_strided(p.data(), cache.data(), stride, n, d, o.data(), isa);
      // The fp16 cache's kernels over the same rows rounded to fp16 (fp32_to_fp16's bits).
      std::vector<uint16_t> half(cache.size());
      fp32_to_fp16_row(cache.data(), half.data(), cache.size(), isa);
      for (size_t e = 0; e < cache.size(); ++e) ASSERT_EQ(half[e], fp32_to_fp16(cache[e])) << isa_name(isa) << " element " << e;
      std::vector<float> half_scores(n), half_o(d, 0.5f), half_ref(d, 0.5f);
      dot_f16_strided(q.data(), half.data(), stride, n, d, 0.125f, half_scores.data(), isa);
      axpy_f16_strided(p.data(), half.data(), stride, n, d, half_o.data(), isa);
      for (int j = 0; j < n; ++j) {
        double want = 0, want_half = 0;
        for (uint64_t i = 0; i < d; ++i) {
          want += static_cast<double>(q[i]) * cache[j * stride + i];
          want_half += static_cast<double>(q[i]) * fp16_to_fp32(half[j * stride + i]);
          o_ref[i] += p[j] * cache[j * stride + i];
          half_ref[i] += p[j] * fp16_to_fp32(half[j * stride + i]);
        }
        EXPECT_NEAR(scores[j], want * 0.125, 1e-4) << isa_name(isa) << " d=" << d << " j=" << j;
        EXPECT_NEAR(half_scores[j], want_half * 0.125, 1e-4) << isa_name(isa) << " fp16, d=" << d << " j=" << j;
      }
      for (uint64_t i = 0; i < d; ++i) {
        EXPECT_NEAR(o[i], o_ref[i], 1e-3) << isa_name(isa) << " d=" << d;
        EXPECT_NEAR(half_o[i], half_ref[i], 1e-3) << isa_name(isa) << " fp16, d=" << d;
      }
    }
    // fp16 rounding edges: ties to even, the largest finite half, overflow to infinity,
    // subnormals, signed zero; lengths that leave a tail for the vector loops.
    const std::vector<float> edges = {0.0f,       -0.0f,      1.0f,        1.0f + 1.0f / 2048,  1.0f + 3.0f / 2048, 65504.0f, 65520.0f, -70000.0f,
                                      6.0e-8f,    3.0e-8f,    1.0e-5f,     -2.5e-6f,            0.33333334f,        1e30f,    -1e-30f};
    for (size_t len = 1; len <= edges.size(); ++len) {
      std::vector<uint16_t> out(len);
      fp32_to_fp16_row(edges.data(), out.data(), len, isa);
      for (size_t e = 0; e < len; ++e) EXPECT_EQ(out[e], fp32_to_fp16(edges[e])) << isa_name(isa) << " value " << edges[e];
    }
  }
}

// Every integer type's packed panels serve decode too: one token from them gives, to the bit,
// what the batched product on the same panels gives that token (and what the per-call repack
// gives), and the row kernel's value up to float order. Q8_0's and Q4_0's panels take the rows'
// bytes when rows fill whole panels, Q4_K's and Q6_K's under 3% more.
TEST(PackedPanels, DecodeFromPanelsEqualsTheBatchedProduct) {
  for (GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    const std::string name = ggml_type_name(static_cast<uint32_t>(type));
    if (!packed_serves_decode(type)) GTEST_SKIP() << "no AVX-512 VNNI here: decode reads the rows";
    std::mt19937 rng(11);
    for (uint64_t rows : {37, 64}) {
      const uint64_t cols = 512;
      const Weights w = make_weights(type, rows, cols, rng);
      std::vector<uint8_t> packed(int8_packed_bytes(type, rows, cols));
      if (rows % 16 == 0) {
        EXPECT_GE(packed.size(), w.bytes.size()) << name;
        EXPECT_LE(packed.size(), w.bytes.size() * (type == GgmlType::kQ4_K || type == GgmlType::kQ6_K ? 103 : 100) / 100) << name;
      }
      ThreadPool pool(2);
      pack_int8_weights(type, w.bytes.data(), rows, w.row_bytes, cols, packed.data(), &pool);
      const std::vector<float> x = make_activations(3, cols, rng);
      std::vector<float> batched(3 * rows), repacked(3 * rows), scratch;
      matmul_rows(type, w.bytes.data(), rows, w.row_bytes, cols, x.data(), 3, batched.data(), &scratch, &pool, best_isa(), packed.data());
      matmul_rows(type, w.bytes.data(), rows, w.row_bytes, cols, x.data(), 3, repacked.data(), &scratch, &pool, best_isa());
      EXPECT_EQ(batched, repacked) << name;
      for (uint64_t t = 0; t < 3; ++t) {
        PreparedVector pv;
        prepare_vector(x.data() + t * cols, cols, vector_forms(type), &pv);
        std::vector<float> one(rows), by_rows(rows);
        matvec_packed_panels(type, packed.data(), rows, cols, pv, one.data(), 0, (rows + 15) / 16);
        matvec_rows(type, w.bytes.data(), rows, w.row_bytes, pv, by_rows.data(), nullptr, best_isa());
        for (uint64_t r = 0; r < rows; ++r) {
          EXPECT_EQ(one[r], batched[t * rows + r]) << name << " rows=" << rows << " token " << t << " row " << r;
          EXPECT_NEAR(one[r], by_rows[r], 1e-4f * (1.0f + std::fabs(by_rows[r]))) << name << " rows=" << rows << " row " << r;
        }
      }
    }
  }
}

// Products of one X together (X quantised once, one pass over all panels) give what each gives
// alone: Q8_0 with Q4_0 (one activation form), and with Q4_K (two forms: one call each).
TEST(PackedPanels, ProductsOfOneInputTogetherEqualEachAlone) {
  std::mt19937 rng(13);
  const uint64_t cols = 512, t = 5;
  ThreadPool pool(2);
  const std::vector<float> x = make_activations(t, cols, rng);
  for (GgmlType second : {GgmlType::kQ4_0, GgmlType::kQ4_K}) {
    const GgmlType types[] = {GgmlType::kQ8_0, second, GgmlType::kQ8_0};
    const uint64_t rows[] = {48, 37, 16};
    std::vector<Weights> w;
    std::vector<std::vector<uint8_t>> packed;
    std::vector<std::vector<float>> alone, together;
    std::vector<MatmulJob> jobs;
    std::vector<float> scratch;
    for (int i = 0; i < 3; ++i) {
      w.push_back(make_weights(types[i], rows[i], cols, rng));
      packed.emplace_back(int8_packed_bytes(types[i], rows[i], cols));
      if (!packed.back().empty()) pack_int8_weights(types[i], w[i].bytes.data(), rows[i], w[i].row_bytes, cols, packed.back().data(), &pool);
      alone.emplace_back(t * rows[i]);
      together.emplace_back(t * rows[i]);
      const uint8_t* p = packed.back().empty() ? nullptr : packed.back().data();
      matmul_rows(types[i], w[i].bytes.data(), rows[i], w[i].row_bytes, cols, x.data(), t, alone.back().data(), &scratch, &pool, best_isa(), p);
    }
    for (int i = 0; i < 3; ++i) {
      const uint8_t* p = packed[i].empty() ? nullptr : packed[i].data();
      jobs.push_back({types[i], w[i].bytes.data(), rows[i], w[i].row_bytes, p, together[i].data()});
    }
    matmul_rows_together(jobs.data(), jobs.size(), cols, x.data(), t, &scratch, &pool);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(together[i], alone[i]) << ggml_type_name(static_cast<uint32_t>(second)) << " job " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Types, PrefillMatmul,
                         ::testing::Combine(::testing::Values(GgmlType::kF32, GgmlType::kF16, GgmlType::kQ8_0, GgmlType::kQ4_0,
                                                              GgmlType::kQ4_K, GgmlType::kQ6_K),
                                            ::testing::Values(KernelIsa::kAvx2, KernelIsa::kAvx512)),
                         [](const auto& info) {
                           return ggml_type_name(static_cast<uint32_t>(std::get<0>(info.param))) + "_" +
                                  isa_name(std::get<1>(info.param));
                         });

}  // namespace
}  // namespace llmops::engine
