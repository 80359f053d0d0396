#include "kernels/matvec.h"

#include <cmath>
#include <cstring>

#include "kernels/thread_pool.h"

namespace llmops::engine {

// The AVX2 kernels (matvec_avx2.cpp); null where the compiler could not build them.
float dot_row_avx2(GgmlType type, const void* row, const PreparedVector& x);

namespace {

constexpr uint64_t kBlock = 32;

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
    default: {
      // Block by block through a small buffer: Q4_1, Q5_0, Q5_1, BF16 and the K-quants.
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
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
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

bool type_uses_q8(GgmlType type) { return type == GgmlType::kQ8_0 || type == GgmlType::kQ4_0; }

void prepare_vector(const float* x, uint64_t n, bool need_q8, PreparedVector* out) {
  out->x = x;
  out->n = n;
  out->has_q8 = need_q8 && n % kBlock == 0;
  if (!out->has_q8) return;
  out->q8.resize(n);
  out->q8_scale.resize(n / kBlock);
  for (uint64_t blk = 0; blk < n / kBlock; ++blk) {
    const float* xb = x + blk * kBlock;
    float amax = 0.0f;
    for (uint64_t j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(xb[j]));
    float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    // The scale is rounded through fp16 as in a stored Q8_0 block, so x·w matches llama.cpp.
    out->q8_scale[blk] = fp16_to_fp32(fp32_to_fp16(d));
    for (uint64_t j = 0; j < kBlock; ++j) out->q8[blk * kBlock + j] = static_cast<int8_t>(std::lround(xb[j] * id));
  }
}

float dot_row(GgmlType type, const void* row, const PreparedVector& x, KernelIsa isa) {
  if (type_uses_q8(type) && !x.has_q8) {
    // Unprepared vector: the exact fp32 path.
    float buf[32], sum = 0.0f;
    const auto* b = static_cast<const uint8_t*>(row);
    const uint32_t bytes = type == GgmlType::kQ8_0 ? 34 : 18;
    for (uint64_t i = 0; i < x.n; i += 32, b += bytes) {
      dequantize_row(type, b, buf, 32);
      for (int j = 0; j < 32; ++j) sum += buf[j] * x.x[i + static_cast<uint64_t>(j)];
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
