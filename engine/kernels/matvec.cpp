#include "kernels/matvec.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include <cmath>
#include <cstring>

#include "kernels/kquant.h"
#include "kernels/thread_pool.h"

namespace llmops::engine {

// The AVX2 kernels (matvec_avx2.cpp); null where the compiler could not build them.
float dot_row_avx2(GgmlType type, const void* row, const PreparedVector& x);
float dot_f32_avx2(const float* a, const float* b, uint64_t n);
void axpy_f32_avx2(float a, const float* x, float* y, uint64_t n);

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

}  // namespace

KernelIsa best_isa() {
  static const KernelIsa isa = cpu_has_avx2() ? KernelIsa::kAvx2 : KernelIsa::kPortable;
  return isa;
}

const char* isa_name(KernelIsa isa) { return isa == KernelIsa::kAvx2 ? "avx2" : "portable"; }

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
  // The scales are rounded through fp16 as in a stored block, so x·w matches llama.cpp.
  auto quantise = [&](uint64_t block, std::vector<int8_t>& q, std::vector<float>& scale) {
    q.resize(n);
    scale.resize(n / block);
    for (uint64_t blk = 0; blk < n / block; ++blk) {
      const float* xb = x + blk * block;
      float amax = 0.0f;
      for (uint64_t j = 0; j < block; ++j) amax = std::max(amax, std::fabs(xb[j]));
      float d = amax / 127.0f;
      float id = d != 0.0f ? 1.0f / d : 0.0f;
      scale[blk] = block == kBlock ? fp16_to_fp32(fp32_to_fp16(d)) : d;
      for (uint64_t j = 0; j < block; ++j) q[blk * block + j] = static_cast<int8_t>(std::lround(xb[j] * id));
    }
  };
  if (out->has_q8) quantise(kBlock, out->q8, out->q8_scale);
  if (out->has_qk) {
    quantise(256, out->qk, out->qk_scale);
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
  if (isa == KernelIsa::kAvx2) return dot_f32_avx2(a, b, n);
#endif
  float sum = 0.0f;
  for (uint64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

void axpy_f32(float a, const float* x, float* y, uint64_t n, KernelIsa isa) {
#if defined(__x86_64__)
  if (isa == KernelIsa::kAvx2) return axpy_f32_avx2(a, x, y, n);
#endif
  for (uint64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

float dot_row(GgmlType type, const void* row, const PreparedVector& x, KernelIsa isa) {
  const bool k_type = type == GgmlType::kQ4_K || type == GgmlType::kQ6_K;
  if (type_uses_q8(type) && (k_type ? !x.has_qk : !x.has_q8)) {
    // Unprepared vector: the exact fp32 path, block by block.
    auto info = *ggml_type_info(static_cast<uint32_t>(type));
    float buf[256], sum = 0.0f;
    const auto* b = static_cast<const uint8_t*>(row);
    for (uint64_t i = 0; i < x.n; i += info.block_elements, b += info.block_bytes) {
      dequantize_row(type, b, buf, info.block_elements);
      for (uint32_t j = 0; j < info.block_elements; ++j) sum += buf[j] * x.x[i + j];
    }
    return sum;
  }
#if defined(__x86_64__)
  if (isa == KernelIsa::kAvx2) return dot_row_avx2(type, row, x);
#endif
  return dot_portable(type, row, x);
}

void matvec_rows(GgmlType type, const uint8_t* data, uint64_t rows, uint64_t row_bytes, const PreparedVector& x, float* y,
                 ThreadPool* pool, KernelIsa isa) {
  auto run = [&](size_t begin, size_t end) {
    for (size_t r = begin; r < end; ++r) y[r] = dot_row(type, data + r * row_bytes, x, isa);
  };
  // Small products are not worth waking the workers for.
  if (pool == nullptr || pool->size() == 1 || rows * x.n < (1u << 15)) {
    run(0, rows);
  } else {
    pool->parallel_for(rows, run);
  }
}

}  // namespace llmops::engine
