// Training the Llama family and GPT-2 on the CPU: a model's parameters as one flat buffer (llm.c's
// layout, so gradients and the optimiser's moments are flat buffers of the same shape), a
// forward pass over a batch of sequences that keeps what the backward pass needs, and the
// backward pass of every op: token embedding, RMSNorm, the q/k/v/o projections, RoPE (both
// layouts, partial rotary), causal attention with grouped-query heads, SwiGLU, the classifier
// (tied to the embedding or not) and cross-entropy with masked targets (prompt tokens of a
// completion example do not count); for GPT-2 also learned positions, LayerNorm with its bias,
// the fused q/k/v projection and every projection's bias, and GELU (the tanh form). Matrix
// products go through BLAS on the threads of the pool given to set_pool (kernels/gemm.h), and
// attention, the norms, SwiGLU and the softmax are cut across the same threads; with no pool
// everything runs on the calling thread. A result depends on the pool's size, not on which
// thread ran what.
//
// LoRA (Hu et al. 2021, as PEFT does it): the base weights freeze and each targeted projection
// W gains W + (alpha/rank)·B·A with A (rank × in, random) and B (out × rank, zero at start), and
// dropout on the adapter's input; only A and B learn, and merge_lora() folds them into W.
//
// Llama-family models with q/k/v biases (Qwen2) train too. T is float for training and double
// for the finite-difference checks of the tests. LoRA on GPT-2 adapts q, k and v as the row
// blocks of its fused projection. The same step on a GPU: gpu/gpu_trainer.h.
// One caller at a time per object.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"
#include "status.h"

namespace llmops::engine::train {

struct TensorRef {
  std::string name;  // GGUF-style: "token_embd", "blk.0.attn_q", ...
  size_t offset = 0, rows = 0, cols = 0;  // a vector is rows × 1
  bool bias = false;  // GGUF "<name>.bias" (else "<name>.weight")
  size_t size() const { return rows * cols; }
  bool matrix() const { return cols > 1; }
  bool present() const { return rows > 0; }
};

// The projections LoRA may target, by PEFT's short names: q k v o gate up down.
struct LoraConfig {
  int rank = 8;
  double alpha = 16;
  double dropout = 0.0;
  std::vector<std::string> targets = {"q", "k", "v", "o"};
  uint64_t seed = 0;
};

template <typename T>
class LlamaTrainer {
 public:
  // Random weights of a shape (normal, std 0.02; projections into the residual stream scaled by
  // 1/sqrt(2·layers), as GPT-2 does), norms at one.
  // qkv_bias: q/k/v projections with biases (Qwen2's layout; GPT-2 always has them).
  static Result<LlamaTrainer> random(const ModelConfig& config, bool tied_embeddings, uint64_t seed, bool qkv_bias = false);
  // A loaded model's weights widened to T (any type the engine reads). kUnimplemented for what
  // training does not cover yet (an attention output bias outside GPT-2).
  static Result<LlamaTrainer> from_model(const Model& model);

  const ModelConfig& config() const { return c_; }
  bool tied() const { return tied_; }
  const std::vector<TensorRef>& tensors() const { return tensors_; }
  // RoPE's frequencies (rope_dims/2 of them, any scaling of the file applied).
  const std::vector<float>& inv_freq() const { return inv_freq_; }
  bool qkv_bias() const { return qkv_bias_; }
  std::vector<T>& params() { return params_; }
  const std::vector<T>& params() const { return params_; }
  std::vector<T>& grads() { return grads_; }
  size_t parameter_count() const { return params_.size(); }

  // Runs batch sequences of seq tokens (tokens and targets are batch × seq, row-major; a target
  // < 0 is masked) and returns the mean cross-entropy over the unmasked targets (nats). Keeps
  // the activations for backward(). kInvalidArgument for ids out of range or seq past the
  // context.
  Result<double> forward(const int32_t* tokens, const int32_t* targets, int batch, int seq);
  // Adds the gradient of the last forward's loss to grads() (zero them first for a fresh step).
  // Consumes what forward kept: call forward again before another backward.
  void backward();
  void zero_grads();
  // Counted targets of the last forward.
  int64_t counted_targets() const { return counted_; }

  // LoRA: freezes the base and adds adapters (kInvalidArgument for an unknown target or rank).
  Status enable_lora(const LoraConfig& config);
  bool lora() const { return lora_on_; }
  const LoraConfig& lora_config() const { return lora_cfg_; }
  // The threads products and loops run on (null: the calling thread); not owned.
  void set_pool(ThreadPool* pool) { pool_ = pool; }
  std::vector<T>& lora_params() { return lora_params_; }
  const std::vector<T>& lora_params() const { return lora_params_; }
  std::vector<T>& lora_grads() { return lora_grads_; }
  const std::vector<TensorRef>& lora_tensors() const { return lora_tensors_; }
  // Dropout draws from (seed, stream): a job sets the stream to its step, so a resumed run
  // draws what an uninterrupted one did. Evaluation turns dropout off.
  void set_dropout_stream(uint64_t stream) { dropout_stream_ = stream; }
  void set_training(bool on) { training_ = on; }
  // W += (alpha/rank)·B·A for every adapter; the trainer is a plain model again (LoRA off).
  void merge_lora();
  void zero_lora_grads();

 private:
  LlamaTrainer() = default;
  void layout();
  T* p(const TensorRef& t) { return params_.data() + t.offset; }
  T* g(const TensorRef& t) { return grads_.data() + t.offset; }

  ModelConfig c_;
  ThreadPool* pool_ = nullptr;
  bool tied_ = false;
  std::vector<float> inv_freq_;
  std::vector<TensorRef> tensors_;
  bool gpt2() const { return c_.arch == Arch::kGpt2; }
  bool qkv_bias_ = false;
  // Indexes into tensors_ (pos_ and out_norm_b_: GPT-2 only).
  size_t tok_ = 0, pos_ = 0, out_norm_ = 0, out_norm_b_ = 0, cls_ = 0;
  TensorRef out_norm_bias() const { return gpt2() ? tensors_[out_norm_b_] : TensorRef{}; }  // none outside GPT-2
  // A layer's tensors as views into params_ (absent ones have no rows): GPT-2's q, k and v are
  // row blocks of its fused attn_qkv, which tensors_ holds whole.
  struct LayerRefs {
    TensorRef attn_norm, attn_norm_b, wq, wk, wv, wo, bq, bk, bv, bo, ffn_norm, ffn_norm_b, gate, up, down, b_up, b_down;
  };
  std::vector<LayerRefs> layers_;
  std::vector<T> params_, grads_;

  // LoRA: per layer and projection (q k v o gate up down) the index of its A in lora_tensors_
  // (B follows it), or -1.
  enum Proj { kQ, kK, kV, kO, kGate, kUp, kDown, kProjs };
  const TensorRef& proj_tensor(int layer, int which) const;
  void project(int layer, int which, const T* x, T* y, int n, int in, int out);
  void project_backward(int layer, int which, const T* x, const T* dy, T* dx, int n, int in, int out);
  bool lora_on_ = false, training_ = true;
  uint64_t dropout_stream_ = 0;
  LoraConfig lora_cfg_;
  std::vector<std::array<int, kProjs>> lora_idx_;
  std::vector<TensorRef> lora_tensors_;
  std::vector<T> lora_params_, lora_grads_;
  struct LoraActs {
    std::vector<T> u, xd;           // x·Aᵀ, and the dropped-out input (when dropout is on)
    std::vector<uint8_t> keep;      // the dropout mask
  };
  std::vector<std::array<LoraActs, kProjs>> lora_acts_;

  // What forward keeps (sizes for the last batch × seq).
  int b_ = 0, s_ = 0;
  int64_t counted_ = 0;
  std::vector<int32_t> tokens_, targets_;
  struct LayerActs {
    std::vector<T> x_in, xn, mean, rstd, q, k, v, att, att_out, x_mid, xn2, mean2, rstd2, gate, up, h;
  };
  std::vector<LayerActs> acts_;
  std::vector<T> x_final, xf_norm, mean_f, rstd_f, probs;
  void norm(const TensorRef& w, const TensorRef& b, const T* x, T* y, std::vector<T>& mean, std::vector<T>& rstd, int n);
  void norm_backward(const TensorRef& w, const TensorRef& b, const T* x, const std::vector<T>& mean, const std::vector<T>& rstd, const T* dy,
                     T* dx, int n);
};

// LoRA's dropout mask, the same on every device: element i of a projection's input is kept iff
// u >= p, u = the top 24 bits of splitmix64(key + i·0x9E3779B97F4A7C15) over 2^24, with the key
// made of the adapter seed, the dropout stream (the job's step) and the projection's slot
// (layer · 7 + which). drivers/include/llmops/driver.h's dropout() computes the same bits.
uint64_t lora_dropout_key(uint64_t seed, uint64_t stream, int slot);
bool dropout_keeps(uint64_t key, uint64_t i, float p);
// The key whose element i is element first + i of `key`'s mask (a slice of a batch's mask).
uint64_t dropout_key_at(uint64_t key, uint64_t first);

// AdamW with decoupled weight decay (applied to matrices, not to norm weights), a learning
// rate that warms up linearly and then decays (cosine or linear) to min_lr, and clipping of the
// gradients' global norm.
struct AdamWConfig {
  double lr = 3e-4, min_lr = 3e-5, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1, clip_norm = 1.0;
  int64_t warmup_steps = 0, total_steps = 1;
  bool cosine = true;  // false: linear decay
};

double learning_rate(const AdamWConfig& c, int64_t step);  // step counts from 0

template <typename T>
class AdamW {
 public:
  AdamW(AdamWConfig config, size_t n) : c_(config), m_(n, 0), v_(n, 0) {}
  // One update of params from grads (clipped first); returns the gradients' norm before clipping.
  double step(std::vector<T>& params, std::vector<T>& grads, const std::vector<TensorRef>& tensors);
  int64_t steps() const { return t_; }
  std::vector<T>& m() { return m_; }
  std::vector<T>& v() { return v_; }
  void set_steps(int64_t t) { t_ = t; }

 private:
  AdamWConfig c_;
  std::vector<T> m_, v_;
  int64_t t_ = 0;
};

}  // namespace llmops::engine::train
