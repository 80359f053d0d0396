#include "formats/ggml_types.h"

#include "kernels/kquant.h"

#include <cstring>

namespace llmops::engine {
namespace {

constexpr uint32_t kQK = 32;    // elements per block of the legacy quants
constexpr uint32_t kQKK = 256;  // elements per super-block of the K-quants

uint16_t read_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

void dequant_q4_0(const uint8_t* b, float* y, uint64_t nb) {
  for (uint64_t i = 0; i < nb; ++i, b += 18, y += kQK) {
    float d = fp16_to_fp32(read_u16(b));
    const uint8_t* qs = b + 2;
    for (uint32_t j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((qs[j] & 0xF) - 8) * d;
      y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
    }
  }
}

void dequant_q4_1(const uint8_t* b, float* y, uint64_t nb) {
  for (uint64_t i = 0; i < nb; ++i, b += 20, y += kQK) {
    float d = fp16_to_fp32(read_u16(b)), m = fp16_to_fp32(read_u16(b + 2));
    const uint8_t* qs = b + 4;
    for (uint32_t j = 0; j < 16; ++j) {
      y[j] = static_cast<float>(qs[j] & 0xF) * d + m;
      y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
    }
  }
}

void dequant_q5(const uint8_t* b, float* y, uint64_t nb, bool with_min) {
  const uint32_t block = with_min ? 24 : 22;
  for (uint64_t i = 0; i < nb; ++i, b += block, y += kQK) {
    float d = fp16_to_fp32(read_u16(b));
    float m = with_min ? fp16_to_fp32(read_u16(b + 2)) : 0.0f;
    const uint8_t* p = b + (with_min ? 4 : 2);
    uint32_t qh;
    std::memcpy(&qh, p, 4);
    const uint8_t* qs = p + 4;
    for (uint32_t j = 0; j < 16; ++j) {
      int lo = static_cast<int>((qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10));
      int hi = static_cast<int>((qs[j] >> 4) | ((qh >> (j + 12)) & 0x10));
      if (with_min) {
        y[j] = static_cast<float>(lo) * d + m;
        y[j + 16] = static_cast<float>(hi) * d + m;
      } else {
        y[j] = static_cast<float>(lo - 16) * d;
        y[j + 16] = static_cast<float>(hi - 16) * d;
      }
    }
  }
}

void dequant_q8_0(const uint8_t* b, float* y, uint64_t nb) {
  for (uint64_t i = 0; i < nb; ++i, b += 34, y += kQK) {
    float d = fp16_to_fp32(read_u16(b));
    const auto* qs = reinterpret_cast<const int8_t*>(b + 2);
    for (uint32_t j = 0; j < kQK; ++j) y[j] = static_cast<float>(qs[j]) * d;
  }
}

// Q4_K and Q5_K share their layout but for Q5_K's plane of fifth bits (qh) before the nibbles.
void dequant_q4_q5_k(const uint8_t* b, float* y, uint64_t nb, bool five_bits) {
  const uint32_t block = five_bits ? 176 : 144;
  for (uint64_t i = 0; i < nb; ++i, b += block) {
    float d = fp16_to_fp32(read_u16(b)), dmin = fp16_to_fp32(read_u16(b + 2));
    const uint8_t* scales = b + 4;
    const uint8_t* qh = five_bits ? b + 16 : nullptr;
    const uint8_t* ql = b + (five_bits ? 48 : 16);
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < static_cast<int>(kQKK); j += 64, is += 2, ql += 32) {
      uint8_t sc, m;
      q4k_scale_min(is, scales, &sc, &m);
      float d1 = d * sc, m1 = dmin * m;
      q4k_scale_min(is + 1, scales, &sc, &m);
      float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>((ql[l] & 0xF) + (qh && (qh[l] & u1) ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>((ql[l] >> 4) + (qh && (qh[l] & u2) ? 16 : 0)) - m2;
      u1 = static_cast<uint8_t>(u1 << 2);
      u2 = static_cast<uint8_t>(u2 << 2);
    }
  }
}

void dequant_q6_k(const uint8_t* b, float* y, uint64_t nb) {
  for (uint64_t i = 0; i < nb; ++i, b += 210) {
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
    float d = fp16_to_fp32(read_u16(b + 208));
    for (int n = 0; n < static_cast<int>(kQKK); n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        int is = l / 16;
        int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * sc[is] * static_cast<float>(q1);
        y[l + 32] = d * sc[is + 2] * static_cast<float>(q2);
        y[l + 64] = d * sc[is + 4] * static_cast<float>(q3);
        y[l + 96] = d * sc[is + 6] * static_cast<float>(q4);
      }
    }
  }
}

}  // namespace

std::optional<GgmlTypeInfo> ggml_type_info(uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::kF32: return GgmlTypeInfo{"F32", 1, 4, true};
    case GgmlType::kF16: return GgmlTypeInfo{"F16", 1, 2, true};
    case GgmlType::kBF16: return GgmlTypeInfo{"BF16", 1, 2, true};
    case GgmlType::kQ4_0: return GgmlTypeInfo{"Q4_0", kQK, 18, true};
    case GgmlType::kQ4_1: return GgmlTypeInfo{"Q4_1", kQK, 20, true};
    case GgmlType::kQ5_0: return GgmlTypeInfo{"Q5_0", kQK, 22, true};
    case GgmlType::kQ5_1: return GgmlTypeInfo{"Q5_1", kQK, 24, true};
    case GgmlType::kQ8_0: return GgmlTypeInfo{"Q8_0", kQK, 34, true};
    case GgmlType::kQ8_1: return GgmlTypeInfo{"Q8_1", kQK, 36, false};
    case GgmlType::kQ2_K: return GgmlTypeInfo{"Q2_K", kQKK, 84, false};
    case GgmlType::kQ3_K: return GgmlTypeInfo{"Q3_K", kQKK, 110, false};
    case GgmlType::kQ4_K: return GgmlTypeInfo{"Q4_K", kQKK, 144, true};
    case GgmlType::kQ5_K: return GgmlTypeInfo{"Q5_K", kQKK, 176, true};
    case GgmlType::kQ6_K: return GgmlTypeInfo{"Q6_K", kQKK, 210, true};
    case GgmlType::kQ8_K: return GgmlTypeInfo{"Q8_K", kQKK, 292, false};
  }
  return std::nullopt;
}

std::string ggml_type_name(uint32_t type) {
  auto info = ggml_type_info(type);
  return info ? info->name : "type " + std::to_string(type);
}

std::optional<uint64_t> ggml_row_bytes(GgmlType type, uint64_t n) {
  auto info = ggml_type_info(static_cast<uint32_t>(type));
  if (!info || n % info->block_elements != 0) return std::nullopt;
  return n / info->block_elements * info->block_bytes;
}

float fp16_to_fp32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3FF;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t fp32_to_fp16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  int32_t exp = static_cast<int32_t>((x >> 23) & 0xFF) - 127 + 15;
  uint32_t mant = x & 0x7FFFFF;
  if (((x >> 23) & 0xFF) == 0xFF) return static_cast<uint16_t>(sign | 0x7C00 | (mant ? 0x200 : 0));  // inf / nan
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7C00);
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000;
    uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) ++half;  // may carry into the exponent: correct
  return static_cast<uint16_t>(half);
}

float bf16_to_fp32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void dequantize_row(GgmlType type, const void* src, float* dst, uint64_t n) {
  const auto* b = static_cast<const uint8_t*>(src);
  switch (type) {
    case GgmlType::kF32: std::memcpy(dst, b, n * 4); return;
    case GgmlType::kF16:
      for (uint64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(read_u16(b + 2 * i));
      return;
    case GgmlType::kBF16:
      for (uint64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(read_u16(b + 2 * i));
      return;
    case GgmlType::kQ4_0: return dequant_q4_0(b, dst, n / kQK);
    case GgmlType::kQ4_1: return dequant_q4_1(b, dst, n / kQK);
    case GgmlType::kQ5_0: return dequant_q5(b, dst, n / kQK, false);
    case GgmlType::kQ5_1: return dequant_q5(b, dst, n / kQK, true);
    case GgmlType::kQ8_0: return dequant_q8_0(b, dst, n / kQK);
    case GgmlType::kQ4_K: return dequant_q4_q5_k(b, dst, n / kQKK, false);
    case GgmlType::kQ5_K: return dequant_q4_q5_k(b, dst, n / kQKK, true);
    case GgmlType::kQ6_K: return dequant_q6_k(b, dst, n / kQKK);
    default: std::memset(dst, 0, n * 4); return;  // callers check can_dequantize first
  }
}

}  // namespace llmops::engine
