// Training kernels: the backward passes of the ops a Llama step runs (RMSNorm, SwiGLU, causal
// attention over whole sequences, the embedding), softmax cross-entropy, the gradient norm and
// AdamW. They mirror engine/train/llama_train.cpp's arithmetic so that the parity tests can
// hold them to tight bounds, and every sum runs in a fixed order (no atomics): a training run
// repeats bit for bit.
#include <math.h>

#include "kernels.cuh"
#include "reduce.cuh"
#include "llmops/counter_hash.h"

namespace llmops::cuda {
namespace {

constexpr int kAttnThreads = 128;           // four warps per attention block
constexpr int kMaxHeadSlices = 8;           // head_dim up to 8 × 32 lanes
constexpr int kSumBlocks = 256;
constexpr int kMaxSharedBytes = 48 * 1024;  // without opting in to more

__global__ void rms_norm_backward_rows(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ dy,
                                       float* __restrict__ dx, float* __restrict__ rstd, int n, float eps) {
  __shared__ float scratch[32];
  const uint64_t off = static_cast<uint64_t>(blockIdx.x) * n;
  float ss = 0.0f, dot = 0.0f;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    const float xj = x[off + j];
    ss += xj * xj;
    dot += w[j] * dy[off + j] * xj;
  }
  const float r = 1.0f / sqrtf(block_sum(ss, scratch) / static_cast<float>(n) + eps);
  const float k = block_sum(dot, scratch) * r * r * r / static_cast<float>(n);
  for (int j = threadIdx.x; j < n; j += blockDim.x) dx[off + j] += r * w[j] * dy[off + j] - k * x[off + j];
  if (threadIdx.x == 0) rstd[blockIdx.x] = r;
}

// dw[j] += Σ over rows (in order) of dy ⊙ x·r: one thread per column, reads coalesced across a warp.
__global__ void rms_norm_backward_weights(const float* __restrict__ x, const float* __restrict__ dy, const float* __restrict__ rstd,
                                          float* __restrict__ dw, int t, int n) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= n) return;
  float acc = 0.0f;
  for (int i = 0; i < t; ++i) acc += dy[static_cast<uint64_t>(i) * n + j] * x[static_cast<uint64_t>(i) * n + j] * rstd[i];
  dw[j] += acc;
}

__global__ void layer_norm_backward_rows(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ dy,
                                         float* __restrict__ dx, float* __restrict__ stats, int n, float eps) {
  __shared__ float scratch[32];
  const uint64_t off = static_cast<uint64_t>(blockIdx.x) * n;
  float s = 0.0f;
  for (int j = threadIdx.x; j < n; j += blockDim.x) s += x[off + j];
  const float mean = block_sum(s, scratch) / static_cast<float>(n);
  float ss = 0.0f;
  for (int j = threadIdx.x; j < n; j += blockDim.x) ss += (x[off + j] - mean) * (x[off + j] - mean);
  const float r = 1.0f / sqrtf(block_sum(ss, scratch) / static_cast<float>(n) + eps);
  float gs = 0.0f, gx = 0.0f;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    const float g = dy[off + j] * w[j];
    gs += g;
    gx += g * (x[off + j] - mean) * r;
  }
  const float gm = block_sum(gs, scratch) / static_cast<float>(n), gxm = block_sum(gx, scratch) / static_cast<float>(n);
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    const float xh = (x[off + j] - mean) * r;
    dx[off + j] += r * (dy[off + j] * w[j] - gm - xh * gxm);
  }
  if (threadIdx.x == 0) stats[2 * blockIdx.x] = mean, stats[2 * blockIdx.x + 1] = r;
}

// dw and db may be the same buffer (a frozen norm's gradient sink under LoRA): no __restrict__.
__global__ void layer_norm_backward_weights(const float* __restrict__ x, const float* __restrict__ dy, const float* __restrict__ stats,
                                            float* dw, float* db, int t, int n) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= n) return;
  float aw = 0.0f, ab = 0.0f;
  for (int i = 0; i < t; ++i) {
    const uint64_t at = static_cast<uint64_t>(i) * n + j;
    aw += dy[at] * (x[at] - stats[2 * i]) * stats[2 * i + 1];
    ab += dy[at];
  }
  dw[j] += aw;
  db[j] += ab;
}

__global__ void bias_backward_kernel(const float* __restrict__ dy, float* __restrict__ db, int t, uint64_t n) {
  const uint64_t j = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x;
  if (j >= n) return;
  float acc = 0.0f;
  for (int i = 0; i < t; ++i) acc += dy[static_cast<uint64_t>(i) * n + j];
  db[j] += acc;
}

__global__ void gelu_backward_kernel(const float* x, const float* dy, float* dx, uint64_t n) {
  const uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float v = x[i], c = 0.7978845608028654f;
  const float th = tanhf(c * (v + 0.044715f * v * v * v));
  dx[i] = dy[i] * (0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * c * (1.0f + 3.0f * 0.044715f * v * v));
}

__global__ void swiglu_backward_kernel(const float* gate, const float* up, const float* dh, float* dgate, float* dup, uint64_t n) {
  const uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float g = gate[i], sig = 1.0f / (1.0f + expf(-g));
  dup[i] = dh[i] * g * sig;
  dgate[i] = dh[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
}

struct AttnIndex {
  int seq, heads, kv_heads, head_dim;
  __device__ const float* qrow(const float* q, int b, int t, int h) const {
    return q + ((static_cast<uint64_t>(b) * seq + t) * heads + h) * head_dim;
  }
  __device__ const float* kvrow(const float* k, int b, int u, int kvh) const {
    return k + ((static_cast<uint64_t>(b) * seq + u) * kv_heads + kvh) * head_dim;
  }
  __device__ uint64_t stat(int b, int h, int t) const { return (static_cast<uint64_t>(b) * heads + h) * seq + t; }
};

// Scaled dot product of a query row (in shared memory or global) with a key row, over a warp.
__device__ inline float warp_dot(const float* a, const float* b, int n) {
  float s = 0.0f;
  for (int d = threadIdx.x & 31; d < n; d += 32) s += a[d] * b[d];
  return warp_sum(s);
}

// One block per (query position, head, sequence): the scores of positions 0..t in shared memory,
// their softmax, then the weighted sum of values (threads over head_dim, positions in order).
__global__ void __launch_bounds__(kAttnThreads) attention_train_kernel(const float* __restrict__ q, const float* __restrict__ k,
                                                                       const float* __restrict__ v, float* __restrict__ out,
                                                                       float* __restrict__ lse, AttnIndex ix, float scale) {
  extern __shared__ __align__(16) float shared[];
  __shared__ float red[32];
  const int t = blockIdx.x, h = blockIdx.y, b = blockIdx.z, kvh = h / (ix.heads / ix.kv_heads);
  const int warp = threadIdx.x / 32, warps = blockDim.x / 32;
  float* qs = shared;
  float* sc = shared + ix.head_dim;
  const float* qr = ix.qrow(q, b, t, h);
  for (int d = threadIdx.x; d < ix.head_dim; d += blockDim.x) qs[d] = qr[d];
  __syncthreads();
  for (int u = warp; u <= t; u += warps) {
    const float s = warp_dot(qs, ix.kvrow(k, b, u, kvh), ix.head_dim) * scale;
    if ((threadIdx.x & 31) == 0) sc[u] = s;
  }
  float m = -INFINITY;
  __syncthreads();
  for (int u = threadIdx.x; u <= t; u += blockDim.x) m = fmaxf(m, sc[u]);
  m = block_max(m, red);
  float sum = 0.0f;
  for (int u = threadIdx.x; u <= t; u += blockDim.x) {
    const float e = expf(sc[u] - m);
    sc[u] = e;
    sum += e;
  }
  sum = block_sum(sum, red);  // its barriers also publish the exponentials
  if (threadIdx.x == 0) lse[ix.stat(b, h, t)] = m + logf(sum);
  const float inv = 1.0f / sum;
  float* orow = out + ((static_cast<uint64_t>(b) * ix.seq + t) * ix.heads + h) * ix.head_dim;
  for (int d = threadIdx.x; d < ix.head_dim; d += blockDim.x) {
    float o = 0.0f;
    for (int u = 0; u <= t; ++u) o += sc[u] * ix.kvrow(v, b, u, kvh)[d];
    orow[d] = o * inv;
  }
}

// delta[b][h][t] = dout · out for each row (softmax backward's row term): a warp per row.
__global__ void attention_delta_kernel(const float* __restrict__ out, const float* __restrict__ dout, float* __restrict__ delta,
                                       AttnIndex ix, uint64_t rows) {
  const uint64_t row = blockIdx.x * static_cast<uint64_t>(blockDim.x / 32) + threadIdx.x / 32;  // (b·seq + t)·heads + h
  if (row >= rows) return;
  const float s = warp_dot(out + row * ix.head_dim, dout + row * ix.head_dim, ix.head_dim);
  if ((threadIdx.x & 31) == 0) {
    const int h = static_cast<int>(row % ix.heads);
    const uint64_t bt = row / ix.heads;
    delta[ix.stat(static_cast<int>(bt / ix.seq), h, static_cast<int>(bt % ix.seq))] = s;
  }
}

// Adds each warp's slice of head_dim accumulators across the block in warp order and hands the
// totals to threads d < head_dim (through shared memory: warps × head_dim floats).
__device__ void reduce_slices(const float (&acc)[kMaxHeadSlices], float* shared, int head_dim, float scale, float* dst) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  __syncthreads();
#pragma unroll
  for (int i = 0; i < kMaxHeadSlices; ++i) {
    const int d = lane + 32 * i;
    if (d < head_dim) shared[warp * head_dim + d] = acc[i];
  }
  __syncthreads();
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float s = 0.0f;
    for (int w = 0; w < warps; ++w) s += shared[w * head_dim + d];
    dst[d] = s * scale;
  }
}

// dq of one query row: Σ over positions u <= t of ds(t, u)·k[u], ds = p·(dp − delta), the
// probabilities recomputed from lse. Warps take positions, lanes slices of head_dim.
__global__ void __launch_bounds__(kAttnThreads) attention_dq_kernel(const float* __restrict__ q, const float* __restrict__ k,
                                                                    const float* __restrict__ v, const float* __restrict__ lse,
                                                                    const float* __restrict__ delta, const float* __restrict__ dout,
                                                                    float* __restrict__ dq, AttnIndex ix, float scale) {
  extern __shared__ __align__(16) float shared[];
  const int t = blockIdx.x, h = blockIdx.y, b = blockIdx.z, kvh = h / (ix.heads / ix.kv_heads);
  const int lane = threadIdx.x & 31, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const float* qr = ix.qrow(q, b, t, h);
  const float* dor = ix.qrow(dout, b, t, h);
  const float l = lse[ix.stat(b, h, t)], dl = delta[ix.stat(b, h, t)];
  float acc[kMaxHeadSlices] = {};
  for (int u = warp; u <= t; u += warps) {
    const float* kr = ix.kvrow(k, b, u, kvh);
    const float p = expf(warp_dot(qr, kr, ix.head_dim) * scale - l);
    const float ds = p * (warp_dot(dor, ix.kvrow(v, b, u, kvh), ix.head_dim) - dl);
#pragma unroll
    for (int i = 0; i < kMaxHeadSlices; ++i) {
      const int d = lane + 32 * i;
      if (d < ix.head_dim) acc[i] += ds * kr[d];
    }
  }
  reduce_slices(acc, shared, ix.head_dim, scale, dq + ((static_cast<uint64_t>(b) * ix.seq + t) * ix.heads + h) * ix.head_dim);
}

// dk and dv of one key position u of a kv head: every head of its group and every query t >= u
// adds in, (head, t) pairs dealt to warps in a fixed order.
__global__ void __launch_bounds__(kAttnThreads) attention_dkv_kernel(const float* __restrict__ q, const float* __restrict__ k,
                                                                     const float* __restrict__ v, const float* __restrict__ lse,
                                                                     const float* __restrict__ delta, const float* __restrict__ dout,
                                                                     float* __restrict__ dk, float* __restrict__ dv, AttnIndex ix,
                                                                     float scale) {
  extern __shared__ __align__(16) float shared[];
  const int u = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z, group = ix.heads / ix.kv_heads;
  const int lane = threadIdx.x & 31, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const float* kr = ix.kvrow(k, b, u, kvh);
  const float* vr = ix.kvrow(v, b, u, kvh);
  const int span = ix.seq - u, pairs = group * span;
  float acc_k[kMaxHeadSlices] = {}, acc_v[kMaxHeadSlices] = {};
  for (int j = warp; j < pairs; j += warps) {
    const int h = kvh * group + j / span, t = u + j % span;
    const float* qr = ix.qrow(q, b, t, h);
    const float* dor = ix.qrow(dout, b, t, h);
    const float p = expf(warp_dot(qr, kr, ix.head_dim) * scale - lse[ix.stat(b, h, t)]);
    const float ds = p * (warp_dot(dor, vr, ix.head_dim) - delta[ix.stat(b, h, t)]);
#pragma unroll
    for (int i = 0; i < kMaxHeadSlices; ++i) {
      const int d = lane + 32 * i;
      if (d < ix.head_dim) {
        acc_v[i] += p * dor[d];
        acc_k[i] += ds * qr[d];
      }
    }
  }
  const uint64_t row = ((static_cast<uint64_t>(b) * ix.seq + u) * ix.kv_heads + kvh) * ix.head_dim;
  reduce_slices(acc_k, shared, ix.head_dim, scale, dk + row);
  reduce_slices(acc_v, shared, ix.head_dim, 1.0f, dv + row);
}

// A row of logits becomes (softmax − onehot)·scale; loss = log Σ exp − logit[target].
__global__ void cross_entropy_kernel(float* logits, const int32_t* targets, int n, float scale, float* loss) {
  __shared__ float red[32];
  float* x = logits + static_cast<uint64_t>(blockIdx.x) * n;
  const int target = targets[blockIdx.x];
  if (target < 0 || target >= n) {  // masked (or out of range: a NaN loss says so)
    for (int j = threadIdx.x; j < n; j += blockDim.x) x[j] = 0.0f;
    if (threadIdx.x == 0) loss[blockIdx.x] = target < 0 ? 0.0f : NAN;
    return;
  }
  const float xt = x[target];
  float m = -INFINITY;
  for (int j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, x[j]);
  m = block_max(m, red);
  float sum = 0.0f;
  for (int j = threadIdx.x; j < n; j += blockDim.x) sum += expf(x[j] - m);
  sum = block_sum(sum, red);
  if (threadIdx.x == 0) loss[blockIdx.x] = logf(sum) + m - xt;
  const float inv = 1.0f / sum;
  for (int j = threadIdx.x; j < n; j += blockDim.x) x[j] = (expf(x[j] - m) * inv - (j == target ? 1.0f : 0.0f)) * scale;
}

__global__ void embedding_backward_kernel(const int32_t* ids, const float* dx, int t, uint64_t cols, float* grad) {
  const uint64_t j = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x;
  if (j >= cols) return;
  for (int i = 0; i < t; ++i) grad[static_cast<uint64_t>(ids[i]) * cols + j] += dx[static_cast<uint64_t>(i) * cols + j];
}

__global__ void sum_squares_blocks(const float* x, uint64_t n, double* partials) {
  __shared__ double red[32];
  double acc = 0.0;
  for (uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    acc += static_cast<double>(x[i]) * x[i];
  }
  acc = block_sum(acc, red);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void sum_partials(const double* partials, int n, double* out) {
  __shared__ double red[32];
  double acc = 0.0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) acc += partials[i];
  acc = block_sum(acc, red);
  if (threadIdx.x == 0) out[0] = acc;
}

__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, uint64_t n, llmops_drv_adamw h) {
  const uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float gi = g[i] * h.grad_scale;
  const float mi = h.beta1 * m[i] + (1.0f - h.beta1) * gi;
  const float vi = h.beta2 * v[i] + (1.0f - h.beta2) * gi * gi;
  m[i] = mi, v[i] = vi;
  p[i] -= h.lr * ((mi / h.bias1) / (sqrtf(vi / h.bias2) + h.eps) + h.weight_decay * p[i]);
}

__global__ void dropout_kernel(const float* x, float* y, uint64_t n, float p, float scale, uint64_t key) {
  const uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float u = llmops_hash_unit(key, i);
  y[i] = u >= p ? x[i] * scale : 0.0f;
}

AttnIndex index_of(const llmops_drv_train_attn& a) { return {a.seq, a.n_heads, a.n_kv_heads, a.head_dim}; }

}  // namespace

cudaError_t rms_norm_backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* rstd, int t, int n, float eps,
                              cudaStream_t s) {
  rms_norm_backward_rows<<<t, 256, 0, s>>>(x, w, dy, dx, rstd, n, eps);
  rms_norm_backward_weights<<<blocks_for(static_cast<uint64_t>(n), 128), 128, 0, s>>>(x, dy, rstd, dw, t, n);
  return cudaGetLastError();
}

cudaError_t layer_norm_backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db, float* stats, int t, int n,
                                float eps, cudaStream_t s) {
  layer_norm_backward_rows<<<t, 256, 0, s>>>(x, w, dy, dx, stats, n, eps);
  layer_norm_backward_weights<<<blocks_for(static_cast<uint64_t>(n), 128), 128, 0, s>>>(x, dy, stats, dw, db, t, n);
  return cudaGetLastError();
}

cudaError_t bias_backward(const float* dy, float* db, int t, uint64_t n, cudaStream_t s) {
  bias_backward_kernel<<<blocks_for(n, 128), 128, 0, s>>>(dy, db, t, n);
  return cudaGetLastError();
}

cudaError_t gelu_backward(const float* x, const float* dy, float* dx, uint64_t n, cudaStream_t s) {
  gelu_backward_kernel<<<blocks_for(n, 256), 256, 0, s>>>(x, dy, dx, n);
  return cudaGetLastError();
}

cudaError_t swiglu_backward(const float* gate, const float* up, const float* dh, float* dgate, float* dup, uint64_t n, cudaStream_t s) {
  swiglu_backward_kernel<<<blocks_for(n, 256), 256, 0, s>>>(gate, up, dh, dgate, dup, n);
  return cudaGetLastError();
}

// Dynamic shared memory (head_dim + seq floats) beside the kernel's static 32-float scratch.
int train_attention_max_seq() { return (kMaxSharedBytes - 32 * static_cast<int>(sizeof(float))) / 4 - kMaxHeadSlices * 32; }

cudaError_t attention_train(const float* q, const float* k, const float* v, float* out, float* lse, const llmops_drv_train_attn& a,
                            cudaStream_t s) {
  const dim3 grid(static_cast<unsigned>(a.seq), static_cast<unsigned>(a.n_heads), static_cast<unsigned>(a.batch));
  const size_t shared = static_cast<size_t>(a.head_dim + a.seq) * sizeof(float);
  attention_train_kernel<<<grid, kAttnThreads, shared, s>>>(q, k, v, out, lse, index_of(a), a.scale);
  return cudaGetLastError();
}

cudaError_t attention_train_backward(const float* q, const float* k, const float* v, const float* out, const float* lse, const float* dout,
                                     float* dq, float* dk, float* dv, float* delta, const llmops_drv_train_attn& a, cudaStream_t s) {
  const AttnIndex ix = index_of(a);
  const uint64_t rows = static_cast<uint64_t>(a.batch) * a.seq * a.n_heads;
  attention_delta_kernel<<<blocks_for(rows, 4), 128, 0, s>>>(out, dout, delta, ix, rows);
  const size_t shared = static_cast<size_t>(kAttnThreads / 32) * a.head_dim * sizeof(float);
  const dim3 qgrid(static_cast<unsigned>(a.seq), static_cast<unsigned>(a.n_heads), static_cast<unsigned>(a.batch));
  attention_dq_kernel<<<qgrid, kAttnThreads, shared, s>>>(q, k, v, lse, delta, dout, dq, ix, a.scale);
  const dim3 kvgrid(static_cast<unsigned>(a.seq), static_cast<unsigned>(a.n_kv_heads), static_cast<unsigned>(a.batch));
  attention_dkv_kernel<<<kvgrid, kAttnThreads, shared, s>>>(q, k, v, lse, delta, dout, dk, dv, ix, a.scale);
  return cudaGetLastError();
}

cudaError_t cross_entropy(float* logits, const int32_t* targets, int t, int n, float scale, float* loss, cudaStream_t s) {
  cross_entropy_kernel<<<t, 256, 0, s>>>(logits, targets, n, scale, loss);
  return cudaGetLastError();
}

cudaError_t embedding_backward(const int32_t* ids, const float* dx, int t, uint64_t cols, float* grad, cudaStream_t s) {
  embedding_backward_kernel<<<blocks_for(cols, 128), 128, 0, s>>>(ids, dx, t, cols, grad);
  return cudaGetLastError();
}

int sum_squares_partials() { return kSumBlocks; }

cudaError_t sum_squares(const float* x, uint64_t n, double* partials, double* out, cudaStream_t s) {
  sum_squares_blocks<<<kSumBlocks, 256, 0, s>>>(x, n, partials);
  sum_partials<<<1, 256, 0, s>>>(partials, kSumBlocks, out);
  return cudaGetLastError();
}

cudaError_t adamw(float* p, const float* g, float* m, float* v, uint64_t n, const llmops_drv_adamw& h, cudaStream_t s) {
  adamw_kernel<<<blocks_for(n, 256), 256, 0, s>>>(p, g, m, v, n, h);
  return cudaGetLastError();
}

cudaError_t dropout(const float* x, float* y, uint64_t n, float p, float scale, uint64_t key, cudaStream_t s) {
  dropout_kernel<<<blocks_for(n, 256), 256, 0, s>>>(x, y, n, p, scale, key);
  return cudaGetLastError();
}

}  // namespace llmops::cuda
