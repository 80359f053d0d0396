// The launchers of our kernels, enqueued on the caller's stream. Each returns cudaSuccess or
// the launch error; shapes were checked by the caller (cuda_driver.cu).
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

#include "llmops/driver.h"

namespace llmops::cuda {

// y[t][rows] = x[t][cols] · Wᵀ (+ bias) for few tokens, dequantised in registers; accumulate
// adds to y instead (the residual stream).
cudaError_t matvec(int type, const void* w, uint64_t rows, uint64_t cols, const float* x, int t, float* y, const float* bias,
                   bool accumulate, cudaStream_t s);
// Q4_K times one or two tokens with the activations quantised to 8 bits per 32 (dp4a), in
// scratch of q8_scratch_bytes(t, cols).
cudaError_t matvec_q4k_q8(const void* w, uint64_t rows, uint64_t cols, const float* x, int t, float* y, const float* bias, bool accumulate,
                          void* scratch, cudaStream_t s);
uint64_t q8_scratch_bytes(int t, uint64_t cols);
// Q8_0, Q4_0 and Q4_K (mmq_takes) times many tokens on int8 tensor cores (mmq.cuh), the
// activations quantised to 8 bits per 32 in scratch of q8_scratch_bytes(t, cols).
bool mmq_takes(int type);
cudaError_t matmul_mmq(int type, const void* w, uint64_t rows, uint64_t cols, const float* x, int t, float* y, const float* bias,
                       bool accumulate, void* scratch, cudaStream_t s);
// Rows [row0, row0 + n) of W widened to half (for cuBLAS over many tokens).
cudaError_t dequantize_half(int type, const void* w, uint64_t cols, uint64_t row0, uint64_t n, void* out_half, cudaStream_t s);
// n floats to half or bfloat16.
cudaError_t to_half(const float* x, uint64_t n, void* out, bool bf16, cudaStream_t s);
// n bfloat16 to floats.
cudaError_t from_bf16(const void* x, uint64_t n, float* out, cudaStream_t s);
cudaError_t add_bias(float* y, const float* bias, int t, uint64_t rows, cudaStream_t s);
cudaError_t get_rows(int type, const void* table, uint64_t cols, const int32_t* ids, int t, float* out, cudaStream_t s);
cudaError_t fill_random(int type, void* w, uint64_t rows, uint64_t cols, uint64_t seed, float scale, cudaStream_t s);

cudaError_t rms_norm(const float* x, const float* w, const float* b, float* y, int t, int n, float eps, bool layer, cudaStream_t s);
// inverse rotates back (rope's transpose, its backward pass).
cudaError_t rope(float* x, int t, int n_heads, int head_dim, int rope_dims, const int32_t* positions, const float* inv_freq,
                 bool neox, bool inverse, cudaStream_t s);
cudaError_t swiglu(const float* gate, const float* up, float* out, uint64_t n, cudaStream_t s);
cudaError_t gelu(float* x, uint64_t n, cudaStream_t s);
cudaError_t add(float* acc, const float* x, uint64_t n, cudaStream_t s);
cudaError_t kv_store(const float* k, const float* v, int t, const llmops_drv_kv_ref* refs, const llmops_drv_attn_shape& shape,
                     cudaStream_t s);
// shape.max_positions bounds every token's pos + 1 and picks the kernel (scores in shared
// memory when they fit, else the online softmax, which needs no room per position). With few
// heads × tokens the positions split over `splits` blocks per head (attention_splits), whose
// partial results (attention_scratch_bytes of device memory) one more kernel combines.
int attention_splits(int t, const llmops_drv_attn_shape& shape, int multiprocessors);
uint64_t attention_scratch_bytes(int t, const llmops_drv_attn_shape& shape, int splits);
cudaError_t attention(const float* q, float* out, int t, const llmops_drv_kv_ref* refs, const llmops_drv_attn_shape& shape, int splits,
                      float* partials, cudaStream_t s);
cudaError_t argmax(const float* logits, int t, int n, int32_t* ids, cudaStream_t s);

// Training (train_kernels.cu): the backward passes and the optimiser of driver.h's ABI 1.1.
// Every reduction runs in a fixed order: no atomics.
cudaError_t rms_norm_backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* rstd, int t, int n, float eps,
                              cudaStream_t s);
cudaError_t swiglu_backward(const float* gate, const float* up, const float* dh, float* dgate, float* dup, uint64_t n, cudaStream_t s);
// stats: 2·t floats (each row's mean and 1/sd).
cudaError_t layer_norm_backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db, float* stats, int t, int n,
                                float eps, cudaStream_t s);
cudaError_t bias_backward(const float* dy, float* db, int t, uint64_t n, cudaStream_t s);
cudaError_t gelu_backward(const float* x, const float* dy, float* dx, uint64_t n, cudaStream_t s);
// Whole-sequence causal attention keeps each row's scores in shared memory: seq * 4 bytes
// must fit train_attention_max_seq().
int train_attention_max_seq();
cudaError_t attention_train(const float* q, const float* k, const float* v, float* out, float* lse, const llmops_drv_train_attn& a,
                            cudaStream_t s);
cudaError_t attention_train_backward(const float* q, const float* k, const float* v, const float* out, const float* lse, const float* dout,
                                     float* dq, float* dk, float* dv, float* delta, const llmops_drv_train_attn& a, cudaStream_t s);
cudaError_t cross_entropy(float* logits, const int32_t* targets, int t, int n, float scale, float* loss, cudaStream_t s);
cudaError_t embedding_backward(const int32_t* ids, const float* dx, int t, uint64_t cols, float* grad, cudaStream_t s);
// partials: sum_squares_partials() doubles of device memory.
int sum_squares_partials();
cudaError_t sum_squares(const float* x, uint64_t n, double* partials, double* out, cudaStream_t s);
cudaError_t adamw(float* p, const float* g, float* m, float* v, uint64_t n, const llmops_drv_adamw& h, cudaStream_t s);
cudaError_t dropout(const float* x, float* y, uint64_t n, float p, float scale, uint64_t key, cudaStream_t s);

// Sampling (sample_kernels.cu): one block per row, logits overwritten.
cudaError_t sample(float* logits, int t, int n, const llmops_drv_sampling* rows, const int32_t* penalty_tokens, const int32_t* penalty_counts,
                   int32_t* ids, cudaStream_t s);

}  // namespace llmops::cuda
