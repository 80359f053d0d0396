// The integer GEMM of prefill for Q8_0, Q4_0, Q4_K and Q6_K weights, AVX-512 + VNNI. Compiled
// for that target (engine/CMakeLists.txt), called after isa_supported(kAvx512). Plain pointers
// only: see isa_kernels.h for why.
//
// Weights are repacked 16 rows at a time into a panel where each 64-byte line holds the same
// four consecutive elements of the 16 rows, as unsigned bytes. One vpdpbusd then multiplies those
// 4 × 16 weights by four activation bytes broadcast from one token, adding into one int32 lane per
// row. A tile of kTokenTile tokens (interleaved four bytes at a time, so one pointer serves the
// tile) shares every line loaded; each broadcast feeds 16 rows. Per block (32 elements) or group
// (K-quants) the int32 sums are scaled into fp32 accumulators, one 16-row vector per token.
//
//   Q8_0, Q4_0: weights w + 128 (Q4_0: nibble + 120); the activation's −128·Σx per block starts
//     each block's sum, and its fp32 scale times the row's scale weighs it.
//   Q4_K: nibbles 0..15 as they are; Σ_sub scale·Σ(q·x) in int32 over the super-block (vpmulld
//     per sub-block of 32), minus Σ_sub min·Σx (vpdpwssd on int16 pairs), then d and dmin.
//   Q6_K: q = 0..63, kept at six bits (kernels/packed_layouts.h) and put together per line (nibble | top two
//     bits) before its vpdpbusd; Σ_group scale·Σ(q·x) over the super-block (groups of 16), minus
//     32·Σ_group scale·Σx (vpdpwssd), then d.
// The same integer sums as the decode kernels on the same quantised activations, so a prefill
// logit differs from a decoded one by float summation order only.
//
// Panels packed once (pack_int8_avx512) take the same layout, except Q4_0's, which stays at four
// bits so its panels are no larger than its rows: per block, 4 lines of 64 bytes, line j holding
// bytes 4j..4j+3 of each row's 16 packed bytes (elements 4j.. in the low nibbles, 16 + 4j.. in the
// high ones), then the 16 rows' fp16 scales; Q4_K's likewise (kernels/packed_layouts.h). Both decode
// (one token: gemv_packed_avx512) and prefill read those; Q4_0's with the weights taken as nibble
// q and the activation's −8·Σx per block. Decode reads every type's packed panels (Q8_0's and
// Q6_K's too), so no type's rows stay resident beside its panels.
#if defined(__x86_64__)
#include "kernels/immintrin_quiet.h"

#include <cstring>
#include <utility>

#include "kernels/isa_kernels.h"
#include "kernels/kquant.h"
#include "kernels/packed_layouts.h"

namespace llmops::engine {

namespace {

constexpr int kTile = static_cast<int>(kTokenTile);  // tokens per register tile

inline float half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// Panel layouts, per block of 32 (Q8_0, Q4_0) or super-block of 256 (K-quants):
//   weights: one 64-byte line per 4 elements (element 4k+j of row r at 64k + 4r + j)
//   Q8_0/Q4_0: then the 16 rows' fp16 scales, as the rows hold them (Q8_0's panels take the
//   rows' bytes).
//   K-quants: then one line of 16 int32 scales per group, one line of int16 pairs per two
//   groups (Q4_K: the mins, Q6_K: the scales), 16 fp32 d, 16 fp32 dmin (Q4_K).
struct KLayout {
  int groups;       // per super-block
  int group_lines;  // 4-element lines per group
  uint64_t scales, pairs, d, dmin, stride;
};
constexpr KLayout kLayoutQ4K{8, 8, 4096, 4096 + 512, 4096 + 512 + 256, 4096 + 512 + 256 + 64, 4096 + 512 + 256 + 128};
constexpr uint64_t kQ8Stride = 512 + 32;

// One block of 32 elements of 16 rows (rows[r]: row r's 32 unsigned bytes) into its 8 lines:
// a 16 × 8 transpose of 4-byte groups, rows r and r + 8 sharing a register.
inline void transpose_block(const __m256i* rows, uint8_t* out) {
  __m512i z[8], t[8], u[8];
#pragma GCC unroll 8
  for (int r = 0; r < 8; ++r) z[r] = _mm512_inserti64x4(_mm512_castsi256_si512(rows[r]), rows[r + 8], 1);
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(z[2 * i], z[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(z[2 * i], z[2 * i + 1]);
  }
  // u[0..3]: groups (0|4), (1|5), (2|6), (3|7) of rows 0-3 (and 8-11); u[4..7] of rows 4-7 (12-15).
#pragma GCC unroll 2
  for (int i = 0; i < 2; ++i) {
    u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  const __m512i first = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0), second = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
#pragma GCC unroll 4
  for (int g = 0; g < 4; ++g) {
    _mm512_storeu_si512(out + 64 * g, _mm512_permutex2var_epi64(u[g], first, u[g + 4]));
    _mm512_storeu_si512(out + 64 * (g + 4), _mm512_permutex2var_epi64(u[g], second, u[g + 4]));
  }
}

// Rows [r0, r0 + n) (n ≤ 16; missing rows get zero weights and scales) into the panel.
void repack_q8_0(const uint8_t* w, uint64_t r0, uint64_t n, uint64_t row_bytes, uint64_t blocks, uint8_t* panel, bool q4) {
  const uint64_t block_bytes = q4 ? 18 : 34;
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80)), low4 = _mm256_set1_epi8(0x0F), bias = _mm256_set1_epi8(120);
  for (uint64_t b = 0; b < blocks; ++b) {
    uint8_t* pb = panel + b * kQ8Stride;
    __m256i rows[kPanelRows];
    uint16_t scales[kPanelRows];
    for (uint64_t r = 0; r < kPanelRows; ++r) {
      if (r >= n) {
        rows[r] = _mm256_setzero_si256();
        scales[r] = 0;
        continue;
      }
      const uint8_t* blk = w + (r0 + r) * row_bytes + b * block_bytes;
      std::memcpy(&scales[r], blk, 2);
      if (q4) {
        const __m128i p = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
        const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(p), _mm_srli_epi16(p, 4), 1);
        rows[r] = _mm256_add_epi8(_mm256_and_si256(both, low4), bias);
      } else {
        rows[r] = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2)), flip);
      }
    }
    transpose_block(rows, pb);
    std::memcpy(pb + 512, scales, sizeof scales);
  }
}

void repack_q4_k(const uint8_t* w, uint64_t r0, uint64_t n, uint64_t row_bytes, uint64_t supers, uint8_t* panel) {
  const KLayout& L = kLayoutQ4K;
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  for (uint64_t s = 0; s < supers; ++s) {
    uint8_t* ps = panel + s * L.stride;
    int32_t scales[8][kPanelRows];
    int16_t mins[8][kPanelRows];
    float d[kPanelRows], dmin[kPanelRows];
    for (uint64_t r = 0; r < kPanelRows; ++r) {
      const uint8_t* b = w + (r0 + r) * row_bytes + s * 144;
      d[r] = r < n ? half(b) : 0.0f;
      dmin[r] = r < n ? half(b + 2) : 0.0f;
      for (int sub = 0; sub < 8; ++sub) {
        uint8_t sc = 0, m = 0;
        if (r < n) q4k_scale_min(sub, b + 4, &sc, &m);
        scales[sub][r] = sc;
        mins[sub][r] = m;
      }
    }
    for (int pair = 0; pair < 4; ++pair) {  // 32 packed bytes: sub-block 2·pair low, 2·pair + 1 high
      __m256i lo[kPanelRows], hi[kPanelRows];
      for (uint64_t r = 0; r < kPanelRows; ++r) {
        const __m256i packed = r < n ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + (r0 + r) * row_bytes + s * 144 + 16 + 32 * pair))
                                     : _mm256_setzero_si256();
        lo[r] = _mm256_and_si256(packed, low4);
        hi[r] = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4);
      }
      transpose_block(lo, ps + 512 * (2 * pair));
      transpose_block(hi, ps + 512 * (2 * pair + 1));
    }
    std::memcpy(ps + L.scales, scales, sizeof scales);
    for (int j = 0; j < 4; ++j) {
      for (uint64_t r = 0; r < kPanelRows; ++r) {
        int16_t pair[2] = {mins[2 * j][r], mins[2 * j + 1][r]};
        std::memcpy(ps + L.pairs + 64 * j + 4 * r, pair, 4);
      }
    }
    std::memcpy(ps + L.d, d, sizeof d);
    std::memcpy(ps + L.dmin, dmin, sizeof dmin);
  }
}


// Tokens [0, NT) of one tile against one panel of Q8_0/Q4_0 rows.
template <int NT>
void tile_q8(const uint8_t* panel, const QuantizedActivations& x, uint64_t tile, float* y, uint64_t y_stride, __mmask16 rows_mask) {
  const uint64_t blocks = x.cols / 32;
  const int8_t* xq = x.q + tile * x.cols * kTokenTile;
  const float* xs = x.scale + tile * blocks * kTokenTile;
  const int32_t* xo = x.offset + tile * blocks * kTokenTile;
  __m512 acc[NT];
#pragma GCC unroll 16
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (uint64_t b = 0; b < blocks; ++b, xq += 8 * 4 * kTile, xs += kTile, xo += kTile) {
    const uint8_t* pb = panel + b * kQ8Stride;
    __m512i dot[NT];
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) dot[t] = _mm512_set1_epi32(xo[t]);
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      const __m512i line = _mm512_loadu_si512(pb + 64 * k);
#pragma GCC unroll 16
      for (int t = 0; t < NT; ++t) {
        int32_t v;
        std::memcpy(&v, xq + 4 * (kTile * k + t), 4);
        dot[t] = _mm512_dpbusd_epi32(dot[t], line, _mm512_set1_epi32(v));
      }
    }
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pb + 512)));
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[t]), _mm512_mul_ps(dw, _mm512_set1_ps(xs[t])), acc[t]);
  }
#pragma GCC unroll 16
  for (int t = 0; t < NT; ++t) _mm512_mask_storeu_ps(y + t * y_stride, rows_mask, acc[t]);
}

// A four-bit panel line (16 rows × 4 packed bytes) as two lines of bytes: its low nibbles and
// its high ones.
inline void split_nibbles(__m512i both, __m512i lines[2]) {
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  lines[0] = _mm512_and_si512(both, low4);
  lines[1] = _mm512_and_si512(_mm512_srli_epi16(both, 4), low4);
}

// One token against a four-bit panel line: its low nibbles times the four values at lo added to
// *dlo, its high nibbles times the four at hi to *dhi (dlo and dhi may be the same sum).
inline void nibble_line_dots(__m512i both, const int8_t* lo, const int8_t* hi, __m512i* dlo, __m512i* dhi) {
  __m512i lines[2];
  split_nibbles(both, lines);
  int32_t a, b;
  std::memcpy(&a, lo, 4);
  std::memcpy(&b, hi, 4);
  *dlo = _mm512_dpbusd_epi32(*dlo, lines[0], _mm512_set1_epi32(a));
  *dhi = _mm512_dpbusd_epi32(*dhi, lines[1], _mm512_set1_epi32(b));
}

// Tokens [0, NT) of one tile against one four-bit Q4_0 panel: the same sums as tile_q8 on the
// expanded panel (Σ(q − 8)·x, here Σq·x − 8·Σx), so the same outputs to the bit.
template <int NT>
void tile_q4n(const uint8_t* panel, const QuantizedActivations& x, uint64_t tile, float* y, uint64_t y_stride, __mmask16 rows_mask) {
  const uint64_t blocks = x.cols / 32;
  const int8_t* xq = x.q + tile * x.cols * kTokenTile;
  const float* xs = x.scale + tile * blocks * kTokenTile;
  const int32_t* xo = x.offset + tile * blocks * kTokenTile;
  __m512 acc[NT];
#pragma GCC unroll 16
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (uint64_t b = 0; b < blocks; ++b, xq += 8 * 4 * kTile, xs += kTile, xo += kTile) {
    const uint8_t* pb = panel + b * kQ4NibbleStride;
    __m512i dot[NT];
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) dot[t] = _mm512_srai_epi32(_mm512_set1_epi32(xo[t]), 4);  // −128·Σx → −8·Σx, exact
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      __m512i lines[2];
      split_nibbles(_mm512_loadu_si512(pb + 64 * j), lines);
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        const int k = j + 4 * h;
#pragma GCC unroll 16
        for (int t = 0; t < NT; ++t) {
          int32_t v;
          std::memcpy(&v, xq + 4 * (kTile * k + t), 4);
          dot[t] = _mm512_dpbusd_epi32(dot[t], lines[h], _mm512_set1_epi32(v));
        }
      }
    }
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pb + 256)));
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[t]), _mm512_mul_ps(dw, _mm512_set1_ps(xs[t])), acc[t]);
  }
#pragma GCC unroll 16
  for (int t = 0; t < NT; ++t) _mm512_mask_storeu_ps(y + t * y_stride, rows_mask, acc[t]);
}

// One token (decode) against one four-bit Q4_0 panel, from the decode path's own quantised vector
// (Q8_0 blocks, element c at q8[c]): the sums and the float steps of tile_q4n for one token, so a
// sequence decoded alone gets the bits it gets in a batch. The eight dpbusd of a block go to four
// partial sums, not one chain.
void gemv_q4n(const uint8_t* panel, const VectorView& x, float* y, __mmask16 rows_mask) {
  const uint64_t blocks = x.n / 32;
  __m512 acc = _mm512_setzero_ps();
  for (uint64_t b = 0; b < blocks; ++b) {
    const uint8_t* pb = panel + b * kQ4NibbleStride;
    const int8_t* xb = x.q8 + 32 * b;
    __m512i dot[4] = {_mm512_set1_epi32(-8 * x.q8_sum[b]), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      nibble_line_dots(_mm512_loadu_si512(pb + 64 * j), xb + 4 * j, xb + 16 + 4 * j, &dot[j], &dot[j]);
    }
    const __m512i sum = _mm512_add_epi32(_mm512_add_epi32(dot[0], dot[1]), _mm512_add_epi32(dot[2], dot[3]));
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pb + 256)));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(dw, _mm512_set1_ps(x.q8_scale[b])), acc);
  }
  _mm512_mask_storeu_ps(y, rows_mask, acc);
}

// One token (decode) against one Q8_0 panel, from the decode path's quantised vector: tile_q8's
// sums and float steps for one token (the same bits as in a batch). Per block, eight lines into
// four partial sums, so no dpbusd waits on the one before.
void gemv_q8p(const uint8_t* panel, const VectorView& x, float* y, __mmask16 rows_mask) {
  const uint64_t blocks = x.n / 32;
  __m512 acc = _mm512_setzero_ps();
  for (uint64_t b = 0; b < blocks; ++b) {
    const uint8_t* pb = panel + b * kQ8Stride;
    const int8_t* xb = x.q8 + 32 * b;
    __m512i dot[4] = {_mm512_set1_epi32(-128 * x.q8_sum[b]), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      int32_t v;
      std::memcpy(&v, xb + 4 * k, 4);
      dot[k % 4] = _mm512_dpbusd_epi32(dot[k % 4], _mm512_loadu_si512(pb + 64 * k), _mm512_set1_epi32(v));
    }
    const __m512i sum = _mm512_add_epi32(_mm512_add_epi32(dot[0], dot[1]), _mm512_add_epi32(dot[2], dot[3]));
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pb + 512)));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(dw, _mm512_set1_ps(x.q8_scale[b])), acc);
  }
  _mm512_mask_storeu_ps(y, rows_mask, acc);
}

// A pair of a four-bit Q4_K panel's mins as tile_k's int16 pairs: (min 2j, min 2j + 1) per row.
inline __m512i q4kn_min_pair(const uint8_t* ps, int j) {
  const __m512i lo = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ps + kQ4KNibbleMins + 32 * j)));
  const __m512i hi = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ps + kQ4KNibbleMins + 32 * j + 16)));
  return _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
}

inline __m512i q4kn_scales(const uint8_t* ps, int sub) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ps + kQ4KNibbleScales + 16 * sub)));
}

// Tokens [0, NT) of one tile against one four-bit Q4_K panel: tile_k's integer sums and float
// steps on the same numbers, so the same outputs to the bit.
template <int NT>
void tile_q4kn(const uint8_t* panel, const QuantizedActivations& x, uint64_t tile, float* y, uint64_t y_stride, __mmask16 rows_mask) {
  const uint64_t supers = x.cols / 256;
  const int8_t* xq = x.q + tile * x.cols * kTokenTile;
  const float* xs = x.scale + tile * supers * kTokenTile;
  const int32_t* xp = x.sum_pairs + tile * supers * 4 * kTokenTile;
  __m512 acc[NT];
#pragma GCC unroll 16
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (uint64_t s = 0; s < supers; ++s, xs += kTile, xp += 4 * kTile, xq += 256 * kTile) {
    const uint8_t* ps = panel + s * kQ4KNibbleStride;
    __m512i total[NT], side[NT];
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) total[t] = side[t] = _mm512_setzero_si512();
    for (int j = 0; j < 4; ++j) {
      __m512i dot[2][NT];
#pragma GCC unroll 16
      for (int t = 0; t < NT; ++t) dot[0][t] = dot[1][t] = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k) {
        __m512i lines[2];
        split_nibbles(_mm512_loadu_si512(ps + 512 * j + 64 * k), lines);
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
          const int8_t* xg = xq + (2 * j + h) * 8 * 4 * kTile;  // sub-block 2j + h of the tile
#pragma GCC unroll 16
          for (int t = 0; t < NT; ++t) {
            int32_t v;
            std::memcpy(&v, xg + 4 * (kTile * k + t), 4);
            dot[h][t] = _mm512_dpbusd_epi32(dot[h][t], lines[h], _mm512_set1_epi32(v));
          }
        }
      }
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        const __m512i scale = q4kn_scales(ps, 2 * j + h);
#pragma GCC unroll 16
        for (int t = 0; t < NT; ++t) total[t] = _mm512_add_epi32(total[t], _mm512_mullo_epi32(dot[h][t], scale));
      }
    }
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ps + kQ4KNibbleD)));
    const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ps + kQ4KNibbleDmin)));
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const __m512i pair = q4kn_min_pair(ps, j);
#pragma GCC unroll 16
      for (int t = 0; t < NT; ++t) side[t] = _mm512_dpwssd_epi32(side[t], pair, _mm512_set1_epi32(xp[j * kTile + t]));
    }
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) {
      const __m512 dx = _mm512_set1_ps(xs[t]);
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(total[t]), _mm512_mul_ps(d, dx), acc[t]);
      acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(side[t]), _mm512_mul_ps(dmin, dx), acc[t]);
    }
  }
#pragma GCC unroll 16
  for (int t = 0; t < NT; ++t) _mm512_mask_storeu_ps(y + t * y_stride, rows_mask, acc[t]);
}

// One token (decode) against one four-bit Q4_K panel, from the decode path's Q8_K vector (element
// c at qk[c], one scale per 256, the sums of each 16): tile_q4kn's numbers and steps for one token.
void gemv_q4kn(const uint8_t* panel, const VectorView& x, float* y, __mmask16 rows_mask) {
  const uint64_t supers = x.n / 256;
  __m512 acc = _mm512_setzero_ps();
  for (uint64_t s = 0; s < supers; ++s) {
    const uint8_t* ps = panel + s * kQ4KNibbleStride;
    const int8_t* xs = x.qk + 256 * s;
    const int32_t* sum16 = x.qk_sum16 + 16 * s;
    __m512i total = _mm512_setzero_si512(), side = _mm512_setzero_si512();
    for (int j = 0; j < 4; ++j) {
      __m512i dot[2][2] = {{_mm512_setzero_si512(), _mm512_setzero_si512()}, {_mm512_setzero_si512(), _mm512_setzero_si512()}};
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k) {
        nibble_line_dots(_mm512_loadu_si512(ps + 512 * j + 64 * k), xs + 64 * j + 4 * k, xs + 64 * j + 32 + 4 * k, &dot[0][k % 2],
                         &dot[1][k % 2]);
      }
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) total = _mm512_add_epi32(total, _mm512_mullo_epi32(_mm512_add_epi32(dot[h][0], dot[h][1]), q4kn_scales(ps, 2 * j + h)));
    }
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ps + kQ4KNibbleD)));
    const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ps + kQ4KNibbleDmin)));
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const int32_t lo = sum16[4 * j] + sum16[4 * j + 1], hi = sum16[4 * j + 2] + sum16[4 * j + 3];  // sub-blocks 2j, 2j + 1
      side = _mm512_dpwssd_epi32(side, q4kn_min_pair(ps, j), _mm512_set1_epi32((lo & 0xFFFF) | static_cast<int32_t>(static_cast<uint32_t>(hi) << 16)));
    }
    const __m512 dx = _mm512_set1_ps(x.qk_scale[s]);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(total), _mm512_mul_ps(d, dx), acc);
    acc = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(side), _mm512_mul_ps(dmin, dx), acc);
  }
  _mm512_mask_storeu_ps(y, rows_mask, acc);
}

// Tokens [0, NT) of one tile against one panel of Q4_K rows.
template <int NT>
void tile_k(const uint8_t* panel, const QuantizedActivations& x, uint64_t tile, float* y, uint64_t y_stride, __mmask16 rows_mask) {
  constexpr KLayout L = kLayoutQ4K;
  constexpr int kPairs = L.groups / 2;
  const uint64_t supers = x.cols / 256;
  const int8_t* xq = x.q + tile * x.cols * kTokenTile;
  const float* xs = x.scale + tile * supers * kTokenTile;
  const int32_t* xp = x.sum_pairs + tile * supers * kPairs * kTokenTile;
  __m512 acc[NT];
#pragma GCC unroll 16
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (uint64_t s = 0; s < supers; ++s, xs += kTile, xp += kPairs * kTile) {
    const uint8_t* ps = panel + s * L.stride;
    __m512i total[NT];
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) total[t] = _mm512_setzero_si512();
    for (int g = 0; g < L.groups; ++g, xq += L.group_lines * 4 * kTile) {
      __m512i dot[NT];
#pragma GCC unroll 16
      for (int t = 0; t < NT; ++t) dot[t] = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int k = 0; k < L.group_lines; ++k) {
        const __m512i line = _mm512_loadu_si512(ps + 64 * (g * L.group_lines + k));
#pragma GCC unroll 16
        for (int t = 0; t < NT; ++t) {
          int32_t v;
          std::memcpy(&v, xq + 4 * (kTile * k + t), 4);
          dot[t] = _mm512_dpbusd_epi32(dot[t], line, _mm512_set1_epi32(v));
        }
      }
      const __m512i scale = _mm512_loadu_si512(ps + L.scales + 64 * g);
#pragma GCC unroll 16
      for (int t = 0; t < NT; ++t) total[t] = _mm512_add_epi32(total[t], _mm512_mullo_epi32(dot[t], scale));
    }
    const __m512 d = _mm512_loadu_ps(ps + L.d);
    const __m512 dmin = _mm512_loadu_ps(ps + L.dmin);
    __m512i side[NT];
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) side[t] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int j = 0; j < kPairs; ++j) {
      const __m512i line = _mm512_loadu_si512(ps + L.pairs + 64 * j);
#pragma GCC unroll 16
      for (int t = 0; t < NT; ++t) side[t] = _mm512_dpwssd_epi32(side[t], line, _mm512_set1_epi32(xp[j * kTile + t]));
    }
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) {
      const __m512 dx = _mm512_set1_ps(xs[t]);
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(total[t]), _mm512_mul_ps(d, dx), acc[t]);
      acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(side[t]), _mm512_mul_ps(dmin, dx), acc[t]);
    }
  }
#pragma GCC unroll 16
  for (int t = 0; t < NT; ++t) _mm512_mask_storeu_ps(y + t * y_stride, rows_mask, acc[t]);
}

// Byte line L of a six-bit Q6_K panel (values 0..63): its low four bits from nibble line L % 32,
// its top two from field L / 16 of high-bits line L % 16, moved to bits 4-5 (16-bit shifts:
// what crosses between bytes is masked off).
template <int L>
inline __m512i q6_line(const uint8_t* ps) {
  const __m512i nibbles = _mm512_loadu_si512(ps + q6_nibble_line(L % 32)), top = _mm512_loadu_si512(ps + q6_high_line(L % 16));
  const __m512i low = L < 32 ? nibbles : _mm512_srli_epi16(nibbles, 4);
  constexpr int field = L / 16;
  // Fields 0 and 2 (or 1 and 3) alone, so bits 6-7 of each byte are clear after the shift that
  // brings the field wanted to bits 4-5; what lands in bits 0-3 is not selected.
  const __m512i pair = _mm512_and_si512(top, _mm512_set1_epi8(field % 2 == 0 ? 0x33 : static_cast<char>(0xCC)));
  const __m512i high = field == 0 ? _mm512_slli_epi16(pair, 4) : field == 1 ? _mm512_slli_epi16(pair, 2) : field == 2 ? pair : _mm512_srli_epi16(pair, 2);
  // bits 0-3 from low, 4-7 from high
  return _mm512_ternarylogic_epi32(_mm512_set1_epi8(0x0F), low, high, 0xCA);
}

// Group G of a six-bit Q6_K panel against one token tile: total += scale_G · Σ q·x per row.
template <int NT, int G>
inline void q6_group(const uint8_t* ps, const int8_t* xq, __m512i* total) {
  __m512i dot[NT];
#pragma GCC unroll 16
  for (int t = 0; t < NT; ++t) dot[t] = _mm512_setzero_si512();
  const __m512i lines[4] = {q6_line<4 * G>(ps), q6_line<4 * G + 1>(ps), q6_line<4 * G + 2>(ps), q6_line<4 * G + 3>(ps)};
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) {
      int32_t v;
      std::memcpy(&v, xq + 4 * (kTile * (4 * G + k) + t), 4);
      dot[t] = _mm512_dpbusd_epi32(dot[t], lines[k], _mm512_set1_epi32(v));
    }
  }
  const __m512i scale = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ps + kQ6Scales + 16 * G)));
#pragma GCC unroll 16
  for (int t = 0; t < NT; ++t) total[t] = _mm512_add_epi32(total[t], _mm512_mullo_epi32(dot[t], scale));
}

template <int NT, int... G>
inline void q6_groups(const uint8_t* ps, const int8_t* xq, __m512i* total, std::integer_sequence<int, G...>) {
  (q6_group<NT, G>(ps, xq, total), ...);
}

// Tokens [0, NT) of one tile against one six-bit Q6_K panel: per super-block Σ_g scale_g·Σ(q·x)
// in int32, minus 32·Σ_g scale_g·Σx (vpdpwssd on the activation's int16 pairs of group sums),
// then d.
template <int NT>
void tile_q6n(const uint8_t* panel, const QuantizedActivations& x, uint64_t tile, float* y, uint64_t y_stride, __mmask16 rows_mask) {
  const uint64_t supers = x.cols / 256;
  const int8_t* xq = x.q + tile * x.cols * kTokenTile;
  const float* xs = x.scale + tile * supers * kTokenTile;
  const int32_t* xp = x.sum_pairs + tile * supers * 8 * kTokenTile;
  __m512 acc[NT];
#pragma GCC unroll 16
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (uint64_t s = 0; s < supers; ++s, xs += kTile, xp += 8 * kTile, xq += 256 * kTile) {
    const uint8_t* ps = panel + s * kQ6Stride;
    __m512i total[NT], side[NT];
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) total[t] = side[t] = _mm512_setzero_si512();
    q6_groups<NT>(ps, xq, total, std::make_integer_sequence<int, 16>{});
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {  // (scale 2j, scale 2j + 1) per row, against the pair of sums
      const __m512i lo = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ps + kQ6Scales + 32 * j)));
      const __m512i hi = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ps + kQ6Scales + 32 * j + 16)));
      const __m512i pair = _mm512_or_si512(_mm512_and_si512(lo, _mm512_set1_epi32(0xFFFF)), _mm512_slli_epi32(hi, 16));
#pragma GCC unroll 16
      for (int t = 0; t < NT; ++t) side[t] = _mm512_dpwssd_epi32(side[t], pair, _mm512_set1_epi32(xp[j * kTile + t]));
    }
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ps + kQ6D)));
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) {
      const __m512i sum = _mm512_sub_epi32(total[t], _mm512_slli_epi32(side[t], 5));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(d, _mm512_set1_ps(xs[t])), acc[t]);
    }
  }
#pragma GCC unroll 16
  for (int t = 0; t < NT; ++t) _mm512_mask_storeu_ps(y + t * y_stride, rows_mask, acc[t]);
}

// Byte lines 4Q + I + 16k (k = 0..3, in groups Q + 4k) of a six-bit Q6_K panel against one
// token: two nibble lines and one line of high bits serve all four.
template <int Q, int I>
inline void q6_quad_lines(const uint8_t* ps, const int8_t* xs, __m512i* dot) {
  const __m512i lines[4] = {q6_line<4 * Q + I>(ps), q6_line<4 * Q + I + 16>(ps), q6_line<4 * Q + I + 32>(ps), q6_line<4 * Q + I + 48>(ps)};
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    int32_t v;
    std::memcpy(&v, xs + 4 * (4 * Q + I + 16 * k), 4);
    dot[k] = _mm512_dpbusd_epi32(dot[k], lines[k], _mm512_set1_epi32(v));
  }
}

// Groups Q, Q + 4, Q + 8, Q + 12 against one token, each sum starting at −32·Σx of its group.
template <int Q>
inline void q6_quad(const uint8_t* ps, const int8_t* xs, const int32_t* sum16, __m512i* total) {
  __m512i dot[4];
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) dot[k] = _mm512_set1_epi32(-32 * sum16[Q + 4 * k]);
  q6_quad_lines<Q, 0>(ps, xs, dot);
  q6_quad_lines<Q, 1>(ps, xs, dot);
  q6_quad_lines<Q, 2>(ps, xs, dot);
  q6_quad_lines<Q, 3>(ps, xs, dot);
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    const __m512i scale = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ps + kQ6Scales + 16 * (Q + 4 * k))));
    *total = _mm512_add_epi32(*total, _mm512_mullo_epi32(dot[k], scale));
  }
}

// One token (decode) against one six-bit Q6_K panel, from the decode path's Q8_K vector: the
// integer sum and float step of tile_q6n, with 32·Σx taken out of each group's sum before its
// scale (the same integer).
void gemv_q6n(const uint8_t* panel, const VectorView& x, float* y, __mmask16 rows_mask) {
  const uint64_t supers = x.n / 256;
  __m512 acc = _mm512_setzero_ps();
  for (uint64_t s = 0; s < supers; ++s) {
    const uint8_t* ps = panel + s * kQ6Stride;
    const int8_t* xs = x.qk + 256 * s;
    const int32_t* sum16 = x.qk_sum16 + 16 * s;
    __m512i total = _mm512_setzero_si512();
    q6_quad<0>(ps, xs, sum16, &total);
    q6_quad<1>(ps, xs, sum16, &total);
    q6_quad<2>(ps, xs, sum16, &total);
    q6_quad<3>(ps, xs, sum16, &total);
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ps + kQ6D)));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(total), _mm512_mul_ps(d, _mm512_set1_ps(x.qk_scale[s])), acc);
  }
  _mm512_mask_storeu_ps(y, rows_mask, acc);
}

using TileFn = void (*)(const uint8_t*, const QuantizedActivations&, uint64_t, float*, uint64_t, __mmask16);

template <int... N>
constexpr TileFn q8_tile(int nt, std::integer_sequence<int, N...>) {
  TileFn fns[] = {&tile_q8<N + 1>...};
  return fns[nt - 1];
}
template <int... N>
constexpr TileFn q4n_tile(int nt, std::integer_sequence<int, N...>) {
  TileFn fns[] = {&tile_q4n<N + 1>...};
  return fns[nt - 1];
}
template <int... N>
constexpr TileFn q4kn_tile(int nt, std::integer_sequence<int, N...>) {
  TileFn fns[] = {&tile_q4kn<N + 1>...};
  return fns[nt - 1];
}
template <int... N>
constexpr TileFn k_tile(int nt, std::integer_sequence<int, N...>) {
  TileFn fns[] = {&tile_k<N + 1>...};
  return fns[nt - 1];
}
template <int... N>
constexpr TileFn q6n_tile(int nt, std::integer_sequence<int, N...>) {
  TileFn fns[] = {&tile_q6n<N + 1>...};
  return fns[nt - 1];
}

}  // namespace

uint64_t int8_panel_bytes(GgmlType type, uint64_t cols) {
  switch (type) {
    case GgmlType::kQ8_0:
    case GgmlType::kQ4_0: return cols / 32 * kQ8Stride;
    case GgmlType::kQ4_K: return cols / 256 * kLayoutQ4K.stride;
    case GgmlType::kQ6_K: return cols / 256 * kQ6Stride;
    default: return 0;
  }
}

namespace {

void repack_panel(GgmlType type, const uint8_t* w, uint64_t r0, uint64_t n, uint64_t row_bytes, uint64_t cols, uint8_t* panel) {
  switch (type) {
    case GgmlType::kQ8_0: repack_q8_0(w, r0, n, row_bytes, cols / 32, panel, false); break;
    case GgmlType::kQ4_0: repack_q8_0(w, r0, n, row_bytes, cols / 32, panel, true); break;
    case GgmlType::kQ4_K: repack_q4_k(w, r0, n, row_bytes, cols / 256, panel); break;
    case GgmlType::kQ6_K: repack_q6_k(w, r0, n, row_bytes, cols / 256, panel); break;
    default: break;
  }
}

// Every token tile of x against one panel of n rows starting at r0.
// nibbles: a packed four-bit Q4_0 or Q4_K panel (else the expanded layout).
void panel_tiles(GgmlType type, const uint8_t* panel, uint64_t r0, uint64_t n, uint64_t rows, const QuantizedActivations& x, float* y,
                 bool nibbles = false) {
  const __mmask16 mask = static_cast<__mmask16>((1u << n) - 1u);
  for (uint64_t t0 = 0, tile = 0; t0 < x.t; t0 += kTokenTile, ++tile) {
    const int nt = x.t - t0 < kTokenTile ? static_cast<int>(x.t - t0) : kTile;
    TileFn fn = nullptr;
    switch (type) {
      case GgmlType::kQ8_0: fn = q8_tile(nt, std::make_integer_sequence<int, kTile>{}); break;
      case GgmlType::kQ4_0:
        fn = nibbles ? q4n_tile(nt, std::make_integer_sequence<int, kTile>{}) : q8_tile(nt, std::make_integer_sequence<int, kTile>{});
        break;
      case GgmlType::kQ4_K:
        fn = nibbles ? q4kn_tile(nt, std::make_integer_sequence<int, kTile>{}) : k_tile(nt, std::make_integer_sequence<int, kTile>{});
        break;
      default: fn = q6n_tile(nt, std::make_integer_sequence<int, kTile>{}); break;
    }
    fn(panel, x, tile, y + t0 * rows + r0, rows, mask);
  }
}

}  // namespace

void matmul_int8_avx512(GgmlType type, const uint8_t* w, uint64_t row_begin, uint64_t row_end, uint64_t rows,
                        uint64_t row_bytes, const QuantizedActivations& x, float* y, uint8_t* panel) {
  for (uint64_t r0 = row_begin; r0 < row_end; r0 += kPanelRows) {
    const uint64_t n = row_end - r0 < kPanelRows ? row_end - r0 : kPanelRows;
    repack_panel(type, w, r0, n, row_bytes, x.cols, panel);
    // The next panel (16 contiguous rows) will be read a block of each row at a time, an order the
    // hardware prefetchers follow poorly from DRAM: ask for it into L2 while this panel computes.
    const uint64_t next = r0 + kPanelRows;
    const uint64_t next_rows = next < row_end ? (row_end - next < kPanelRows ? row_end - next : kPanelRows) : 0;
    const uint8_t* ahead = w + next * row_bytes;
    for (uint64_t b = 0; b < next_rows * row_bytes; b += 64) _mm_prefetch(reinterpret_cast<const char*>(ahead + b), _MM_HINT_T1);
    panel_tiles(type, panel, r0, n, rows, x, y);
  }
}

uint64_t packed_panel_bytes(GgmlType type, uint64_t cols) {
  if (type == GgmlType::kQ4_0) return cols / 32 * kQ4NibbleStride;
  if (type == GgmlType::kQ4_K) return cols / 256 * kQ4KNibbleStride;
  return int8_panel_bytes(type, cols);
}

void pack_int8_avx512(GgmlType type, const uint8_t* w, uint64_t row_begin, uint64_t row_end, uint64_t row_bytes, uint64_t cols,
                      uint8_t* packed) {
  const uint64_t bytes = packed_panel_bytes(type, cols);
  for (uint64_t r0 = row_begin; r0 < row_end; r0 += kPanelRows) {
    const uint64_t n = row_end - r0 < kPanelRows ? row_end - r0 : kPanelRows;
    uint8_t* panel = packed + r0 / kPanelRows * bytes;
    if (type == GgmlType::kQ4_0) repack_q4_0_nibbles(w, r0, n, row_bytes, cols / 32, panel);
    else if (type == GgmlType::kQ4_K) repack_q4_k_nibbles(w, r0, n, row_bytes, cols / 256, panel);
    else repack_panel(type, w, r0, n, row_bytes, cols, panel);
  }
}

void matmul_int8_packed_avx512(GgmlType type, const uint8_t* packed, uint64_t row_begin, uint64_t row_end, uint64_t rows,
                               const QuantizedActivations& x, float* y) {
  const uint64_t bytes = packed_panel_bytes(type, x.cols);
  for (uint64_t r0 = row_begin; r0 < row_end; r0 += kPanelRows) {
    const uint64_t n = row_end - r0 < kPanelRows ? row_end - r0 : kPanelRows;
    const uint8_t* panel = packed + r0 / kPanelRows * bytes;
    // Panels are contiguous: the hardware prefetchers stream them (software hints two panels on
    // measured slower at 16 tokens, 517-535 against 561-567 tok/s in paired serving runs).
    panel_tiles(type, panel, r0, n, rows, x, y, type == GgmlType::kQ4_0 || type == GgmlType::kQ4_K);
  }
}

void gemv_packed_avx512(GgmlType type, const uint8_t* packed, uint64_t row_begin, uint64_t row_end, uint64_t cols, const VectorView& x,
                        float* y) {
  if (!(type == GgmlType::kQ8_0 || type == GgmlType::kQ4_0 || type == GgmlType::kQ4_K || type == GgmlType::kQ6_K)) return;
  const uint64_t bytes = packed_panel_bytes(type, cols);
  for (uint64_t r0 = row_begin; r0 < row_end; r0 += kPanelRows) {
    const uint64_t n = row_end - r0 < kPanelRows ? row_end - r0 : kPanelRows;
    const __mmask16 mask = static_cast<__mmask16>((1u << n) - 1u);
    if (type == GgmlType::kQ8_0) gemv_q8p(packed + r0 / kPanelRows * bytes, x, y + r0, mask);
    else if (type == GgmlType::kQ4_0) gemv_q4n(packed + r0 / kPanelRows * bytes, x, y + r0, mask);
    else if (type == GgmlType::kQ4_K) gemv_q4kn(packed + r0 / kPanelRows * bytes, x, y + r0, mask);
    else gemv_q6n(packed + r0 / kPanelRows * bytes, x, y + r0, mask);
  }
}

}  // namespace llmops::engine
#endif  // __x86_64__
