// The small kernels of a transformer step: norms, RoPE, activations, the KV cache write,
// attention over the cache, and greedy sampling. Each mirrors the CPU runner's arithmetic
// (engine/model/model.cpp) so that the parity tests can hold them to tight bounds.
#include <math.h>

#include <algorithm>

#include "kernels.cuh"
#include "reduce.cuh"

namespace llmops::cuda {
namespace {

__global__ void norm_kernel(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b, float* __restrict__ y,
                            int n, float eps, bool layer) {
  __shared__ float scratch[32];
  const float* xr = x + static_cast<uint64_t>(blockIdx.x) * n;
  float* yr = y + static_cast<uint64_t>(blockIdx.x) * n;
  float mean = 0.0f;
  if (layer) {
    float s = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += xr[i];
    mean = block_sum(s, scratch) / static_cast<float>(n);
  }
  float ss = 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) ss += (xr[i] - mean) * (xr[i] - mean);
  const float scale = 1.0f / sqrtf(block_sum(ss, scratch) / static_cast<float>(n) + eps);
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    float v = w[i] * ((xr[i] - mean) * scale);
    if (b != nullptr) v += b[i];
    yr[i] = v;
  }
}

// sign −1 rotates back (the transpose: rope's backward pass).
__global__ void rope_kernel(float* x, int n_heads, int head_dim, int half, const int32_t* positions, const float* inv_freq, bool neox,
                            float sign) {
  const int tok = blockIdx.x;
  const float pos = static_cast<float>(positions[tok]);
  float* row = x + static_cast<uint64_t>(tok) * n_heads * head_dim;
  for (int item = threadIdx.x; item < n_heads * half; item += blockDim.x) {
    const int h = item / half, i = item % half;
    float sn, cs;
    sincosf(pos * inv_freq[i], &sn, &cs);
    sn *= sign;
    float* v = row + static_cast<uint64_t>(h) * head_dim;
    float* a = neox ? v + i : v + 2 * i;
    float* c = neox ? v + i + half : v + 2 * i + 1;
    const float v0 = *a, v1 = *c;
    *a = v0 * cs - v1 * sn;
    *c = v0 * sn + v1 * cs;
  }
}

__global__ void swiglu_kernel(const float* gate, const float* up, float* out, uint64_t n) {
  const uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

__global__ void gelu_kernel(float* x, uint64_t n) {
  const uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float v = x[i];
  x[i] = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
}

__global__ void add_kernel(float* acc, const float* x, uint64_t n) {
  const uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x;
  if (i < n) acc[i] += x[i];
}

__device__ inline uint64_t head_offset(const llmops_drv_kv_ref& r, int layer, int n_kv_heads, int kv_head, int head_dim) {
  return ((static_cast<uint64_t>(layer) * n_kv_heads + kv_head) * r.max_positions) * head_dim;
}

__global__ void kv_store_kernel(const float* k, const float* v, const llmops_drv_kv_ref* refs, int n_kv_heads, int head_dim, int layer) {
  const int tok = blockIdx.x, kv_dim = n_kv_heads * head_dim;
  const llmops_drv_kv_ref r = refs[tok];
  for (int i = threadIdx.x; i < kv_dim; i += blockDim.x) {
    const int h = i / head_dim, d = i % head_dim;
    const uint64_t at = head_offset(r, layer, n_kv_heads, h, head_dim) + static_cast<uint64_t>(r.pos) * head_dim + d;
    r.k[at] = k[static_cast<uint64_t>(tok) * kv_dim + i];
    r.v[at] = v[static_cast<uint64_t>(tok) * kv_dim + i];
  }
}

constexpr int kAttnWarps = 4;

// One block per (head, token). Each warp walks every kAttnWarps-th position with an online
// softmax, a lane holding head_dim/32 values of the query and the output; the warps' partial
// results merge at the end. PER_LANE = ceil(head_dim / 32).
template <int PER_LANE>
__global__ void __launch_bounds__(kAttnWarps * 32) attention_kernel(const float* __restrict__ q, float* __restrict__ out,
                                                                    const llmops_drv_kv_ref* refs, int n_heads, int n_kv_heads,
                                                                    int head_dim, int layer, float scale) {
  extern __shared__ float shared[];  // kAttnWarps × head_dim outputs, then maxima and sums
  float* part_o = shared;
  float* part_m = shared + kAttnWarps * head_dim;
  float* part_l = part_m + kAttnWarps;
  const int h = blockIdx.x, tok = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x / 32;
  const llmops_drv_kv_ref r = refs[tok];
  const uint64_t base = head_offset(r, layer, n_kv_heads, h / (n_heads / n_kv_heads), head_dim);
  const float* keys = r.k + base;
  const float* values = r.v + base;
  const float* qh = q + (static_cast<uint64_t>(tok) * n_heads + h) * head_dim;
  float qv[PER_LANE], o[PER_LANE];
#pragma unroll
  for (int i = 0; i < PER_LANE; ++i) {
    const int d = lane + 32 * i;
    qv[i] = d < head_dim ? qh[d] : 0.0f;
    o[i] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int p = warp; p <= r.pos; p += kAttnWarps) {
    const float* kp = keys + static_cast<uint64_t>(p) * head_dim;
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < PER_LANE; ++i) {
      const int d = lane + 32 * i;
      if (d < head_dim) s += qv[i] * kp[d];
    }
    s = warp_sum(s) * scale;
    const float m_new = fmaxf(m, s);
    const float correction = expf(m - m_new), e = expf(s - m_new);
    l = l * correction + e;
    const float* vp = values + static_cast<uint64_t>(p) * head_dim;
#pragma unroll
    for (int i = 0; i < PER_LANE; ++i) {
      const int d = lane + 32 * i;
      o[i] = o[i] * correction + (d < head_dim ? e * vp[d] : 0.0f);
    }
    m = m_new;
  }
#pragma unroll
  for (int i = 0; i < PER_LANE; ++i) {
    const int d = lane + 32 * i;
    if (d < head_dim) part_o[warp * head_dim + d] = o[i];
  }
  if (lane == 0) part_m[warp] = m, part_l[warp] = l;
  __syncthreads();
  float top = -INFINITY;
  for (int w = 0; w < kAttnWarps; ++w) top = fmaxf(top, part_m[w]);
  float total = 0.0f;
  for (int w = 0; w < kAttnWarps; ++w) total += part_m[w] == -INFINITY ? 0.0f : part_l[w] * expf(part_m[w] - top);
  float* oh = out + (static_cast<uint64_t>(tok) * n_heads + h) * head_dim;
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float v = 0.0f;
    for (int w = 0; w < kAttnWarps; ++w) {
      if (part_m[w] != -INFINITY) v += part_o[w * head_dim + d] * expf(part_m[w] - top);
    }
    oh[d] = v / total;
  }
}

// The same attention with the scores in shared memory, for contexts that fit there: a thread
// per position computes its score (the key row read with 16-byte loads, the query broadcast
// from shared memory), one block reduction gives the softmax, then threads over (position
// group, dimension) sum the values, coalesced. No dependent chain runs per position, so the
// loads of many positions are in flight at once (the online kernel above waits on each).
// With splits > 1 (few heads × tokens to fill the GPU), block z takes one slice of the
// positions and leaves its maximum, sum and unnormalised output in partials for combine.
constexpr int kScoreThreads = 256;

__global__ void __launch_bounds__(kScoreThreads) attention_scores_kernel(const float* __restrict__ q, float* __restrict__ out,
                                                                         const llmops_drv_kv_ref* refs, int n_heads, int n_kv_heads,
                                                                         int head_dim, int layer, float scale, int capacity, int splits,
                                                                         float* __restrict__ partials) {
  extern __shared__ __align__(16) float score_shared[];  // query (head_dim), scores (a slice), partials (groups × head_dim)
  __shared__ float reduce[32];
  const int h = blockIdx.x, tok = blockIdx.y, split = blockIdx.z;
  const llmops_drv_kv_ref r = refs[tok];
  const int n = r.pos + 1, groups = kScoreThreads / head_dim;
  if (n > capacity) return;  // the caller's bound was wrong: the output stays unwritten (tests poison it)
  const int slice = (n + splits - 1) / splits, begin = min(n, split * slice), end = min(n, begin + slice);
  float* qs = score_shared;
  float* scores = score_shared + head_dim;
  float* part = scores + ((slice + 3) & ~3);
  const uint64_t base = head_offset(r, layer, n_kv_heads, h / (n_heads / n_kv_heads), head_dim);
  const float* keys = r.k + base;
  const float* values = r.v + base;
  const float* qh = q + (static_cast<uint64_t>(tok) * n_heads + h) * head_dim;
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) qs[d] = qh[d];
  __syncthreads();
  float local_max = -INFINITY;
  for (int p = begin + threadIdx.x; p < end; p += blockDim.x) {
    const float4* kp = reinterpret_cast<const float4*>(keys + static_cast<uint64_t>(p) * head_dim);
    const float4* q4 = reinterpret_cast<const float4*>(qs);
    float s = 0.0f;
    for (int d = 0; d < head_dim / 4; ++d) {
      const float4 k = kp[d], qq = q4[d];
      s += qq.x * k.x + qq.y * k.y + qq.z * k.z + qq.w * k.w;
    }
    s *= scale;
    scores[p - begin] = s;
    local_max = fmaxf(local_max, s);
  }
  // Block maximum, then the exponentials and their sum.
  float m = local_max;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
  if ((threadIdx.x & 31) == 0) reduce[threadIdx.x / 32] = m;
  __syncthreads();
  m = -INFINITY;
  for (int i = 0; i < kScoreThreads / 32; ++i) m = fmaxf(m, reduce[i]);
  float local_sum = 0.0f;
  for (int p = begin + threadIdx.x; p < end; p += blockDim.x) {
    const float e = expf(scores[p - begin] - m);
    scores[p - begin] = e;
    local_sum += e;
  }
  const float total = block_sum(local_sum, reduce);  // its barriers also publish the scores
  const int d = threadIdx.x % head_dim, g = threadIdx.x / head_dim;
  if (g < groups) {
    float o = 0.0f;
    for (int p = begin + g; p < end; p += groups) o += scores[p - begin] * values[static_cast<uint64_t>(p) * head_dim + d];
    part[g * head_dim + d] = o;
  }
  __syncthreads();
  if (threadIdx.x < head_dim) {
    float o = 0.0f;
    for (int i = 0; i < groups; ++i) o += part[i * head_dim + threadIdx.x];
    if (splits == 1) {
      out[(static_cast<uint64_t>(tok) * n_heads + h) * head_dim + threadIdx.x] = o / total;
    } else {
      float* slot = partials + ((static_cast<uint64_t>(tok) * n_heads + h) * splits + split) * (head_dim + 2);
      slot[2 + threadIdx.x] = o;
      if (threadIdx.x == 0) slot[0] = m, slot[1] = total;  // an empty slice leaves m = -inf, total = 0
    }
  }
}

__global__ void attention_combine_kernel(const float* __restrict__ partials, float* __restrict__ out, int n_heads, int head_dim, int splits) {
  const int h = blockIdx.x, tok = blockIdx.y;
  const float* slots = partials + (static_cast<uint64_t>(tok) * n_heads + h) * splits * (head_dim + 2);
  float top = -INFINITY;
  for (int s = 0; s < splits; ++s) top = fmaxf(top, slots[s * (head_dim + 2)]);
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float total = 0.0f, o = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float* slot = slots + s * (head_dim + 2);
      if (slot[0] == -INFINITY) continue;
      const float f = expf(slot[0] - top);
      total += slot[1] * f;
      o += slot[2 + d] * f;
    }
    out[(static_cast<uint64_t>(tok) * n_heads + h) * head_dim + d] = o / total;
  }
}

// The first largest value of each row (the CPU sampler's tie rule).
__global__ void argmax_kernel(const float* logits, int n, int32_t* ids) {
  __shared__ float best_v[256];
  __shared__ int best_i[256];
  const int best = row_argmax(logits + static_cast<uint64_t>(blockIdx.x) * n, n, best_v, best_i);
  if (threadIdx.x == 0) ids[blockIdx.x] = best;
}

}  // namespace

cudaError_t rms_norm(const float* x, const float* w, const float* b, float* y, int t, int n, float eps, bool layer, cudaStream_t s) {
  norm_kernel<<<t, 256, 0, s>>>(x, w, b, y, n, eps, layer);
  return cudaGetLastError();
}

cudaError_t rope(float* x, int t, int n_heads, int head_dim, int rope_dims, const int32_t* positions, const float* inv_freq, bool neox,
                 bool inverse, cudaStream_t s) {
  rope_kernel<<<t, 256, 0, s>>>(x, n_heads, head_dim, rope_dims / 2, positions, inv_freq, neox, inverse ? -1.0f : 1.0f);
  return cudaGetLastError();
}

cudaError_t swiglu(const float* gate, const float* up, float* out, uint64_t n, cudaStream_t s) {
  swiglu_kernel<<<blocks_for(n, 256), 256, 0, s>>>(gate, up, out, n);
  return cudaGetLastError();
}

cudaError_t gelu(float* x, uint64_t n, cudaStream_t s) {
  gelu_kernel<<<blocks_for(n, 256), 256, 0, s>>>(x, n);
  return cudaGetLastError();
}

cudaError_t add(float* acc, const float* x, uint64_t n, cudaStream_t s) {
  add_kernel<<<blocks_for(n, 256), 256, 0, s>>>(acc, x, n);
  return cudaGetLastError();
}

cudaError_t kv_store(const float* k, const float* v, int t, const llmops_drv_kv_ref* refs, const llmops_drv_attn_shape& shape,
                     cudaStream_t s) {
  kv_store_kernel<<<t, 256, 0, s>>>(k, v, refs, shape.n_kv_heads, shape.head_dim, shape.layer);
  return cudaGetLastError();
}

int attention_splits(int t, const llmops_drv_attn_shape& shape, int multiprocessors) {
  const int blocks = shape.n_heads * t;
  if (shape.head_dim % 4 != 0 || blocks >= 2 * multiprocessors) return 1;
  // Enough slices to give every multiprocessor two blocks, none shorter than 128 positions.
  const int want = (2 * multiprocessors + blocks - 1) / blocks, most = (shape.max_positions + 127) / 128;
  return std::max(1, std::min(want, most));
}

uint64_t attention_scratch_bytes(int t, const llmops_drv_attn_shape& shape, int splits) {
  return splits <= 1 ? 0 : static_cast<uint64_t>(t) * shape.n_heads * splits * (shape.head_dim + 2) * sizeof(float);
}

cudaError_t attention(const float* q, float* out, int t, const llmops_drv_kv_ref* refs, const llmops_drv_attn_shape& shape, int splits,
                      float* partials, cudaStream_t s) {
  const int capacity = shape.max_positions;
  const int slice = (capacity + splits - 1) / splits;
  // Scores in shared memory when a slice fits in 48 KB with the query and the partial outputs.
  const size_t score_bytes = (static_cast<size_t>(shape.head_dim) + ((slice + 3) & ~3) + kScoreThreads) * sizeof(float);
  if (shape.head_dim % 4 == 0 && shape.head_dim <= kScoreThreads && score_bytes <= 48 * 1024) {
    const dim3 grid(static_cast<unsigned>(shape.n_heads), static_cast<unsigned>(t), static_cast<unsigned>(splits));
    attention_scores_kernel<<<grid, kScoreThreads, score_bytes, s>>>(q, out, refs, shape.n_heads, shape.n_kv_heads, shape.head_dim,
                                                                      shape.layer, shape.scale, capacity, splits, partials);
    if (splits > 1) {
      attention_combine_kernel<<<dim3(static_cast<unsigned>(shape.n_heads), static_cast<unsigned>(t)), 128, 0, s>>>(partials, out, shape.n_heads,
                                                                                                                  shape.head_dim, splits);
    }
    return cudaGetLastError();
  }
  const dim3 grid(static_cast<unsigned>(shape.n_heads), static_cast<unsigned>(t));
  const size_t shared = (static_cast<size_t>(kAttnWarps) * shape.head_dim + 2 * kAttnWarps) * sizeof(float);
  const int per_lane = (shape.head_dim + 31) / 32;
  const int threads = kAttnWarps * 32;
  if (per_lane <= 1) {
    attention_kernel<1><<<grid, threads, shared, s>>>(q, out, refs, shape.n_heads, shape.n_kv_heads, shape.head_dim, shape.layer, shape.scale);
  } else if (per_lane <= 2) {
    attention_kernel<2><<<grid, threads, shared, s>>>(q, out, refs, shape.n_heads, shape.n_kv_heads, shape.head_dim, shape.layer, shape.scale);
  } else if (per_lane <= 4) {
    attention_kernel<4><<<grid, threads, shared, s>>>(q, out, refs, shape.n_heads, shape.n_kv_heads, shape.head_dim, shape.layer, shape.scale);
  } else if (per_lane <= 8) {
    attention_kernel<8><<<grid, threads, shared, s>>>(q, out, refs, shape.n_heads, shape.n_kv_heads, shape.head_dim, shape.layer, shape.scale);
  } else {
    return cudaErrorInvalidValue;  // head_dim > 256: refused by the caller first
  }
  return cudaGetLastError();
}

cudaError_t argmax(const float* logits, int t, int n, int32_t* ids, cudaStream_t s) {
  argmax_kernel<<<t, 256, 0, s>>>(logits, n, ids);
  return cudaGetLastError();
}

}  // namespace llmops::cuda
