// Sampling on the device (driver.h's sample()): penalties, temperature, top-k, min-p and top-p
// as the host sampler makes them (engine/model/sampler.cpp), but as thresholds found by binary
// search over the weights' float bits instead of a sort, and the draw from the counter hash.
// One block per row; every sum runs in a fixed order, so a draw repeats bit for bit.
#include <math.h>

#include "kernels.cuh"
#include "reduce.cuh"
#include "llmops/counter_hash.h"

namespace llmops::cuda {
namespace {

constexpr int kSampleThreads = 256;
constexpr uint32_t kOneBits = 0x3F800000u;  // 1.0f: the largest weight, exp(0)

__device__ inline float from_bits(uint32_t b) { return __uint_as_float(b); }

__device__ int block_count(const float* w, int n, float floor, int* scratch) {
  int c = 0;
  for (int j = threadIdx.x; j < n; j += blockDim.x) c += w[j] >= floor;
  return block_sum(c, scratch);
}

__device__ float block_mass(const float* w, int n, float floor, float* scratch) {
  float m = 0.0f;
  for (int j = threadIdx.x; j < n; j += blockDim.x) m += w[j] >= floor ? w[j] : 0.0f;
  return block_sum(m, scratch);
}

__global__ void __launch_bounds__(kSampleThreads) sample_kernel(float* logits, int n, const llmops_drv_sampling* rows, const int32_t* ptok,
                                                                const int32_t* pcnt, int32_t* ids) {
  __shared__ float redf[32];
  __shared__ int redi[32];
  __shared__ float part[kSampleThreads];
  __shared__ int best_i[kSampleThreads];
  __shared__ float best_v[kSampleThreads];
  const llmops_drv_sampling r = rows[blockIdx.x];
  float* x = logits + static_cast<uint64_t>(blockIdx.x) * n;
  for (int e = threadIdx.x; e < r.penalty_count; e += blockDim.x) {  // each seen token once: no two threads share one
    const int tok = ptok[r.penalty_first + e];
    if (tok < 0 || tok >= n) continue;
    float l = x[tok];
    if (r.repetition_penalty != 1.0f) l = l > 0.0f ? l / r.repetition_penalty : l * r.repetition_penalty;
    x[tok] = l - static_cast<float>(pcnt[r.penalty_first + e]) * r.frequency_penalty - r.presence_penalty;
  }
  __syncthreads();
  if (r.temperature <= 0.0f) {  // the first largest logit
    const int best = row_argmax(x, n, best_v, best_i);
    if (threadIdx.x == 0) ids[blockIdx.x] = best;
    return;
  }
  float m = -INFINITY;
  for (int j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, x[j]);
  m = block_max(m, redf);
  for (int j = threadIdx.x; j < n; j += blockDim.x) x[j] = expf((x[j] - m) / r.temperature);
  __syncthreads();
  // top_k: the largest threshold that keeps at least k weights.
  float floor = 0.0f;
  if (r.top_k > 0 && r.top_k < n) {
    uint32_t lo = 0, hi = kOneBits;
    while (lo < hi) {
      const uint32_t mid = lo + (hi - lo + 1) / 2;
      if (block_count(x, n, from_bits(mid), redi) >= r.top_k) lo = mid;
      else hi = mid - 1;
    }
    floor = from_bits(lo);
  }
  const float norm = block_mass(x, n, floor, redf);
  if (r.min_p > 0.0f) floor = fmaxf(floor, r.min_p);
  // top_p: the largest threshold whose kept mass still reaches top_p of the top-k's.
  if (r.top_p < 1.0f) {
    const float target = r.top_p * norm;
    uint32_t lo = __float_as_uint(floor), hi = kOneBits;
    while (lo < hi) {
      const uint32_t mid = lo + (hi - lo + 1) / 2;
      if (block_mass(x, n, from_bits(mid), redf) >= target) lo = mid;
      else hi = mid - 1;
    }
    floor = fmaxf(floor, from_bits(lo));
  }
  // The draw: each thread a contiguous slice of the vocabulary, slices' masses summed in order.
  const int chunk = (n + static_cast<int>(blockDim.x) - 1) / static_cast<int>(blockDim.x);
  const int begin = min(n, static_cast<int>(threadIdx.x) * chunk), end = min(n, begin + chunk);
  float mine = 0.0f;
  int last = -1;
  for (int j = begin; j < end; ++j) {
    if (x[j] >= floor) mine += x[j], last = j;
  }
  part[threadIdx.x] = mine;
  best_i[threadIdx.x] = last;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.0f;
    int fallback = 0;
    for (int i = 0; i < static_cast<int>(blockDim.x); ++i) {
      total += part[i];
      if (best_i[i] >= 0) fallback = best_i[i];
    }
    const float target = llmops_draw_unit(r.seed, r.counter) * total;
    float before = 0.0f;
    int pick = fallback;  // rounding past the end: the last kept token
    for (int i = 0; i < static_cast<int>(blockDim.x); ++i) {
      if (before + part[i] > target && part[i] > 0.0f) {
        const int b = min(n, i * chunk), e = min(n, b + chunk);
        float cum = before;
        for (int j = b; j < e; ++j) {
          if (x[j] >= floor && (cum += x[j]) > target) {
            pick = j;
            break;
          }
        }
        break;
      }
      before += part[i];
    }
    ids[blockIdx.x] = pick;
  }
}

}  // namespace

cudaError_t sample(float* logits, int t, int n, const llmops_drv_sampling* rows, const int32_t* penalty_tokens, const int32_t* penalty_counts,
                   int32_t* ids, cudaStream_t s) {
  sample_kernel<<<t, kSampleThreads, 0, s>>>(logits, n, rows, penalty_tokens, penalty_counts, ids);
  return cudaGetLastError();
}

}  // namespace llmops::cuda
