// Small helpers shared by the K-quant kernels (inline: they sit in the innermost loops). Static,
// so the copy in a file compiled for AVX-512 never stands in for the others at link time.
#pragma once

#include <cstdint>
#include <cstring>

namespace llmops::engine {

// The 6-bit scale and min of sub-block j of a Q4_K/Q5_K super-block (12 packed bytes).
static inline void q4k_scale_min(int j, const uint8_t* q, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *min = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// All eight scales and mins at once, one byte each (sub-block j in byte j), computed in
// registers: the bytewise form of q4k_scale_min.
static inline void q4k_scales_mins(const uint8_t* q, uint64_t* scales, uint64_t* mins) {
  uint32_t a, b, c;
  std::memcpy(&a, q, 4);
  std::memcpy(&b, q + 4, 4);
  std::memcpy(&c, q + 8, 4);
  const uint32_t low6 = 0x3F3F3F3F, low4 = 0x0F0F0F0F, top2 = 0x03030303;
  const uint32_t sc_hi = (c & low4) | (((a >> 6) & top2) << 4), m_hi = ((c >> 4) & low4) | (((b >> 6) & top2) << 4);
  *scales = (a & low6) | (static_cast<uint64_t>(sc_hi) << 32);
  *mins = (b & low6) | (static_cast<uint64_t>(m_hi) << 32);
}

}  // namespace llmops::engine
