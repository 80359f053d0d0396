#include "gpu/gpu_trainer.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace llmops::engine {

Result<std::unique_ptr<GpuTrainer>> GpuTrainer::create(GpuDevice& dev, const train::LlamaTrainer<float>& host) {
  const ModelConfig& c = host.config();
  if (dev.api().struct_size < sizeof(llmops_driver_api) || dev.api().abi_minor < 1) {
    return unimplemented("the " + std::string(dev.api().name) + " driver predates the training ops (driver ABI 1.1); install the llmops-cuda package of this llmops version");
  }
  std::unique_ptr<GpuTrainer> t(new GpuTrainer(dev));
  t->c_ = c;
  t->tensors_ = host.tensors();
  t->n_params_ = host.parameter_count();
  // Offsets into the flat parameters by GGUF name (kAbsent where the model has no such tensor).
  auto find = [&](const std::string& name, bool bias = false) -> size_t {
    for (const auto& r : t->tensors_) {
      if (r.name == name && r.bias == bias) return r.offset;
    }
    return kAbsent;
  };
  auto need = [](size_t at, const std::string& name) -> Status {
    return at == kAbsent ? invalid_argument("the trainer has no tensor " + name) : ok_status();
  };
  const bool gpt2 = c.arch == Arch::kGpt2;
  const size_t d = static_cast<size_t>(c.dim), q = static_cast<size_t>(c.q_dim()), kv = static_cast<size_t>(c.kv_dim());
  t->tok_ = find("token_embd");
  t->pos_ = gpt2 ? find("position_embd") : kAbsent;
  t->out_norm_ = find("output_norm");
  t->out_norm_b_ = find("output_norm", true);
  t->cls_ = host.tied() ? t->tok_ : find("output");
  LLMOPS_RETURN_IF_ERROR(need(t->tok_, "token_embd"));
  LLMOPS_RETURN_IF_ERROR(need(t->out_norm_, "output_norm"));
  LLMOPS_RETURN_IF_ERROR(need(t->cls_, "output"));
  if (gpt2) LLMOPS_RETURN_IF_ERROR(need(t->pos_, "position_embd"));
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    LayerOffsets o{};
    o.attn_norm = find(b + "attn_norm"), o.attn_norm_b = find(b + "attn_norm", true);
    if (gpt2) {
      // q, k and v are row blocks of the fused projection, and so are their biases.
      const size_t qkv = find(b + "attn_qkv"), qkv_b = find(b + "attn_qkv", true);
      LLMOPS_RETURN_IF_ERROR(need(qkv, b + "attn_qkv"));
      LLMOPS_RETURN_IF_ERROR(need(qkv_b, b + "attn_qkv.bias"));
      o.wq = qkv, o.wk = qkv + q * d, o.wv = qkv + (q + kv) * d;
      o.bq = qkv_b, o.bk = qkv_b + q, o.bv = qkv_b + q + kv;
    } else {
      o.wq = find(b + "attn_q"), o.wk = find(b + "attn_k"), o.wv = find(b + "attn_v");
      o.bq = find(b + "attn_q", true), o.bk = find(b + "attn_k", true), o.bv = find(b + "attn_v", true);
    }
    o.wo = find(b + "attn_output"), o.bo = find(b + "attn_output", true);
    o.ffn_norm = find(b + "ffn_norm"), o.ffn_norm_b = find(b + "ffn_norm", true);
    o.gate = find(b + "ffn_gate");
    o.up = find(b + "ffn_up"), o.b_up = find(b + "ffn_up", true);
    o.down = find(b + "ffn_down"), o.b_down = find(b + "ffn_down", true);
    for (auto [at, name] : {std::pair<size_t, const char*>{o.attn_norm, "attn_norm"}, {o.wq, "attn_q"}, {o.wk, "attn_k"}, {o.wv, "attn_v"},
                            {o.wo, "attn_output"}, {o.ffn_norm, "ffn_norm"}, {o.up, "ffn_up"}, {o.down, "ffn_down"}}) {
      LLMOPS_RETURN_IF_ERROR(need(at, b + name));
    }
    if (!gpt2) LLMOPS_RETURN_IF_ERROR(need(o.gate, b + "ffn_gate"));
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
    // The widest vector a frozen norm or bias would write its gradient into.
    LLMOPS_RETURN_IF_ERROR(zeroed(t->sink_, static_cast<uint64_t>(std::max({c.dim, c.q_dim() + 2 * c.kv_dim(), c.hidden_dim}))));
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
  positions_batch_ = positions_seq_ = 0;  // a new positions buffer: upload them again
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
                            {&dv_, N * kvd}, {&scratch_, std::max<uint64_t>(2 * N, static_cast<uint64_t>(attn))}, {&tokens_, N}, {&targets_, N},
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

uint64_t GpuTrainer::dropout_key(int layer, int which, int in) const {
  const uint64_t key = train::lora_dropout_key(lora_cfg_.seed, forward_stream_, layer * 7 + which);
  return train::dropout_key_at(key, first_token_ * static_cast<uint64_t>(in));
}

Result<const float*> GpuTrainer::dropped(int layer, int which, const float* x, int n, int in) {
  if (!forward_training_ || lora_cfg_.dropout <= 0) return x;
  const uint64_t key = dropout_key(layer, which, in), count = static_cast<uint64_t>(n) * in;
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
  LLMOPS_ASSIGN_OR_RETURN(const float* xin, dropped(layer, which, x, n, in));
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
  LLMOPS_ASSIGN_OR_RETURN(const float* xin, dropped(layer, which, x, n, in));  // the forward's mask, drawn again
  LLMOPS_RETURN_IF_ERROR(check(api.gemm(h, 1, 0, r, in, n, 1.0f, du, r, xin, in, 1.0f, dA, in), "dA += duᵀ·x"));
  if (xin == x) return check(api.gemm(h, 0, 0, n, in, r, 1.0f, du, r, A, in, 1.0f, dx, in), "dx += du·A");
  // Through the dropout: dx += mask ⊙ (du·A)·scale.
  float* dxd = dxd_.as<float>();
  LLMOPS_RETURN_IF_ERROR(check(api.gemm(h, 0, 0, n, in, r, 1.0f, du, r, A, in, 0.0f, dxd, in), "du·A"));
  const float scale = static_cast<float>(1.0 / (1.0 - lora_cfg_.dropout));
  LLMOPS_RETURN_IF_ERROR(check(api.dropout(h, dxd, dxd, count, static_cast<float>(lora_cfg_.dropout), scale, dropout_key(layer, which, in)),
                               "LoRA's dropout backward"));
  return check(api.add(h, dx, dxd, count), "dx += the adapter's share");
}

Status GpuTrainer::norm(size_t w, size_t b, const float* x, float* y, int n) {
  const float eps = static_cast<float>(c_.norm_eps);
  if (b == kAbsent) return check(dev_.api().rms_norm(dev_.handle(), x, p(w), y, n, c_.dim, eps), "RMSNorm");
  return check(dev_.api().layer_norm(dev_.handle(), x, p(w), p(b), y, n, c_.dim, eps), "LayerNorm");
}

Status GpuTrainer::norm_backward(size_t w, size_t b, const float* x, const float* dy, float* dx, int n) {
  const float eps = static_cast<float>(c_.norm_eps);
  float* scratch = scratch_.as<float>();
  if (b == kAbsent) return check(dev_.api().rms_norm_backward(dev_.handle(), x, p(w), dy, dx, g(w), scratch, n, c_.dim, eps), "RMSNorm's backward");
  return check(dev_.api().layer_norm_backward(dev_.handle(), x, p(w), dy, dx, g(w), g(b), scratch, n, c_.dim, eps), "LayerNorm's backward");
}

Status GpuTrainer::rotate(float* x, int n, int heads, bool inverse) {
  if (rope_dims_ == 0) return ok_status();  // GPT-2: learned positions instead
  const llmops_driver_api& api = dev_.api();
  const bool neox = c_.rope == RopeLayout::kNeox;
  const int rc = inverse ? api.rope_inverse(dev_.handle(), x, n, heads, c_.head_dim, rope_dims_, positions_.as<int32_t>(), inv_freq_.as<float>(), neox)
                         : api.rope(dev_.handle(), x, n, heads, c_.head_dim, rope_dims_, positions_.as<int32_t>(), inv_freq_.as<float>(), neox);
  return check(rc, inverse ? "RoPE's backward" : "RoPE");
}

Status GpuTrainer::bias(size_t b, float* y, int n, int width) {
  if (b == kAbsent) return ok_status();
  return check(dev_.api().add_bias(dev_.handle(), y, p(b), n, static_cast<uint64_t>(width)), "a bias");
}

Status GpuTrainer::bias_backward(size_t b, const float* dy, int n, int width) {
  if (b == kAbsent) return ok_status();
  return check(dev_.api().bias_backward(dev_.handle(), dy, g(b), n, static_cast<uint64_t>(width)), "a bias's backward");
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
  const uint64_t ids_bytes = static_cast<uint64_t>(n) * sizeof(int32_t);
  LLMOPS_RETURN_IF_ERROR(check(api.upload(h, tokens_.get(), tokens, ids_bytes), "uploading the tokens"));
  LLMOPS_RETURN_IF_ERROR(check(api.upload(h, targets_.get(), targets, ids_bytes), "uploading the targets"));
  if (positions_batch_ != batch || positions_seq_ != seq) {  // i % seq: the same for every batch of this shape
    std::vector<int32_t> positions(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) positions[static_cast<size_t>(i)] = i % seq;
    LLMOPS_RETURN_IF_ERROR(check(api.upload(h, positions_.get(), positions.data(), ids_bytes), "uploading the positions"));
    positions_batch_ = batch, positions_seq_ = seq;
  }
  const auto* ids = tokens_.as<int32_t>();
  const auto* pos = positions_.as<int32_t>();
  const bool gpt2 = c_.arch == Arch::kGpt2;
  const llmops_drv_train_attn shape{batch, seq, c_.n_heads, c_.n_kv_heads, c_.head_dim, 1.0f / std::sqrt(static_cast<float>(c_.head_dim))};
  const uint64_t row_bytes = static_cast<uint64_t>(n) * d * sizeof(float);
  float* x = x_final_.as<float>();  // the residual stream, which ends as the final norm's input
  LLMOPS_RETURN_IF_ERROR(check(api.get_rows(h, LLMOPS_DT_F32, p(tok_), static_cast<uint64_t>(d), ids, n, x), "the embedding"));
  if (pos_ != kAbsent) {  // GPT-2's learned positions (xf_norm_ is free until the end)
    LLMOPS_RETURN_IF_ERROR(check(api.get_rows(h, LLMOPS_DT_F32, p(pos_), static_cast<uint64_t>(d), pos, n, xf_norm_.as<float>()), "the positions"));
    LLMOPS_RETURN_IF_ERROR(check(api.add(h, x, xf_norm_.as<float>(), static_cast<uint64_t>(n) * d), "adding the positions"));
  }
  for (int l = 0; l < c_.n_layers; ++l) {
    const LayerOffsets& w = layers_[static_cast<size_t>(l)];
    LayerActs& a = acts_[static_cast<size_t>(l)];
    LLMOPS_RETURN_IF_ERROR(check(api.copy(h, a.x_in.get(), x, row_bytes), "keeping a layer's input"));
    LLMOPS_RETURN_IF_ERROR(norm(w.attn_norm, w.attn_norm_b, x, a.xn.as<float>(), n));
    LLMOPS_RETURN_IF_ERROR(project(l, 0, w.wq, a.xn.as<float>(), a.q.as<float>(), n, d, qd, false));
    LLMOPS_RETURN_IF_ERROR(project(l, 1, w.wk, a.xn.as<float>(), a.k.as<float>(), n, d, kvd, false));
    LLMOPS_RETURN_IF_ERROR(project(l, 2, w.wv, a.xn.as<float>(), a.v.as<float>(), n, d, kvd, false));
    LLMOPS_RETURN_IF_ERROR(bias(w.bq, a.q.as<float>(), n, qd));
    LLMOPS_RETURN_IF_ERROR(bias(w.bk, a.k.as<float>(), n, kvd));
    LLMOPS_RETURN_IF_ERROR(bias(w.bv, a.v.as<float>(), n, kvd));
    LLMOPS_RETURN_IF_ERROR(rotate(a.q.as<float>(), n, c_.n_heads, false));
    LLMOPS_RETURN_IF_ERROR(rotate(a.k.as<float>(), n, c_.n_kv_heads, false));
    LLMOPS_RETURN_IF_ERROR(check(api.attention_train(h, a.q.as<float>(), a.k.as<float>(), a.v.as<float>(), a.att_out.as<float>(), a.lse.as<float>(), &shape),
                                 "attention"));
    LLMOPS_RETURN_IF_ERROR(project(l, 3, w.wo, a.att_out.as<float>(), x, n, qd, d, true));
    LLMOPS_RETURN_IF_ERROR(bias(w.bo, x, n, d));
    LLMOPS_RETURN_IF_ERROR(check(api.copy(h, a.x_mid.get(), x, row_bytes), "keeping the attention's output"));
    LLMOPS_RETURN_IF_ERROR(norm(w.ffn_norm, w.ffn_norm_b, x, a.xn2.as<float>(), n));
    LLMOPS_RETURN_IF_ERROR(project(l, 5, w.up, a.xn2.as<float>(), a.up.as<float>(), n, d, hd, false));
    const uint64_t hn = static_cast<uint64_t>(n) * hd;
    if (gpt2) {
      // h = gelu(up(xn2) + b), the pre-activation kept in up.
      LLMOPS_RETURN_IF_ERROR(bias(w.b_up, a.up.as<float>(), n, hd));
      LLMOPS_RETURN_IF_ERROR(check(api.copy(h, a.h.get(), a.up.get(), hn * sizeof(float)), "keeping the pre-activation"));
      LLMOPS_RETURN_IF_ERROR(check(api.gelu(h, a.h.as<float>(), hn), "GELU"));
    } else {
      LLMOPS_RETURN_IF_ERROR(project(l, 4, w.gate, a.xn2.as<float>(), a.gate.as<float>(), n, d, hd, false));
      LLMOPS_RETURN_IF_ERROR(check(api.swiglu(h, a.gate.as<float>(), a.up.as<float>(), a.h.as<float>(), hn), "SwiGLU"));
    }
    LLMOPS_RETURN_IF_ERROR(project(l, 6, w.down, a.h.as<float>(), x, n, hd, d, true));
    LLMOPS_RETURN_IF_ERROR(bias(w.b_down, x, n, d));
  }
  LLMOPS_RETURN_IF_ERROR(norm(out_norm_, out_norm_b_, x, xf_norm_.as<float>(), n));
  LLMOPS_RETURN_IF_ERROR(linear(cls_, xf_norm_.as<float>(), logits_.as<float>(), n, d, V, false));
  // The logits become d loss / d logits at once: (softmax − onehot) / counted.
  const int64_t over = normaliser_ > 0 ? normaliser_ : counted_;
  const float scale = over > 0 ? static_cast<float>(1.0 / static_cast<double>(over)) : 0.0f;
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
  const bool gpt2 = c_.arch == Arch::kGpt2;
  const llmops_drv_train_attn shape{batch_, seq_, c_.n_heads, c_.n_kv_heads, c_.head_dim, 1.0f / std::sqrt(static_cast<float>(c_.head_dim))};
  float* dx = dx_.as<float>();
  float* dxn = dxn_.as<float>();
  // The classifier, then the output norm: dxn holds d loss / d (normed final stream).
  LLMOPS_RETURN_IF_ERROR(linear_backward(cls_, xf_norm_.as<float>(), logits_.as<float>(), dxn, n, d, V, false));
  LLMOPS_RETURN_IF_ERROR(check(api.zero(h, dx, static_cast<uint64_t>(n) * d * sizeof(float)), "clearing the stream's gradient"));
  LLMOPS_RETURN_IF_ERROR(norm_backward(out_norm_, out_norm_b_, x_final_.as<float>(), dxn, dx, n));
  const uint64_t hn = static_cast<uint64_t>(n) * hd;
  for (int l = c_.n_layers - 1; l >= 0; --l) {
    const LayerOffsets& w = layers_[static_cast<size_t>(l)];
    LayerActs& a = acts_[static_cast<size_t>(l)];
    // x_out = x_mid + down(silu(gate(xn2)) ⊙ up(xn2)) (GPT-2: down(gelu(up(xn2) + b_up)) + b_down);
    // dx is d loss / d x_out.
    LLMOPS_RETURN_IF_ERROR(bias_backward(w.b_down, dx, n, d));
    LLMOPS_RETURN_IF_ERROR(project_backward(l, 6, w.down, a.h.as<float>(), dx, dh_.as<float>(), n, hd, d, false));
    if (gpt2) {
      LLMOPS_RETURN_IF_ERROR(check(api.gelu_backward(h, a.up.as<float>(), dh_.as<float>(), dup_.as<float>(), hn), "GELU's backward"));
      LLMOPS_RETURN_IF_ERROR(bias_backward(w.b_up, dup_.as<float>(), n, hd));
    } else {
      LLMOPS_RETURN_IF_ERROR(check(api.swiglu_backward(h, a.gate.as<float>(), a.up.as<float>(), dh_.as<float>(), dgate_.as<float>(), dup_.as<float>(), hn),
                                   "SwiGLU's backward"));
      LLMOPS_RETURN_IF_ERROR(project_backward(l, 4, w.gate, a.xn2.as<float>(), dgate_.as<float>(), dxn, n, d, hd, false));
    }
    LLMOPS_RETURN_IF_ERROR(project_backward(l, 5, w.up, a.xn2.as<float>(), dup_.as<float>(), dxn, n, d, hd, !gpt2));
    // dx also flows through the residual: d x_mid = dx + the norm's backward.
    LLMOPS_RETURN_IF_ERROR(norm_backward(w.ffn_norm, w.ffn_norm_b, a.x_mid.as<float>(), dxn, dx, n));
    // x_mid = x_in + wo(att_out) + bo.
    LLMOPS_RETURN_IF_ERROR(bias_backward(w.bo, dx, n, d));
    LLMOPS_RETURN_IF_ERROR(project_backward(l, 3, w.wo, a.att_out.as<float>(), dx, datt_.as<float>(), n, qd, d, false));
    LLMOPS_RETURN_IF_ERROR(check(api.attention_train_backward(h, a.q.as<float>(), a.k.as<float>(), a.v.as<float>(), a.att_out.as<float>(), a.lse.as<float>(),
                                                              datt_.as<float>(), dq_.as<float>(), dk_.as<float>(), dv_.as<float>(), scratch_.as<float>(), &shape),
                                 "attention's backward"));
    LLMOPS_RETURN_IF_ERROR(rotate(dq_.as<float>(), n, c_.n_heads, true));
    LLMOPS_RETURN_IF_ERROR(rotate(dk_.as<float>(), n, c_.n_kv_heads, true));
    LLMOPS_RETURN_IF_ERROR(bias_backward(w.bq, dq_.as<float>(), n, qd));
    LLMOPS_RETURN_IF_ERROR(bias_backward(w.bk, dk_.as<float>(), n, kvd));
    LLMOPS_RETURN_IF_ERROR(bias_backward(w.bv, dv_.as<float>(), n, kvd));
    LLMOPS_RETURN_IF_ERROR(project_backward(l, 0, w.wq, a.xn.as<float>(), dq_.as<float>(), dxn, n, d, qd, false));
    LLMOPS_RETURN_IF_ERROR(project_backward(l, 1, w.wk, a.xn.as<float>(), dk_.as<float>(), dxn, n, d, kvd, true));
    LLMOPS_RETURN_IF_ERROR(project_backward(l, 2, w.wv, a.xn.as<float>(), dv_.as<float>(), dxn, n, d, kvd, true));
    LLMOPS_RETURN_IF_ERROR(norm_backward(w.attn_norm, w.attn_norm_b, a.x_in.as<float>(), dxn, dx, n));
  }
  if (!lora_) {  // the embeddings are frozen under LoRA
    LLMOPS_RETURN_IF_ERROR(check(api.embedding_backward(h, tokens_.as<int32_t>(), dx, n, static_cast<uint64_t>(d), g(tok_)), "the embedding's backward"));
    if (pos_ != kAbsent) {
      LLMOPS_RETURN_IF_ERROR(check(api.embedding_backward(h, positions_.as<int32_t>(), dx, n, static_cast<uint64_t>(d), g(pos_)), "the positions' backward"));
    }
  }
  return check(api.synchronize(h), "the backward pass");
}

GpuTrainer::Trained GpuTrainer::trained() const {
  if (lora_) return {&lparams_, &lgrads_, &lm_, &lv_, &lora_tensors_, trained_count()};
  return {&params_, &grads_, &m_, &v_, &tensors_, n_params_};
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

float* GpuTrainer::trained_grads() const { return trained().grads->as<float>(); }

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
