#include "model/llama.h"

#include <cmath>
#include <cstring>

#include "kernels/matmul.h"
#include "kernels/thread_pool.h"

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
  vector_forms_ = vector_forms(m_.classifier().type);
  for (const auto& L : m_.layers()) {
    for (const WeightView* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_down, &L.w_up}) vector_forms_ |= vector_forms(w->type);
  }
  x_.resize(c.dim);
  xb_.resize(c.dim);
  xb2_.resize(c.dim);
  hb_.resize(c.hidden_dim);
  hb2_.resize(c.hidden_dim);
  q_.resize(c.dim);
  att_.resize(static_cast<size_t>(c.n_heads) * max_positions);
  logits_.resize(c.vocab_size);
  for (int i = 0; i < c.head_dim(); i += 2) {
    inv_freq_.push_back(1.0f / std::pow(c.rope_theta, static_cast<float>(i) / static_cast<float>(c.head_dim())));
  }
  key_cache_.resize(static_cast<size_t>(c.n_layers) * max_positions * c.kv_dim());
  value_cache_.resize(static_cast<size_t>(c.n_layers) * max_positions * c.kv_dim());
}

uint64_t LlamaSession::kv_cache_bytes(const LlamaConfig& c, int positions) {
  return 2ull * static_cast<uint64_t>(c.n_layers) * static_cast<uint64_t>(positions) * static_cast<uint64_t>(c.kv_dim()) * sizeof(float);
}

Result<std::unique_ptr<LlamaSession>> LlamaSession::create(const LlamaModel& model, int max_positions, uint64_t budget_bytes,
                                                           ThreadPool* pool) {
  if (max_positions <= 0) return invalid_argument("a session needs at least one position");
  uint64_t need = kv_cache_bytes(model.config(), max_positions);
  if (need > budget_bytes) {
    auto size = [](uint64_t b) { return b >= (1u << 20) ? std::to_string(b >> 20) + " MiB" : std::to_string((b + 1023) >> 10) + " KiB"; };
    return resource_exhausted("a KV cache for " + std::to_string(max_positions) + " positions needs " + size(need) + ", more than the " +
                              size(budget_bytes) + " budget; use a shorter context or raise the budget");
  }
  return std::make_unique<LlamaSession>(model, max_positions, pool);
}

void LlamaSession::mv(const WeightView& w, const PreparedVector& x, float* y) {
  matvec_rows(w.type, w.data, w.rows, w.row_bytes, x, y, pool_, isa_);
}

Status LlamaSession::check(int32_t token, int pos) const {
  const LlamaConfig& c = m_.config();
  if (token < 0 || token >= c.vocab_size) {
    return invalid_argument("token id " + std::to_string(token) + " is outside the vocabulary (0.." + std::to_string(c.vocab_size - 1) + ")");
  }
  if (pos < 0 || pos >= max_positions_) {
    return resource_exhausted("position " + std::to_string(pos) + " is past the session's " + std::to_string(max_positions_) + " positions");
  }
  return ok_status();
}

// RoPE on adjacent pairs (the GGUF "normal" layout and llama2.c's), over n values of whole heads.
void LlamaSession::rope(float* vec, int n, int pos) const {
  const int head_dim = m_.config().head_dim();
  for (int i = 0; i < n; i += 2) {
    float angle = static_cast<float>(pos) * inv_freq_[static_cast<size_t>((i % head_dim) / 2)];
    float fcr = std::cos(angle), fci = std::sin(angle);
    float v0 = vec[i], v1 = vec[i + 1];
    vec[i] = v0 * fcr - v1 * fci;
    vec[i + 1] = v0 * fci + v1 * fcr;
  }
}

void LlamaSession::attend(int l, int pos, const float* q, float* out) {
  const LlamaConfig& c = m_.config();
  const int kv_dim = c.kv_dim(), head_dim = c.head_dim(), kv_mul = c.n_heads / c.n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const size_t layer_off = static_cast<size_t>(l) * max_positions_ * kv_dim;
  // Heads are independent (each has its own row of att_): split them across the pool once the
  // context makes it worth waking the workers.
  auto heads = [&](size_t h_begin, size_t h_end) {
    for (size_t h = h_begin; h < h_end; ++h) {
      const float* qh = q + h * head_dim;
      float* att = att_.data() + h * max_positions_;
      const size_t head_off = layer_off + (h / static_cast<size_t>(kv_mul)) * head_dim;
      for (int t = 0; t <= pos; ++t) {
        att[t] = dot_f32(qh, key_cache_.data() + head_off + static_cast<size_t>(t) * kv_dim, static_cast<uint64_t>(head_dim), isa_) * scale;
      }
      softmax(att, pos + 1);
      float* o = out + h * head_dim;
      std::memset(o, 0, static_cast<size_t>(head_dim) * sizeof(float));
      for (int t = 0; t <= pos; ++t) {
        axpy_f32(att[t], value_cache_.data() + head_off + static_cast<size_t>(t) * kv_dim, o, static_cast<uint64_t>(head_dim), isa_);
      }
    }
  };
  if (pool_ != nullptr && pool_->size() > 1 && static_cast<int64_t>(pos + 1) * c.dim >= 16384) {
    pool_->parallel_for(static_cast<size_t>(c.n_heads), heads);
  } else {
    heads(0, static_cast<size_t>(c.n_heads));
  }
}

const float* LlamaSession::finish(const float* x_last) {
  const LlamaConfig& c = m_.config();
  rmsnorm(x_.data(), x_last, m_.output_norm(), c.dim, c.norm_eps, &row_);
  prepare_vector(x_.data(), static_cast<uint64_t>(c.dim), vector_forms_, &pv_);
  mv(m_.classifier(), pv_, logits_.data());
  return logits_.data();
}

Result<const float*> LlamaSession::forward(int32_t token, int pos) {
  LLMOPS_RETURN_IF_ERROR(check(token, pos));
  const LlamaConfig& c = m_.config();
  const int dim = c.dim, kv_dim = c.kv_dim();
  dequantize_row(m_.token_embedding().type, m_.token_embedding().row(static_cast<uint64_t>(token)), x_.data(), static_cast<uint64_t>(dim));
  for (int l = 0; l < c.n_layers; ++l) {
    const LlamaLayer& L = m_.layers()[static_cast<size_t>(l)];
    rmsnorm(xb_.data(), x_.data(), L.attn_norm, dim, c.norm_eps, &row_);
    size_t cache_off = (static_cast<size_t>(l) * max_positions_ + pos) * kv_dim;
    float* k = key_cache_.data() + cache_off;
    float* v = value_cache_.data() + cache_off;
    prepare_vector(xb_.data(), static_cast<uint64_t>(dim), vector_forms_, &pv_);
    mv(L.wq, pv_, q_.data());
    mv(L.wk, pv_, k);
    mv(L.wv, pv_, v);
    rope(q_.data(), dim, pos);
    rope(k, kv_dim, pos);
    attend(l, pos, q_.data(), xb_.data());
    prepare_vector(xb_.data(), static_cast<uint64_t>(dim), vector_forms_, &pv_);
    mv(L.wo, pv_, xb2_.data());
    for (int i = 0; i < dim; ++i) x_[i] += xb2_[i];

    // SwiGLU feed-forward.
    rmsnorm(xb_.data(), x_.data(), L.ffn_norm, dim, c.norm_eps, &row_);
    prepare_vector(xb_.data(), static_cast<uint64_t>(dim), vector_forms_, &pv_);
    mv(L.w_gate, pv_, hb_.data());
    mv(L.w_up, pv_, hb2_.data());
    for (int i = 0; i < c.hidden_dim; ++i) {
      float g = hb_[i];
      hb_[i] = g / (1.0f + std::exp(-g)) * hb2_[i];
    }
    prepare_vector(hb_.data(), static_cast<uint64_t>(c.hidden_dim), vector_forms_, &pv_);
    mv(L.w_down, pv_, xb_.data());
    for (int i = 0; i < dim; ++i) x_[i] += xb_[i];
  }
  return finish(x_.data());
}

void LlamaSession::mm(const WeightView& w, const float* x, int t, float* y) {
  // The pool runs the integer GEMM of quantised weights; the sgemm path ignores it (matmul.h).
  matmul_rows(w.type, w.data, w.rows, w.row_bytes, w.cols, x, static_cast<uint64_t>(t), y, &tile_, pool_);
}

Result<const float*> LlamaSession::prefill(const int32_t* tokens, int n, int start_pos, int chunk) {
  if (n <= 0) return invalid_argument("prefill needs at least one token");
  for (int i = 0; i < n; ++i) LLMOPS_RETURN_IF_ERROR(check(tokens[i], start_pos + i));
  const LlamaConfig& c = m_.config();
  const int dim = c.dim, kv_dim = c.kv_dim(), hidden = c.hidden_dim;
  chunk = std::max(1, std::min(chunk, n));
  auto size = [&](std::vector<float>& b, int width) { b.resize(static_cast<size_t>(chunk) * width); };
  size(bx_, dim), size(bxb_, dim), size(bxb2_, dim), size(bq_, dim), size(bk_, kv_dim), size(bv_, kv_dim);
  size(bhb_, hidden), size(bhb2_, hidden);
  for (int done = 0; done < n; done += chunk) {
    const int t = std::min(chunk, n - done), pos0 = start_pos + done;
    for (int i = 0; i < t; ++i) {
      const WeightView& e = m_.token_embedding();
      dequantize_row(e.type, e.row(static_cast<uint64_t>(tokens[done + i])), bx_.data() + static_cast<size_t>(i) * dim, static_cast<uint64_t>(dim));
    }
    for (int l = 0; l < c.n_layers; ++l) {
      const LlamaLayer& L = m_.layers()[static_cast<size_t>(l)];
      for (int i = 0; i < t; ++i) rmsnorm(bxb_.data() + i * dim, bx_.data() + i * dim, L.attn_norm, dim, c.norm_eps, &row_);
      mm(L.wq, bxb_.data(), t, bq_.data());
      mm(L.wk, bxb_.data(), t, bk_.data());
      mm(L.wv, bxb_.data(), t, bv_.data());
      for (int i = 0; i < t; ++i) {
        const int pos = pos0 + i;
        rope(bq_.data() + i * dim, dim, pos);
        rope(bk_.data() + i * kv_dim, kv_dim, pos);
        size_t cache_off = (static_cast<size_t>(l) * max_positions_ + pos) * kv_dim;
        std::memcpy(key_cache_.data() + cache_off, bk_.data() + i * kv_dim, static_cast<size_t>(kv_dim) * sizeof(float));
        std::memcpy(value_cache_.data() + cache_off, bv_.data() + i * kv_dim, static_cast<size_t>(kv_dim) * sizeof(float));
      }
      // Causal: token i sees positions up to its own, which are all in the cache by now.
      for (int i = 0; i < t; ++i) attend(l, pos0 + i, bq_.data() + i * dim, bxb_.data() + i * dim);
      mm(L.wo, bxb_.data(), t, bxb2_.data());
      for (size_t j = 0; j < static_cast<size_t>(t) * dim; ++j) bx_[j] += bxb2_[j];
      for (int i = 0; i < t; ++i) rmsnorm(bxb_.data() + i * dim, bx_.data() + i * dim, L.ffn_norm, dim, c.norm_eps, &row_);
      mm(L.w_gate, bxb_.data(), t, bhb_.data());
      mm(L.w_up, bxb_.data(), t, bhb2_.data());
      for (size_t j = 0; j < static_cast<size_t>(t) * hidden; ++j) {
        float g = bhb_[j];
        bhb_[j] = g / (1.0f + std::exp(-g)) * bhb2_[j];
      }
      mm(L.w_down, bhb_.data(), t, bxb_.data());
      for (size_t j = 0; j < static_cast<size_t>(t) * dim; ++j) bx_[j] += bxb_[j];
    }
    if (done + t == n) return finish(bx_.data() + static_cast<size_t>(t - 1) * dim);
  }
  return internal_error("prefill ended without a last token");
}

}  // namespace llmops::engine
