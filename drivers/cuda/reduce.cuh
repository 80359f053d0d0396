// Reductions and launch arithmetic shared by the kernel files. Every sum runs in a fixed order
// (lanes by xor shuffles, then warps in index order), so a result repeats bit for bit.
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

namespace llmops::cuda {

inline unsigned blocks_for(uint64_t n, unsigned threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

template <typename T>
__device__ inline T warp_sum(T v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

__device__ inline float warp_max(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the total.
// scratch: 32 values of shared memory.
template <typename T>
__device__ inline T block_sum(T v, T* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by an earlier call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T total = 0;
  for (int i = 0; i < warps; ++i) total += scratch[i];
  return total;
}

__device__ inline float block_max(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float m = -INFINITY;
  for (int i = 0; i < warps; ++i) m = fmaxf(m, scratch[i]);
  return m;
}

// The index of the first largest value over the block (ties go to the smaller index), for every
// thread; blockDim.x a power of two. vs and is: blockDim.x entries of shared memory.
__device__ inline int block_argmax(float v, int i, float* vs, int* is) {
  __syncthreads();  // vs and is may still be read by an earlier call
  vs[threadIdx.x] = v, is[threadIdx.x] = i;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (static_cast<int>(threadIdx.x) < stride) {
      const float ov = vs[threadIdx.x + stride];
      const int oi = is[threadIdx.x + stride];
      if (ov > vs[threadIdx.x] || (ov == vs[threadIdx.x] && oi < is[threadIdx.x])) vs[threadIdx.x] = ov, is[threadIdx.x] = oi;
    }
    __syncthreads();
  }
  return is[0];
}

// The first largest of a row of n (0 for a row of NaNs), for every thread of the block.
__device__ inline int row_argmax(const float* row, int n, float* vs, int* is) {
  float bv = -INFINITY;
  int bi = n;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    if (row[i] > bv) bv = row[i], bi = i;
  }
  const int best = block_argmax(bv, bi, vs, is);
  return best < n ? best : 0;
}

}  // namespace llmops::cuda
