// Device-side reading of the GGUF weight layouts, 32 weights (one "unit") at a time: the
// quantised matrix kernels dequantise a unit into registers and use it at once, so no widened
// copy of a matrix exists. The layouts are ggml's (engine/formats/ggml_types.cpp reads the same
// bytes on the CPU; the parity tests hold the two together).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "blocks.cuh"
#include "llmops/driver.h"

namespace llmops::cuda {

// Bytes of one unit's block and weights per block, per type (units of 32 weights).
__host__ __device__ inline int block_weights(int type) {
  return (type == LLMOPS_DT_Q4_K || type == LLMOPS_DT_Q6_K) ? 256 : (type == LLMOPS_DT_Q8_0 || type == LLMOPS_DT_Q4_0) ? 32 : 1;
}
__host__ __device__ inline int block_bytes(int type) {
  switch (type) {
    case LLMOPS_DT_F32: return 4;
    case LLMOPS_DT_F16:
    case LLMOPS_DT_BF16: return 2;
    case LLMOPS_DT_Q8_0: return 34;
    case LLMOPS_DT_Q4_0: return 18;
    case LLMOPS_DT_Q4_K: return 144;
    case LLMOPS_DT_Q6_K: return 210;
  }
  return 0;
}
inline bool type_known(int type) { return block_bytes(type) != 0; }
inline uint64_t row_bytes(int type, uint64_t cols) { return cols / block_weights(type) * block_bytes(type); }

// The 6-bit scale and min of sub-block j of a Q4_K super-block.
__device__ inline void q4k_scale_min(int j, const uint8_t* q, int* scale, int* min) {
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Unit u (weights 32u..32u+31) of a row of cols weights, into w. Float types read within cols
// (a row need not be a multiple of 32 there; missing weights are 0).
template <int TYPE>
__device__ inline void load_unit(const uint8_t* row, int u, int cols, float w[32]) {
  if constexpr (TYPE == LLMOPS_DT_F32) {
    const float* r = reinterpret_cast<const float*>(row) + 32 * u;
    if (32 * u + 32 <= cols) {
      const float4* r4 = reinterpret_cast<const float4*>(r);
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        float4 v = r4[i];
        w[4 * i] = v.x, w[4 * i + 1] = v.y, w[4 * i + 2] = v.z, w[4 * i + 3] = v.w;
      }
    } else {
#pragma unroll
      for (int i = 0; i < 32; ++i) w[i] = 32 * u + i < cols ? r[i] : 0.0f;
    }
  } else if constexpr (TYPE == LLMOPS_DT_F16 || TYPE == LLMOPS_DT_BF16) {
    const uint16_t* r = reinterpret_cast<const uint16_t*>(row) + 32 * u;
    if (32 * u + 32 <= cols) {
      const uint4* r4 = reinterpret_cast<const uint4*>(r);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        uint4 v = r4[i];
        uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          uint16_t lo = static_cast<uint16_t>(words[k] & 0xFFFF), hi = static_cast<uint16_t>(words[k] >> 16);
          if constexpr (TYPE == LLMOPS_DT_F16) {
            w[8 * i + 2 * k] = __half2float(__ushort_as_half(lo));
            w[8 * i + 2 * k + 1] = __half2float(__ushort_as_half(hi));
          } else {
            w[8 * i + 2 * k] = __uint_as_float(static_cast<uint32_t>(lo) << 16);
            w[8 * i + 2 * k + 1] = __uint_as_float(static_cast<uint32_t>(hi) << 16);
          }
        }
      }
    } else {
#pragma unroll
      for (int i = 0; i < 32; ++i) {
        uint16_t b = 32 * u + i < cols ? r[i] : 0;
        w[i] = TYPE == LLMOPS_DT_F16 ? __half2float(__ushort_as_half(b)) : __uint_as_float(static_cast<uint32_t>(b) << 16);
      }
    }
  } else if constexpr (TYPE == LLMOPS_DT_Q8_0) {
    const uint8_t* b = row + 34 * u;
    const float d = half_at(b);
    // The block is 2-byte aligned: read the 32 quants as 16 half-words.
    const uint16_t* q = reinterpret_cast<const uint16_t*>(b + 2);
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      uint16_t v = q[i];
      w[2 * i] = d * static_cast<float>(static_cast<int8_t>(v & 0xFF));
      w[2 * i + 1] = d * static_cast<float>(static_cast<int8_t>(v >> 8));
    }
  } else if constexpr (TYPE == LLMOPS_DT_Q4_0) {
    const uint8_t* b = row + 18 * u;
    const float d = half_at(b);
    const uint16_t* q = reinterpret_cast<const uint16_t*>(b + 2);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      uint16_t v = q[i];
      w[2 * i] = d * static_cast<float>((v & 0xF) - 8);
      w[2 * i + 16] = d * static_cast<float>(((v >> 4) & 0xF) - 8);
      w[2 * i + 1] = d * static_cast<float>(((v >> 8) & 0xF) - 8);
      w[2 * i + 17] = d * static_cast<float>((v >> 12) - 8);
    }
  } else if constexpr (TYPE == LLMOPS_DT_Q4_K) {
    const int j = u & 7;
    const uint8_t* b = row + 144 * (u >> 3);
    const float d = half_at(b), dmin = half_at(b + 2);
    int sc, m;
    q4k_scale_min(j, b + 4, &sc, &m);
    const float scale = d * static_cast<float>(sc), minv = dmin * static_cast<float>(m);
    const uint4* q = reinterpret_cast<const uint4*>(b + 16 + 32 * (j >> 1));  // 16-byte aligned within the block
    const int shift = (j & 1) * 4;
    if ((reinterpret_cast<uintptr_t>(q) & 15) == 0) {
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        uint4 v = q[i];
        uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int k = 0; k < 4; ++k) {
#pragma unroll
          for (int by = 0; by < 4; ++by) {
            w[16 * i + 4 * k + by] = scale * static_cast<float>((words[k] >> (8 * by + shift)) & 0xF) - minv;
          }
        }
      }
    } else {
      const uint8_t* qb = reinterpret_cast<const uint8_t*>(q);
#pragma unroll
      for (int i = 0; i < 32; ++i) w[i] = scale * static_cast<float>((qb[i] >> shift) & 0xF) - minv;
    }
  } else if constexpr (TYPE == LLMOPS_DT_Q6_K) {
    const int j = u & 7, half = j >> 2, quarter = j & 3;
    const uint8_t* b = row + 210 * (u >> 3);
    const uint8_t* ql = b + 64 * half + (quarter & 1) * 32;
    const uint8_t* qh = b + 128 + 32 * half;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192) + 8 * half + 2 * quarter;
    const float d = half_at(b + 208);
    const float s0 = d * static_cast<float>(sc[0]), s1 = d * static_cast<float>(sc[1]);
    const int low_shift = (quarter >> 1) * 4, high_shift = 2 * quarter;
#pragma unroll
    for (int l = 0; l < 32; ++l) {
      const int q = (((ql[l] >> low_shift) & 0xF) | (((qh[l] >> high_shift) & 3) << 4)) - 32;
      w[l] = (l < 16 ? s0 : s1) * static_cast<float>(q);
    }
  }
}

// Group k of a row: weights 8k..8k+7, into w (the wide kernels' unit: a warp's 32 lanes read
// 256 consecutive weights, so every load is coalesced across the warp). cols % 8 == 0.
template <int TYPE>
__device__ inline void load8(const uint8_t* row, int k, float w[8]) {
  if constexpr (TYPE == LLMOPS_DT_F32) {
    const float4* p = reinterpret_cast<const float4*>(row) + 2 * k;
    const float4 a = p[0], b = p[1];
    w[0] = a.x, w[1] = a.y, w[2] = a.z, w[3] = a.w, w[4] = b.x, w[5] = b.y, w[6] = b.z, w[7] = b.w;
  } else if constexpr (TYPE == LLMOPS_DT_F16 || TYPE == LLMOPS_DT_BF16) {
    const uint4 v = reinterpret_cast<const uint4*>(row)[k];
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint16_t lo = static_cast<uint16_t>(words[i] & 0xFFFF), hi = static_cast<uint16_t>(words[i] >> 16);
      if constexpr (TYPE == LLMOPS_DT_F16) {
        w[2 * i] = __half2float(__ushort_as_half(lo)), w[2 * i + 1] = __half2float(__ushort_as_half(hi));
      } else {
        w[2 * i] = __uint_as_float(static_cast<uint32_t>(lo) << 16), w[2 * i + 1] = __uint_as_float(static_cast<uint32_t>(hi) << 16);
      }
    }
  } else if constexpr (TYPE == LLMOPS_DT_Q8_0) {
    const uint8_t* b = row + 34 * (k >> 2);
    const float d = half_at(b);
    const uint16_t* q = reinterpret_cast<const uint16_t*>(b + 2 + 8 * (k & 3));
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint16_t v = q[i];
      w[2 * i] = d * static_cast<float>(static_cast<int8_t>(v & 0xFF));
      w[2 * i + 1] = d * static_cast<float>(static_cast<int8_t>(v >> 8));
    }
  } else if constexpr (TYPE == LLMOPS_DT_Q4_0) {
    const uint8_t* b = row + 18 * (k >> 2);
    const int g = k & 3, shift = (g >> 1) * 4;
    const float d = half_at(b);
    const uint16_t* q = reinterpret_cast<const uint16_t*>(b + 2 + 8 * (g & 1));
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint16_t v = q[i];
      w[2 * i] = d * static_cast<float>(((v >> shift) & 0xF) - 8);
      w[2 * i + 1] = d * static_cast<float>(((v >> (8 + shift)) & 0xF) - 8);
    }
  } else if constexpr (TYPE == LLMOPS_DT_Q4_K) {
    const uint8_t* b = row + 144 * (k >> 5);
    const int j = (k >> 2) & 7, part = k & 3;
    float scale, minv;
    q4k_group_scale(b, j, &scale, &minv);
    const uint2 v = *reinterpret_cast<const uint2*>(b + 16 + 32 * (j >> 1) + 8 * part);
    const int shift = (j & 1) * 4;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      w[i] = scale * static_cast<float>((v.x >> (8 * i + shift)) & 0xF) - minv;
      w[4 + i] = scale * static_cast<float>((v.y >> (8 * i + shift)) & 0xF) - minv;
    }
  } else if constexpr (TYPE == LLMOPS_DT_Q6_K) {
    const uint8_t* b = row + 210 * (k >> 5);
    const int within = k & 31, half = within >> 4, quarter = (within >> 2) & 3, part = within & 3;
    const uint16_t* ql = reinterpret_cast<const uint16_t*>(b + 64 * half + (quarter & 1) * 32 + 8 * part);
    const uint16_t* qh = reinterpret_cast<const uint16_t*>(b + 128 + 32 * half + 8 * part);
    const float scale = half_at(b + 208) * static_cast<float>(static_cast<int8_t>(b[192 + 8 * half + 2 * quarter + (part >> 1)]));
    const int low_shift = (quarter >> 1) * 4, high_shift = 2 * quarter;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint16_t l = ql[i], hbits = qh[i];
      w[2 * i] = scale * static_cast<float>((((l >> low_shift) & 0xF) | (((hbits >> high_shift) & 3) << 4)) - 32);
      w[2 * i + 1] = scale * static_cast<float>((((l >> (8 + low_shift)) & 0xF) | (((hbits >> (8 + high_shift)) & 3) << 4)) - 32);
    }
  }
}

// One 8-weight group as loaded, decoded later: the decode kernel loads several groups per lane
// before it decodes any. The default holds the decoded weights; F16 keeps its 16 raw bytes.
template <int TYPE>
struct Raw8 {
  float w[8];
  __device__ void load(const uint8_t* row, int k) { load8<TYPE>(row, k, w); }
  __device__ void decode(float out[8]) const {
#pragma unroll
    for (int i = 0; i < 8; ++i) out[i] = w[i];
  }
};

template <>
struct Raw8<LLMOPS_DT_F16> {
  uint4 v;
  __device__ void load(const uint8_t* row, int k) { v = reinterpret_cast<const uint4*>(row)[k]; }
  __device__ void decode(float out[8]) const {
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      out[2 * i] = __half2float(__ushort_as_half(static_cast<uint16_t>(words[i] & 0xFFFF)));
      out[2 * i + 1] = __half2float(__ushort_as_half(static_cast<uint16_t>(words[i] >> 16)));
    }
  }
};

// Groups a decode lane loads ahead. Measured on an H200: raw bits for 16 quantised groups ran
// slower than 4 decoded ones (more registers, fewer warps), 8 raw F16 groups faster than 4.
template <int TYPE>
__host__ __device__ constexpr int groups_in_flight() {
  return TYPE == LLMOPS_DT_F16 ? 8 : 4;
}

// One weight (embedding lookups and dequantised tiles: not a hot loop).
__device__ inline float weight_at(int type, const uint8_t* row, int i) {
  switch (type) {
    case LLMOPS_DT_F32: return reinterpret_cast<const float*>(row)[i];
    case LLMOPS_DT_F16: return __half2float(__ushort_as_half(reinterpret_cast<const uint16_t*>(row)[i]));
    case LLMOPS_DT_BF16: return __uint_as_float(static_cast<uint32_t>(reinterpret_cast<const uint16_t*>(row)[i]) << 16);
    case LLMOPS_DT_Q8_0: {
      const uint8_t* b = row + 34 * (i / 32);
      return half_at(b) * static_cast<float>(static_cast<int8_t>(b[2 + i % 32]));
    }
    case LLMOPS_DT_Q4_0: {
      const uint8_t* b = row + 18 * (i / 32);
      const int k = i % 32;
      const int q = k < 16 ? (b[2 + k] & 0xF) : (b[2 + k - 16] >> 4);
      return half_at(b) * static_cast<float>(q - 8);
    }
    case LLMOPS_DT_Q4_K: {
      const uint8_t* b = row + 144 * (i / 256);
      const int k = i % 256, j = k / 32, l = k % 32;
      int sc, m;
      q4k_scale_min(j, b + 4, &sc, &m);
      const int q = (b[16 + 32 * (j >> 1) + l] >> ((j & 1) * 4)) & 0xF;
      return half_at(b) * static_cast<float>(sc) * static_cast<float>(q) - half_at(b + 2) * static_cast<float>(m);
    }
    case LLMOPS_DT_Q6_K: {
      const uint8_t* b = row + 210 * (i / 256);
      const int k = i % 256, half = k / 128, quarter = (k % 128) / 32, l = k % 32;
      const uint8_t* ql = b + 64 * half + (quarter & 1) * 32;
      const uint8_t* qh = b + 128 + 32 * half;
      const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192) + 8 * half + 2 * quarter + l / 16;
      const int q = (((ql[l] >> ((quarter >> 1) * 4)) & 0xF) | (((qh[l] >> (2 * quarter)) & 3) << 4)) - 32;
      return half_at(b + 208) * static_cast<float>(*sc) * static_cast<float>(q);
    }
  }
  return 0.0f;
}

}  // namespace llmops::cuda
