#include "gpu/gpu_trainer.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace llmops::engine {

Result<std::unique_ptr<GpuTrainer>> GpuTrainer::create(GpuDevice& dev, const train::LlamaTrainer<float>& host) {
  const ModelConfig& c = host.config();
  if (c.arch == Arch::kGpt2) return unimplemented("training GPT-2 on the GPU is not built yet; it trains on the CPU");
  if (host.qkv_bias()) return unimplemented("training q/k/v biases (Qwen2's layout) on the GPU is not built yet; it trains on the CPU");
  if (dev.api().struct_size < sizeof(llmops_driver_api) || dev.api().abi_minor < 1) {
    return unimplemented("the " + std::string(dev.api().name) + " driver predates the training ops (driver ABI 1.1); install the llmops-cuda package of this llmops version");
  }
  std::unique_ptr<GpuTrainer> t(new GpuTrainer(dev));
  t->c_ = c;
  t->tensors_ = host.tensors();
  t->n_params_ = host.parameter_count();
  auto find = [&](const std::string& name) -> Result<size_t> {
    for (const auto& r : t->tensors_) {
      if (r.name == name && !r.bias) return r.offset;
    }
    return invalid_argument("the trainer has no tensor " + name);
  };
  LLMOPS_ASSIGN_OR_RETURN(t->tok_, find("token_embd"));
  LLMOPS_ASSIGN_OR_RETURN(t->out_norm_, find("output_norm"));
  t->cls_ = t->tok_;
  if (!host.tied()) {
    LLMOPS_ASSIGN_OR_RETURN(t->cls_, find("output"));
  }
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    LayerOffsets o{};
    LLMOPS_ASSIGN_OR_RETURN(o.attn_norm, find(b + "attn_norm"));
    LLMOPS_ASSIGN_OR_RETURN(o.wq, find(b + "attn_q"));
    LLMOPS_ASSIGN_OR_RETURN(o.wk, find(b + "attn_k"));
    LLMOPS_ASSIGN_OR_RETURN(o.wv, find(b + "attn_v"));
    LLMOPS_ASSIGN_OR_RETURN(o.wo, find(b + "attn_output"));
    LLMOPS_ASSIGN_OR_RETURN(o.ffn_norm, find(b + "ffn_norm"));
    LLMOPS_ASSIGN_OR_RETURN(o.gate, find(b + "ffn_gate"));
    LLMOPS_ASSIGN_OR_RETURN(o.up, find(b + "ffn_up"));
    LLMOPS_ASSIGN_OR_RETURN(o.down, find(b + "ffn_down"));
    t->layers_.push_back(o);
  }
  const std::vector<float>& inv_freq = host.inv_freq();
  t->rope_dims_ = static_cast<int>(inv_freq.size()) * 2;
  LLMOPS_ASSIGN_OR_RETURN(t->params_, DeviceBuffer::from_host(dev, host.params().data(), t->n_params_ * sizeof(float)));
  auto zeroed = [&](DeviceBuffer& b, uint64_t count) -> Status {
    LLMOPS_ASSIGN_OR_RETURN(b, DeviceBuffer::alloc(dev, std::max<uint64_t>(count, 1) * sizeof(float)));
    return t->check(dev.api().zero(dev.handle(), b.get(), count * sizeof(float)), "clearing the optimiser's state");
  };
  if (host.lora()) {
    static const char* kGguf[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    t->lora_ = true;
    t->lora_cfg_ = host.lora_config();
    t->lora_tensors_ = host.lora_tensors();
    t->lora_idx_.assign(static_cast<size_t>(c.n_layers), {});
    for (int l = 0; l < c.n_layers; ++l) {
      for (int w = 0; w < 7; ++w) {
        const std::string a = "blk." + std::to_string(l) + "." + kGguf[w] + ".lora_a";
        const auto it = std::find_if(t->lora_tensors_.begin(), t->lora_tensors_.end(), [&](const train::TensorRef& r) { return r.name == a; });
        t->lora_idx_[static_cast<size_t>(l)][static_cast<size_t>(w)] = it == t->lora_tensors_.end() ? -1 : static_cast<int>(it - t->lora_tensors_.begin());
      }
    }
    const std::vector<float>& lp = host.lora_params();
    LLMOPS_ASSIGN_OR_RETURN(t->lparams_, DeviceBuffer::from_host(dev, lp.data(), std::max<size_t>(lp.size(), 1) * sizeof(float)));
    for (DeviceBuffer* b : {&t->lgrads_, &t->lm_, &t->lv_}) LLMOPS_RETURN_IF_ERROR(zeroed(*b, lp.size()));
    LLMOPS_RETURN_IF_ERROR(zeroed(t->sink_, static_cast<uint64_t>(c.dim)));
  } else {
    for (DeviceBuffer* b : {&t->grads_, &t->m_, &t->v_}) LLMOPS_RETURN_IF_ERROR(zeroed(*b, t->n_params_));
  }
  LLMOPS_ASSIGN_OR_RETURN(t->inv_freq_, DeviceBuffer::from_host(dev, inv_freq.data(), inv_freq.size() * sizeof(float)));
  LLMOPS_ASSIGN_OR_RETURN(t->norm_sq_, DeviceBuffer::alloc(dev, sizeof(double)));
  return t;
}

Status GpuTrainer::reserve(int batch, int seq) {
  const int64_t n = static_cast<int64_t>(batch) * seq, attn = n * c_.n_heads;
  if (n <= cap_tokens_ && attn <= cap_attn_) return ok_status();
  const uint64_t d = c_.dim, qd = c_.q_dim(), kvd = c_.kv_dim(), hd = c_.hidden_dim, V = c_.vocab_size, N = static_cast<uint64_t>(n);
  auto floats = [&](DeviceBuffer& b, uint64_t count) -> Status {
    b.reset();  // give the old one back before the larger one is taken
    LLMOPS_ASSIGN_OR_RETURN(b, DeviceBuffer::alloc(dev_, std::max<uint64_t>(count, 1) * sizeof(float)));
    return ok_status();
  };
  acts_.resize(static_cast<size_t>(c_.n_layers));
  for (LayerActs& a : acts_) {
    for (auto [buf, width] : {std::pair<DeviceBuffer*, uint64_t>{&a.x_in, d}, {&a.xn, d}, {&a.q, qd}, {&a.k, kvd}, {&a.v, kvd}, {&a.att_out, qd},
                              {&a.x_mid, d}, {&a.xn2, d}, {&a.gate, hd}, {&a.up, hd}, {&a.h, hd}}) {
      LLMOPS_RETURN_IF_ERROR(floats(*buf, N * width));
    }
    LLMOPS_RETURN_IF_ERROR(floats(a.lse, static_cast<uint64_t>(attn)));
    if (lora_) {
      const size_t l = static_cast<size_t>(&a - acts_.data());
      for (int w = 0; w < 7; ++w) {
        if (lora_idx_[l][static_cast<size_t>(w)] >= 0) LLMOPS_RETURN_IF_ERROR(floats(a.lora_u[static_cast<size_t>(w)], N * static_cast<uint64_t>(lora_cfg_.rank)));
      }
    }
  }
  if (lora_) {
    const uint64_t widest = std::max({d, qd, hd});
    LLMOPS_RETURN_IF_ERROR(floats(xd_, N * widest));
    LLMOPS_RETURN_IF_ERROR(floats(dxd_, N * widest));
    LLMOPS_RETURN_IF_ERROR(floats(du_, N * static_cast<uint64_t>(lora_cfg_.rank)));
  }
  for (auto [buf, count] : {std::pair<DeviceBuffer*, uint64_t>{&x_final_, N * d}, {&xf_norm_, N * d}, {&logits_, N * V}, {&loss_, N}, {&dx_, N * d},
                            {&dxn_, N * d}, {&dh_, N * hd}, {&dgate_, N * hd}, {&dup_, N * hd}, {&datt_, N * qd}, {&dq_, N * qd}, {&dk_, N * kvd},
                            {&dv_, N * kvd}, {&scratch_, std::max<uint64_t>(N, static_cast<uint64_t>(attn))}, {&tokens_, N}, {&targets_, N},
                            {&positions_, N}}) {
    LLMOPS_RETURN_IF_ERROR(floats(*buf, count));  // int32 buffers take as many bytes as floats
  }
  cap_tokens_ = n, cap_attn_ = attn;
  return ok_status();
}

Status GpuTrainer::linear(size_t w, const float* x, float* y, int n, int in, int out, bool accumulate) {
  return check(dev_.api().gemm(dev_.handle(), 0, 1, n, out, in, 1.0f, x, in, p(w), in, accumulate ? 1.0f : 0.0f, y, out), "a forward product");
}

Status GpuTrainer::linear_backward(size_t w, const float* x, const float* dy, float* dx, int n, int in, int out, bool accumulate) {
  const llmops_driver_api& api = dev_.api();
  LLMOPS_RETURN_IF_ERROR(check(api.gemm(dev_.handle(), 0, 0, n, in, out, 1.0f, dy, out, p(w), in, accumulate ? 1.0f : 0.0f, dx, in), "dx = dy·W"));
  if (lora_) return ok_status();  // the base is frozen
  return check(api.gemm(dev_.handle(), 1, 0, out, in, n, 1.0f, dy, out, x, in, 1.0f, g(w), in), "dW += dyᵀ·x");
}

Result<const float*> GpuTrainer::dropped(int layer, int which, const float* x, uint64_t count) {
  if (!forward_training_ || lora_cfg_.dropout <= 0) return x;
  const uint64_t key = train::lora_dropout_key(lora_cfg_.seed, forward_stream_, layer * 7 + which);
  const float scale = static_cast<float>(1.0 / (1.0 - lora_cfg_.dropout));
  LLMOPS_RETURN_IF_ERROR(check(dev_.api().dropout(dev_.handle(), x, xd_.as<float>(), count, static_cast<float>(lora_cfg_.dropout), scale, key), "LoRA's dropout"));
  return static_cast<const float*>(xd_.as<float>());
}

Status GpuTrainer::project(int layer, int which, size_t w, const float* x, float* y, int n, int in, int out, bool accumulate) {
  LLMOPS_RETURN_IF_ERROR(linear(w, x, y, n, in, out, accumulate));
  const int idx = lora_ ? lora_idx_[static_cast<size_t>(layer)][static_cast<size_t>(which)] : -1;
  if (idx < 0) return ok_status();
  const llmops_driver_api& api = dev_.api();
  const int r = lora_cfg_.rank;
  const float s = static_cast<float>(lora_cfg_.alpha / r);
  const float* A = lparams_.as<float>() + lora_tensors_[static_cast<size_t>(idx)].offset;
  const float* B = lparams_.as<float>() + lora_tensors_[static_cast<size_t>(idx) + 1].offset;
  float* u = acts_[static_cast<size_t>(layer)].lora_u[static_cast<size_t>(which)].as<float>();
  LLMOPS_ASSIGN_OR_RETURN(const float* xin, dropped(layer, which, x, static_cast<uint64_t>(n) * in));
  LLMOPS_RETURN_IF_ERROR(check(api.gemm(dev_.handle(), 0, 1, n, r, in, 1.0f, xin, in, A, in, 0.0f, u, r), "u = x·Aᵀ"));
  return check(api.gemm(dev_.handle(), 0, 1, n, out, r, s, u, r, B, r, 1.0f, y, out), "y += s·u·Bᵀ");
}

Status GpuTrainer::project_backward(int layer, int which, size_t w, const float* x, const float* dy, float* dx, int n, int in, int out,
                                    bool accumulate) {
  LLMOPS_RETURN_IF_ERROR(linear_backward(w, x, dy, dx, n, in, out, accumulate));
  const int idx = lora_ ? lora_idx_[static_cast<size_t>(layer)][static_cast<size_t>(which)] : -1;
  if (idx < 0) return ok_status();
  const llmops_driver_api& api = dev_.api();
  llmops_drv* h = dev_.handle();
  const int r = lora_cfg_.rank;
  const float s = static_cast<float>(lora_cfg_.alpha / r);
  const train::TensorRef& ta = lora_tensors_[static_cast<size_t>(idx)];
  const train::TensorRef& tb = lora_tensors_[static_cast<size_t>(idx) + 1];
  const float* A = lparams_.as<float>() + ta.offset;
  const float* B = lparams_.as<float>() + tb.offset;
  float* dA = lgrads_.as<float>() + ta.offset;
  float* dB = lgrads_.as<float>() + tb.offset;
  const float* u = acts_[static_cast<size_t>(layer)].lora_u[static_cast<size_t>(which)].as<float>();
  float* du = du_.as<float>();
  LLMOPS_RETURN_IF_ERROR(check(api.gemm(h, 1, 0, out, r, n, s, dy, out, u, r, 1.0f, dB, r), "dB += s·dyᵀ·u"));
  LLMOPS_RETURN_IF_ERROR(check(api.gemm(h, 0, 0, n, r, out, s, dy, out, B, r, 0.0f, du, r), "du = s·dy·B"));
  const uint64_t count = static_cast<uint64_t>(n) * in;
  LLMOPS_ASSIGN_OR_RETURN(const float* xin, dropped(layer, which, x, count));  // the forward's mask, drawn again
  LLMOPS_RETURN_IF_ERROR(check(api.gemm(h, 1, 0, r, in, n, 1.0f, du, r, xin, in, 1.0f, dA, in), "dA += duᵀ·x"));
  if (xin == x) return check(api.gemm(h, 0, 0, n, in, r, 1.0f, du, r, A, in, 1.0f, dx, in), "dx += du·A");
  // Through the dropout: dx += mask ⊙ (du·A)·scale.
  float* dxd = dxd_.as<float>();
  LLMOPS_RETURN_IF_ERROR(check(api.gemm(h, 0, 0, n, in, r, 1.0f, du, r, A, in, 0.0f, dxd, in), "du·A"));
  const uint64_t key = train::lora_dropout_key(lora_cfg_.seed, forward_stream_, layer * 7 + which);
  const float scale = static_cast<float>(1.0 / (1.0 - lora_cfg_.dropout));
  LLMOPS_RETURN_IF_ERROR(check(api.dropout(h, dxd, dxd, count, static_cast<float>(lora_cfg_.dropout), scale, key), "LoRA's dropout backward"));
  return check(api.add(h, dx, dxd, count), "dx += the adapter's share");
}

Result<double> GpuTrainer::forward(const int32_t* tokens, const int32_t* targets, int batch, int seq) {
  if (batch < 1 || seq < 1 || seq > c_.seq_len) return invalid_argument("a training batch needs 1.." + std::to_string(c_.seq_len) + " tokens per sequence");
  const int n = batch * seq, d = c_.dim, qd = c_.q_dim(), kvd = c_.kv_dim(), hd = c_.hidden_dim, V = c_.vocab_size;
  counted_ = 0;
  for (int i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= V || targets[i] >= V) return invalid_argument("token id out of the vocabulary at " + std::to_string(i));
    counted_ += targets[i] >= 0;
  }
  LLMOPS_RETURN_IF_ERROR(reserve(batch, seq));
  have_forward_ = false;
  batch_ = batch, seq_ = seq;
  forward_stream_ = dropout_stream_, forward_training_ = training_;
  const llmops_driver_api& api = dev_.api();
  llmops_drv* h = dev_.handle();
  std::vector<int32_t> positions(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) positions[static_cast<size_t>(i)] = i % seq;
  const uint64_t ids_bytes = static_cast<uint64_t>(n) * sizeof(int32_t);
  LLMOPS_RETURN_IF_ERROR(check(api.upload(h, tokens_.get(), tokens, ids_bytes), "uploading the tokens"));
  LLMOPS_RETURN_IF_ERROR(check(api.upload(h, targets_.get(), targets, ids_bytes), "uploading the targets"));
  LLMOPS_RETURN_IF_ERROR(check(api.upload(h, positions_.get(), positions.data(), ids_bytes), "uploading the positions"));
  const auto* ids = tokens_.as<int32_t>();
  const auto* pos = positions_.as<int32_t>();
  const bool neox = c_.rope == RopeLayout::kNeox;
  const float eps = static_cast<float>(c_.norm_eps);
  const llmops_drv_train_attn shape{batch, seq, c_.n_heads, c_.n_kv_heads, c_.head_dim, 1.0f / std::sqrt(static_cast<float>(c_.head_dim))};
  const uint64_t row_bytes = static_cast<uint64_t>(n) * d * sizeof(float);
  float* x = x_final_.as<float>();  // the residual stream, which ends as the final norm's input
  LLMOPS_RETURN_IF_ERROR(check(api.get_rows(h, LLMOPS_DT_F32, p(tok_), static_cast<uint64_t>(d), ids, n, x), "the embedding"));
  for (int l = 0; l < c_.n_layers; ++l) {
    const LayerOffsets& w = layers_[static_cast<size_t>(l)];
    LayerActs& a = acts_[static_cast<size_t>(l)];
    LLMOPS_RETURN_IF_ERROR(check(api.copy(h, a.x_in.get(), x, row_bytes), "keeping a layer's input"));
    LLMOPS_RETURN_IF_ERROR(check(api.rms_norm(h, x, p(w.attn_norm), a.xn.as<float>(), n, d, eps), "the attention norm"));
    LLMOPS_RETURN_IF_ERROR(project(l, 0, w.wq, a.xn.as<float>(), a.q.as<float>(), n, d, qd, false));
    LLMOPS_RETURN_IF_ERROR(project(l, 1, w.wk, a.xn.as<float>(), a.k.as<float>(), n, d, kvd, false));
    LLMOPS_RETURN_IF_ERROR(project(l, 2, w.wv, a.xn.as<float>(), a.v.as<float>(), n, d, kvd, false));
    LLMOPS_RETURN_IF_ERROR(check(api.rope(h, a.q.as<float>(), n, c_.n_heads, c_.head_dim, rope_dims_, pos, inv_freq_.as<float>(), neox), "RoPE on q"));
    LLMOPS_RETURN_IF_ERROR(check(api.rope(h, a.k.as<float>(), n, c_.n_kv_heads, c_.head_dim, rope_dims_, pos, inv_freq_.as<float>(), neox), "RoPE on k"));
    LLMOPS_RETURN_IF_ERROR(check(api.attention_train(h, a.q.as<float>(), a.k.as<float>(), a.v.as<float>(), a.att_out.as<float>(), a.lse.as<float>(), &shape),
                                 "attention"));
    LLMOPS_RETURN_IF_ERROR(project(l, 3, w.wo, a.att_out.as<float>(), x, n, qd, d, true));
    LLMOPS_RETURN_IF_ERROR(check(api.copy(h, a.x_mid.get(), x, row_bytes), "keeping the attention's output"));
    LLMOPS_RETURN_IF_ERROR(check(api.rms_norm(h, x, p(w.ffn_norm), a.xn2.as<float>(), n, d, eps), "the feed-forward norm"));
    LLMOPS_RETURN_IF_ERROR(project(l, 4, w.gate, a.xn2.as<float>(), a.gate.as<float>(), n, d, hd, false));
    LLMOPS_RETURN_IF_ERROR(project(l, 5, w.up, a.xn2.as<float>(), a.up.as<float>(), n, d, hd, false));
    LLMOPS_RETURN_IF_ERROR(check(api.swiglu(h, a.gate.as<float>(), a.up.as<float>(), a.h.as<float>(), static_cast<uint64_t>(n) * hd), "SwiGLU"));
    LLMOPS_RETURN_IF_ERROR(project(l, 6, w.down, a.h.as<float>(), x, n, hd, d, true));
  }
  LLMOPS_RETURN_IF_ERROR(check(api.rms_norm(h, x, p(out_norm_), xf_norm_.as<float>(), n, d, eps), "the output norm"));
  LLMOPS_RETURN_IF_ERROR(linear(cls_, xf_norm_.as<float>(), logits_.as<float>(), n, d, V, false));
  // The logits become d loss / d logits at once: (softmax − onehot) / counted.
  const float scale = counted_ > 0 ? static_cast<float>(1.0 / static_cast<double>(counted_)) : 0.0f;
  LLMOPS_RETURN_IF_ERROR(check(api.cross_entropy(h, logits_.as<float>(), targets_.as<int32_t>(), n, V, scale, loss_.as<float>()), "cross-entropy"));
  std::vector<float> loss(static_cast<size_t>(n));
  LLMOPS_RETURN_IF_ERROR(check(api.download(h, loss.data(), loss_.get(), static_cast<uint64_t>(n) * sizeof(float)), "downloading the losses"));
  double sum = 0;
  for (int i = 0; i < n; ++i) {
    if (targets[i] >= 0) sum += loss[static_cast<size_t>(i)];
  }
  if (!std::isfinite(sum)) return internal_error("the loss on the " + std::string(dev_.info().name) + " is not finite (" + std::to_string(sum) + ")");
  have_forward_ = true;
  return counted_ > 0 ? sum / static_cast<double>(counted_) : 0.0;
}

Status GpuTrainer::backward() {
  if (!have_forward_) return failed_precondition("backward() needs a forward() first");
  have_forward_ = false;
  if (counted_ == 0) return ok_status();
  const int n = batch_ * seq_, d = c_.dim, qd = c_.q_dim(), kvd = c_.kv_dim(), hd = c_.hidden_dim, V = c_.vocab_size;
  const llmops_driver_api& api = dev_.api();
  llmops_drv* h = dev_.handle();
  const auto* pos = positions_.as<int32_t>();
  const bool neox = c_.rope == RopeLayout::kNeox;
  const float eps = static_cast<float>(c_.norm_eps);
  const llmops_drv_train_attn shape{batch_, seq_, c_.n_heads, c_.n_kv_heads, c_.head_dim, 1.0f / std::sqrt(static_cast<float>(c_.head_dim))};
  float* dx = dx_.as<float>();
  float* dxn = dxn_.as<float>();
  float* scratch = scratch_.as<float>();
  // The classifier, then the output norm: dxn holds d loss / d (normed final stream).
  LLMOPS_RETURN_IF_ERROR(linear_backward(cls_, xf_norm_.as<float>(), logits_.as<float>(), dxn, n, d, V, false));
  LLMOPS_RETURN_IF_ERROR(check(api.zero(h, dx, static_cast<uint64_t>(n) * d * sizeof(float)), "clearing the stream's gradient"));
  LLMOPS_RETURN_IF_ERROR(check(api.rms_norm_backward(h, x_final_.as<float>(), p(out_norm_), dxn, dx, g(out_norm_), scratch, n, d, eps), "the output norm's backward"));
  for (int l = c_.n_layers - 1; l >= 0; --l) {
    const LayerOffsets& w = layers_[static_cast<size_t>(l)];
    LayerActs& a = acts_[static_cast<size_t>(l)];
    // x_out = x_mid + down(silu(gate(xn2)) ⊙ up(xn2)); dx is d loss / d x_out.
    LLMOPS_RETURN_IF_ERROR(project_backward(l, 6, w.down, a.h.as<float>(), dx, dh_.as<float>(), n, hd, d, false));
    LLMOPS_RETURN_IF_ERROR(check(api.swiglu_backward(h, a.gate.as<float>(), a.up.as<float>(), dh_.as<float>(), dgate_.as<float>(), dup_.as<float>(),
                                                     static_cast<uint64_t>(n) * hd),
                                 "SwiGLU's backward"));
    LLMOPS_RETURN_IF_ERROR(project_backward(l, 4, w.gate, a.xn2.as<float>(), dgate_.as<float>(), dxn, n, d, hd, false));
    LLMOPS_RETURN_IF_ERROR(project_backward(l, 5, w.up, a.xn2.as<float>(), dup_.as<float>(), dxn, n, d, hd, true));
    LLMOPS_RETURN_IF_ERROR(check(api.rms_norm_backward(h, a.x_mid.as<float>(), p(w.ffn_norm), dxn, dx, g(w.ffn_norm), scratch, n, d, eps),
                                 "the feed-forward norm's backward"));
    // x_mid = x_in + wo(att_out).
    LLMOPS_RETURN_IF_ERROR(project_backward(l, 3, w.wo, a.att_out.as<float>(), dx, datt_.as<float>(), n, qd, d, false));
    LLMOPS_RETURN_IF_ERROR(check(api.attention_train_backward(h, a.q.as<float>(), a.k.as<float>(), a.v.as<float>(), a.att_out.as<float>(), a.lse.as<float>(),
                                                              datt_.as<float>(), dq_.as<float>(), dk_.as<float>(), dv_.as<float>(), scratch, &shape),
                                 "attention's backward"));
    LLMOPS_RETURN_IF_ERROR(check(api.rope_inverse(h, dq_.as<float>(), n, c_.n_heads, c_.head_dim, rope_dims_, pos, inv_freq_.as<float>(), neox), "RoPE's backward on q"));
    LLMOPS_RETURN_IF_ERROR(check(api.rope_inverse(h, dk_.as<float>(), n, c_.n_kv_heads, c_.head_dim, rope_dims_, pos, inv_freq_.as<float>(), neox), "RoPE's backward on k"));
    LLMOPS_RETURN_IF_ERROR(project_backward(l, 0, w.wq, a.xn.as<float>(), dq_.as<float>(), dxn, n, d, qd, false));
    LLMOPS_RETURN_IF_ERROR(project_backward(l, 1, w.wk, a.xn.as<float>(), dk_.as<float>(), dxn, n, d, kvd, true));
    LLMOPS_RETURN_IF_ERROR(project_backward(l, 2, w.wv, a.xn.as<float>(), dv_.as<float>(), dxn, n, d, kvd, true));
    LLMOPS_RETURN_IF_ERROR(check(api.rms_norm_backward(h, a.x_in.as<float>(), p(w.attn_norm), dxn, dx, g(w.attn_norm), scratch, n, d, eps),
                                 "the attention norm's backward"));
  }
  if (!lora_) {  // the embedding is frozen under LoRA
    LLMOPS_RETURN_IF_ERROR(check(api.embedding_backward(h, tokens_.as<int32_t>(), dx, n, static_cast<uint64_t>(d), g(tok_)), "the embedding's backward"));
  }
  return check(api.synchronize(h), "the backward pass");
}

GpuTrainer::Trained GpuTrainer::trained() const {
  auto* self = const_cast<GpuTrainer*>(this);  // the buffers' handles, not their contents
  if (lora_) return {&self->lparams_, &self->lgrads_, &self->lm_, &self->lv_, &lora_tensors_, trained_count()};
  return {&self->params_, &self->grads_, &self->m_, &self->v_, &tensors_, n_params_};
}

size_t GpuTrainer::trained_count() const {
  if (!lora_) return n_params_;
  return lora_tensors_.empty() ? 0 : lora_tensors_.back().offset + lora_tensors_.back().size();
}

Status GpuTrainer::zero_grads() {
  const Trained t = trained();
  return check(dev_.api().zero(dev_.handle(), t.grads->get(), t.count * sizeof(float)), "clearing the gradients");
}

Result<double> GpuTrainer::adamw_step(const train::AdamWConfig& c, double grad_multiplier) {
  const llmops_driver_api& api = dev_.api();
  llmops_drv* h = dev_.handle();
  const Trained t = trained();
  LLMOPS_RETURN_IF_ERROR(check(api.sum_squares(h, t.grads->as<float>(), t.count, norm_sq_.as<double>()), "the gradients' norm"));
  double norm2 = 0;
  LLMOPS_RETURN_IF_ERROR(check(api.download(h, &norm2, norm_sq_.get(), sizeof(double)), "downloading the gradients' norm"));
  const double norm = std::sqrt(norm2) * grad_multiplier;
  if (!std::isfinite(norm)) return norm;  // the caller says what to do; no step is taken
  const double clip = c.clip_norm > 0 && norm > c.clip_norm ? c.clip_norm / norm : 1.0;
  const double lr = train::learning_rate(c, steps_);
  ++steps_;
  llmops_drv_adamw hp{};
  hp.lr = static_cast<float>(lr), hp.beta1 = static_cast<float>(c.beta1), hp.beta2 = static_cast<float>(c.beta2), hp.eps = static_cast<float>(c.eps);
  hp.grad_scale = static_cast<float>(grad_multiplier * clip);
  hp.bias1 = static_cast<float>(1.0 - std::pow(c.beta1, static_cast<double>(steps_)));
  hp.bias2 = static_cast<float>(1.0 - std::pow(c.beta2, static_cast<double>(steps_)));
  for (const train::TensorRef& r : *t.tensors) {
    hp.weight_decay = static_cast<float>(r.matrix() ? c.weight_decay : 0.0);
    LLMOPS_RETURN_IF_ERROR(check(api.adamw(h, t.params->as<float>() + r.offset, t.grads->as<float>() + r.offset, t.m->as<float>() + r.offset,
                                           t.v->as<float>() + r.offset, r.size(), &hp),
                                 "AdamW"));
  }
  LLMOPS_RETURN_IF_ERROR(check(api.synchronize(h), "the optimiser step"));
  return norm;
}

Status GpuTrainer::download_trained(std::vector<float>* out) const {
  const Trained t = trained();
  out->resize(t.count);
  return check(dev_.api().download(dev_.handle(), out->data(), t.params->get(), t.count * sizeof(float)), "downloading the parameters");
}

Status GpuTrainer::download_trained_grads(std::vector<float>* out) const {
  const Trained t = trained();
  out->resize(t.count);
  return check(dev_.api().download(dev_.handle(), out->data(), t.grads->get(), t.count * sizeof(float)), "downloading the gradients");
}

Status GpuTrainer::download_moments(std::vector<float>* m, std::vector<float>* v) const {
  const Trained t = trained();
  m->resize(t.count), v->resize(t.count);
  LLMOPS_RETURN_IF_ERROR(check(dev_.api().download(dev_.handle(), m->data(), t.m->get(), t.count * sizeof(float)), "downloading AdamW's m"));
  return check(dev_.api().download(dev_.handle(), v->data(), t.v->get(), t.count * sizeof(float)), "downloading AdamW's v");
}

Status GpuTrainer::upload_trained_state(const std::vector<float>& params, const std::vector<float>& m, const std::vector<float>& v, int64_t steps) {
  const Trained t = trained();
  if (params.size() != t.count || m.size() != t.count || v.size() != t.count) {
    return invalid_argument("a training state of " + std::to_string(params.size()) + " values for " + std::to_string(t.count) + " trained parameters");
  }
  const uint64_t bytes = t.count * sizeof(float);
  LLMOPS_RETURN_IF_ERROR(check(dev_.api().upload(dev_.handle(), t.params->get(), params.data(), bytes), "uploading the parameters"));
  LLMOPS_RETURN_IF_ERROR(check(dev_.api().upload(dev_.handle(), t.m->get(), m.data(), bytes), "uploading AdamW's m"));
  LLMOPS_RETURN_IF_ERROR(check(dev_.api().upload(dev_.handle(), t.v->get(), v.data(), bytes), "uploading AdamW's v"));
  steps_ = steps;
  return ok_status();
}

}  // namespace llmops::engine
