#include "kernels/matvec.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "kernels/isa_kernels.h"
#include "kernels/kquant.h"
#include "kernels/thread_pool.h"

namespace llmops::engine {

namespace {

constexpr uint64_t kBlock = 32;

}  // namespace

namespace {

uint16_t u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

float dot_portable(GgmlType type, const void* row, const PreparedVector& v) {
  const auto* b = static_cast<const uint8_t*>(row);
  const uint64_t n = v.n;
  const float* x = v.x;
  float sum = 0.0f;
  switch (type) {
    case GgmlType::kF32: {
      const auto* w = reinterpret_cast<const float*>(b);
      for (uint64_t i = 0; i < n; ++i) sum += w[i] * x[i];
      return sum;
    }
    case GgmlType::kF16:
      for (uint64_t i = 0; i < n; ++i) sum += fp16_to_fp32(u16(b + 2 * i)) * x[i];
      return sum;
    case GgmlType::kQ8_0:
      for (uint64_t blk = 0; blk < n / kBlock; ++blk, b += 34) {
        const auto* q = reinterpret_cast<const int8_t*>(b + 2);
        const int8_t* xq = v.q8.data() + blk * kBlock;
        int32_t acc = 0;
        for (uint64_t j = 0; j < kBlock; ++j) acc += q[j] * xq[j];
        sum += fp16_to_fp32(u16(b)) * v.q8_scale[blk] * static_cast<float>(acc);
      }
      return sum;
    case GgmlType::kQ4_0:
      for (uint64_t blk = 0; blk < n / kBlock; ++blk, b += 18) {
        const uint8_t* q = b + 2;
        const int8_t* xq = v.q8.data() + blk * kBlock;
        int32_t acc = 0;
        for (uint64_t j = 0; j < 16; ++j) acc += ((q[j] & 0xF) - 8) * xq[j] + ((q[j] >> 4) - 8) * xq[j + 16];
        sum += fp16_to_fp32(u16(b)) * v.q8_scale[blk] * static_cast<float>(acc);
      }
      return sum;
    case GgmlType::kQ4_K:
      for (uint64_t sb = 0; sb < n / 256; ++sb, b += 144) {
        const int8_t* xq = v.qk.data() + sb * 256;
        int32_t dots = 0, mins = 0;
        for (int s = 0; s < 8; ++s) {
          uint8_t sc, m;
          q4k_scale_min(s, b + 4, &sc, &m);
          const uint8_t* q = b + 16 + 32 * (s / 2);
          int32_t acc = 0;
          for (int j = 0; j < 32; ++j) acc += ((s % 2 == 0) ? (q[j] & 0xF) : (q[j] >> 4)) * xq[32 * s + j];
          dots += sc * acc;
          mins += m * (v.qk_sum16[sb * 16 + 2 * s] + v.qk_sum16[sb * 16 + 2 * s + 1]);
        }
        sum += v.qk_scale[sb] * (fp16_to_fp32(u16(b)) * static_cast<float>(dots) - fp16_to_fp32(u16(b + 2)) * static_cast<float>(mins));
      }
      return sum;
    case GgmlType::kQ6_K:
      for (uint64_t sb = 0; sb < n / 256; ++sb, b += 210) {
        const uint8_t* ql = b;
        const uint8_t* qh = b + 128;
        const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
        int32_t total = 0;
        for (int e = 0; e < 256; e += 16) {
          // Element e of the super-block: half h (128 each), quarter within it, lane l.
          const int h = e / 128, quarter = (e % 128) / 32;
          int32_t acc = 0;
          for (int k = 0; k < 16; ++k) {
            int l = (e % 32) + k;
            uint8_t lo = quarter % 2 == 0 ? ql[64 * h + l] : ql[64 * h + l + 32];
            int low4 = quarter < 2 ? (lo & 0xF) : (lo >> 4);
            int high2 = (qh[32 * h + l] >> (2 * quarter)) & 3;
            acc += (low4 | (high2 << 4)) * v.qk[sb * 256 + static_cast<uint64_t>(e + k)];
          }
          total += sc[e / 16] * (acc - 32 * v.qk_sum16[sb * 16 + static_cast<uint64_t>(e / 16)]);
        }
        sum += fp16_to_fp32(u16(b + 208)) * v.qk_scale[sb] * static_cast<float>(total);
      }
      return sum;
    default: {
      // Block by block through a small buffer: Q4_1, Q5_0, Q5_1, BF16 and Q5_K.
      auto info = ggml_type_info(static_cast<uint32_t>(type));
      const uint64_t per = info->block_elements == 1 ? 256 : info->block_elements;
      const uint64_t step = info->block_elements == 1 ? per * info->block_bytes : info->block_bytes;
      float buf[256];
      for (uint64_t i = 0; i < n; i += per, b += step) {
        uint64_t m = std::min(per, n - i);
        dequantize_row(type, b, buf, m);
        for (uint64_t j = 0; j < m; ++j) sum += buf[j] * x[i + j];
      }
      return sum;
    }
  }
}

bool cpu_has_avx2() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  // F16C through cpuid: clang's __builtin_cpu_supports does not know "f16c".
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
#else
  return false;
#endif
}

// AVX-512 F, BW, DQ, VL and VNNI in cpuid, and the OS saving the opmask and zmm registers
// (XCR0 bits 1, 2, 5, 6, 7) on a context switch.
bool cpu_has_avx512() {
#if defined(__x86_64__)
  if (!cpu_has_avx2()) return false;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0 || (ecx & bit_OSXSAVE) == 0) return false;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
  const unsigned need_ebx = (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31);  // F, DQ, BW, VL
  if ((ebx & need_ebx) != need_ebx || (ecx & (1u << 11)) == 0) return false;   // VNNI
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  return (xcr0_lo & 0xE6u) == 0xE6u;
#else
  return false;
#endif
}

KernelIsa detect_isa() {
  if (cpu_has_avx512()) return KernelIsa::kAvx512;
  return cpu_has_avx2() ? KernelIsa::kAvx2 : KernelIsa::kPortable;
}

KernelIsa capped_isa() {
  KernelIsa isa = detect_isa();
  const char* cap = std::getenv("LLMOPS_ISA");
  if (cap == nullptr || *cap == 0) return isa;
  std::string_view c(cap);
  KernelIsa limit;
  if (c == "portable") limit = KernelIsa::kPortable;
  else if (c == "avx2") limit = KernelIsa::kAvx2;
  else if (c == "avx512") limit = KernelIsa::kAvx512;
  else {
    std::fprintf(stderr, "LLMOPS_ISA=%s is not one of portable, avx2, avx512; using %s\n", cap, isa_name(isa));
    return isa;
  }
  return std::min(isa, limit);
}

#if defined(__x86_64__)
bool has_avx512_dot(GgmlType t) {
  return t == GgmlType::kF32 || t == GgmlType::kF16 || t == GgmlType::kQ8_0 || t == GgmlType::kQ4_0 || t == GgmlType::kQ4_K ||
         t == GgmlType::kQ6_K;
}
#endif

}  // namespace

KernelIsa best_isa() {
  static const KernelIsa isa = capped_isa();
  return isa;
}

bool isa_supported(KernelIsa isa) {
  static const KernelIsa detected = detect_isa();
  return isa <= detected;
}

const char* isa_name(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kAvx512: return "avx512";
    case KernelIsa::kAvx2: return "avx2";
    default: return "portable";
  }
}

VectorView view_of(const PreparedVector& v) {
  return {v.x,
          v.n,
          v.has_q8 ? v.q8.data() : nullptr,
          v.has_q8 ? v.q8_scale.data() : nullptr,
          v.has_q8 ? v.q8_sum.data() : nullptr,
          v.has_qk ? v.qk.data() : nullptr,
          v.has_qk ? v.qk_scale.data() : nullptr,
          v.has_qk ? v.qk_sum16.data() : nullptr};
}

void quantize_q8(const float* x, uint64_t n, uint64_t block, bool fp16_scale, int8_t* q, float* scale, KernelIsa isa) {
#if defined(__x86_64__)
  if (isa == KernelIsa::kAvx512 && block % 16 == 0) return quantize_q8_avx512(x, n, block, fp16_scale, q, scale);
#endif
  for (uint64_t blk = 0; blk < n / block; ++blk) {
    const float* xb = x + blk * block;
    float amax = 0.0f;
    for (uint64_t j = 0; j < block; ++j) amax = std::max(amax, std::fabs(xb[j]));
    float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    scale[blk] = fp16_scale ? fp16_to_fp32(fp32_to_fp16(d)) : d;
    for (uint64_t j = 0; j < block; ++j) q[blk * block + j] = static_cast<int8_t>(std::lround(xb[j] * id));
  }
}

unsigned vector_forms(GgmlType type) {
  if (type == GgmlType::kQ8_0 || type == GgmlType::kQ4_0) return kVectorQ8_0;
  if (type == GgmlType::kQ4_K || type == GgmlType::kQ6_K) return kVectorQ8_K;
  return 0;
}

bool type_uses_q8(GgmlType type) { return vector_forms(type) != 0; }

void prepare_vector(const float* x, uint64_t n, bool need_q8, PreparedVector* out) {
  prepare_vector(x, n, need_q8 ? kVectorQ8_0 | kVectorQ8_K : 0u, out);
}

void prepare_vector(const float* x, uint64_t n, unsigned forms, PreparedVector* out) {
  out->x = x;
  out->n = n;
  out->has_q8 = (forms & kVectorQ8_0) != 0 && n % kBlock == 0;
  out->has_qk = (forms & kVectorQ8_K) != 0 && n % 256 == 0;
  // The Q8_0 scales are rounded through fp16 as in a stored block, so x·w matches llama.cpp.
  if (out->has_q8) {
    out->q8.resize(n);
    out->q8_scale.resize(n / kBlock);
    quantize_q8(x, n, kBlock, true, out->q8.data(), out->q8_scale.data());
    out->q8_sum.resize(n / kBlock);
    for (uint64_t blk = 0; blk < n / kBlock; ++blk) {
      int32_t sum = 0;
      for (uint64_t j = 0; j < kBlock; ++j) sum += out->q8[blk * kBlock + j];
      out->q8_sum[blk] = sum;
    }
  }
  if (out->has_qk) {
    out->qk.resize(n);
    out->qk_scale.resize(n / 256);
    quantize_q8(x, n, 256, false, out->qk.data(), out->qk_scale.data());
    out->qk_sum16.resize(n / 16);
    for (uint64_t g = 0; g < n / 16; ++g) {
      int32_t sum = 0;
      for (uint64_t j = 0; j < 16; ++j) sum += out->qk[g * 16 + j];
      out->qk_sum16[g] = sum;
    }
  }
}

float dot_f32(const float* a, const float* b, uint64_t n, KernelIsa isa) {
#if defined(__x86_64__)
  if (isa == KernelIsa::kAvx512) return dot_f32_avx512(a, b, n);
  if (isa == KernelIsa::kAvx2) return dot_f32_avx2(a, b, n);
#endif
  float sum = 0.0f;
  for (uint64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

void axpy_f32(float a, const float* x, float* y, uint64_t n, KernelIsa isa) {
#if defined(__x86_64__)
  if (isa == KernelIsa::kAvx512) return axpy_f32_avx512(a, x, y, n);
  if (isa == KernelIsa::kAvx2) return axpy_f32_avx2(a, x, y, n);
#endif
  for (uint64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void dot_f32_strided(const float* q, const float* keys, uint64_t stride, int n, uint64_t d, float scale, float* scores, KernelIsa isa) {
#if defined(__x86_64__)
  if (isa == KernelIsa::kAvx512 && d % 16 == 0 && d <= 256) return dot_f32_strided_avx512(q, keys, stride, n, d, scale, scores);
#endif
  for (int j = 0; j < n; ++j) scores[j] = dot_f32(q, keys + static_cast<uint64_t>(j) * stride, d, isa) * scale;
}

void axpy_f32_strided(const float* p, const float* values, uint64_t stride, int n, uint64_t d, float* o, KernelIsa isa) {
#if defined(__x86_64__)
  if (isa == KernelIsa::kAvx512 && d % 16 == 0 && d <= 256) return axpy_f32_strided_avx512(p, values, stride, n, d, o);
#endif
  for (int j = 0; j < n; ++j) axpy_f32(p[j], values + static_cast<uint64_t>(j) * stride, o, d, isa);
}

void dot_f16_strided(const float* q, const uint16_t* keys, uint64_t stride, int n, uint64_t d, float scale, float* scores, KernelIsa isa) {
#if defined(__x86_64__)
  if (isa == KernelIsa::kAvx512 && d % 16 == 0 && d <= 256) return dot_f16_strided_avx512(q, keys, stride, n, d, scale, scores);
  if (isa != KernelIsa::kPortable) {
    for (int j = 0; j < n; ++j) scores[j] = dot_f16_avx2(keys + static_cast<uint64_t>(j) * stride, q, d) * scale;
    return;
  }
#endif
  for (int j = 0; j < n; ++j) {
    const uint16_t* k = keys + static_cast<uint64_t>(j) * stride;
    float sum = 0.0f;
    for (uint64_t i = 0; i < d; ++i) sum += q[i] * fp16_to_fp32(k[i]);
    scores[j] = sum * scale;
  }
}

void axpy_f16_strided(const float* p, const uint16_t* values, uint64_t stride, int n, uint64_t d, float* o, KernelIsa isa) {
#if defined(__x86_64__)
  if (isa == KernelIsa::kAvx512 && d % 16 == 0 && d <= 256) return axpy_f16_strided_avx512(p, values, stride, n, d, o);
  if (isa != KernelIsa::kPortable) {
    for (int j = 0; j < n; ++j) axpy_f16_avx2(p[j], values + static_cast<uint64_t>(j) * stride, o, d);
    return;
  }
#endif
  for (int j = 0; j < n; ++j) {
    const uint16_t* v = values + static_cast<uint64_t>(j) * stride;
    for (uint64_t i = 0; i < d; ++i) o[i] += p[j] * fp16_to_fp32(v[i]);
  }
}

void fp32_to_fp16_row(const float* x, uint16_t* out, uint64_t n, KernelIsa isa) {
#if defined(__x86_64__)
  if (isa == KernelIsa::kAvx512) return fp32_to_fp16_avx512(x, out, n);
  if (isa == KernelIsa::kAvx2) return fp32_to_fp16_avx2(x, out, n);
#endif
  for (uint64_t i = 0; i < n; ++i) out[i] = fp32_to_fp16(x[i]);
}

namespace {

// Whether the kernels can run on the quantised forms of x (else the exact fp32 path).
bool prepared_for(GgmlType type, const PreparedVector& x) {
  if (!type_uses_q8(type)) return true;
  const bool k_type = type == GgmlType::kQ4_K || type == GgmlType::kQ6_K;
  return k_type ? x.has_qk : x.has_q8;
}

float dot_unprepared(GgmlType type, const void* row, const PreparedVector& x) {
  auto info = *ggml_type_info(static_cast<uint32_t>(type));
  float buf[256], sum = 0.0f;
  const auto* b = static_cast<const uint8_t*>(row);
  for (uint64_t i = 0; i < x.n; i += info.block_elements, b += info.block_bytes) {
    dequantize_row(type, b, buf, info.block_elements);
    for (uint32_t j = 0; j < info.block_elements; ++j) sum += buf[j] * x.x[i + j];
  }
  return sum;
}

}  // namespace

float dot_row(GgmlType type, const void* row, const PreparedVector& x, KernelIsa isa) {
  if (!prepared_for(type, x)) return dot_unprepared(type, row, x);
#if defined(__x86_64__)
  if (isa == KernelIsa::kAvx512 && has_avx512_dot(type)) return dot_row_avx512(type, static_cast<const uint8_t*>(row), view_of(x));
  if (isa >= KernelIsa::kAvx2) return dot_row_avx2(type, row, x);
#endif
  return dot_portable(type, row, x);
}

void matvec_row_range(GgmlType type, const uint8_t* data, uint64_t row_bytes, const PreparedVector& x, float* y, uint64_t begin,
                      uint64_t end, KernelIsa isa) {
#if defined(__x86_64__)
  if (isa == KernelIsa::kAvx512 && has_avx512_dot(type) && prepared_for(type, x)) {
    const VectorView view = view_of(x);
    for (uint64_t r = begin; r < end; ++r) y[r] = dot_row_avx512(type, data + r * row_bytes, view);
    return;
  }
#endif
  for (uint64_t r = begin; r < end; ++r) y[r] = dot_row(type, data + r * row_bytes, x, isa);
}

void matvec_rows(GgmlType type, const uint8_t* data, uint64_t rows, uint64_t row_bytes, const PreparedVector& x, float* y,
                 ThreadPool* pool, KernelIsa isa) {
  auto run = [&](size_t begin, size_t end) { matvec_row_range(type, data, row_bytes, x, y, begin, end, isa); };
  // Small products are not worth waking the workers for.
  if (pool == nullptr || pool->size() == 1 || rows * x.n < (1u << 15)) {
    run(0, rows);
  } else {
    pool->parallel_for(rows, run);
  }
}

}  // namespace llmops::engine
