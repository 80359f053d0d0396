#include "model/llama.h"

#include <cmath>
#include <cstring>

namespace llmops::engine {

namespace {

void rmsnorm(float* out, const float* x, const WeightView& weight, int n, float eps, std::vector<float>* scratch) {
  float ss = 0.0f;
  for (int j = 0; j < n; ++j) ss += x[j] * x[j];
  ss = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  const float* w;
  if (weight.type == GgmlType::kF32) {
    w = reinterpret_cast<const float*>(weight.data);
  } else {
    scratch->resize(static_cast<size_t>(n));
    dequantize_row(weight.type, weight.data, scratch->data(), static_cast<uint64_t>(n));
    w = scratch->data();
  }
  for (int j = 0; j < n; ++j) out[j] = w[j] * (ss * x[j]);
}

void softmax(float* x, int n) {
  float max = x[0];
  for (int i = 1; i < n; ++i) max = std::max(max, x[i]);
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  for (int i = 0; i < n; ++i) x[i] /= sum;
}

}  // namespace

uint64_t LlamaModel::weight_bytes() const {
  uint64_t total = token_embd_.rows * token_embd_.row_bytes + output_norm_.row_bytes;
  if (output_.data != token_embd_.data) total += output_.rows * output_.row_bytes;
  for (const auto& l : layers_) {
    for (const WeightView* w : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_norm, &l.w_gate, &l.w_down, &l.w_up}) {
      total += w->rows * w->row_bytes;
    }
  }
  return total;
}

LlamaSession::LlamaSession(const LlamaModel& model, int max_positions, ThreadPool* pool)
    : m_(model), max_positions_(max_positions), pool_(pool), isa_(best_isa()) {
  const LlamaConfig& c = m_.config();
  need_q8_ = type_uses_q8(m_.classifier().type);
  for (const auto& L : m_.layers()) {
    for (const WeightView* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_down, &L.w_up}) need_q8_ |= type_uses_q8(w->type);
  }
  x_.resize(c.dim);
  xb_.resize(c.dim);
  xb2_.resize(c.dim);
  hb_.resize(c.hidden_dim);
  hb2_.resize(c.hidden_dim);
  q_.resize(c.dim);
  att_.resize(static_cast<size_t>(c.n_heads) * max_positions);
  logits_.resize(c.vocab_size);
  key_cache_.resize(static_cast<size_t>(c.n_layers) * max_positions * c.kv_dim());
  value_cache_.resize(static_cast<size_t>(c.n_layers) * max_positions * c.kv_dim());
}

void LlamaSession::mv(const WeightView& w, const PreparedVector& x, float* y) {
  matvec_rows(w.type, w.data, w.rows, w.row_bytes, x, y, pool_, isa_);
}

Result<const float*> LlamaSession::forward(int32_t token, int pos) {
  const LlamaConfig& c = m_.config();
  if (token < 0 || token >= c.vocab_size) {
    return invalid_argument("token id " + std::to_string(token) + " is outside the vocabulary (0.." + std::to_string(c.vocab_size - 1) + ")");
  }
  if (pos < 0 || pos >= max_positions_) {
    return resource_exhausted("position " + std::to_string(pos) + " is past the session's " + std::to_string(max_positions_) + " positions");
  }
  const int dim = c.dim, kv_dim = c.kv_dim(), head_dim = c.head_dim(), kv_mul = c.n_heads / c.n_kv_heads;
  dequantize_row(m_.token_embedding().type, m_.token_embedding().row(static_cast<uint64_t>(token)), x_.data(), static_cast<uint64_t>(dim));

  for (int l = 0; l < c.n_layers; ++l) {
    const LlamaLayer& L = m_.layers()[static_cast<size_t>(l)];
    rmsnorm(xb_.data(), x_.data(), L.attn_norm, dim, c.norm_eps, &row_);
    size_t cache_off = (static_cast<size_t>(l) * max_positions_ + pos) * kv_dim;
    float* k = key_cache_.data() + cache_off;
    float* v = value_cache_.data() + cache_off;
    prepare_vector(xb_.data(), static_cast<uint64_t>(dim), need_q8_, &pv_);
    mv(L.wq, pv_, q_.data());
    mv(L.wk, pv_, k);
    mv(L.wv, pv_, v);

    // RoPE on adjacent pairs (the GGUF "normal" layout and llama2.c's).
    for (int i = 0; i < dim; i += 2) {
      int hd = i % head_dim;
      float freq = 1.0f / std::pow(c.rope_theta, static_cast<float>(hd) / static_cast<float>(head_dim));
      float angle = static_cast<float>(pos) * freq;
      float fcr = std::cos(angle), fci = std::sin(angle);
      for (float* vec : {q_.data(), k}) {
        if (vec == k && i >= kv_dim) continue;
        float v0 = vec[i], v1 = vec[i + 1];
        vec[i] = v0 * fcr - v1 * fci;
        vec[i + 1] = v0 * fci + v1 * fcr;
      }
    }

    // Causal attention over positions 0..pos, each query head reading its shared KV head.
    for (int h = 0; h < c.n_heads; ++h) {
      const float* qh = q_.data() + h * head_dim;
      float* att = att_.data() + static_cast<size_t>(h) * max_positions_;
      const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
      for (int t = 0; t <= pos; ++t) {
        const float* kt = key_cache_.data() + (static_cast<size_t>(l) * max_positions_ + t) * kv_dim + (h / kv_mul) * head_dim;
        float score = 0.0f;
        for (int i = 0; i < head_dim; ++i) score += qh[i] * kt[i];
        att[t] = score * scale;
      }
      softmax(att, pos + 1);
      float* out = xb_.data() + h * head_dim;
      std::memset(out, 0, static_cast<size_t>(head_dim) * sizeof(float));
      for (int t = 0; t <= pos; ++t) {
        const float* vt = value_cache_.data() + (static_cast<size_t>(l) * max_positions_ + t) * kv_dim + (h / kv_mul) * head_dim;
        for (int i = 0; i < head_dim; ++i) out[i] += att[t] * vt[i];
      }
    }
    prepare_vector(xb_.data(), static_cast<uint64_t>(dim), need_q8_, &pv_);
    mv(L.wo, pv_, xb2_.data());
    for (int i = 0; i < dim; ++i) x_[i] += xb2_[i];

    // SwiGLU feed-forward.
    rmsnorm(xb_.data(), x_.data(), L.ffn_norm, dim, c.norm_eps, &row_);
    prepare_vector(xb_.data(), static_cast<uint64_t>(dim), need_q8_, &pv_);
    mv(L.w_gate, pv_, hb_.data());
    mv(L.w_up, pv_, hb2_.data());
    for (int i = 0; i < c.hidden_dim; ++i) {
      float g = hb_[i];
      hb_[i] = g / (1.0f + std::exp(-g)) * hb2_[i];
    }
    prepare_vector(hb_.data(), static_cast<uint64_t>(c.hidden_dim), need_q8_, &pv_);
    mv(L.w_down, pv_, xb_.data());
    for (int i = 0; i < dim; ++i) x_[i] += xb_[i];
  }
  rmsnorm(x_.data(), x_.data(), m_.output_norm(), dim, c.norm_eps, &row_);
  prepare_vector(x_.data(), static_cast<uint64_t>(dim), need_q8_, &pv_);
  mv(m_.classifier(), pv_, logits_.data());
  return static_cast<const float*>(logits_.data());
}

}  // namespace llmops::engine
