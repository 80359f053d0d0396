// Training on an accelerator: LlamaTrainer's forward and backward passes (train/llama_train.h)
// and AdamW, with the parameters, gradients, optimiser moments and every activation in device
// memory, through the compute driver's training ops (driver.h, ABI 1.1). Only token ids and
// targets go up and one loss per token and the gradient norm come down per step; parameters
// cross the bus when the trainer is made and when the caller downloads them.
//
// The parameters keep the host trainer's flat layout (llm.c's), so download_params() and
// download_grads() compare element for element with LlamaTrainer<float>'s params() and
// grads(). Attention keeps each row's log-sum-exp instead of the batch × heads × seq² softmax.
//
// Covered now: the Llama family without biases (Llama, Mistral, TinyLlama's shapes; grouped
// query heads; both RoPE layouts and partial rotary), full fine-tuning. Not yet: GPT-2, q/k/v
// biases and LoRA (create() says so with kUnimplemented, and the caller trains on the CPU).
//
// One thread at a time; the device must outlive the trainer.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "gpu/device.h"
#include "train/llama_train.h"

namespace llmops::engine {

class GpuTrainer {
 public:
  // Uploads the host trainer's parameters (its shape, tying and RoPE frequencies). Gradients
  // and moments start at zero. kUnimplemented for what the device path does not cover yet,
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

  // One AdamW update on the device (clipping by the gradients' global norm, decay on matrices
  // only, the learning-rate schedule of train::learning_rate); returns the norm before clipping.
  Result<double> adamw_step(const train::AdamWConfig& config);
  int64_t steps() const { return steps_; }

  Status download_params(std::vector<float>* out) const;
  Status download_grads(std::vector<float>* out) const;

 private:
  explicit GpuTrainer(GpuDevice& dev) : dev_(dev) {}
  Status check(int rc, const char* what) const { return dev_.check(rc, what); }
  Status reserve(int batch, int seq);
  const float* p(size_t offset) const { return params_.as<float>() + offset; }
  float* g(size_t offset) const { return grads_.as<float>() + offset; }
  // y[n×out] = x[n×in]·Wᵀ (+ y when accumulate)
  Status linear(size_t w, const float* x, float* y, int n, int in, int out, bool accumulate);
  // dx[n×in] (+)= dy·W and dW += dyᵀ·x
  Status linear_backward(size_t w, const float* x, const float* dy, float* dx, int n, int in, int out, bool accumulate);

  GpuDevice& dev_;
  ModelConfig c_;
  std::vector<train::TensorRef> tensors_;
  size_t n_params_ = 0;
  struct LayerOffsets {
    size_t attn_norm, wq, wk, wv, wo, ffn_norm, gate, up, down;
  };
  std::vector<LayerOffsets> layers_;
  size_t tok_ = 0, out_norm_ = 0, cls_ = 0;
  int rope_dims_ = 0;
  DeviceBuffer params_, grads_, m_, v_, inv_freq_, norm_sq_;
  int64_t steps_ = 0;

  // Activations for up to cap_tokens_ tokens (batch·seq), grown on demand.
  struct LayerActs {
    DeviceBuffer x_in, xn, q, k, v, att_out, lse, x_mid, xn2, gate, up, h;
  };
  std::vector<LayerActs> acts_;
  DeviceBuffer tokens_, targets_, positions_, x_final_, xf_norm_, logits_, loss_;
  DeviceBuffer dx_, dxn_, dh_, dgate_, dup_, datt_, dq_, dk_, dv_, scratch_;
  int64_t cap_tokens_ = 0, cap_attn_ = 0;
  int batch_ = 0, seq_ = 0;
  int64_t counted_ = 0;
  bool have_forward_ = false;
};

}  // namespace llmops::engine
