// Small helpers shared by the K-quant kernels (inline: they sit in the innermost loops). Static,
// so the copy in a file compiled for AVX-512 never stands in for the others at link time.
#pragma once

#include <cstdint>

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

}  // namespace llmops::engine
