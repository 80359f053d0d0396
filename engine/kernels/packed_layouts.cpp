// Rows laid out in the packed panels of packed_layouts.h: scalar, run once per model load.
#include "kernels/packed_layouts.h"

#include <cstring>

#include "kernels/kquant.h"

namespace llmops::engine {

namespace {

// The 256 six-bit values (0..63) of one Q6_K super-block, in element order.
inline void q6k_values(const uint8_t* b, uint8_t* q) {
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = b + 64 * h;
    const uint8_t* qh = b + 128 + 32 * h;
    for (int l = 0; l < 32; ++l) {
      q[128 * h + l] = static_cast<uint8_t>((ql[l] & 0x0F) | (qh[l] & 3) << 4);
      q[128 * h + l + 32] = static_cast<uint8_t>((ql[l + 32] & 0x0F) | (qh[l] >> 2 & 3) << 4);
      q[128 * h + l + 64] = static_cast<uint8_t>((ql[l] >> 4) | (qh[l] >> 4 & 3) << 4);
      q[128 * h + l + 96] = static_cast<uint8_t>((ql[l + 32] >> 4) | (qh[l] >> 6 & 3) << 4);
    }
  }
}

}  // namespace

// Rows [r0, r0 + n) of Q4_0 into the four-bit panel (missing rows: zero nibbles and scales).
void repack_q4_0_nibbles(const uint8_t* w, uint64_t r0, uint64_t n, uint64_t row_bytes, uint64_t blocks, uint8_t* panel) {
  for (uint64_t b = 0; b < blocks; ++b) {
    uint8_t* pb = panel + b * kQ4NibbleStride;
    for (uint64_t r = 0; r < kPanelRows; ++r) {
      const uint8_t* blk = w + (r0 + r) * row_bytes + b * 18;
      for (uint64_t j = 0; j < 4; ++j) {
        if (r < n) std::memcpy(pb + 64 * j + 4 * r, blk + 2 + 4 * j, 4);
        else std::memset(pb + 64 * j + 4 * r, 0, 4);
      }
      if (r < n) std::memcpy(pb + 256 + 2 * r, blk, 2);
      else std::memset(pb + 256 + 2 * r, 0, 2);
    }
  }
}

// Rows [r0, r0 + n) of Q4_K into the four-bit panel (missing rows: zeros).
void repack_q4_k_nibbles(const uint8_t* w, uint64_t r0, uint64_t n, uint64_t row_bytes, uint64_t supers, uint8_t* panel) {
  for (uint64_t s = 0; s < supers; ++s) {
    uint8_t* ps = panel + s * kQ4KNibbleStride;
    std::memset(ps, 0, kQ4KNibbleStride);
    for (uint64_t r = 0; r < n; ++r) {
      const uint8_t* b = w + (r0 + r) * row_bytes + s * 144;
      for (uint64_t j = 0; j < 4; ++j) {
        for (uint64_t k = 0; k < 8; ++k) std::memcpy(ps + 512 * j + 64 * k + 4 * r, b + 16 + 32 * j + 4 * k, 4);
      }
      for (int sub = 0; sub < 8; ++sub) q4k_scale_min(sub, b + 4, ps + kQ4KNibbleScales + 16 * sub + r, ps + kQ4KNibbleMins + 16 * sub + r);
      std::memcpy(ps + kQ4KNibbleD + 2 * r, b, 2);
      std::memcpy(ps + kQ4KNibbleDmin + 2 * r, b + 2, 2);
    }
  }
}

// Rows [r0, r0 + n) of Q6_K into the six-bit panel (missing rows: zeros).
void repack_q6_k(const uint8_t* w, uint64_t r0, uint64_t n, uint64_t row_bytes, uint64_t supers, uint8_t* panel) {
  for (uint64_t s = 0; s < supers; ++s) {
    uint8_t* ps = panel + s * kQ6Stride;
    std::memset(ps, 0, kQ6Stride);
    for (uint64_t r = 0; r < n; ++r) {
      const uint8_t* b = w + (r0 + r) * row_bytes + s * 210;
      uint8_t q[256];
      q6k_values(b, q);
      for (int line = 0; line < 32; ++line) {
        for (int j = 0; j < 4; ++j) {
          ps[q6_nibble_line(line) + 4 * r + j] = static_cast<uint8_t>((q[4 * line + j] & 0x0F) | (q[128 + 4 * line + j] & 0x0F) << 4);
        }
      }
      for (int line = 0; line < 16; ++line) {
        for (int j = 0; j < 4; ++j) {
          uint8_t top = 0;
          for (int k = 0; k < 4; ++k) top |= static_cast<uint8_t>((q[4 * (line + 16 * k) + j] >> 4) << (2 * k));
          ps[q6_high_line(line) + 4 * r + j] = top;
        }
      }
      for (int g = 0; g < 16; ++g) ps[kQ6Scales + 16 * g + r] = b[192 + g];
      std::memcpy(ps + kQ6D + 2 * r, b + 208, 2);
    }
  }
}

}  // namespace llmops::engine
