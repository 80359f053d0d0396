// Training on an accelerator: LlamaTrainer's forward and backward passes (train/llama_train.h)
// and AdamW, with the parameters, gradients, optimiser moments and every activation in device
// memory, through the compute driver's training ops (driver.h, ABI 1.1). Only token ids and
// targets go up and one loss per token and the gradient norm come down per step; parameters
// cross the bus when the trainer is made and when the caller downloads them.
//
// The trained parameters keep the host trainer's flat layouts (llm.c's): the whole model's
// params() for full training, lora_params() with LoRA on, so download_trained() and
// download_trained_grads() compare element for element with the host trainer's. Attention
// keeps each row's log-sum-exp instead of the batch × heads × seq² softmax. Under LoRA the base
// stays frozen and gets no gradient buffer (an 8B base would need 32 GB for it); the dropout
// mask is the CPU trainer's (train::dropout_keeps), drawn on the device.
//
// Covered: everything the host trainer trains — the Llama family (grouped query heads, both RoPE
// layouts, partial rotary, Qwen2's q/k/v biases) and GPT-2 (LayerNorm, learned positions, the
// fused q/k/v projection, GELU, every bias), full fine-tuning and LoRA.
//
// One thread at a time; the device must outlive the trainer.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "gpu/device.h"
#include "train/llama_train.h"

namespace llmops::engine {

class GpuTrainer {
 public:
  // Uploads the host trainer's parameters (its shape, tying, RoPE frequencies and, when it has
  // them, its LoRA adapters). Gradients and moments start at zero. kUnimplemented for what the device path does not cover yet,
  // kResourceExhausted when the parameters do not fit.
  static Result<std::unique_ptr<GpuTrainer>> create(GpuDevice& dev, const train::LlamaTrainer<float>& host);

  const ModelConfig& config() const { return c_; }
  size_t parameter_count() const { return n_params_; }

  // As LlamaTrainer::forward: batch sequences of seq tokens, targets < 0 masked; returns the
  // mean cross-entropy over the counted targets. The logits' gradient is made here too (it
  // needs only the softmax and the count), ready for backward().
  Result<double> forward(const int32_t* tokens, const int32_t* targets, int batch, int seq);
  // Adds the last forward's gradient into the gradients (zero them first for a fresh step).
  Status backward();
  Status zero_grads();
  int64_t counted_targets() const { return counted_; }

  // How the products multiply (LLMOPS_MATH_F32, the default and the CPU's arithmetic; _TF32 or
  // _BF16: tensor cores with the inputs rounded, F32 everywhere else).
  Status set_math(int mode) { return check(dev_.api().set_math(dev_.handle(), mode), "choosing the products' precision"); }
  // Data parallelism (gpu/data_parallel.h): this replica's gradient is divided by the whole
  // batch's counted targets (0: its own), and its tokens start at `first` of the batch (where
  // its slice of the dropout mask starts). trained_grads(): the device buffer to all-reduce.
  void set_gradient_normaliser(int64_t counted) { normaliser_ = counted; }
  void set_token_offset(uint64_t first) { first_token_ = first; }
  float* trained_grads() const;
  GpuDevice& device() const { return dev_; }
  // As the host trainer's: dropout draws from (seed, stream, slot); evaluation turns it off.
  void set_dropout_stream(uint64_t stream) { dropout_stream_ = stream; }
  void set_training(bool on) { training_ = on; }

  // One AdamW update of the trained parameters on the device (clipping by the gradients' global
  // norm, decay on matrices only, the learning-rate schedule of train::learning_rate); the
  // gradients are taken times grad_multiplier first (1/micro-batches when they were summed).
  // Returns the norm (of the multiplied gradients) before clipping; when it is not finite, no
  // step is taken and the caller decides.
  Result<double> adamw_step(const train::AdamWConfig& config, double grad_multiplier = 1.0);
  int64_t steps() const { return steps_; }

  // The trained set (the model's parameters, or the adapters under LoRA) and its optimiser
  // state, in the host trainer's layout: checkpoints, evaluation and the result go through these.
  size_t trained_count() const;
  Status download_trained(std::vector<float>* out) const;
  Status download_trained_grads(std::vector<float>* out) const;
  Status download_moments(std::vector<float>* m, std::vector<float>* v) const;
  // A checkpoint's state back on the device (sizes must be trained_count()).
  Status upload_trained_state(const std::vector<float>& params, const std::vector<float>& m, const std::vector<float>& v, int64_t steps);

 private:
  explicit GpuTrainer(GpuDevice& dev) : dev_(dev) {}
  Status check(int rc, const char* what) const { return dev_.check(rc, what); }
  Status reserve(int batch, int seq);
  const float* p(size_t offset) const { return params_.as<float>() + offset; }
  // The base's gradient at offset; under LoRA a sink no step reads (the norms' backward adds
  // into its dw argument whatever happens).
  float* g(size_t offset) const { return lora_ ? sink_.as<float>() : grads_.as<float>() + offset; }
  static constexpr size_t kAbsent = ~size_t{0};  // a tensor the model does not have
  // RMSNorm (b absent) or LayerNorm, and their backward passes (dx += ; dw, db +=).
  Status norm(size_t w, size_t b, const float* x, float* y, int n);
  Status norm_backward(size_t w, size_t b, const float* x, const float* dy, float* dx, int n);
  // RoPE at the batch's positions, or its inverse; nothing for GPT-2.
  Status rotate(float* x, int n, int heads, bool inverse);
  // y += b on each of n rows of width (nothing when b is absent), and db += the column sums of dy.
  Status bias(size_t b, float* y, int n, int width);
  Status bias_backward(size_t b, const float* dy, int n, int width);
  // y[n×out] = x[n×in]·Wᵀ (+ y when accumulate)
  Status linear(size_t w, const float* x, float* y, int n, int in, int out, bool accumulate);
  // dx[n×in] (+)= dy·W and, outside LoRA, dW += dyᵀ·x
  Status linear_backward(size_t w, const float* x, const float* dy, float* dx, int n, int in, int out, bool accumulate);
  // A projection (q k v o gate up down = 0..6) with its adapter, when it has one.
  Status project(int layer, int which, size_t w, const float* x, float* y, int n, int in, int out, bool accumulate);
  Status project_backward(int layer, int which, size_t w, const float* x, const float* dy, float* dx, int n, int in, int out, bool accumulate);
  // x (n rows of in) with the dropout mask of (layer, which) applied, into xd_ (or x itself
  // when dropout is off); the mask's key for this replica's slice of the batch.
  Result<const float*> dropped(int layer, int which, const float* x, int n, int in);
  uint64_t dropout_key(int layer, int which, int in) const;
  struct Trained {
    const DeviceBuffer *params, *grads, *m, *v;
    const std::vector<train::TensorRef>* tensors;
    size_t count;
  };
  Trained trained() const;

  GpuDevice& dev_;
  ModelConfig c_;
  std::vector<train::TensorRef> tensors_;
  size_t n_params_ = 0;
  struct LayerOffsets {
    size_t attn_norm, attn_norm_b, wq, wk, wv, bq, bk, bv, wo, bo, ffn_norm, ffn_norm_b, gate, up, b_up, down, b_down;
  };
  std::vector<LayerOffsets> layers_;
  size_t tok_ = 0, pos_ = kAbsent, out_norm_ = 0, out_norm_b_ = kAbsent, cls_ = 0;
  int rope_dims_ = 0;
  DeviceBuffer params_, grads_, m_, v_, inv_freq_, norm_sq_, sink_;
  int64_t steps_ = 0;

  // LoRA: the adapters' flat buffers (A then B of each adapted projection, the host's layout)
  // and, per layer and projection, the index of its A in lora_tensors_ (or -1).
  bool lora_ = false, training_ = true, forward_training_ = true;
  train::LoraConfig lora_cfg_;
  std::vector<train::TensorRef> lora_tensors_;
  std::vector<std::array<int, 7>> lora_idx_;
  DeviceBuffer lparams_, lgrads_, lm_, lv_;
  uint64_t dropout_stream_ = 0, forward_stream_ = 0, first_token_ = 0;
  int64_t normaliser_ = 0;

  // Activations for up to cap_tokens_ tokens (batch·seq), grown on demand.
  struct LayerActs {
    DeviceBuffer x_in, xn, q, k, v, att_out, lse, x_mid, xn2, gate, up, h;
    std::array<DeviceBuffer, 7> lora_u;  // x·Aᵀ of each adapted projection
  };
  std::vector<LayerActs> acts_;
  DeviceBuffer tokens_, targets_, positions_, x_final_, xf_norm_, logits_, loss_;
  DeviceBuffer dx_, dxn_, dh_, dgate_, dup_, datt_, dq_, dk_, dv_, scratch_;
  DeviceBuffer xd_, du_, dxd_;  // LoRA: a dropped-out input, the adapter's gradient at u, and at xd
  int64_t cap_tokens_ = 0, cap_attn_ = 0;
  int batch_ = 0, seq_ = 0;
  int positions_batch_ = 0, positions_seq_ = 0;  // the shape positions_ holds
  int64_t counted_ = 0;
  bool have_forward_ = false;
};

}  // namespace llmops::engine
