// The few reads of GGUF block headers that host code needs as well as kernels: a CPU test
// plays the int8 tensor-core kernel's lanes through mmq.cuh, which reads weights with these.
// Only cuda_fp16.h's host-and-device conversions are used, so g++ compiles this file too.
#pragma once

#include <cuda_fp16.h>
#include <stdint.h>
#include <vector_types.h>

namespace llmops::cuda {

__host__ __device__ inline float half_bits(uint16_t bits) { return __half2float(__ushort_as_half(bits)); }

__host__ __device__ inline float half_at(const uint8_t* p) { return half_bits(static_cast<uint16_t>(p[0] | (p[1] << 8))); }

// Four bytes at a 2-byte aligned address (Q8_0 and Q4_0 blocks are 34 and 18 bytes long).
__host__ __device__ inline uint32_t word_at_2(const uint8_t* p) {
  const uint16_t* h = reinterpret_cast<const uint16_t*>(p);
  return static_cast<uint32_t>(h[0]) | (static_cast<uint32_t>(h[1]) << 16);
}

// Sub-block j's scale (d · 6-bit scale) and min (dmin · 6-bit min) of a 16-byte-aligned Q4_K
// super-block, from four word loads and no branch (lanes of one warp take different j, and
// a branch with byte loads cost the decode kernel as much as its weight bytes).
__host__ __device__ inline void q4k_group_scale(const uint8_t* b, int j, float* scale, float* minv) {
  const uint4 head = *reinterpret_cast<const uint4*>(b);  // d, dmin, then the 12 packed scale bytes
  const int k = j & 3, sh = 8 * k;
  const uint32_t a = head.y, c = head.z, e = head.w;    // scale bytes 0-3, 4-7, 8-11
  const uint32_t low_sc = (a >> sh) & 63, low_m = (c >> sh) & 63;
  const uint32_t high_sc = ((e >> sh) & 0xF) | (((a >> (sh + 6)) & 3) << 4);
  const uint32_t high_m = ((e >> (sh + 4)) & 0xF) | (((c >> (sh + 6)) & 3) << 4);
  const bool low = j < 4;
  const float d = half_bits(static_cast<uint16_t>(head.x & 0xFFFF));
  const float dmin = half_bits(static_cast<uint16_t>(head.x >> 16));
  *scale = d * static_cast<float>(low ? low_sc : high_sc);
  *minv = dmin * static_cast<float>(low ? low_m : high_m);
}

}  // namespace llmops::cuda
