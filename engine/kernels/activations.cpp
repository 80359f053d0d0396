#include "kernels/activations.h"

#include <cmath>

#if defined(__x86_64__)
#include "kernels/immintrin_quiet.h"
#endif

namespace llmops::engine {
namespace {

// exp by Cephes' method: x = n·ln2 + r with |r| ≤ ln2/2 (ln2 in two parts, so r is exact), exp(r)
// = 1 + r + r²·P(r) with P of degree 5, then scaled by 2^n. Inputs are clamped to [-87, 88], where
// 2^n is a normal float at every level (outside it SiLU's sigmoid is 0 or 1 to float precision).
constexpr float kExpLo = -87.0f, kExpHi = 88.0f;
constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f, kP3 = 4.1665795894e-2f,
                kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;

void silu_mul_portable(float* g, const float* u, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void norm_row_portable(const float* x, const float* w, const float* b, float* out, uint64_t n, float eps, bool layer_norm) {
  float mean = 0.0f;
  if (layer_norm) {
    for (uint64_t j = 0; j < n; ++j) mean += x[j];
    mean /= static_cast<float>(n);
  }
  float ss = 0.0f;
  for (uint64_t j = 0; j < n; ++j) ss += (x[j] - mean) * (x[j] - mean);
  const float scale = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  for (uint64_t j = 0; j < n; ++j) out[j] = w[j] * ((x[j] - mean) * scale) + (b != nullptr ? b[j] : 0.0f);
}

#if defined(__x86_64__)

#define LLMOPS_AVX2 __attribute__((target("avx2,fma")))
#define LLMOPS_AVX512 __attribute__((target("avx512f,avx2,fma")))

LLMOPS_AVX2 inline __m256 exp8(__m256 x) {
  x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(kExpHi)), _mm256_set1_ps(kExpLo));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kP0);
  for (float c : {kP1, kP2, kP3, kP4, kP5}) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i pow2 = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(pow2));
}

LLMOPS_AVX512 inline __m512 exp16(__m512 x) {
  x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(kExpHi)), _mm512_set1_ps(kExpLo));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kP0);
  for (float c : {kP1, kP2, kP3, kP4, kP5}) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

LLMOPS_AVX2 inline __m256 silu8(__m256 g, __m256 u) {
  const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
  return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

LLMOPS_AVX512 inline __m512 silu16(__m512 g, __m512 u) {
  const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
  return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}

LLMOPS_AVX2 void silu_mul_avx2(float* g, const float* u, uint64_t n) {
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(g + i, silu8(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i)));
  if (i < n) {
    float gt[8] = {}, ut[8] = {};
    for (uint64_t j = i; j < n; ++j) gt[j - i] = g[j], ut[j - i] = u[j];
    _mm256_storeu_ps(gt, silu8(_mm256_loadu_ps(gt), _mm256_loadu_ps(ut)));
    for (uint64_t j = i; j < n; ++j) g[j] = gt[j - i];
  }
}

LLMOPS_AVX512 void silu_mul_avx512(float* g, const float* u, uint64_t n) {
  uint64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(g + i, silu16(_mm512_loadu_ps(g + i), _mm512_loadu_ps(u + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(g + i, m, silu16(_mm512_maskz_loadu_ps(m, g + i), _mm512_maskz_loadu_ps(m, u + i)));
  }
}

LLMOPS_AVX2 void exp_row_avx2(const float* x, float* out, uint64_t n) {
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, exp8(_mm256_loadu_ps(x + i)));
  for (; i < n; ++i) {
    float t[8] = {x[i]};
    _mm256_storeu_ps(t, exp8(_mm256_loadu_ps(t)));
    out[i] = t[0];
  }
}

LLMOPS_AVX512 void exp_row_avx512(const float* x, float* out, uint64_t n) {
  uint64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, exp16(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(out + i, m, exp16(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

LLMOPS_AVX2 inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

LLMOPS_AVX2 void norm_row_avx2(const float* x, const float* w, const float* b, float* out, uint64_t n, float eps, bool layer_norm) {
  const uint64_t whole = n / 8 * 8;
  float mean = 0.0f;
  if (layer_norm) {
    __m256 s = _mm256_setzero_ps();
    for (uint64_t j = 0; j < whole; j += 8) s = _mm256_add_ps(s, _mm256_loadu_ps(x + j));
    mean = hsum8(s);
    for (uint64_t j = whole; j < n; ++j) mean += x[j];
    mean /= static_cast<float>(n);
  }
  const __m256 vm = _mm256_set1_ps(mean);
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  uint64_t j = 0;
  for (; j + 16 <= whole; j += 16) {
    const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + j), vm), d1 = _mm256_sub_ps(_mm256_loadu_ps(x + j + 8), vm);
    s0 = _mm256_fmadd_ps(d0, d0, s0);
    s1 = _mm256_fmadd_ps(d1, d1, s1);
  }
  for (; j < whole; j += 8) {
    const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + j), vm);
    s0 = _mm256_fmadd_ps(d, d, s0);
  }
  float ss = hsum8(_mm256_add_ps(s0, s1));
  for (uint64_t k = whole; k < n; ++k) ss += (x[k] - mean) * (x[k] - mean);
  const float scale = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  const __m256 vs = _mm256_set1_ps(scale);
  for (j = 0; j < whole; j += 8) {
    __m256 y = _mm256_mul_ps(_mm256_loadu_ps(w + j), _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm), vs));
    if (b != nullptr) y = _mm256_add_ps(y, _mm256_loadu_ps(b + j));
    _mm256_storeu_ps(out + j, y);
  }
  for (uint64_t k = whole; k < n; ++k) out[k] = w[k] * ((x[k] - mean) * scale) + (b != nullptr ? b[k] : 0.0f);
}

LLMOPS_AVX512 void norm_row_avx512(const float* x, const float* w, const float* b, float* out, uint64_t n, float eps, bool layer_norm) {
  const uint64_t whole = n / 16 * 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (n - whole)) - 1);
  float mean = 0.0f;
  if (layer_norm) {
    __m512 s = _mm512_maskz_loadu_ps(tail, x + whole);
    for (uint64_t j = 0; j < whole; j += 16) s = _mm512_add_ps(s, _mm512_loadu_ps(x + j));
    mean = _mm512_reduce_add_ps(s) / static_cast<float>(n);
  }
  const __m512 vm = _mm512_set1_ps(mean);
  const __m512 dt = _mm512_maskz_sub_ps(tail, _mm512_maskz_loadu_ps(tail, x + whole), vm);
  __m512 s0 = _mm512_mul_ps(dt, dt), s1 = _mm512_setzero_ps();
  uint64_t j = 0;
  for (; j + 32 <= whole; j += 32) {
    const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(x + j), vm), d1 = _mm512_sub_ps(_mm512_loadu_ps(x + j + 16), vm);
    s0 = _mm512_fmadd_ps(d0, d0, s0);
    s1 = _mm512_fmadd_ps(d1, d1, s1);
  }
  for (; j < whole; j += 16) {
    const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + j), vm);
    s0 = _mm512_fmadd_ps(d, d, s0);
  }
  const float ss = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
  const __m512 vs = _mm512_set1_ps(1.0f / std::sqrt(ss / static_cast<float>(n) + eps));
  for (j = 0; j < n; j += 16) {
    const __mmask16 m = j + 16 <= n ? static_cast<__mmask16>(0xffff) : tail;
    __m512 y = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, w + j), _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + j), vm), vs));
    if (b != nullptr) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, b + j));
    _mm512_mask_storeu_ps(out + j, m, y);
  }
}

#endif  // __x86_64__

}  // namespace

void silu_mul(float* g, const float* u, uint64_t n, KernelIsa isa) {
#if defined(__x86_64__)
  if (isa == KernelIsa::kAvx512) return silu_mul_avx512(g, u, n);
  if (isa == KernelIsa::kAvx2) return silu_mul_avx2(g, u, n);
#endif
  (void)isa;
  silu_mul_portable(g, u, n);
}

void norm_row(const float* x, const float* w, const float* b, float* out, uint64_t n, float eps, bool layer_norm, KernelIsa isa) {
#if defined(__x86_64__)
  if (isa == KernelIsa::kAvx512) return norm_row_avx512(x, w, b, out, n, eps, layer_norm);
  if (isa == KernelIsa::kAvx2) return norm_row_avx2(x, w, b, out, n, eps, layer_norm);
#endif
  (void)isa;
  norm_row_portable(x, w, b, out, n, eps, layer_norm);
}

void exp_row(const float* x, float* out, uint64_t n, KernelIsa isa) {
#if defined(__x86_64__)
  if (isa == KernelIsa::kAvx512) return exp_row_avx512(x, out, n);
  if (isa == KernelIsa::kAvx2) return exp_row_avx2(x, out, n);
#endif
  (void)isa;
  for (uint64_t i = 0; i < n; ++i) out[i] = std::exp(x[i]);
}

}  // namespace llmops::engine
