// The int8 tensor-core kernel's bookkeeping (drivers/cuda/mmq.cuh), checked without a GPU: the
// 32 lanes of a warp run the kernel's own per-lane functions — unpacking a unit's quants, placing
// them in A and B registers, turning the int32 sums into floats, choosing where each lands — and
// the one step a CPU cannot run, mma.sync, is played from the PTX ISA's fragment table. The
// result must be W · x̂ (x̂ the activations the CPU engine's quantize_q8 rounds), as the parity
// test holds the real kernel to on a GPU.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "formats/ggml_types.h"
#include "formats/quantize.h"
#include "gpu/gpu_test_util.h"
#include "kernels/matvec.h"
#include "mmq.cuh"

namespace llmops::engine {
namespace {

using namespace llmops::cuda;
using gpu_test::nmse;
using gpu_test::randn;

struct Warp {
  uint32_t a[32][4], b[32][2];
  int c[32][4];
};

// mma.m16n8k32 .s8 from the PTX ISA's table, written out independently of mmq.cuh's Lane:
// gid = lane / 4, tig = lane % 4; A's register r holds row gid + 8·(r & 1), k = 4·tig + 16·(r >> 1);
// B's register r holds column gid, k = 4·tig + 16·r; C's element r is row gid + 8·(r >> 1),
// column 2·tig + (r & 1). The lowest byte of a register is the lowest k.
void emulate_mma(Warp& w) {
  int8_t A[16][32], B[32][8];
  for (int lane = 0; lane < 32; ++lane) {
    const int gid = lane / 4, tig = lane % 4;
    for (int r = 0; r < 4; ++r) {
      for (int i = 0; i < 4; ++i) A[gid + 8 * (r & 1)][4 * tig + 16 * (r >> 1) + i] = static_cast<int8_t>(w.a[lane][r] >> (8 * i));
    }
    for (int r = 0; r < 2; ++r) {
      for (int i = 0; i < 4; ++i) B[4 * tig + 16 * r + i][gid] = static_cast<int8_t>(w.b[lane][r] >> (8 * i));
    }
  }
  for (int lane = 0; lane < 32; ++lane) {
    const int gid = lane / 4, tig = lane % 4;
    for (int r = 0; r < 4; ++r) {
      const int row = gid + 8 * (r >> 1), col = 2 * tig + (r & 1);
      int sum = 0;
      for (int k = 0; k < 32; ++k) sum += A[row][k] * B[k][col];
      w.c[lane][r] += sum;
    }
  }
}

// The kernel's loops for one warp's 16 rows and one 8-token tile, with y written as the kernel
// writes it. The weight rows are 16-byte aligned, as device allocations are.
template <int TYPE>
void run_warp(const uint8_t* w, uint64_t row_bytes, uint64_t rows, int cols, const int8_t* xq, const float* xd, const float* xs, int t,
              uint64_t row0, int tile0, float* y) {
  const int units = cols / 32;
  float acc[32][4] = {};
  for (int u = 0; u < units; ++u) {
    Warp warp{};
    mmq::UnitQuants top[32], bottom[32];
    for (int lane = 0; lane < 32; ++lane) {
      const mmq::Lane l = mmq::lane_of(lane);
      top[lane] = mmq::unit_quants<TYPE>(w + std::min(row0 + l.group, rows - 1) * row_bytes, u, l.quad);
      bottom[lane] = mmq::unit_quants<TYPE>(w + std::min(row0 + l.group + 8, rows - 1) * row_bytes, u, l.quad);
      mmq::a_registers(top[lane], bottom[lane], warp.a[lane]);
      mmq::b_registers(xq, static_cast<uint64_t>(cols), tile0 + l.group, t, u, l.quad, warp.b[lane]);
    }
    emulate_mma(warp);
    for (int lane = 0; lane < 32; ++lane) {
      const mmq::Lane l = mmq::lane_of(lane);
      float xdv[2], xsv[2];
      for (int e = 0; e < 2; ++e) {
        const int tok = tile0 + 2 * l.quad + e;
        xdv[e] = tok < t ? xd[static_cast<uint64_t>(tok) * units + u] : 0.0f;
        xsv[e] = tok < t ? xs[static_cast<uint64_t>(tok) * units + u] : 0.0f;
      }
      mmq::accumulate(acc[lane], warp.c[lane], top[lane], bottom[lane], xdv, xsv);
    }
  }
  for (int lane = 0; lane < 32; ++lane) {
    const mmq::Lane l = mmq::lane_of(lane);
    for (int i = 0; i < 4; ++i) {
      const uint64_t row = row0 + mmq::acc_row(l, i);
      const int tok = tile0 + mmq::acc_token(l, i);
      if (row < rows && tok < t) y[static_cast<uint64_t>(tok) * rows + row] = acc[lane][i];
    }
  }
}

template <int TYPE>
void check(GgmlType type) {
  const uint64_t rows = 40, cols = 512;  // 40 rows: the last warp's tile runs past the matrix
  const uint64_t rb = *ggml_row_bytes(type, cols);
  const std::vector<float> wf = randn(rows * cols, 17, 0.05f);
  // 16-byte aligned storage, as cudaMalloc gives (Q4_K reads its scales as one 16-byte load).
  std::vector<uint64_t> storage((rows * rb + 15) / 8 + 2);
  auto* w = reinterpret_cast<uint8_t*>(storage.data());
  ASSERT_EQ(reinterpret_cast<uintptr_t>(w) % 16, 0u);
  for (uint64_t r = 0; r < rows; ++r) quantize_row(type, wf.data() + r * cols, w + r * rb, cols);
  std::vector<float> deq(rows * cols);
  for (uint64_t r = 0; r < rows; ++r) dequantize_row(type, w + r * rb, deq.data() + r * cols, cols);
  for (int t : {5, 8, 13, 32, 37}) {
    const std::vector<float> x = randn(static_cast<size_t>(t) * cols, 200 + static_cast<uint32_t>(t));
    std::vector<int8_t> xq(x.size());
    std::vector<float> xd(x.size() / 32), xs(x.size() / 32);
    quantize_q8(x.data(), x.size(), 32, false, xq.data(), xd.data(), KernelIsa::kPortable);
    for (size_t b = 0; b < xd.size(); ++b) {
      int sum = 0;
      for (int i = 0; i < 32; ++i) sum += xq[32 * b + i];
      xs[b] = xd[b] * static_cast<float>(sum);
    }
    std::vector<double> want(static_cast<size_t>(t) * rows);
    for (int i = 0; i < t; ++i) {
      for (uint64_t r = 0; r < rows; ++r) {
        double s = 0;
        for (uint64_t k = 0; k < cols; ++k) {
          const size_t at = static_cast<size_t>(i) * cols + k;
          s += static_cast<double>(deq[r * cols + k]) * xd[at / 32] * xq[at];
        }
        want[static_cast<size_t>(i) * rows + r] = s;
      }
    }
    std::vector<float> got(want.size(), NAN);
    for (uint64_t row0 = 0; row0 < rows; row0 += mmq::kRowsPerWarp) {
      for (int tile0 = 0; tile0 < t; tile0 += mmq::kTokensPerTile) {
        run_warp<TYPE>(w, rb, rows, static_cast<int>(cols), xq.data(), xd.data(), xs.data(), t, row0, tile0, got.data());
      }
    }
    EXPECT_LT(nmse(got.data(), want.data(), want.size()), 1e-10) << ggml_type_name(static_cast<uint32_t>(type)) << " t=" << t;
  }
}

TEST(MmqEmulation, Q8_0LanesGiveTheRoundedProduct) { check<LLMOPS_DT_Q8_0>(GgmlType::kQ8_0); }
TEST(MmqEmulation, Q4_0LanesGiveTheRoundedProduct) { check<LLMOPS_DT_Q4_0>(GgmlType::kQ4_0); }
TEST(MmqEmulation, Q4_KLanesGiveTheRoundedProduct) { check<LLMOPS_DT_Q4_K>(GgmlType::kQ4_K); }

}  // namespace
}  // namespace llmops::engine
