// Driver parity: every operation of the CUDA driver against the CPU engine's arithmetic (in
// double where that is the reference), with a bound on the normalised mean squared error per
// op, then whole models on the GPU against the CPU runner and the shared references. Built on
// every run; where no GPU is usable each test skips and says why.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "formats/ggml_types.h"
#include "formats/quantize.h"
#include "kernels/matvec.h"
#include "gpu/gpu_model.h"
#include "model/model.h"
#include "model/synth.h"
#include "gpu/gpu_test_util.h"
#include "gpu/reference_driver.h"
#include "unit/test_util.h"

namespace llmops::engine {
namespace {

using namespace gpu_test;

// ---- the driver is found and scored ----

TEST(GpuDriver, ScoreZeroMeansTheCpuPathWithAReason) {
  auto driver = GpuDriver::find_cuda();
  if (!driver.ok()) {
    // A build without nvcc has no driver: that must be a plain not-found, naming where it looked.
    EXPECT_EQ(driver.status().code(), Code::kNotFound) << driver.status().message();
    EXPECT_NE(driver.status().message().find("libllmops_cuda.so"), std::string::npos);
    GTEST_SKIP() << driver.status().message();
  }
  const llmops_driver_api& api = (*driver)->api();
  EXPECT_EQ(api.abi_major, LLMOPS_DRIVER_ABI_MAJOR);
  EXPECT_STREQ(api.name, "cuda");
  auto dev = GpuDevice::open(*driver, 0);
  if (api.score() == 0) {
    ASSERT_FALSE(dev.ok());
    EXPECT_EQ(dev.status().code(), Code::kUnavailable);
    EXPECT_NE(dev.status().message().find("no usable device"), std::string::npos) << dev.status().message();
  } else {
    ASSERT_TRUE(dev.ok()) << dev.status().message();
    EXPECT_GT((*dev)->info().total_bytes, 0u);
    EXPECT_GT((*dev)->info().multiprocessors, 0);
    std::printf("GPU 0: %s, %d SMs, %.1f GiB, PCI %s\n", (*dev)->info().name, (*dev)->info().multiprocessors,
                static_cast<double>((*dev)->info().total_bytes) / (1ull << 30), (*dev)->info().pci_bus_id);
  }
}

// ---- per-op parity ----

struct MatmulCase {
  GgmlType type;
  double bound_matvec;  // registers path (F32 accumulation of exact dequantised weights)
  double bound_blas;    // cuBLAS path (activations rounded to 16 bits)
};

class GpuMatmul : public ::testing::TestWithParam<MatmulCase> {};

TEST_P(GpuMatmul, MatchesTheDequantisedProductInDouble) {
  REQUIRE_GPU();
  const MatmulCase c = GetParam();
  const uint64_t rows = 80, cols = 512;
  const uint64_t rb = *ggml_row_bytes(c.type, cols);
  std::vector<float> wf = randn(rows * cols, 11, 0.05f);
  std::vector<uint8_t> w(rows * rb);
  for (uint64_t r = 0; r < rows; ++r) quantize_row(c.type, wf.data() + r * cols, w.data() + r * rb, cols);
  std::vector<float> deq(rows * cols);
  for (uint64_t r = 0; r < rows; ++r) dequantize_row(c.type, w.data() + r * rb, deq.data() + r * cols, cols);
  DeviceBuffer dw = up(dev, w);
  const std::vector<float> bias = randn(rows, 5, 0.1f);
  DeviceBuffer db = up(dev, bias);
  for (int t : {1, 2, 3, 8, 13, 32, 70}) {
    for (bool with_bias : {false, true}) {
      const std::vector<float> x = randn(static_cast<size_t>(t) * cols, 100 + static_cast<uint32_t>(t));
      // Q4_K over one or two tokens (dp4a) and Q8_0, Q4_0 and Q4_K over more than four (int8
      // tensor cores) multiply activations rounded to 8 bits per 32, as llama.cpp and the CPU
      // engine do: the reference takes the same rounding, made by the CPU engine's quantize_q8.
      const bool mmq = t > 4 && (c.type == GgmlType::kQ8_0 || c.type == GgmlType::kQ4_0 || c.type == GgmlType::kQ4_K);
      const bool q8 = ((c.type == GgmlType::kQ4_K && t <= 2) || mmq) && !holder().reference;  // the reference multiplies exactly
      std::vector<float> xr = x;
      if (q8) {
        std::vector<int8_t> q(x.size());
        std::vector<float> d(x.size() / 32);
        quantize_q8(x.data(), x.size(), 32, false, q.data(), d.data(), KernelIsa::kPortable);
        for (size_t i = 0; i < x.size(); ++i) xr[i] = d[i / 32] * static_cast<float>(q[i]);
      }
      std::vector<double> want(static_cast<size_t>(t) * rows);
      for (int i = 0; i < t; ++i) {
        for (uint64_t r = 0; r < rows; ++r) {
          double s = with_bias ? bias[r] : 0.0;
          for (uint64_t k = 0; k < cols; ++k) s += static_cast<double>(deq[r * cols + k]) * xr[static_cast<size_t>(i) * cols + k];
          want[static_cast<size_t>(i) * rows + r] = s;
        }
      }
      DeviceBuffer dx = up(dev, x), dy = poisoned(dev, want.size());
      ASSERT_EQ(api.matmul(h, static_cast<int>(c.type), dw.get(), rows, cols, dx.as<float>(), t, dy.as<float>(), with_bias ? db.as<float>() : nullptr), 0)
          << api.last_error(h);
      const std::vector<float> got = down(dev, dy, want.size());
      // matmul_add on top of the product's own output doubles it.
      ASSERT_EQ(api.matmul_add(h, static_cast<int>(c.type), dw.get(), rows, cols, dx.as<float>(), t, dy.as<float>(), with_bias ? db.as<float>() : nullptr), 0)
          << api.last_error(h);
      std::vector<double> twice(want);
      for (double& v : twice) v *= 2;
      const bool registers = t <= 4;  // the driver's threshold for its own kernels
      const double e = nmse(got.data(), want.data(), want.size());
      const double bound = q8 ? 1e-10 : registers ? c.bound_matvec : c.bound_blas;
      EXPECT_LT(e, bound) << ggml_type_name(static_cast<uint32_t>(c.type)) << " t=" << t << " bias=" << with_bias;
      EXPECT_LT(nmse(down(dev, dy, want.size()).data(), twice.data(), twice.size()), bound) << "matmul_add";
      std::printf("  matmul %-5s t=%-3d %s nmse %.2e\n", ggml_type_name(static_cast<uint32_t>(c.type)).c_str(), t,
                  mmq && q8 ? "mmq  " : q8 ? "q8   " : registers ? "regs " : "cublas", e);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, GpuMatmul,
                         ::testing::Values(MatmulCase{GgmlType::kF32, 1e-11, 1e-11}, MatmulCase{GgmlType::kF16, 1e-11, 3e-6},
                                           MatmulCase{GgmlType::kBF16, 1e-11, 2e-4}, MatmulCase{GgmlType::kQ8_0, 1e-11, 3e-6},
                                           MatmulCase{GgmlType::kQ4_0, 1e-11, 3e-6}, MatmulCase{GgmlType::kQ4_K, 1e-11, 3e-6},
                                           MatmulCase{GgmlType::kQ6_K, 1e-11, 3e-6}),
                         [](const auto& info) { return ggml_type_name(static_cast<uint32_t>(info.param.type)); });

TEST(GpuOps, GetRowsWidensEveryTypeExactly) {
  REQUIRE_GPU();
  for (GgmlType type : {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    const uint64_t rows = 40, cols = 512, rb = *ggml_row_bytes(type, cols);
    std::vector<float> wf = randn(rows * cols, 3);
    std::vector<uint8_t> w(rows * rb);
    for (uint64_t r = 0; r < rows; ++r) quantize_row(type, wf.data() + r * cols, w.data() + r * rb, cols);
    const std::vector<int32_t> ids = {7, 0, 39, 7, 21};
    std::vector<double> want(ids.size() * cols);
    std::vector<float> row(cols);
    for (size_t i = 0; i < ids.size(); ++i) {
      dequantize_row(type, w.data() + static_cast<uint64_t>(ids[i]) * rb, row.data(), cols);
      for (uint64_t k = 0; k < cols; ++k) want[i * cols + k] = row[k];
    }
    DeviceBuffer dw = up(dev, w), di = up(dev, ids), dout = poisoned(dev, want.size());
    ASSERT_EQ(api.get_rows(h, static_cast<int>(type), dw.get(), cols, di.as<int32_t>(), static_cast<int>(ids.size()), dout.as<float>()), 0);
    EXPECT_LT(nmse(down(dev, dout, want.size()).data(), want.data(), want.size()), 1e-12) << ggml_type_name(static_cast<uint32_t>(type));
  }
}

TEST(GpuOps, NormsMatchTheCpuFormula) {
  REQUIRE_GPU();
  for (bool layer : {false, true}) {
    for (int n : {64, 768, 4096}) {
      const int t = 3;
      const std::vector<float> x = randn(static_cast<size_t>(t * n), 1, 2.0f), w = randn(static_cast<size_t>(n), 2), b = randn(static_cast<size_t>(n), 3);
      std::vector<double> want(x.size());
      for (int i = 0; i < t; ++i) {
        const float* xi = x.data() + static_cast<size_t>(i * n);
        double mean = 0, ss = 0;
        if (layer) {
          for (int j = 0; j < n; ++j) mean += xi[j];
          mean /= n;
        }
        for (int j = 0; j < n; ++j) ss += (xi[j] - mean) * (xi[j] - mean);
        const double scale = 1.0 / std::sqrt(ss / n + 1e-5);
        for (int j = 0; j < n; ++j) want[static_cast<size_t>(i * n + j)] = w[static_cast<size_t>(j)] * (xi[j] - mean) * scale + (layer ? b[static_cast<size_t>(j)] : 0.0);
      }
      DeviceBuffer dx = up(dev, x), dw = up(dev, w), db = up(dev, b), dy = poisoned(dev, x.size());
      const int rc = layer ? api.layer_norm(h, dx.as<float>(), dw.as<float>(), db.as<float>(), dy.as<float>(), t, n, 1e-5f)
                           : api.rms_norm(h, dx.as<float>(), dw.as<float>(), dy.as<float>(), t, n, 1e-5f);
      ASSERT_EQ(rc, 0) << api.last_error(h);
      EXPECT_LT(nmse(down(dev, dy, x.size()).data(), want.data(), want.size()), 1e-12) << (layer ? "LayerNorm" : "RMSNorm") << " n=" << n;
    }
  }
}

TEST(GpuOps, RopeRotatesBothLayouts) {
  REQUIRE_GPU();
  const int t = 4, heads = 3, head_dim = 64;
  for (int rope_dims : {64, 32}) {
    for (int neox : {0, 1}) {
      const int half = rope_dims / 2;
      std::vector<float> inv(static_cast<size_t>(half));
      for (int i = 0; i < half; ++i) inv[static_cast<size_t>(i)] = 1.0f / std::pow(10000.0f, 2.0f * i / rope_dims);
      const std::vector<int32_t> pos = {0, 1, 17, 4000};
      const std::vector<float> x = randn(static_cast<size_t>(t * heads * head_dim), 9);
      std::vector<double> want(x.begin(), x.end());
      for (int i = 0; i < t; ++i) {
        for (int hh = 0; hh < heads; ++hh) {
          double* v = want.data() + static_cast<size_t>((i * heads + hh) * head_dim);
          for (int k = 0; k < half; ++k) {
            const double angle = static_cast<double>(static_cast<float>(pos[static_cast<size_t>(i)]) * inv[static_cast<size_t>(k)]);
            double* a = neox ? v + k : v + 2 * k;
            double* b = neox ? v + k + half : v + 2 * k + 1;
            const double v0 = *a, v1 = *b;
            *a = v0 * std::cos(angle) - v1 * std::sin(angle);
            *b = v0 * std::sin(angle) + v1 * std::cos(angle);
          }
        }
      }
      DeviceBuffer dx = up(dev, x), dp = up(dev, pos), di = up(dev, inv);
      ASSERT_EQ(api.rope(h, dx.as<float>(), t, heads, head_dim, rope_dims, dp.as<int32_t>(), di.as<float>(), neox), 0) << api.last_error(h);
      EXPECT_LT(nmse(down(dev, dx, x.size()).data(), want.data(), want.size()), 1e-12) << "neox=" << neox << " rope_dims=" << rope_dims;
    }
  }
}

TEST(GpuOps, ActivationsAndResidualMatch) {
  REQUIRE_GPU();
  const size_t n = 10000;
  const std::vector<float> g = randn(n, 1, 3.0f), u = randn(n, 2);
  std::vector<double> silu(n), gelu(n), sum(n);
  for (size_t i = 0; i < n; ++i) {
    silu[i] = g[i] / (1.0 + std::exp(-static_cast<double>(g[i]))) * u[i];
    const double v = g[i];
    gelu[i] = 0.5 * v * (1.0 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    sum[i] = static_cast<double>(g[i]) + u[i];
  }
  DeviceBuffer dg = up(dev, g), du = up(dev, u), dout = poisoned(dev, n);
  ASSERT_EQ(api.swiglu(h, dg.as<float>(), du.as<float>(), dout.as<float>(), n), 0);
  EXPECT_LT(nmse(down(dev, dout, n).data(), silu.data(), n), 1e-12);
  DeviceBuffer dg2 = up(dev, g);
  ASSERT_EQ(api.gelu(h, dg2.as<float>(), n), 0);
  EXPECT_LT(nmse(down(dev, dg2, n).data(), gelu.data(), n), 1e-12);
  ASSERT_EQ(api.add(h, dg.as<float>(), du.as<float>(), n), 0);
  EXPECT_LT(nmse(down(dev, dg, n).data(), sum.data(), n), 1e-14);
}

// Three sequences of one layer-2 cache, grouped-query heads, tokens at different positions
// (two of them consecutive in one sequence): kv_store writes where the CPU layout says, and
// attention equals softmax(q·K/√d)·V in double.
TEST(GpuOps, KvStoreAndAttentionOverGroupedHeads) {
  REQUIRE_GPU();
  for (int head_dim : {8, 64, 128}) {
    const int n_heads = 8, n_kv = 2, layers = 3, layer = 2, maxp = 64, kv_dim = n_kv * head_dim;
    const size_t cache = static_cast<size_t>(layers) * kv_dim * maxp;
    std::vector<std::vector<float>> k(3), v(3);
    std::vector<DeviceBuffer> dk, dv;
    for (int s = 0; s < 3; ++s) {
      k[static_cast<size_t>(s)] = randn(cache, 20 + static_cast<uint32_t>(s));
      v[static_cast<size_t>(s)] = randn(cache, 30 + static_cast<uint32_t>(s));
      dk.push_back(up(dev, k[static_cast<size_t>(s)]));
      dv.push_back(up(dev, v[static_cast<size_t>(s)]));
    }
    const std::vector<int> seq = {0, 1, 1, 2}, pos = {5, 0, 1, 63};
    const int t = 4;
    std::vector<llmops_drv_kv_ref> refs;
    for (int i = 0; i < t; ++i) refs.push_back({dk[static_cast<size_t>(seq[static_cast<size_t>(i)])].as<float>(), dv[static_cast<size_t>(seq[static_cast<size_t>(i)])].as<float>(), pos[static_cast<size_t>(i)], maxp});
    const std::vector<float> newk = randn(static_cast<size_t>(t * kv_dim), 40), newv = randn(static_cast<size_t>(t * kv_dim), 41);
    auto at = [&](int hh, int p) { return ((static_cast<size_t>(layer) * n_kv + hh) * maxp + p) * head_dim; };
    for (int i = 0; i < t; ++i) {
      for (int hh = 0; hh < n_kv; ++hh) {
        for (int d = 0; d < head_dim; ++d) {
          k[static_cast<size_t>(seq[static_cast<size_t>(i)])][at(hh, pos[static_cast<size_t>(i)]) + d] = newk[static_cast<size_t>(i * kv_dim + hh * head_dim + d)];
          v[static_cast<size_t>(seq[static_cast<size_t>(i)])][at(hh, pos[static_cast<size_t>(i)]) + d] = newv[static_cast<size_t>(i * kv_dim + hh * head_dim + d)];
        }
      }
    }
    DeviceBuffer drefs = up(dev, refs), dnk = up(dev, newk), dnv = up(dev, newv);
    // A bound of 64 positions takes the shared-memory kernel in one block per head, 20000 the
    // same split over several blocks (some slices empty) and combined, 200000 the online one.
    llmops_drv_attn_shape shape{n_heads, n_kv, head_dim, layer, 1.0f / std::sqrt(static_cast<float>(head_dim)), maxp};
    ASSERT_EQ(api.kv_store(h, dnk.as<float>(), dnv.as<float>(), t, drefs.as<llmops_drv_kv_ref>(), &shape), 0) << api.last_error(h);
    for (int s = 0; s < 3; ++s) {
      EXPECT_EQ(down(dev, dk[static_cast<size_t>(s)], cache), k[static_cast<size_t>(s)]) << "keys of sequence " << s;
      EXPECT_EQ(down(dev, dv[static_cast<size_t>(s)], cache), v[static_cast<size_t>(s)]) << "values of sequence " << s;
    }
    const std::vector<float> q = randn(static_cast<size_t>(t * n_heads * head_dim), 50);
    std::vector<double> want(q.size());
    for (int i = 0; i < t; ++i) {
      const auto& K = k[static_cast<size_t>(seq[static_cast<size_t>(i)])];
      const auto& V = v[static_cast<size_t>(seq[static_cast<size_t>(i)])];
      for (int hh = 0; hh < n_heads; ++hh) {
        const float* qh = q.data() + static_cast<size_t>((i * n_heads + hh) * head_dim);
        const int kvh = hh / (n_heads / n_kv);
        std::vector<double> s(static_cast<size_t>(pos[static_cast<size_t>(i)] + 1));
        double mx = -INFINITY, total = 0;
        for (int p = 0; p <= pos[static_cast<size_t>(i)]; ++p) {
          double dot = 0;
          for (int d = 0; d < head_dim; ++d) dot += static_cast<double>(qh[d]) * K[at(kvh, p) + static_cast<size_t>(d)];
          s[static_cast<size_t>(p)] = dot / std::sqrt(static_cast<double>(head_dim));
          mx = std::max(mx, s[static_cast<size_t>(p)]);
        }
        for (double& e : s) total += (e = std::exp(e - mx));
        for (int d = 0; d < head_dim; ++d) {
          double o = 0;
          for (int p = 0; p <= pos[static_cast<size_t>(i)]; ++p) o += s[static_cast<size_t>(p)] * V[at(kvh, p) + static_cast<size_t>(d)];
          want[static_cast<size_t>((i * n_heads + hh) * head_dim + d)] = o / total;
        }
      }
    }
    for (int bound : {maxp, 20000, 200000}) {
      shape.max_positions = bound;
      DeviceBuffer dq = up(dev, q), dout = poisoned(dev, q.size());
      ASSERT_EQ(api.attention(h, dq.as<float>(), dout.as<float>(), t, drefs.as<llmops_drv_kv_ref>(), &shape), 0) << api.last_error(h);
      EXPECT_LT(nmse(down(dev, dout, q.size()).data(), want.data(), want.size()), 1e-11) << "head_dim " << head_dim << " bound " << bound;
    }
  }
}

TEST(GpuOps, ArgmaxTakesTheFirstLargest) {
  REQUIRE_GPU();
  const int n = 32000, t = 3;
  std::vector<float> x = randn(static_cast<size_t>(n * t), 8);
  x[5] = 50, x[900] = 50;                          // row 0: a tie, the first wins
  x[static_cast<size_t>(n) + 31999] = 60;          // row 1: the last element
  x[static_cast<size_t>(2 * n) + 12345] = 70;
  DeviceBuffer dx = up(dev, x), dids = up(dev, std::vector<int32_t>(3, -1));
  ASSERT_EQ(api.argmax(h, dx.as<float>(), t, n, dids.as<int32_t>()), 0);
  std::vector<int32_t> ids(3);
  ASSERT_EQ(api.download(h, ids.data(), dids.get(), sizeof(int32_t) * 3), 0);
  EXPECT_EQ(ids, (std::vector<int32_t>{5, 31999, 12345}));
}

// Sampling on the device: the cuts keep what they should, the draws follow the probabilities,
// a (seed, counter) repeats, and on a GPU the ids equal the reference driver's (the same
// threshold searches; sums in another order may move a boundary, so a few may differ).
TEST(GpuOps, SamplingCutsAndDraws) {
  REQUIRE_GPU();
  const int n = 1000, rows = 400;
  std::vector<float> logits = randn(static_cast<size_t>(rows) * n, 77, 2.0f);
  auto sample = [&](GpuDevice& on, const std::vector<llmops_drv_sampling>& rs, const std::vector<int32_t>& pt, const std::vector<int32_t>& pc) {
    DeviceBuffer dl = up(on, logits), dr = up(on, rs), dpt = up(on, pt.empty() ? std::vector<int32_t>{0} : pt),
                 dpc = up(on, pc.empty() ? std::vector<int32_t>{0} : pc), di = up(on, std::vector<int32_t>(rs.size(), -1));
    EXPECT_EQ(on.api().sample(on.handle(), dl.as<float>(), static_cast<int>(rs.size()), n, dr.as<llmops_drv_sampling>(), dpt.as<int32_t>(),
                              dpc.as<int32_t>(), di.as<int32_t>()),
              0)
        << on.api().last_error(on.handle());
    std::vector<int32_t> ids(rs.size());
    EXPECT_EQ(on.api().download(on.handle(), ids.data(), di.get(), ids.size() * sizeof(int32_t)), 0);
    return ids;
  };
  auto row = [&](float temp, int top_k, float top_p, float min_p, uint64_t counter) {
    llmops_drv_sampling r{};
    r.temperature = temp, r.top_k = top_k, r.top_p = top_p, r.min_p = min_p, r.repetition_penalty = 1.0f, r.seed = 42, r.counter = counter;
    return r;
  };
  auto ranked = [&](int i) {  // row i's ids, most likely first
    std::vector<int> order(static_cast<size_t>(n));
    for (int j = 0; j < n; ++j) order[static_cast<size_t>(j)] = j;
    const float* l = logits.data() + static_cast<size_t>(i) * n;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return l[a] > l[b]; });
    return order;
  };
  // Greedy, top_k = 1 and a tiny top_p all give the argmax; top_k = 5 stays in the top five;
  // min_p = 0.5 keeps only tokens at least half as likely as the best.
  std::vector<llmops_drv_sampling> rs;
  for (int i = 0; i < rows; ++i) {
    const int kind = i % 5;
    rs.push_back(kind == 0 ? row(0, 0, 1, 0, 0) : kind == 1 ? row(1, 1, 1, 0, static_cast<uint64_t>(i)) : kind == 2 ? row(1, 0, 1e-6f, 0, static_cast<uint64_t>(i))
                 : kind == 3 ? row(1, 5, 1, 0, static_cast<uint64_t>(i)) : row(1, 0, 1, 0.5f, static_cast<uint64_t>(i)));
  }
  const std::vector<int32_t> ids = sample(dev, rs, {}, {});
  for (int i = 0; i < rows; ++i) {
    const auto order = ranked(i);
    const int kind = i % 5;
    if (kind <= 2) {
      EXPECT_EQ(ids[static_cast<size_t>(i)], order[0]) << "row " << i << " kind " << kind;
    } else if (kind == 3) {
      EXPECT_NE(std::find(order.begin(), order.begin() + 5, ids[static_cast<size_t>(i)]), order.begin() + 5) << "row " << i;
    } else {
      const float* l = logits.data() + static_cast<size_t>(i) * n;
      EXPECT_GE(std::exp(l[ids[static_cast<size_t>(i)]] - l[order[0]]), 0.5f - 1e-6f) << "row " << i;
    }
  }
  // The draws follow the softmax: row 0's logits over 4000 counters.
  std::vector<float> row0(logits.begin(), logits.begin() + n);
  logits.assign(static_cast<size_t>(4000) * n, 0.0f);
  for (int i = 0; i < 4000; ++i) std::copy(row0.begin(), row0.end(), logits.begin() + static_cast<long>(i) * n);
  rs.clear();
  for (int i = 0; i < 4000; ++i) rs.push_back(row(1.5f, 0, 1, 0, static_cast<uint64_t>(i)));
  const std::vector<int32_t> draws = sample(dev, rs, {}, {});
  const float mx = *std::max_element(row0.begin(), row0.end());
  double z = 0;
  for (float l : row0) z += std::exp((l - mx) / 1.5);
  const auto order = [&] {
    std::vector<int> o(static_cast<size_t>(n));
    for (int j = 0; j < n; ++j) o[static_cast<size_t>(j)] = j;
    std::sort(o.begin(), o.end(), [&](int a, int b) { return row0[static_cast<size_t>(a)] > row0[static_cast<size_t>(b)]; });
    return o;
  }();
  for (int k = 0; k < 3; ++k) {  // the three likeliest tokens' shares
    const double p = std::exp((row0[static_cast<size_t>(order[static_cast<size_t>(k)])] - mx) / 1.5) / z;
    const double seen = std::count(draws.begin(), draws.end(), order[static_cast<size_t>(k)]) / 4000.0;
    EXPECT_NEAR(seen, p, 4 * std::sqrt(p * (1 - p) / 4000) + 1e-3) << "token rank " << k;
  }
  // The same (seed, counter) draws the same; penalties move a token off the top.
  EXPECT_EQ(sample(dev, std::vector<llmops_drv_sampling>(rs.begin(), rs.begin() + 50), {}, {}),
            std::vector<int32_t>(draws.begin(), draws.begin() + 50));
  llmops_drv_sampling pen = row(0, 0, 1, 0, 0);
  pen.presence_penalty = 1e6f, pen.penalty_first = 0, pen.penalty_count = 1;
  EXPECT_EQ(sample(dev, {pen}, {order[0]}, {1})[0], order[1]) << "the best token, seen, gives way to the next";
  if (!holder().reference) {  // the reference's ids for the draws above
    logits.assign(static_cast<size_t>(4000) * n, 0.0f);
    for (int i = 0; i < 4000; ++i) std::copy(row0.begin(), row0.end(), logits.begin() + static_cast<long>(i) * n);
    auto ref = GpuDevice::open(GpuDriver::from_table(reference_driver_api()), 0);
    ASSERT_TRUE(ref.ok());
    const std::vector<int32_t> want = sample(**ref, rs, {}, {});
    size_t same = 0;
    for (size_t i = 0; i < want.size(); ++i) same += want[i] == draws[i];
    EXPECT_GE(same, want.size() * 99 / 100);
  }
}

TEST(GpuOps, BadArgumentsAreErrorsWithWords) {
  REQUIRE_GPU();
  EXPECT_EQ(api.matmul(h, 99, nullptr, 4, 32, nullptr, 1, nullptr, nullptr), LLMOPS_DRV_EUNSUPPORTED);
  EXPECT_NE(std::string(api.last_error(h)).find("type 99"), std::string::npos);
  DeviceBuffer b = up(dev, std::vector<float>(64));
  EXPECT_EQ(api.matmul(h, LLMOPS_DT_Q4_K, b.get(), 1, 100, b.as<float>(), 1, b.as<float>(), nullptr), LLMOPS_DRV_EINVAL);
  EXPECT_NE(std::string(api.last_error(h)).find("whole blocks"), std::string::npos);
  const llmops_drv_attn_shape bad{8, 3, 64, 0, 1.0f, 16};
  EXPECT_EQ(api.attention(h, b.as<float>(), b.as<float>(), 1, nullptr, &bad), LLMOPS_DRV_EINVAL);
  auto huge = DeviceBuffer::alloc(dev, 1ull << 50);
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().code(), Code::kResourceExhausted) << huge.status().message();
}

}  // namespace
}  // namespace llmops::engine
