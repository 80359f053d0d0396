// AVX-512 (F, BW, DQ, VL, VNNI) versions of the row dot products, compiled for that target
// (engine/CMakeLists.txt) and called after isa_supported(kAvx512). Plain pointers only: see
// isa_kernels.h for why.
//
// The integer dots use vpdpbusd, which multiplies unsigned by signed bytes. Q8_0 weights are made
// unsigned by flipping their sign bit (w + 128) and the vector's block sums take the 128·Σx back
// out; Q4_0's nibbles are already unsigned (q = w + 8), so 8·Σx comes out. The K-quants multiply
// with maddubs and fold the sub-block scales in with vpdpwssd, as the AVX2 kernels do.
#if defined(__x86_64__)
#include "kernels/immintrin_quiet.h"

#include <cstring>

#include "kernels/isa_kernels.h"
#include "kernels/kquant.h"

namespace llmops::engine {

namespace {

inline float half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

inline __mmask16 tail_mask(uint64_t left) { return static_cast<__mmask16>((1u << left) - 1u); }

// Streaming weights from beyond L2, 64-byte loads that straddle two cache lines measured ~10%
// slower than AVX2: the first (masked) step brings w to a cache-line boundary.
float dot_f32(const float* w, const float* x, uint64_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
  uint64_t i = 0;
  const auto address = reinterpret_cast<uintptr_t>(w);
  if (address % 4 == 0 && address % 64 != 0 && n >= 64) {
    i = (64 - address % 64) / 4;
    const __mmask16 m = tail_mask(i);
    a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w), _mm512_maskz_loadu_ps(m, x), a0);
  }
  for (; i + 64 <= n; i += 64) {
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
    a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 32), _mm512_loadu_ps(x + i + 32), a2);
    a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 48), _mm512_loadu_ps(x + i + 48), a3);
  }
  for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w + i), _mm512_maskz_loadu_ps(m, x + i), a1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

float dot_f16(const uint8_t* w, const float* x, uint64_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  uint64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m512 w0 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 2 * i)));
    __m512 w1 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 2 * i + 32)));
    a0 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + i), a0);
    a1 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + i + 16), a1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : tail_mask(n - i);
    __m512 wv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, w + 2 * i));
    a0 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x + i), a0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

// Two blocks of 32 per 512-bit register: lanes 0-7 hold the first block's partial sums, lanes
// 8-15 the second's. These spread one value per block over its eight lanes.
inline __m512 two_block_scales(float s0, float s1) {
  return _mm512_insertf32x8(_mm512_set1_ps(s0), _mm256_set1_ps(s1), 1);
}
inline __m512i two_block_sums(const int32_t* sums) {
  const __m512i spread = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_permutexvar_epi32(spread, _mm512_castsi128_si512(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sums))));
}

// Σ over blocks of d_w·d_x·Σ(w·x), from Σ((w + 128)·x) − 128·Σx: each of the eight lanes of a
// block carries 16·Σx.
float dot_q8_0(const uint8_t* b, const VectorView& v) {
  const uint64_t blocks = v.n / 32;
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512 acc = _mm512_setzero_ps();
  uint64_t blk = 0;
  for (; blk + 2 <= blocks; blk += 2, b += 68) {
    __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2))),
                                   _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 36)), 1);
    __m512i x = _mm512_loadu_si512(v.q8 + blk * 32);
    __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_xor_si512(w, flip), x);
    dot = _mm512_sub_epi32(dot, _mm512_slli_epi32(two_block_sums(v.q8_sum + blk), 4));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), two_block_scales(half(b) * v.q8_scale[blk], half(b + 34) * v.q8_scale[blk + 1]), acc);
  }
  float sum = _mm512_reduce_add_ps(acc);
  if (blk < blocks) {
    __m256i w = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2)), _mm256_set1_epi8(static_cast<char>(0x80)));
    __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v.q8 + blk * 32));
    __m256i dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, x);
    dot = _mm256_sub_epi32(dot, _mm256_set1_epi32(16 * v.q8_sum[blk]));
    __m256 p = _mm256_cvtepi32_ps(dot);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(p), _mm256_extractf128_ps(p, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    sum += half(b) * v.q8_scale[blk] * _mm_cvtss_f32(h);
  }
  return sum;
}

// Q4_0: the 16 packed bytes of a block hold elements 0-15 in their low nibbles and 16-31 in
// their high ones. Two blocks [p0, p1] become [p0, p0, p1, p1] per 128 bits, shifted by 0 or 4.
float dot_q4_0(const uint8_t* b, const VectorView& v) {
  const uint64_t blocks = v.n / 32;
  const __m512i dup = _mm512_set_epi64(3, 2, 3, 2, 1, 0, 1, 0);
  const __m512i shifts = _mm512_set_epi64(0x0004000400040004, 0x0004000400040004, 0, 0, 0x0004000400040004, 0x0004000400040004, 0, 0);
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  __m512 acc = _mm512_setzero_ps();
  uint64_t blk = 0;
  for (; blk + 2 <= blocks; blk += 2, b += 36) {
    __m256i packed = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2))),
                                             _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 20)), 1);
    __m512i q = _mm512_and_si512(_mm512_srlv_epi16(_mm512_permutexvar_epi64(dup, _mm512_castsi256_si512(packed)), shifts), low4);
    __m512i x = _mm512_loadu_si512(v.q8 + blk * 32);
    __m512i dot = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), q, x), two_block_sums(v.q8_sum + blk));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), two_block_scales(half(b) * v.q8_scale[blk], half(b + 18) * v.q8_scale[blk + 1]), acc);
  }
  float sum = _mm512_reduce_add_ps(acc);
  if (blk < blocks) {
    __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2));
    __m256i q = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(packed), _mm_srli_epi16(packed, 4), 1),
                                 _mm256_set1_epi8(0x0F));
    __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v.q8 + blk * 32));
    __m256i dot = _mm256_sub_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), q, x), _mm256_set1_epi32(v.q8_sum[blk]));
    __m256 p = _mm256_cvtepi32_ps(dot);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(p), _mm256_extractf128_ps(p, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    sum += half(b) * v.q8_scale[blk] * _mm_cvtss_f32(h);
  }
  return sum;
}

// 32 int16 lanes: 16 copies of scale a, then 16 of scale b (from 8 scales widened to int16).
inline __m512i pair_of_scales(__m512i scales16, int a) {
  const __m512i idx = _mm512_set_epi16(a + 1, a + 1, a + 1, a + 1, a + 1, a + 1, a + 1, a + 1, a + 1, a + 1, a + 1, a + 1, a + 1, a + 1,
                                       a + 1, a + 1, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a);
  return _mm512_permutexvar_epi16(idx, scales16);
}

// Q4_K on the Q8_K vector: as the AVX2 kernel, with 64 elements (two sub-blocks) per step. The
// packed bytes of pair p hold sub-block 2p in their low nibbles and 2p+1 in their high ones;
// regrouping two pairs' halves gives [2p, 2p+1] to match 64 consecutive vector values.
float dot_q4_k(const uint8_t* b, const VectorView& v) {
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  __m512 acc = _mm512_setzero_ps();
  float mins = 0.0f;
  for (uint64_t sb = 0; sb < v.n / 256; ++sb, b += 144) {
    // In registers: scales written to memory byte by byte and read back whole stall the load.
    uint64_t sc64, m64;
    q4k_scales_mins(b + 4, &sc64, &m64);
    const __m512i scales16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(sc64))));
    const int8_t* xq = v.qk + sb * 256;
    __m512i sumi = _mm512_setzero_si512();
    for (int half_sb = 0; half_sb < 2; ++half_sb) {
      __m512i packed = _mm512_loadu_si512(b + 16 + 64 * half_sb);  // pairs 2h and 2h+1
      __m512i lo = _mm512_and_si512(packed, low4);                   // [sub 4h, sub 4h+2]
      __m512i hi = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low4);  // [sub 4h+1, sub 4h+3]
      __m512i first = _mm512_shuffle_i64x2(lo, hi, _MM_SHUFFLE(1, 0, 1, 0));   // [4h, 4h+1]
      __m512i second = _mm512_shuffle_i64x2(lo, hi, _MM_SHUFFLE(3, 2, 3, 2));  // [4h+2, 4h+3]
      __m512i x0 = _mm512_loadu_si512(xq + 128 * half_sb);
      __m512i x1 = _mm512_loadu_si512(xq + 128 * half_sb + 64);
      sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(first, x0), pair_of_scales(scales16, 4 * half_sb));
      sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(second, x1), pair_of_scales(scales16, 4 * half_sb + 2));
    }
    const __m128i m8 = _mm_cvtsi64_si128(static_cast<long long>(m64));
    const __m512i m_each16 = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(m8, m8));  // m0 m0 m1 m1 …
    const int32_t msum = _mm512_reduce_add_epi32(_mm512_mullo_epi32(m_each16, _mm512_loadu_si512(v.qk_sum16 + sb * 16)));
    const float dx = v.qk_scale[sb];
    acc = _mm512_fmadd_ps(_mm512_set1_ps(half(b) * dx), _mm512_cvtepi32_ps(sumi), acc);
    mins += half(b + 2) * dx * static_cast<float>(msum);
  }
  return _mm512_reduce_add_ps(acc) - mins;
}

// Q6_K on the Q8_K vector: per half of 128, [ql0, ql1] are 64 consecutive bytes and qh serves
// both; the quarters [0, 1] and [2, 3] each line up with 64 consecutive vector values, and each
// 128-bit lane is one group of 16 with its own scale.
float dot_q6_k(const uint8_t* b, const VectorView& v) {
  const __m512i low4 = _mm512_set1_epi8(0x0F), two = _mm512_set1_epi8(0x03);
  const __m512i shift01 = _mm512_set_epi64(0x0002000200020002, 0x0002000200020002, 0x0002000200020002, 0x0002000200020002, 0, 0, 0, 0);
  const __m512i shift23 = _mm512_add_epi16(shift01, _mm512_set1_epi16(4));
  __m512 acc = _mm512_setzero_ps();
  float offsets = 0.0f;
  for (uint64_t sb = 0; sb < v.n / 256; ++sb, b += 210) {
    const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
    const __m512i scales16 = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc))));
    const int8_t* xq = v.qk + sb * 256;
    __m512i sumi = _mm512_setzero_si512();
    for (int h = 0; h < 2; ++h) {
      __m512i ql = _mm512_loadu_si512(b + 64 * h);
      __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 128 + 32 * h)));
      __m512i q01 = _mm512_or_si512(_mm512_and_si512(ql, low4), _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, shift01), two), 4));
      __m512i q23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4),
                                    _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, shift23), two), 4));
      for (int j = 0; j < 2; ++j) {
        const int g = 8 * h + 4 * j;  // the four groups of 16 in this register
        const __m512i idx = _mm512_set_epi16(g + 3, g + 3, g + 3, g + 3, g + 3, g + 3, g + 3, g + 3, g + 2, g + 2, g + 2, g + 2, g + 2, g + 2,
                                             g + 2, g + 2, g + 1, g + 1, g + 1, g + 1, g + 1, g + 1, g + 1, g + 1, g, g, g, g, g, g, g, g);
        __m512i x = _mm512_loadu_si512(xq + 128 * h + 64 * j);
        sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(j == 0 ? q01 : q23, x), _mm512_permutexvar_epi16(idx, scales16));
      }
    }
    __m512i off = _mm512_mullo_epi32(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc))),
                                     _mm512_loadu_si512(v.qk_sum16 + sb * 16));
    const float ddx = half(b + 208) * v.qk_scale[sb];
    acc = _mm512_fmadd_ps(_mm512_set1_ps(ddx), _mm512_cvtepi32_ps(sumi), acc);
    offsets += ddx * 32.0f * static_cast<float>(_mm512_reduce_add_epi32(off));
  }
  return _mm512_reduce_add_ps(acc) - offsets;
}

// std::lround of 16 floats: to nearest, ties away from zero (the hardware's nearest mode breaks
// ties to even, so ties are found through the fraction and moved).
inline __m512i round_half_away(__m512 v) {
  const __m512 nearest = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 truncated = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __mmask16 tie = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, truncated)), _mm512_set1_ps(0.5f), _CMP_EQ_OQ);
  const __m512 away = _mm512_add_ps(truncated, _mm512_or_ps(_mm512_and_ps(v, _mm512_set1_ps(-0.0f)), _mm512_set1_ps(1.0f)));
  return _mm512_cvttps_epi32(_mm512_mask_blend_ps(tie, nearest, away));
}

}  // namespace

// The same operations as the portable quantize_q8 (amax / 127, its inverse, x · inverse
// rounded half away from zero), so the same bytes.
void quantize_q8_avx512(const float* x, uint64_t n, uint64_t block, bool fp16_scale, int8_t* q, float* scale) {
  for (uint64_t blk = 0; blk < n / block; ++blk) {
    const float* xb = x + blk * block;
    __m512 amax = _mm512_setzero_ps();
    for (uint64_t j = 0; j < block; j += 16) amax = _mm512_max_ps(amax, _mm512_abs_ps(_mm512_loadu_ps(xb + j)));
    const float d = _mm512_reduce_max_ps(amax) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    scale[blk] = fp16_scale ? fp16_to_fp32(fp32_to_fp16(d)) : d;
    const __m512 vid = _mm512_set1_ps(id);
    for (uint64_t j = 0; j < block; j += 16) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + blk * block + j),
                       _mm512_cvtsepi32_epi8(round_half_away(_mm512_mul_ps(_mm512_loadu_ps(xb + j), vid))));
    }
  }
}

float dot_f32_avx512(const float* a, const float* b, uint64_t n) { return dot_f32(a, b, n); }

void axpy_f32_avx512(float a, const float* x, float* y, uint64_t n) {
  const __m512 va = _mm512_set1_ps(a);
  uint64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

namespace {

// Sixteen cached values as floats: fp32 rows as they are, fp16 rows converted in registers.
inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load16(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }

// Positions this far ahead are asked for while one computes: a head's cached rows are a short
// run of memory (a few KiB) that the hardware prefetchers barely ramp up on before it ends.
constexpr int kAheadRows = 8;

template <typename T>
inline void prefetch_row(const T* row, uint64_t d) {
  for (uint64_t b = 0; b < d * sizeof(T); b += 64) _mm_prefetch(reinterpret_cast<const char*>(row) + b, _MM_HINT_T0);
}

// Sixteen vectors' sums, lane j holding v[j]'s, by folding halves of pairs together (15 adds
// and 30 shuffles, where a horizontal sum per vector takes ~8 operations each). v must hold the
// vectors in kFoldSlot order: position j's vector at v[kFoldSlot[j]].
constexpr int kFoldSlot[16] = {0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15};
inline __m512 fold16(const __m512 (&v)[16]) {
  __m512 w[8], x[4], y[2];
  for (int r = 0; r < 8; ++r) {  // 512 → 256: lanes 0-7 v[r]'s partial sums, 8-15 v[r + 8]'s
    w[r] = _mm512_add_ps(_mm512_shuffle_f32x4(v[r], v[r + 8], 0x44), _mm512_shuffle_f32x4(v[r], v[r + 8], 0xEE));
  }
  for (int r = 0; r < 4; ++r) {  // 256 → 128: 128-bit lanes v[r], v[r + 8], v[r + 4], v[r + 12]
    x[r] = _mm512_add_ps(_mm512_shuffle_f32x4(w[r], w[r + 4], 0x88), _mm512_shuffle_f32x4(w[r], w[r + 4], 0xDD));
  }
  for (int r = 0; r < 2; ++r) {  // 128 → 64, pairing x[r] with x[r + 2] in each 128-bit lane
    const __m512d a = _mm512_castps_pd(x[r]), b = _mm512_castps_pd(x[r + 2]);
    y[r] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  // 64 → 32: each 128-bit lane ends as x[0]'s, x[2]'s, x[1]'s and x[3]'s totals.
  return _mm512_add_ps(_mm512_shuffle_ps(y[0], y[1], _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_ps(y[0], y[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

template <typename T>
void dot_strided(const float* q, const T* keys, uint64_t stride, int n, uint64_t d, float scale, float* scores) {
  const int chunks = static_cast<int>(d / 16);
  __m512 qv[16];
  for (int c = 0; c < chunks; ++c) qv[c] = _mm512_loadu_ps(q + 16 * c);
  int j = 0;
  if (chunks <= 8) {  // sixteen positions at a time while the accumulators and q fit in registers
    const __m512 vscale = _mm512_set1_ps(scale);
    for (; j + 16 <= n; j += 16) {
      __m512 acc[16];
      for (int r = 0; r < 16; ++r) {
        const T* k = keys + static_cast<uint64_t>(j + r) * stride;
        if (j + r + kAheadRows < n) prefetch_row(k + kAheadRows * stride, d);
        __m512 a = _mm512_mul_ps(qv[0], load16(k));
        for (int c = 1; c < chunks; ++c) a = _mm512_fmadd_ps(qv[c], load16(k + 16 * c), a);
        acc[kFoldSlot[r]] = a;
      }
      _mm512_storeu_ps(scores + j, _mm512_mul_ps(fold16(acc), vscale));
    }
  }
  for (; j < n; ++j) {
    const T* k = keys + static_cast<uint64_t>(j) * stride;
    if (j + kAheadRows < n) prefetch_row(k + kAheadRows * stride, d);
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int c = 0;
    for (; c + 2 <= chunks; c += 2) {
      a0 = _mm512_fmadd_ps(qv[c], load16(k + 16 * c), a0);
      a1 = _mm512_fmadd_ps(qv[c + 1], load16(k + 16 * c + 16), a1);
    }
    if (c < chunks) a0 = _mm512_fmadd_ps(qv[c], load16(k + 16 * c), a0);
    scores[j] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) * scale;
  }
}

template <typename T>
void axpy_strided(const float* p, const T* values, uint64_t stride, int n, uint64_t d, float* o) {
  const int chunks = static_cast<int>(d / 16);
  __m512 acc[16];
  for (int c = 0; c < chunks; ++c) acc[c] = _mm512_loadu_ps(o + 16 * c);
  for (int j = 0; j < n; ++j) {
    const T* v = values + static_cast<uint64_t>(j) * stride;
    if (j + kAheadRows < n) prefetch_row(v + kAheadRows * stride, d);
    const __m512 pj = _mm512_set1_ps(p[j]);
    for (int c = 0; c < chunks; ++c) acc[c] = _mm512_fmadd_ps(pj, load16(v + 16 * c), acc[c]);
  }
  for (int c = 0; c < chunks; ++c) _mm512_storeu_ps(o + 16 * c, acc[c]);
}

}  // namespace

void dot_f32_strided_avx512(const float* q, const float* keys, uint64_t stride, int n, uint64_t d, float scale, float* scores) {
  dot_strided(q, keys, stride, n, d, scale, scores);
}

void axpy_f32_strided_avx512(const float* p, const float* values, uint64_t stride, int n, uint64_t d, float* o) {
  axpy_strided(p, values, stride, n, d, o);
}

// The fp16 KV cache: the same, each key or value row converted in registers.
void dot_f16_strided_avx512(const float* q, const uint16_t* keys, uint64_t stride, int n, uint64_t d, float scale, float* scores) {
  dot_strided(q, keys, stride, n, d, scale, scores);
}

void axpy_f16_strided_avx512(const float* p, const uint16_t* values, uint64_t stride, int n, uint64_t d, float* o) {
  axpy_strided(p, values, stride, n, d, o);
}

void fp32_to_fp16_avx512(const float* x, uint16_t* out, uint64_t n) {
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  uint64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm512_cvtps_ph(_mm512_loadu_ps(x + i), kRound));
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    _mm256_mask_storeu_epi16(out + i, m, _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), kRound));
  }
}

float dot_row_avx512(GgmlType type, const uint8_t* row, const VectorView& x) {
  switch (type) {
    case GgmlType::kF32: return dot_f32(reinterpret_cast<const float*>(row), x.x, x.n);
    case GgmlType::kF16: return dot_f16(row, x.x, x.n);
    case GgmlType::kQ8_0: return dot_q8_0(row, x);
    case GgmlType::kQ4_0: return dot_q4_0(row, x);
    case GgmlType::kQ4_K: return dot_q4_k(row, x);
    case GgmlType::kQ6_K: return dot_q6_k(row, x);
    default: return 0.0f;  // not dispatched here (has_avx512_dot)
  }
}

}  // namespace llmops::engine
#endif  // __x86_64__
