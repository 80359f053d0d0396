#include "formats/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace llmops::engine {
namespace {

void put_half(uint8_t* p, float v) {
  uint16_t h = fp32_to_fp16(v);
  std::memcpy(p, &h, 2);
}

int nearest(float v) { return static_cast<int>(std::lround(v)); }

void q8_0(const float* x, uint8_t* b, uint64_t nb) {
  for (uint64_t i = 0; i < nb; ++i, x += 32, b += 34) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    put_half(b, d);
    for (int j = 0; j < 32; ++j) b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::clamp(nearest(x[j] * id), -127, 127)));
  }
}

void q4_0(const float* x, uint8_t* b, uint64_t nb) {
  for (uint64_t i = 0; i < nb; ++i, x += 32, b += 18) {
    // The value of largest magnitude maps to -8, so the full range [-8, 7] is used.
    float max = 0, amax = 0;
    for (int j = 0; j < 32; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    float d = max / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
    put_half(b, d);
    for (int j = 0; j < 16; ++j) {
      int lo = std::clamp(nearest(x[j] * id) + 8, 0, 15);
      int hi = std::clamp(nearest(x[j + 16] * id) + 8, 0, 15);
      b[2 + j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

// Q4_K: 8 sub-blocks of 32 with their own 6-bit scale and min, relative to the block's d/dmin.
void q4_k(const float* x, uint8_t* b, uint64_t nb) {
  for (uint64_t i = 0; i < nb; ++i, x += 256, b += 144) {
    float scales[8], mins[8];
    for (int s = 0; s < 8; ++s) {
      const float* xs = x + 32 * s;
      float lo = *std::min_element(xs, xs + 32), hi = *std::max_element(xs, xs + 32);
      lo = std::min(lo, 0.0f);
      scales[s] = (hi - lo) / 15.0f;
      mins[s] = -lo;
    }
    float max_scale = *std::max_element(scales, scales + 8), max_min = *std::max_element(mins, mins + 8);
    float d = max_scale / 63.0f, dmin = max_min / 63.0f;
    put_half(b, d);
    put_half(b + 2, dmin);
    d = fp16_to_fp32(fp32_to_fp16(d));
    dmin = fp16_to_fp32(fp32_to_fp16(dmin));
    uint8_t sc[8], mn[8];
    for (int s = 0; s < 8; ++s) {
      sc[s] = static_cast<uint8_t>(d > 0 ? std::clamp(nearest(scales[s] / d), 0, 63) : 0);
      mn[s] = static_cast<uint8_t>(dmin > 0 ? std::clamp(nearest(mins[s] / dmin), 0, 63) : 0);
    }
    uint8_t* q = b + 4;
    for (int j = 0; j < 4; ++j) {
      q[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
      q[j + 4] = static_cast<uint8_t>((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
      q[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
    }
    uint8_t* qs = b + 16;
    for (int pair = 0; pair < 4; ++pair) {
      uint8_t v[2][32];
      for (int half = 0; half < 2; ++half) {
        int s = 2 * pair + half;
        float ds = d * sc[s], ms = dmin * mn[s];
        for (int l = 0; l < 32; ++l) {
          float val = x[32 * s + l];
          v[half][l] = static_cast<uint8_t>(ds > 0 ? std::clamp(nearest((val + ms) / ds), 0, 15) : 0);
        }
      }
      for (int l = 0; l < 32; ++l) qs[32 * pair + l] = static_cast<uint8_t>(v[0][l] | (v[1][l] << 4));
    }
  }
}

// Q6_K: 16 groups of 16 with int8 scales relative to d; 6-bit values split into 4 + 2 bits.
void q6_k(const float* x, uint8_t* b, uint64_t nb) {
  for (uint64_t i = 0; i < nb; ++i, x += 256, b += 210) {
    float scales[16];
    for (int g = 0; g < 16; ++g) {
      float max = 0, amax = 0;
      for (int l = 0; l < 16; ++l) {
        float v = x[16 * g + l];
        if (std::fabs(v) > amax) {
          amax = std::fabs(v);
          max = v;
        }
      }
      scales[g] = max / -32.0f;
    }
    float amax_scale = 0, max_scale = 0;
    for (float s : scales) {
      if (std::fabs(s) > amax_scale) {
        amax_scale = std::fabs(s);
        max_scale = s;
      }
    }
    float d = max_scale / -128.0f;
    put_half(b + 208, d);
    d = fp16_to_fp32(fp32_to_fp16(d));
    auto* sc = reinterpret_cast<int8_t*>(b + 192);
    uint8_t q[256];
    for (int g = 0; g < 16; ++g) {
      sc[g] = static_cast<int8_t>(d != 0 ? std::clamp(nearest(scales[g] / d), -128, 127) : 0);
      float ds = d * sc[g];
      for (int l = 0; l < 16; ++l) {
        q[16 * g + l] = static_cast<uint8_t>(ds != 0 ? std::clamp(nearest(x[16 * g + l] / ds), -32, 31) + 32 : 32);
      }
    }
    uint8_t* ql = b;
    uint8_t* qh = b + 128;
    for (int n = 0; n < 256; n += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        uint8_t q1 = q[n + l], q2 = q[n + l + 32], q3 = q[n + l + 64], q4 = q[n + l + 96];
        ql[l] = static_cast<uint8_t>((q1 & 0xF) | ((q3 & 0xF) << 4));
        ql[l + 32] = static_cast<uint8_t>((q2 & 0xF) | ((q4 & 0xF) << 4));
        qh[l] = static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
      }
    }
  }
}

}  // namespace

bool can_quantize(GgmlType type) {
  switch (type) {
    case GgmlType::kF32:
    case GgmlType::kF16:
    case GgmlType::kBF16:
    case GgmlType::kQ8_0:
    case GgmlType::kQ4_0:
    case GgmlType::kQ4_K:
    case GgmlType::kQ6_K: return true;
    default: return false;
  }
}

void quantize_row(GgmlType type, const float* src, void* dst, uint64_t n) {
  auto* b = static_cast<uint8_t*>(dst);
  switch (type) {
    case GgmlType::kF32: std::memcpy(b, src, n * 4); return;
    case GgmlType::kF16:
      for (uint64_t i = 0; i < n; ++i) put_half(b + 2 * i, src[i]);
      return;
    case GgmlType::kBF16:
      for (uint64_t i = 0; i < n; ++i) {
        uint32_t bits;
        std::memcpy(&bits, &src[i], 4);
        uint16_t h = static_cast<uint16_t>((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);  // round to nearest even
        std::memcpy(b + 2 * i, &h, 2);
      }
      return;
    case GgmlType::kQ8_0: return q8_0(src, b, n / 32);
    case GgmlType::kQ4_0: return q4_0(src, b, n / 32);
    case GgmlType::kQ4_K: return q4_k(src, b, n / 256);
    case GgmlType::kQ6_K: return q6_k(src, b, n / 256);
    default: return;
  }
}

std::optional<GgmlType> writable_type_from_name(std::string_view name) {
  for (GgmlType t : {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    if (ggml_type_name(static_cast<uint32_t>(t)) == name) return t;
  }
  return std::nullopt;
}

GgmlType storable_type(GgmlType want, uint64_t cols, const std::string& name, std::vector<std::string>* notes) {
  if (ggml_row_bytes(want, cols)) return want;
  GgmlType fallback = ggml_row_bytes(GgmlType::kQ8_0, cols) ? GgmlType::kQ8_0 : GgmlType::kF32;
  notes->push_back(name + ": " + ggml_type_name(static_cast<uint32_t>(want)) + " needs rows in whole blocks, stored as " +
                   ggml_type_name(static_cast<uint32_t>(fallback)));
  return fallback;
}

uint32_t gguf_file_type(GgmlType type) {
  switch (type) {
    case GgmlType::kF32: return 0;
    case GgmlType::kF16: return 1;
    case GgmlType::kQ4_0: return 2;
    case GgmlType::kQ8_0: return 7;
    case GgmlType::kQ4_K: return 15;  // Q4_K_M
    case GgmlType::kQ6_K: return 18;
    case GgmlType::kBF16: return 32;
    default: return 0;
  }
}

}  // namespace llmops::engine
