// AVX2 + FMA + F16C versions of the row dot products, compiled for that target only and called
// after best_isa() checked the CPU.
#if defined(__x86_64__)
#include <immintrin.h>

#include <cstring>

#include "kernels/kquant.h"
#include "kernels/matvec.h"

namespace llmops::engine {



#define LLMOPS_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace {

LLMOPS_AVX2 inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

LLMOPS_AVX2 inline float half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

LLMOPS_AVX2 float dot_f32(const float* w, const float* x, uint64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  uint64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
  }
  for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
  float sum = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; i < n; ++i) sum += w[i] * x[i];
  return sum;
}

LLMOPS_AVX2 float dot_f16(const uint8_t* w, const float* x, uint64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  uint64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * i)));
    __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * i + 16)));
    a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i + 8), a1);
  }
  float sum = hsum(_mm256_add_ps(a0, a1));
  for (; i < n; ++i) sum += half(w + 2 * i) * x[i];
  return sum;
}

// Sum of 32 int8 products as 8 int32 lanes: |w| · sign(x, w) through maddubs.
LLMOPS_AVX2 inline __m256 dot_i8_32(__m256i w, __m256i x) {
  __m256i aw = _mm256_sign_epi8(w, w);
  __m256i sx = _mm256_sign_epi8(x, w);
  __m256i p16 = _mm256_maddubs_epi16(aw, sx);
  __m256i p32 = _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
  return _mm256_cvtepi32_ps(p32);
}

LLMOPS_AVX2 float dot_q8_0(const uint8_t* b, const PreparedVector& v) {
  __m256 acc = _mm256_setzero_ps();
  for (uint64_t blk = 0; blk < v.n / 32; ++blk, b += 34) {
    __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2));
    __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v.q8.data() + blk * 32));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(half(b) * v.q8_scale[blk]), dot_i8_32(w, x), acc);
  }
  return hsum(acc);
}

LLMOPS_AVX2 float dot_q4_0(const uint8_t* b, const PreparedVector& v) {
  __m256 acc = _mm256_setzero_ps();
  const __m256i low4 = _mm256_set1_epi8(0x0F), eight = _mm256_set1_epi8(8);
  for (uint64_t blk = 0; blk < v.n / 32; ++blk, b += 18) {
    __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2));
    __m256i both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);  // low nibbles then high nibbles
    __m256i w = _mm256_sub_epi8(_mm256_and_si256(both, low4), eight);
    __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v.q8.data() + blk * 32));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(half(b) * v.q8_scale[blk]), dot_i8_32(w, x), acc);
  }
  return hsum(acc);
}

// Q4_K on the Q8_K vector: Σ_sub sc·Σ(q·qx) summed in int32 over the super-block (q in 0..15 fed
// to maddubs as unsigned bytes, the scale applied by madd), minus dmin·Σ_sub m·Σqx.
LLMOPS_AVX2 float dot_q4_k(const uint8_t* b, const PreparedVector& v) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0.0f;
  for (uint64_t sb = 0; sb < v.n / 256; ++sb, b += 144) {
    uint8_t sc[8], m[8];
    for (int s = 0; s < 8; ++s) q4k_scale_min(s, b + 4, &sc[s], &m[s]);
    const int8_t* xq = v.qk.data() + sb * 256;
    __m256i sumi = _mm256_setzero_si256();
    for (int pair = 0; pair < 4; ++pair) {
      __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16 + 32 * pair));
      __m256i q_lo = _mm256_and_si256(packed, low4);
      __m256i q_hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4);
      __m256i x_lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 64 * pair));
      __m256i x_hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 64 * pair + 32));
      __m256i p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(q_lo, x_lo), _mm256_set1_epi16(sc[2 * pair]));
      __m256i p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(q_hi, x_hi), _mm256_set1_epi16(sc[2 * pair + 1]));
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
    }
    int32_t msum = 0;
    const int32_t* s16 = v.qk_sum16.data() + sb * 16;
    for (int s = 0; s < 8; ++s) msum += m[s] * (s16[2 * s] + s16[2 * s + 1]);
    const float dx = v.qk_scale[sb];
    acc = _mm256_fmadd_ps(_mm256_set1_ps(half(b) * dx), _mm256_cvtepi32_ps(sumi), acc);
    mins += half(b + 2) * dx * static_cast<float>(msum);
  }
  return hsum(acc) - mins;
}

// Q6_K on the Q8_K vector: Σ_g sc·(Σ(q·qx) − 32·Σqx) in int32 over the super-block, with q in
// 0..63 rebuilt from ql (4 bits) and qh (2 bits) for each 32-element quarter of a 128.
LLMOPS_AVX2 float dot_q6_k(const uint8_t* b, const PreparedVector& v) {
  const __m256i low4 = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(0x03);
  __m256 acc = _mm256_setzero_ps();
  float offsets = 0.0f;
  for (uint64_t sb = 0; sb < v.n / 256; ++sb, b += 210) {
    const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
    const int8_t* xq = v.qk.data() + sb * 256;
    __m256i sumi = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 64 * h));
      __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 64 * h + 32));
      __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 128 + 32 * h));
      __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_slli_epi16(_mm256_and_si256(qh, two), 4)),
          _mm256_or_si256(_mm256_and_si256(ql1, low4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), two), 4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), two), 4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), two), 4)),
      };
      for (int quarter = 0; quarter < 4; ++quarter) {
        const int g = 8 * h + 2 * quarter;  // the two groups of 16 these 32 elements hold
        __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 128 * h + 32 * quarter));
        __m256i scales = _mm256_set_m128i(_mm_set1_epi16(sc[g + 1]), _mm_set1_epi16(sc[g]));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q[quarter], x), scales));
      }
    }
    int32_t off = 0;
    const int32_t* s16 = v.qk_sum16.data() + sb * 16;
    for (int g = 0; g < 16; ++g) off += sc[g] * s16[g];
    const float ddx = half(b + 208) * v.qk_scale[sb];
    acc = _mm256_fmadd_ps(_mm256_set1_ps(ddx), _mm256_cvtepi32_ps(sumi), acc);
    offsets += ddx * 32.0f * static_cast<float>(off);
  }
  return hsum(acc) - offsets;
}

// Other block types: dequantise one block into L1 and FMA it with x.
LLMOPS_AVX2 float dot_blocks(GgmlType type, const uint8_t* b, const float* x, uint64_t n) {
  auto info = ggml_type_info(static_cast<uint32_t>(type));
  const uint64_t per = info->block_elements == 1 ? 256 : info->block_elements;
  const uint64_t step = info->block_elements == 1 ? per * info->block_bytes : info->block_bytes;
  alignas(32) float buf[256];
  float sum = 0.0f;
  for (uint64_t i = 0; i < n; i += per, b += step) {
    uint64_t m = std::min(per, n - i);
    dequantize_row(type, b, buf, m);
    sum += dot_f32(buf, x + i, m);
  }
  return sum;
}

}  // namespace

LLMOPS_AVX2 float dot_f32_avx2(const float* a, const float* b, uint64_t n) { return dot_f32(a, b, n); }

LLMOPS_AVX2 void axpy_f32_avx2(float a, const float* x, float* y, uint64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

LLMOPS_AVX2 float dot_f16_avx2(const uint16_t* a, const float* b, uint64_t n) { return dot_f16(reinterpret_cast<const uint8_t*>(a), b, n); }

LLMOPS_AVX2 void axpy_f16_avx2(float a, const uint16_t* x, float* y, uint64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, xv, _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += a * _cvtsh_ss(x[i]);
}

LLMOPS_AVX2 void fp32_to_fp16_avx2(const float* x, uint16_t* out, uint64_t n) {
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  for (; i < n; ++i) out[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

LLMOPS_AVX2 float dot_row_avx2(GgmlType type, const void* row, const PreparedVector& x) {
  const auto* b = static_cast<const uint8_t*>(row);
  switch (type) {
    case GgmlType::kF32: return dot_f32(reinterpret_cast<const float*>(b), x.x, x.n);
    case GgmlType::kF16: return dot_f16(b, x.x, x.n);
    case GgmlType::kQ8_0: return dot_q8_0(b, x);
    case GgmlType::kQ4_0: return dot_q4_0(b, x);
    case GgmlType::kQ4_K: return dot_q4_k(b, x);
    case GgmlType::kQ6_K: return dot_q6_k(b, x);
    default: return dot_blocks(type, b, x.x, x.n);
  }
}

}  // namespace llmops::engine
#endif  // __x86_64__
