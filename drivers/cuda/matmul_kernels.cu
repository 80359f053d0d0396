// Weight-reading kernels: the few-token matrix product that dequantises in registers (the decode
// hot path), the dequantised tiles cuBLAS multiplies for many tokens, embedding lookups and the
// random fill of benchmark weights.
#include "kernels.cuh"
#include "quant.cuh"

namespace llmops::cuda {
namespace {

constexpr int kMatvecThreads = 128;  // one block per output row; each thread takes every 128th unit
constexpr int kTileTokens = 8;       // tokens one launch carries; more tokens take more launches

__device__ inline float warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

template <int TYPE, int NT>
__global__ void __launch_bounds__(kMatvecThreads) matvec_kernel(const uint8_t* __restrict__ w, uint64_t row_bytes, int cols,
                                                                 const float* __restrict__ x, int t, float* __restrict__ y,
                                                                 uint64_t rows, const float* __restrict__ bias) {
  __shared__ float partial[kMatvecThreads / 32][NT];
  const uint64_t row = blockIdx.x;
  const uint8_t* r = w + row * row_bytes;
  const int units = (cols + 31) / 32;
  const bool whole = (cols & 31) == 0;
  float acc[NT];
#pragma unroll
  for (int i = 0; i < NT; ++i) acc[i] = 0.0f;
  for (int u = threadIdx.x; u < units; u += kMatvecThreads) {
    float wv[32];
    load_unit<TYPE>(r, u, cols, wv);
#pragma unroll
    for (int tok = 0; tok < NT; ++tok) {
      if (tok >= t) break;
      const float* xr = x + static_cast<uint64_t>(tok) * cols + 32 * u;
      float sum = 0.0f;
      if (whole) {
        const float4* x4 = reinterpret_cast<const float4*>(xr);
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const float4 v = x4[i];
          sum += wv[4 * i] * v.x + wv[4 * i + 1] * v.y + wv[4 * i + 2] * v.z + wv[4 * i + 3] * v.w;
        }
      } else {
#pragma unroll
        for (int i = 0; i < 32; ++i) sum += 32 * u + i < cols ? wv[i] * xr[i] : 0.0f;
      }
      acc[tok] += sum;
    }
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
#pragma unroll
  for (int tok = 0; tok < NT; ++tok) {
    const float v = warp_sum(acc[tok]);
    if (lane == 0) partial[warp][tok] = v;
  }
  __syncthreads();
  if (threadIdx.x < NT && static_cast<int>(threadIdx.x) < t) {
    float sum = 0.0f;
#pragma unroll
    for (int wi = 0; wi < kMatvecThreads / 32; ++wi) sum += partial[wi][threadIdx.x];
    if (bias != nullptr) sum += bias[row];
    y[static_cast<uint64_t>(threadIdx.x) * rows + row] = sum;
  }
}

template <int TYPE>
cudaError_t matvec_typed(const void* w, uint64_t rows, uint64_t cols, const float* x, int t, float* y, const float* bias,
                         cudaStream_t s) {
  const uint64_t rb = row_bytes(TYPE, cols);
  const auto* wb = static_cast<const uint8_t*>(w);
  for (int done = 0; done < t; done += kTileTokens) {
    const int n = t - done < kTileTokens ? t - done : kTileTokens;
    const float* xt = x + static_cast<uint64_t>(done) * cols;
    float* yt = y + static_cast<uint64_t>(done) * rows;
    const dim3 grid(static_cast<unsigned>(rows));
    const int c = static_cast<int>(cols);
    if (n == 1) {
      matvec_kernel<TYPE, 1><<<grid, kMatvecThreads, 0, s>>>(wb, rb, c, xt, n, yt, rows, bias);
    } else if (n == 2) {
      matvec_kernel<TYPE, 2><<<grid, kMatvecThreads, 0, s>>>(wb, rb, c, xt, n, yt, rows, bias);
    } else if (n <= 4) {
      matvec_kernel<TYPE, 4><<<grid, kMatvecThreads, 0, s>>>(wb, rb, c, xt, n, yt, rows, bias);
    } else {
      matvec_kernel<TYPE, 8><<<grid, kMatvecThreads, 0, s>>>(wb, rb, c, xt, n, yt, rows, bias);
    }
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

template <int TYPE>
__global__ void dequantize_half_kernel(const uint8_t* __restrict__ w, uint64_t row_bytes, int cols, uint64_t row0, uint64_t n,
                                       __half* __restrict__ out) {
  const int units = (cols + 31) / 32;
  const uint64_t item = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x;
  if (item >= n * units) return;
  const uint64_t row = item / units;
  const int u = static_cast<int>(item % units);
  float wv[32];
  load_unit<TYPE>(w + (row0 + row) * row_bytes, u, cols, wv);
  __half* o = out + row * cols + 32 * u;
#pragma unroll
  for (int i = 0; i < 32; ++i) {
    if (32 * u + i < cols) o[i] = __float2half(wv[i]);
  }
}

__global__ void to_half_kernel(const float* __restrict__ x, uint64_t n, void* out, bool bf16) {
  const uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  if (bf16) {
    static_cast<__nv_bfloat16*>(out)[i] = __float2bfloat16(x[i]);
  } else {
    static_cast<__half*>(out)[i] = __float2half(x[i]);
  }
}

__global__ void add_bias_kernel(float* y, const float* bias, uint64_t rows, uint64_t n) {
  const uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x;
  if (i < n) y[i] += bias[i % rows];
}

__global__ void get_rows_kernel(int type, const uint8_t* table, uint64_t row_bytes, int cols, const int32_t* ids, float* out) {
  const int tok = blockIdx.y;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= cols) return;
  const uint8_t* row = table + static_cast<uint64_t>(ids[tok]) * row_bytes;
  out[static_cast<uint64_t>(tok) * cols + i] = weight_at(type, row, i);
}

__device__ inline uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
__device__ inline float uniform_pm1(uint64_t h) { return static_cast<float>(h >> 40) * (2.0f / 16777216.0f) - 1.0f; }
__device__ inline void put_half(uint8_t* p, float v) {
  const uint16_t b = __half_as_ushort(__float2half(v));
  p[0] = static_cast<uint8_t>(b & 0xFF);
  p[1] = static_cast<uint8_t>(b >> 8);
}

// One thread per block of the type (per element for float types): random quants with scales
// that keep every weight within ±scale.
__global__ void fill_random_kernel(int type, uint8_t* w, uint64_t blocks, uint64_t seed, float scale) {
  const uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x;
  if (i >= blocks) return;
  uint64_t h = mix64(seed ^ (i * 0x2545F4914F6CDD1Dull));
  const int bytes = block_bytes(type);
  uint8_t* b = w + i * bytes;
  switch (type) {
    case LLMOPS_DT_F32: reinterpret_cast<float*>(b)[0] = scale * uniform_pm1(h); return;
    case LLMOPS_DT_F16: put_half(b, scale * uniform_pm1(h)); return;
    case LLMOPS_DT_BF16: {
      const __nv_bfloat16 v = __float2bfloat16(scale * uniform_pm1(h));
      const uint16_t bits = *reinterpret_cast<const uint16_t*>(&v);
      b[0] = static_cast<uint8_t>(bits & 0xFF), b[1] = static_cast<uint8_t>(bits >> 8);
      return;
    }
  }
  for (int k = 0; k < bytes; ++k) {
    if ((k & 7) == 0) h = mix64(h);
    b[k] = static_cast<uint8_t>(h >> (8 * (k & 7)));
  }
  switch (type) {
    case LLMOPS_DT_Q8_0: put_half(b, scale / 127.0f); break;
    case LLMOPS_DT_Q4_0: put_half(b, scale / 8.0f); break;
    case LLMOPS_DT_Q4_K:
      put_half(b, scale / (63.0f * 15.0f) * 2.0f);
      put_half(b + 2, scale / 63.0f);
      break;
    case LLMOPS_DT_Q6_K: put_half(b + 208, scale / (127.0f * 32.0f)); break;
  }
}

unsigned blocks_for(uint64_t n, unsigned threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

}  // namespace

cudaError_t matvec(int type, const void* w, uint64_t rows, uint64_t cols, const float* x, int t, float* y, const float* bias,
                   cudaStream_t s) {
  switch (type) {
    case LLMOPS_DT_F32: return matvec_typed<LLMOPS_DT_F32>(w, rows, cols, x, t, y, bias, s);
    case LLMOPS_DT_F16: return matvec_typed<LLMOPS_DT_F16>(w, rows, cols, x, t, y, bias, s);
    case LLMOPS_DT_BF16: return matvec_typed<LLMOPS_DT_BF16>(w, rows, cols, x, t, y, bias, s);
    case LLMOPS_DT_Q8_0: return matvec_typed<LLMOPS_DT_Q8_0>(w, rows, cols, x, t, y, bias, s);
    case LLMOPS_DT_Q4_0: return matvec_typed<LLMOPS_DT_Q4_0>(w, rows, cols, x, t, y, bias, s);
    case LLMOPS_DT_Q4_K: return matvec_typed<LLMOPS_DT_Q4_K>(w, rows, cols, x, t, y, bias, s);
    case LLMOPS_DT_Q6_K: return matvec_typed<LLMOPS_DT_Q6_K>(w, rows, cols, x, t, y, bias, s);
  }
  return cudaErrorInvalidValue;
}

cudaError_t dequantize_half(int type, const void* w, uint64_t cols, uint64_t row0, uint64_t n, void* out_half, cudaStream_t s) {
  const uint64_t items = n * ((cols + 31) / 32);
  const unsigned threads = 256, grid = blocks_for(items, threads);
  const auto* wb = static_cast<const uint8_t*>(w);
  const uint64_t rb = row_bytes(type, cols);
  auto* o = static_cast<__half*>(out_half);
  const int c = static_cast<int>(cols);
  switch (type) {
    case LLMOPS_DT_Q8_0: dequantize_half_kernel<LLMOPS_DT_Q8_0><<<grid, threads, 0, s>>>(wb, rb, c, row0, n, o); break;
    case LLMOPS_DT_Q4_0: dequantize_half_kernel<LLMOPS_DT_Q4_0><<<grid, threads, 0, s>>>(wb, rb, c, row0, n, o); break;
    case LLMOPS_DT_Q4_K: dequantize_half_kernel<LLMOPS_DT_Q4_K><<<grid, threads, 0, s>>>(wb, rb, c, row0, n, o); break;
    case LLMOPS_DT_Q6_K: dequantize_half_kernel<LLMOPS_DT_Q6_K><<<grid, threads, 0, s>>>(wb, rb, c, row0, n, o); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t to_half(const float* x, uint64_t n, void* out, bool bf16, cudaStream_t s) {
  to_half_kernel<<<blocks_for(n, 256), 256, 0, s>>>(x, n, out, bf16);
  return cudaGetLastError();
}

cudaError_t add_bias(float* y, const float* bias, int t, uint64_t rows, cudaStream_t s) {
  const uint64_t n = static_cast<uint64_t>(t) * rows;
  add_bias_kernel<<<blocks_for(n, 256), 256, 0, s>>>(y, bias, rows, n);
  return cudaGetLastError();
}

cudaError_t get_rows(int type, const void* table, uint64_t cols, const int32_t* ids, int t, float* out, cudaStream_t s) {
  const dim3 grid(blocks_for(cols, 256), static_cast<unsigned>(t));
  get_rows_kernel<<<grid, 256, 0, s>>>(type, static_cast<const uint8_t*>(table), row_bytes(type, cols), static_cast<int>(cols), ids,
                                        out);
  return cudaGetLastError();
}

cudaError_t fill_random(int type, void* w, uint64_t rows, uint64_t cols, uint64_t seed, float scale, cudaStream_t s) {
  const uint64_t blocks = rows * (cols / block_weights(type));
  fill_random_kernel<<<blocks_for(blocks, 256), 256, 0, s>>>(type, static_cast<uint8_t*>(w), blocks, seed, scale);
  return cudaGetLastError();
}

}  // namespace llmops::cuda
