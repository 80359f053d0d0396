// Quantised weights times many tokens on int8 tensor cores (mma.sync m16n8k32, sm_80 and
// newer), what llama.cpp's MMQ does: the activations are first rounded to int8 per 32 values
// (quantize_x_kernel, as for the Q4_K decode kernel), each lane unpacks its share of a
// 32-weight unit into int8 registers, the tensor core sums 16 rows × 8 tokens × 32 products
// exactly in int32, and the unit's scales turn the sums into floats. The product is W · x̂ with
// x̂ the rounded activations, and no widened copy of the weights exists anywhere.
//
// The pieces a lane computes are written for host and device alike: a CPU test plays the 32
// lanes of a warp through them with an emulated mma, so the fragment bookkeeping is checked on
// every build, GPU or not.
#pragma once

#include <stdint.h>

#include "blocks.cuh"
#include "llmops/driver.h"

namespace llmops::cuda::mmq {

// A lane's place in the m16n8k32 fragments (PTX ISA, "Matrix Fragments for mma.m16n8k32",
// .s8): group = lane / 4, quad = lane % 4.
//   A (16 rows × 32 k, row-major): a[0] = row group, k 4·quad..+3; a[1] = row group + 8, same k;
//                                  a[2] = row group, k 16 + 4·quad..+3; a[3] = row group + 8, same.
//   B (32 k × 8 tokens, by column): b[0] = token group, k 4·quad..+3; b[1] = k 16 + 4·quad..+3.
//   C (16 × 8, int32): c[0], c[1] = row group, tokens 2·quad and 2·quad + 1; c[2], c[3] = row group + 8.
// Each register holds four int8, the lowest k in the lowest byte.
struct Lane {
  int group, quad;
};
__host__ __device__ inline Lane lane_of(int lane) { return {lane >> 2, lane & 3}; }

constexpr int kRowsPerWarp = 16;
constexpr int kTokensPerTile = 8;
constexpr int kWarps = 4;  // a block: 64 rows

// One row's share of unit u (its 32 weights are scale·q + offset, q the int8 below): lo holds q
// at k = 4·quad..+3, hi at k = 16 + 4·quad..+3. Over a unit, Σ w·x̂ = scale·xd·Σ q·xq + offset·xs,
// with xd the activations' scale and xs = xd·Σ xq (quantize_x_kernel writes both).
struct UnitQuants {
  uint32_t lo, hi;
  float scale, offset;
};

template <int TYPE>
__host__ __device__ inline UnitQuants unit_quants(const uint8_t* row, int u, int quad) {
  UnitQuants r{};
  if constexpr (TYPE == LLMOPS_DT_Q8_0) {  // 34 bytes: d, then 32 int8
    const uint8_t* b = row + 34 * u;
    r.lo = word_at_2(b + 2 + 4 * quad);
    r.hi = word_at_2(b + 18 + 4 * quad);
    r.scale = half_at(b);
    r.offset = 0.0f;
  } else if constexpr (TYPE == LLMOPS_DT_Q4_0) {  // 18 bytes: d, then weight i < 16 in byte i's low nibble, i + 16 in its high
    const uint8_t* b = row + 18 * u;
    const uint32_t w = word_at_2(b + 2 + 4 * quad);
    r.lo = w & 0x0F0F0F0Fu;
    r.hi = (w >> 4) & 0x0F0F0F0Fu;
    r.scale = half_at(b);
    r.offset = -8.0f * r.scale;  // the nibbles are q + 8
  } else if constexpr (TYPE == LLMOPS_DT_Q4_K) {  // sub-block j of a 144-byte super-block: 32 nibbles of one 32-byte run
    const uint8_t* b = row + 144 * (u >> 3);
    const int j = u & 7, shift = 4 * (j & 1);
    const uint32_t* qs = reinterpret_cast<const uint32_t*>(b + 16 + 32 * (j >> 1));
    r.lo = (qs[quad] >> shift) & 0x0F0F0F0Fu;
    r.hi = (qs[4 + quad] >> shift) & 0x0F0F0F0Fu;
    float minv;
    q4k_group_scale(b, j, &r.scale, &minv);
    r.offset = -minv;
  }
  return r;
}

// The A registers in the order mma takes them, from the lane's two rows (group and group + 8).
__host__ __device__ inline void a_registers(const UnitQuants& top, const UnitQuants& bottom, uint32_t a[4]) {
  a[0] = top.lo, a[1] = bottom.lo, a[2] = top.hi, a[3] = bottom.hi;
}

// The B registers: the lane's token's quantised activations of unit u (xq rows of cols int8),
// zero for a token past the batch.
__host__ __device__ inline void b_registers(const int8_t* xq, uint64_t cols, int token, int t, int u, int quad, uint32_t b[2]) {
  if (token >= t) {
    b[0] = b[1] = 0;
    return;
  }
  const uint32_t* p = reinterpret_cast<const uint32_t*>(xq + static_cast<uint64_t>(token) * cols + 32 * static_cast<uint64_t>(u));
  b[0] = p[quad];
  b[1] = p[4 + quad];
}

// Adds one unit's int32 sums c (C's layout) to the lane's four float accumulators. xd and xs
// are the activation scales of tokens 2·quad and 2·quad + 1 (zero past the batch).
__host__ __device__ inline void accumulate(float acc[4], const int c[4], const UnitQuants& top, const UnitQuants& bottom, const float xd[2],
                                           const float xs[2]) {
  acc[0] += top.scale * xd[0] * static_cast<float>(c[0]) + top.offset * xs[0];
  acc[1] += top.scale * xd[1] * static_cast<float>(c[1]) + top.offset * xs[1];
  acc[2] += bottom.scale * xd[0] * static_cast<float>(c[2]) + bottom.offset * xs[0];
  acc[3] += bottom.scale * xd[1] * static_cast<float>(c[3]) + bottom.offset * xs[1];
}

// Where accumulator i of a lane lands: row (0..15 within the warp's rows) and token (0..7
// within the tile).
__host__ __device__ inline int acc_row(Lane l, int i) { return l.group + (i >= 2 ? 8 : 0); }
__host__ __device__ inline int acc_token(Lane l, int i) { return 2 * l.quad + (i & 1); }

}  // namespace llmops::cuda::mmq
