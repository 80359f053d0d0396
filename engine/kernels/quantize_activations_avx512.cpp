// The activations of prefill's integer GEMM (matmul_avx512.cpp), AVX-512: each token quantised
// to int8 per block (Q8_0, Q4_0) or per super-block (K-quants), interleaved four bytes at a time
// across a tile of kTokenTile tokens, with the per-block terms the tile kernels start from
// (−128·Σx, or the K-quants' int16 pairs of group sums). Compiled for that target
// (engine/CMakeLists.txt), called after isa_supported(kAvx512).
#if defined(__x86_64__)
#include "kernels/immintrin_quiet.h"

#include "kernels/isa_kernels.h"

namespace llmops::engine {

namespace {

// 8 rows of 8 dwords (one token's 32 bytes each) into 8 lines of 8 tokens' dwords.
inline void transpose_8x8(__m256i* r) {
  __m256i t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {
    u[4 * i] = _mm256_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm256_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm256_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm256_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int g = 0; g < 4; ++g) {
    r[g] = _mm256_permute2x128_si256(u[g], u[g + 4], 0x20);
    r[g + 4] = _mm256_permute2x128_si256(u[g], u[g + 4], 0x31);
  }
}

}  // namespace

void quantize_activations_avx512(GgmlType type, const float* x, uint64_t t, uint64_t cols, uint64_t tile_begin, uint64_t tile_end,
                                 int8_t* rows, float* row_scales, const QuantizedActivations& out) {
  const bool k_type = type == GgmlType::kQ4_K || type == GgmlType::kQ6_K;
  const uint64_t block = k_type ? 256 : 32, blocks = cols / block, chunks = cols / 32;
  const uint64_t pairs_per_super = type == GgmlType::kQ6_K ? 8 : 4;
  int8_t* q = out.q;
  float* scale = out.scale;
  int32_t* offset = out.offset;
  int32_t* sum_pairs = out.sum_pairs;
  const __m256i ones = _mm256_set1_epi8(1);
  for (uint64_t tile = tile_begin; tile < tile_end; ++tile) {
    const uint64_t t0 = tile * kTokenTile;
    const uint64_t nt = t - t0 < kTokenTile ? t - t0 : kTokenTile;
    for (uint64_t i = 0; i < nt; ++i) quantize_q8_avx512(x + (t0 + i) * cols, cols, block, !k_type, rows + i * cols, row_scales + i * blocks);
    for (uint64_t b = 0; b < blocks; ++b) {
      for (uint64_t i = 0; i < kTokenTile; ++i) scale[(tile * blocks + b) * kTokenTile + i] = i < nt ? row_scales[i * blocks + b] : 0.0f;
    }
    int8_t* tq = q + tile * cols * kTokenTile;
    __m256i half_sums[2] = {};
    for (uint64_t c = 0; c < chunks; ++c) {
      __m256i r[8];
      for (uint64_t i = 0; i < 8; ++i) {
        r[i] = i < nt ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows + i * cols + 32 * c)) : _mm256_setzero_si256();
      }
      transpose_8x8(r);  // r[k]: the 8 tokens' elements 4k..4k+3 of this chunk
      __m256i sum_lo = _mm256_setzero_si256(), sum_hi = _mm256_setzero_si256();
      for (int k = 0; k < 8; ++k) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(tq + (8 * c + static_cast<uint64_t>(k)) * 4 * kTokenTile), r[k]);
        if (k < 4) sum_lo = _mm256_dpbusd_epi32(sum_lo, ones, r[k]);
        else sum_hi = _mm256_dpbusd_epi32(sum_hi, ones, r[k]);
      }
      if (!k_type) {  // −128 × the sum of each 32, per token
        const __m256i sum = _mm256_add_epi32(sum_lo, sum_hi);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(offset + (tile * chunks + c) * kTokenTile), _mm256_slli_epi32(_mm256_sub_epi32(_mm256_setzero_si256(), sum), 7));
        continue;
      }
      // int16 pairs of sums: Q6_K (sum of 16, sum of 16) per chunk; Q4_K (sum of 32, sum of 32)
      // per two chunks.
      __m256i pair;
      uint64_t p;
      if (type == GgmlType::kQ6_K) {
        pair = _mm256_or_si256(_mm256_and_si256(sum_lo, _mm256_set1_epi32(0xFFFF)), _mm256_slli_epi32(sum_hi, 16));
        p = c;
      } else {
        half_sums[c % 2] = _mm256_add_epi32(sum_lo, sum_hi);
        if (c % 2 == 0) continue;
        pair = _mm256_or_si256(_mm256_and_si256(half_sums[0], _mm256_set1_epi32(0xFFFF)), _mm256_slli_epi32(half_sums[1], 16));
        p = c / 2;
      }
      const uint64_t pairs = blocks * pairs_per_super;
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(sum_pairs + (tile * pairs + p) * kTokenTile), pair);
    }
  }
}

}  // namespace llmops::engine
#endif  // __x86_64__
