#include "train/llama_train.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "formats/ggml_types.h"
#include "kernels/gemm.h"
#include "kernels/thread_pool.h"
#include "llmops/counter_hash.h"
#include "train/attention.h"

namespace llmops::engine::train {
namespace {

// C[m×n] = alpha·op(A)·op(B) + beta·C, row-major, across the pool (kernels/gemm.h).
template <typename T>
void gemm(ThreadPool* pool, bool ta, bool tb, int m, int n, int k, const T* a, int lda, const T* b, int ldb, T beta, T* c, int ldc,
          T alpha = T(1)) {
  engine::gemm(pool, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// y[n×out] = x[n×in] · w[out×in]ᵀ
template <typename T>
void linear(ThreadPool* pool, const T* x, const T* w, T* y, int n, int in, int out) {
  gemm(pool, false, true, n, out, in, x, in, w, in, T(0), y, out);
}
// dx[n×in] += dy[n×out] · w;  dw[out×in] += dyᵀ · x
template <typename T>
void linear_backward(ThreadPool* pool, const T* x, const T* w, const T* dy, T* dx, T* dw, int n, int in, int out) {
  gemm(pool, false, false, n, in, out, dy, out, w, in, T(1), dx, in);
  gemm(pool, true, false, out, in, n, dy, out, x, in, T(1), dw, in);
}

template <typename T>
void rmsnorm(const T* x, const T* w, T* y, T* rstd, int n, int d, double eps) {
  for (int i = 0; i < n; ++i) {
    const T* xi = x + static_cast<size_t>(i) * d;
    double ss = 0;
    for (int j = 0; j < d; ++j) ss += static_cast<double>(xi[j]) * xi[j];
    const T r = static_cast<T>(1.0 / std::sqrt(ss / d + eps));
    rstd[i] = r;
    for (int j = 0; j < d; ++j) y[static_cast<size_t>(i) * d + j] = w[j] * (xi[j] * r);
  }
}
// y = w ⊙ x·r with r = (mean(x²) + eps)^-1/2: dw += dy ⊙ x·r; dx += r·(w ⊙ dy) − r³/d · x · Σ(w ⊙ dy ⊙ x).
template <typename T>
void rmsnorm_backward(const T* x, const T* w, const T* rstd, const T* dy, T* dx, T* dw, int n, int d) {
  for (int i = 0; i < n; ++i) {
    const T* xi = x + static_cast<size_t>(i) * d;
    const T* dyi = dy + static_cast<size_t>(i) * d;
    T* dxi = dx + static_cast<size_t>(i) * d;
    const T r = rstd[i];
    double dot = 0;
    for (int j = 0; j < d; ++j) dot += static_cast<double>(w[j]) * dyi[j] * xi[j];
    const T k = static_cast<T>(dot * r * r * r / d);
    for (int j = 0; j < d; ++j) {
      dw[j] += dyi[j] * xi[j] * r;
      dxi[j] += r * w[j] * dyi[j] - k * xi[j];
    }
  }
}

// y = w ⊙ (x − μ)·r + b with r = (var(x) + eps)^-1/2 (GPT-2's LayerNorm).
template <typename T>
void layernorm(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int n, int d, double eps) {
  for (int i = 0; i < n; ++i) {
    const T* xi = x + static_cast<size_t>(i) * d;
    double mu = 0, var = 0;
    for (int j = 0; j < d; ++j) mu += xi[j];
    mu /= d;
    for (int j = 0; j < d; ++j) var += (xi[j] - mu) * (xi[j] - mu);
    const double r = 1.0 / std::sqrt(var / d + eps);
    mean[i] = static_cast<T>(mu);
    rstd[i] = static_cast<T>(r);
    for (int j = 0; j < d; ++j) y[static_cast<size_t>(i) * d + j] = static_cast<T>((xi[j] - mu) * r) * w[j] + b[j];
  }
}
// With x̂ = (x − μ)·r and g = dy ⊙ w: dw += dy ⊙ x̂, db += dy, dx += r·(g − mean(g) − x̂·mean(g ⊙ x̂)).
template <typename T>
void layernorm_backward(const T* x, const T* w, const T* mean, const T* rstd, const T* dy, T* dx, T* dw, T* db, int n, int d) {
  for (int i = 0; i < n; ++i) {
    const T* xi = x + static_cast<size_t>(i) * d;
    const T* dyi = dy + static_cast<size_t>(i) * d;
    T* dxi = dx + static_cast<size_t>(i) * d;
    double gm = 0, gxm = 0;
    for (int j = 0; j < d; ++j) {
      const double xh = (xi[j] - mean[i]) * rstd[i], gj = static_cast<double>(dyi[j]) * w[j];
      gm += gj;
      gxm += gj * xh;
    }
    gm /= d;
    gxm /= d;
    for (int j = 0; j < d; ++j) {
      const double xh = (xi[j] - mean[i]) * rstd[i];
      if (dw != nullptr) dw[j] += static_cast<T>(dyi[j] * xh);
      if (db != nullptr) db[j] += dyi[j];
      dxi[j] += static_cast<T>(rstd[i] * (static_cast<double>(dyi[j]) * w[j] - gm - xh * gxm));
    }
  }
}

// GPT-2's GELU, the tanh form, and its derivative.
constexpr double kGeluC = 0.7978845608028654;  // sqrt(2/π)
template <typename T>
T gelu(T x) {
  return static_cast<T>(0.5 * x * (1.0 + std::tanh(kGeluC * (x + 0.044715 * x * x * x))));
}
template <typename T>
T gelu_grad(T x) {
  const double th = std::tanh(kGeluC * (x + 0.044715 * x * x * x));
  return static_cast<T>(0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * kGeluC * (1.0 + 3.0 * 0.044715 * x * x));
}

// y[n×m] += b on every row; db[m] += the column sums of dy.
template <typename T>
void add_bias(T* y, const T* b, int n, int m) {
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < m; ++j) y[static_cast<size_t>(i) * m + j] += b[j];
  }
}
template <typename T>
void bias_backward(const T* dy, T* db, int n, int m) {
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < m; ++j) db[j] += dy[static_cast<size_t>(i) * m + j];
  }
}

// Rotates (sign +1) or rotates back (sign −1, the backward pass: the transpose) each head's
// pairs at the row's position.
template <typename T>
void rope(T* v, int n_rows, int seq, int heads, int head_dim, const std::vector<float>& inv_freq, bool neox, int sign) {
  const int half = static_cast<int>(inv_freq.size());
  for (int r = 0; r < n_rows; ++r) {
    const int pos = r % seq;
    for (int i = 0; i < half; ++i) {
      const double angle = static_cast<double>(pos) * inv_freq[static_cast<size_t>(i)];
      const T cs = static_cast<T>(std::cos(angle)), sn = static_cast<T>(sign * std::sin(angle));
      for (int h = 0; h < heads; ++h) {
        T* hv = v + (static_cast<size_t>(r) * heads + h) * head_dim;
        T* a = neox ? hv + i : hv + 2 * i;
        T* b = neox ? hv + i + half : hv + 2 * i + 1;
        const T v0 = *a, v1 = *b;
        *a = v0 * cs - v1 * sn;
        *b = v0 * sn + v1 * cs;
      }
    }
  }
}

template <typename T>
T silu(T x) {
  return x / (T(1) + std::exp(-x));
}

template <typename T>
void fill_normal(T* p, size_t n, double std, std::mt19937_64& rng) {
  std::normal_distribution<double> d(0.0, std);
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<T>(d(rng));
}

}  // namespace

template <typename T>
void LlamaTrainer<T>::layout() {
  const size_t d = c_.dim, q = c_.q_dim(), kv = c_.kv_dim(), h = c_.hidden_dim, v = c_.vocab_size;
  size_t at = 0;
  auto add = [&](std::string name, size_t rows, size_t cols, bool bias = false) {
    tensors_.push_back({std::move(name), at, rows, cols, bias});
    at += rows * cols;
    return tensors_.size() - 1;
  };
  auto whole = [&](std::string name, size_t rows, size_t cols, bool bias = false) { return tensors_[add(std::move(name), rows, cols, bias)]; };
  auto rows_of = [](TensorRef r, size_t first, size_t n) {
    r.offset += first * r.cols;
    r.rows = n;
    return r;
  };
  tok_ = add("token_embd", v, d);
  if (gpt2()) pos_ = add("position_embd", static_cast<size_t>(c_.seq_len), d);
  layers_.clear();
  for (int l = 0; l < c_.n_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    LayerRefs r;
    r.attn_norm = whole(b + "attn_norm", d, 1);
    if (gpt2()) {
      r.attn_norm_b = whole(b + "attn_norm", d, 1, true);
      const TensorRef qkv = whole(b + "attn_qkv", q + 2 * kv, d), qkv_b = whole(b + "attn_qkv", q + 2 * kv, 1, true);
      r.wq = rows_of(qkv, 0, q), r.wk = rows_of(qkv, q, kv), r.wv = rows_of(qkv, q + kv, kv);
      r.bq = rows_of(qkv_b, 0, q), r.bk = rows_of(qkv_b, q, kv), r.bv = rows_of(qkv_b, q + kv, kv);
      r.wo = whole(b + "attn_output", d, q);
      r.bo = whole(b + "attn_output", d, 1, true);
      r.ffn_norm = whole(b + "ffn_norm", d, 1);
      r.ffn_norm_b = whole(b + "ffn_norm", d, 1, true);
      r.up = whole(b + "ffn_up", h, d);
      r.b_up = whole(b + "ffn_up", h, 1, true);
      r.down = whole(b + "ffn_down", d, h);
      r.b_down = whole(b + "ffn_down", d, 1, true);
    } else {
      r.wq = whole(b + "attn_q", q, d);
      r.wk = whole(b + "attn_k", kv, d);
      r.wv = whole(b + "attn_v", kv, d);
      if (qkv_bias_) {
        r.bq = whole(b + "attn_q", q, 1, true);
        r.bk = whole(b + "attn_k", kv, 1, true);
        r.bv = whole(b + "attn_v", kv, 1, true);
      }
      r.wo = whole(b + "attn_output", d, q);
      r.ffn_norm = whole(b + "ffn_norm", d, 1);
      r.gate = whole(b + "ffn_gate", h, d);
      r.up = whole(b + "ffn_up", h, d);
      r.down = whole(b + "ffn_down", d, h);
    }
    layers_.push_back(r);
  }
  out_norm_ = add("output_norm", d, 1);
  if (gpt2()) out_norm_b_ = add("output_norm", d, 1, true);
  cls_ = tied_ ? tok_ : add("output", v, d);
  params_.assign(at, T(0));
  grads_.assign(at, T(0));
}

template <typename T>
Result<LlamaTrainer<T>> LlamaTrainer<T>::random(const ModelConfig& config, bool tied_embeddings, uint64_t seed, bool qkv_bias) {
  LLMOPS_RETURN_IF_ERROR(config.validate());
  LlamaTrainer t;
  t.qkv_bias_ = qkv_bias && config.arch != Arch::kGpt2;
  t.c_ = config;
  t.tied_ = tied_embeddings;
  t.inv_freq_ = rope_inv_freq(config);
  t.layout();
  std::mt19937_64 rng(seed);
  const double residual_std = 0.02 / std::sqrt(2.0 * config.n_layers);
  for (size_t i = 0; i < t.tensors_.size(); ++i) {
    const TensorRef& r = t.tensors_[i];
    if (!r.matrix()) {
      std::fill(t.p(r), t.p(r) + r.size(), r.bias ? T(0) : T(1));  // norms at one, biases at zero
      continue;
    }
    const bool into_residual = r.name.find("attn_output") != std::string::npos || r.name.find("ffn_down") != std::string::npos;
    fill_normal(t.p(r), r.size(), into_residual ? residual_std : r.name == "position_embd" ? 0.01 : 0.02, rng);
  }
  return t;
}

template <typename T>
Result<LlamaTrainer<T>> LlamaTrainer<T>::from_model(const Model& model) {
  const ModelConfig& c = model.config();
  bool qkv_bias = false;
  if (c.arch != Arch::kGpt2) {
    for (const auto& l : model.layers()) {
      if (l.bo != nullptr) return unimplemented("training does not cover an attention output bias outside GPT-2 yet");
      const int biases = (l.bq != nullptr) + (l.bk != nullptr) + (l.bv != nullptr);
      if (biases != 0 && biases != 3) return unimplemented("training covers q/k/v biases all three or none");
      qkv_bias = qkv_bias || biases == 3;
    }
  }
  LlamaTrainer t;
  t.qkv_bias_ = qkv_bias;
  t.c_ = c;
  t.tied_ = model.classifier().data == model.token_embedding().data;
  t.inv_freq_ = model.rope_inv_freq();
  t.layout();
  std::vector<float> row;
  auto widen = [&](const WeightView& w, const TensorRef& r) -> Status {
    if (w.rows != r.rows || w.cols != r.cols) return invalid_argument(r.name + " has shape " + std::to_string(w.rows) + "×" + std::to_string(w.cols));
    row.resize(w.cols);
    for (uint64_t i = 0; i < w.rows; ++i) {
      dequantize_row(w.type, w.row(i), row.data(), w.cols);
      std::copy(row.begin(), row.end(), t.p(r) + i * w.cols);
    }
    return ok_status();
  };
  auto vec = [&](const float* v, const TensorRef& r) { std::copy(v, v + r.size(), t.p(r)); };
  auto vec_opt = [&](const float* v, const TensorRef& r) -> Status {
    if (!r.present()) return ok_status();
    if (v == nullptr) return invalid_argument(r.name + ".bias is missing from the model");
    vec(v, r);
    return ok_status();
  };
  LLMOPS_RETURN_IF_ERROR(widen(model.token_embedding(), t.tensors_[t.tok_]));
  if (t.gpt2()) LLMOPS_RETURN_IF_ERROR(widen(model.position_embedding(), t.tensors_[t.pos_]));
  for (int l = 0; l < c.n_layers; ++l) {
    const Layer& src = model.layers()[static_cast<size_t>(l)];
    const LayerRefs& r = t.layers_[static_cast<size_t>(l)];
    vec(src.attn_norm, r.attn_norm);
    vec(src.ffn_norm, r.ffn_norm);
    LLMOPS_RETURN_IF_ERROR(widen(src.wq, r.wq));
    LLMOPS_RETURN_IF_ERROR(widen(src.wk, r.wk));
    LLMOPS_RETURN_IF_ERROR(widen(src.wv, r.wv));
    LLMOPS_RETURN_IF_ERROR(widen(src.wo, r.wo));
    if (r.gate.present()) LLMOPS_RETURN_IF_ERROR(widen(src.w_gate, r.gate));
    LLMOPS_RETURN_IF_ERROR(widen(src.w_up, r.up));
    LLMOPS_RETURN_IF_ERROR(widen(src.w_down, r.down));
    for (auto [v, ref] : {std::pair<const float*, const TensorRef*>{src.attn_norm_b, &r.attn_norm_b}, {src.ffn_norm_b, &r.ffn_norm_b}, {src.bq, &r.bq},
                          {src.bk, &r.bk}, {src.bv, &r.bv}, {src.bo, &r.bo}, {src.b_up, &r.b_up}, {src.b_down, &r.b_down}}) {
      LLMOPS_RETURN_IF_ERROR(vec_opt(v, *ref));
    }
  }
  vec(model.output_norm(), t.tensors_[t.out_norm_]);
  if (t.gpt2()) LLMOPS_RETURN_IF_ERROR(vec_opt(model.output_norm_bias(), t.tensors_[t.out_norm_b_]));
  if (!t.tied_) LLMOPS_RETURN_IF_ERROR(widen(model.classifier(), t.tensors_[t.cls_]));
  return t;
}

template <typename T>
void LlamaTrainer<T>::zero_grads() {
  std::fill(grads_.begin(), grads_.end(), T(0));
}

template <typename T>
void LlamaTrainer<T>::norm(const TensorRef& w, const TensorRef& b, const T* x, T* y, std::vector<T>& mean, std::vector<T>& rstd, int n) {
  rstd.resize(static_cast<size_t>(n));
  if (b.present()) mean.resize(static_cast<size_t>(n));
  const size_t d = static_cast<size_t>(c_.dim);
  parallel_for(pool_, static_cast<size_t>(n), [&](size_t begin, size_t end) {  // rows are independent
    const int rows = static_cast<int>(end - begin);
    if (b.present()) {
      layernorm(x + begin * d, p(w), p(b), y + begin * d, mean.data() + begin, rstd.data() + begin, rows, c_.dim, c_.norm_eps);
    } else {
      rmsnorm(x + begin * d, p(w), y + begin * d, rstd.data() + begin, rows, c_.dim, c_.norm_eps);
    }
  });
}

template <typename T>
void LlamaTrainer<T>::norm_backward(const TensorRef& w, const TensorRef& b, const T* x, const std::vector<T>& mean, const std::vector<T>& rstd,
                                    const T* dy, T* dx, int n) {
  if (b.present()) {
    layernorm_backward(x, p(w), mean.data(), rstd.data(), dy, dx, g(w), g(b), n, c_.dim);
  } else {
    rmsnorm_backward(x, p(w), rstd.data(), dy, dx, g(w), n, c_.dim);
  }
}

template <typename T>
Result<double> LlamaTrainer<T>::forward(const int32_t* tokens, const int32_t* targets, int batch, int seq) {
  if (batch < 1 || seq < 1 || seq > c_.seq_len) return invalid_argument("a training batch needs 1.." + std::to_string(c_.seq_len) + " tokens per sequence");
  const int n = batch * seq, d = c_.dim, qd = c_.q_dim(), kvd = c_.kv_dim(), hd = c_.hidden_dim, V = c_.vocab_size;
  const int heads = c_.n_heads, kv_heads = c_.n_kv_heads, head_dim = c_.head_dim;
  const AttentionShape attn{batch, seq, heads, kv_heads, head_dim};
  for (int i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= V || targets[i] >= V) return invalid_argument("token id out of the vocabulary at " + std::to_string(i));
  }
  b_ = batch;
  s_ = seq;
  tokens_.assign(tokens, tokens + n);
  targets_.assign(targets, targets + n);
  acts_.resize(static_cast<size_t>(c_.n_layers));
  const bool neox = c_.rope == RopeLayout::kNeox;
  std::vector<T> x(static_cast<size_t>(n) * d);
  const T* emb = p(tensors_[tok_]);
  for (int i = 0; i < n; ++i) std::copy(emb + static_cast<size_t>(tokens[i]) * d, emb + static_cast<size_t>(tokens[i] + 1) * d, x.begin() + static_cast<size_t>(i) * d);
  if (gpt2()) {
    const T* pos = p(tensors_[pos_]);
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < d; ++j) x[static_cast<size_t>(i) * d + j] += pos[static_cast<size_t>(i % seq) * d + j];
    }
  }
  for (int l = 0; l < c_.n_layers; ++l) {
    LayerActs& a = acts_[static_cast<size_t>(l)];
    const LayerRefs& r = layers_[static_cast<size_t>(l)];
    a.x_in = x;
    a.xn.resize(x.size());
    norm(r.attn_norm, r.attn_norm_b, x.data(), a.xn.data(), a.mean, a.rstd, n);
    a.q.resize(static_cast<size_t>(n) * qd);
    a.k.resize(static_cast<size_t>(n) * kvd);
    a.v.resize(static_cast<size_t>(n) * kvd);
    project(l, kQ, a.xn.data(), a.q.data(), n, d, qd);
    project(l, kK, a.xn.data(), a.k.data(), n, d, kvd);
    project(l, kV, a.xn.data(), a.v.data(), n, d, kvd);
    if (r.bq.present()) add_bias(a.q.data(), p(r.bq), n, qd);
    if (r.bk.present()) add_bias(a.k.data(), p(r.bk), n, kvd);
    if (r.bv.present()) add_bias(a.v.data(), p(r.bv), n, kvd);
    rope(a.q.data(), n, seq, heads, head_dim, inv_freq_, neox, +1);
    rope(a.k.data(), n, seq, kv_heads, head_dim, inv_freq_, neox, +1);
    // Causal attention: att[b][h][t][u] for u <= t, the softmax kept for backward.
    a.att.assign(static_cast<size_t>(batch) * heads * seq * seq, T(0));
    a.att_out.assign(static_cast<size_t>(n) * qd, T(0));
    causal_attention(pool_, attn, a.q.data(), a.k.data(), a.v.data(), a.att.data(), a.att_out.data());
    std::vector<T> o(static_cast<size_t>(n) * d);
    project(l, kO, a.att_out.data(), o.data(), n, qd, d);
    if (r.bo.present()) add_bias(o.data(), p(r.bo), n, d);
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    a.x_mid = x;
    a.xn2.resize(x.size());
    norm(r.ffn_norm, r.ffn_norm_b, x.data(), a.xn2.data(), a.mean2, a.rstd2, n);
    a.up.resize(static_cast<size_t>(n) * hd);
    a.h.resize(static_cast<size_t>(n) * hd);
    project(l, kUp, a.xn2.data(), a.up.data(), n, d, hd);
    if (gpt2()) {
      // h = gelu(up(xn2) + b), the pre-activation kept in up.
      if (r.b_up.present()) add_bias(a.up.data(), p(r.b_up), n, hd);
      for (size_t i = 0; i < a.h.size(); ++i) a.h[i] = gelu(a.up[i]);
    } else {
      a.gate.resize(static_cast<size_t>(n) * hd);
      project(l, kGate, a.xn2.data(), a.gate.data(), n, d, hd);
      parallel_for(pool_, a.h.size(), [&](size_t begin, size_t end) {
        for (size_t i = begin; i < end; ++i) a.h[i] = silu(a.gate[i]) * a.up[i];
      });
    }
    project(l, kDown, a.h.data(), o.data(), n, hd, d);
    if (r.b_down.present()) add_bias(o.data(), p(r.b_down), n, d);
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
  }
  x_final = x;
  xf_norm.resize(x.size());
  norm(tensors_[out_norm_], out_norm_bias(), x.data(), xf_norm.data(), mean_f, rstd_f, n);
  probs.resize(static_cast<size_t>(n) * V);
  linear(pool_, xf_norm.data(), p(tensors_[cls_]), probs.data(), n, d, V);
  // Softmax rows across the pool; the loss is summed in row order.
  std::vector<double> row_loss(static_cast<size_t>(n), 0.0);
  parallel_for(pool_, static_cast<size_t>(n), [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      T* row = probs.data() + i * V;
      const T mx = *std::max_element(row, row + V);
      double sum = 0;
      for (int j = 0; j < V; ++j) sum += (row[j] = std::exp(row[j] - mx));
      for (int j = 0; j < V; ++j) row[j] = static_cast<T>(row[j] / sum);
      if (targets[i] >= 0) row_loss[i] = -std::log(std::max<double>(row[targets[i]], 1e-300));
    }
  });
  double loss = 0;
  counted_ = 0;
  for (int i = 0; i < n; ++i) {
    if (targets[i] < 0) continue;
    loss += row_loss[static_cast<size_t>(i)];
    ++counted_;
  }
  return counted_ > 0 ? loss / static_cast<double>(counted_) : 0.0;
}

template <typename T>
void LlamaTrainer<T>::backward() {
  const int batch = b_, seq = s_, n = batch * seq, d = c_.dim, qd = c_.q_dim(), kvd = c_.kv_dim(), hd = c_.hidden_dim, V = c_.vocab_size;
  const int heads = c_.n_heads, kv_heads = c_.n_kv_heads, head_dim = c_.head_dim;
  if (n == 0 || counted_ == 0) return;
  const AttentionShape attn{batch, seq, heads, kv_heads, head_dim};
  const bool neox = c_.rope == RopeLayout::kNeox;
  // d loss / d logits = (softmax − one-hot) / counted, zero on masked rows; written over the
  // probabilities (the largest buffer of a step: batch × seq × vocab), which backward consumes.
  std::vector<T>& dlogits = probs;
  const T inv = static_cast<T>(1.0 / static_cast<double>(counted_));
  for (int i = 0; i < n; ++i) {
    T* dr = dlogits.data() + static_cast<size_t>(i) * V;
    if (targets_[i] < 0) {
      std::fill(dr, dr + V, T(0));
      continue;
    }
    for (int j = 0; j < V; ++j) dr[j] *= inv;
    dr[targets_[i]] -= inv;
  }
  std::vector<T> dxf(static_cast<size_t>(n) * d, T(0)), dx(static_cast<size_t>(n) * d, T(0));
  if (lora_on_) {
    gemm(pool_, false, false, n, d, V, dlogits.data(), V, p(tensors_[cls_]), d, T(1), dxf.data(), d);  // the classifier is frozen
  } else {
    linear_backward(pool_, xf_norm.data(), p(tensors_[cls_]), dlogits.data(), dxf.data(), g(tensors_[cls_]), n, d, V);
  }
  norm_backward(tensors_[out_norm_], out_norm_bias(), x_final.data(), mean_f, rstd_f, dxf.data(), dx.data(), n);
  // The logits' gradient (batch × seq × vocab, the largest buffer of a step) and the final
  // norm's buffers are spent: give them back before the layers' gradients are made.
  for (std::vector<T>* spent : {&probs, &dxf, &x_final, &xf_norm}) std::vector<T>().swap(*spent);
  std::vector<T> dh, dgate, dup, dxn, datt_out, dq, dk, dv;
  for (int l = c_.n_layers - 1; l >= 0; --l) {
    LayerActs& a = acts_[static_cast<size_t>(l)];
    const LayerRefs& r = layers_[static_cast<size_t>(l)];
    // x_out = x_mid + down(silu(gate(xn2)) ⊙ up(xn2)) (GPT-2: down(gelu(up(xn2) + b_up)) + b_down);
    // dx is d loss / d x_out.
    if (r.b_down.present()) bias_backward(dx.data(), g(r.b_down), n, d);
    dh.assign(static_cast<size_t>(n) * hd, T(0));
    project_backward(l, kDown, a.h.data(), dx.data(), dh.data(), n, hd, d);
    dup.resize(dh.size());
    dxn.assign(static_cast<size_t>(n) * d, T(0));
    if (gpt2()) {
      for (size_t i = 0; i < dh.size(); ++i) dup[i] = dh[i] * gelu_grad(a.up[i]);
      if (r.b_up.present()) bias_backward(dup.data(), g(r.b_up), n, hd);
    } else {
      dgate.resize(dh.size());
      parallel_for(pool_, dh.size(), [&](size_t begin, size_t end) {
        for (size_t i = begin; i < end; ++i) {
          const T gi = a.gate[i], sig = T(1) / (T(1) + std::exp(-gi));
          dup[i] = dh[i] * gi * sig;
          dgate[i] = dh[i] * a.up[i] * sig * (T(1) + gi * (T(1) - sig));
        }
      });
      project_backward(l, kGate, a.xn2.data(), dgate.data(), dxn.data(), n, d, hd);
    }
    project_backward(l, kUp, a.xn2.data(), dup.data(), dxn.data(), n, d, hd);
    // dx now also flows through the residual: d x_mid = dx + norm backward.
    norm_backward(r.ffn_norm, r.ffn_norm_b, a.x_mid.data(), a.mean2, a.rstd2, dxn.data(), dx.data(), n);
    // x_mid = x_in + wo(att_out) + bo.
    if (r.bo.present()) bias_backward(dx.data(), g(r.bo), n, d);
    datt_out.assign(static_cast<size_t>(n) * qd, T(0));
    project_backward(l, kO, a.att_out.data(), dx.data(), datt_out.data(), n, qd, d);
    dq.assign(static_cast<size_t>(n) * qd, T(0));
    dk.assign(static_cast<size_t>(n) * kvd, T(0));
    dv.assign(static_cast<size_t>(n) * kvd, T(0));
    causal_attention_backward(pool_, attn, a.q.data(), a.k.data(), a.v.data(), a.att.data(), datt_out.data(), dq.data(), dk.data(), dv.data());
    rope(dq.data(), n, seq, heads, head_dim, inv_freq_, neox, -1);
    rope(dk.data(), n, seq, kv_heads, head_dim, inv_freq_, neox, -1);
    if (r.bq.present()) bias_backward(dq.data(), g(r.bq), n, qd);
    if (r.bk.present()) bias_backward(dk.data(), g(r.bk), n, kvd);
    if (r.bv.present()) bias_backward(dv.data(), g(r.bv), n, kvd);
    dxn.assign(static_cast<size_t>(n) * d, T(0));
    project_backward(l, kQ, a.xn.data(), dq.data(), dxn.data(), n, d, qd);
    project_backward(l, kK, a.xn.data(), dk.data(), dxn.data(), n, d, kvd);
    project_backward(l, kV, a.xn.data(), dv.data(), dxn.data(), n, d, kvd);
    norm_backward(r.attn_norm, r.attn_norm_b, a.x_in.data(), a.mean, a.rstd, dxn.data(), dx.data(), n);
  }
  if (lora_on_) return;  // the embedding is frozen under LoRA
  T* demb = g(tensors_[tok_]);
  for (int i = 0; i < n; ++i) {
    const T* dr = dx.data() + static_cast<size_t>(i) * d;
    T* e = demb + static_cast<size_t>(tokens_[i]) * d;
    for (int j = 0; j < d; ++j) e[j] += dr[j];
  }
  if (gpt2()) {
    T* dpos = g(tensors_[pos_]);
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < d; ++j) dpos[static_cast<size_t>(i % seq) * d + j] += dx[static_cast<size_t>(i) * d + j];
    }
  }
}

template <typename T>
const TensorRef& LlamaTrainer<T>::proj_tensor(int layer, int which) const {
  const LayerRefs& r = layers_[static_cast<size_t>(layer)];
  const TensorRef* refs[kProjs] = {&r.wq, &r.wk, &r.wv, &r.wo, &r.gate, &r.up, &r.down};
  return *refs[which];
}

template <typename T>
Status LlamaTrainer<T>::enable_lora(const LoraConfig& config) {
  static const char* kNames[kProjs] = {"q", "k", "v", "o", "gate", "up", "down"};
  static const char* kGguf[kProjs] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
  if (config.rank < 1 || config.rank > 4096) return invalid_argument("the LoRA rank must be 1..4096");
  if (config.dropout < 0 || config.dropout >= 1) return invalid_argument("LoRA dropout must be in [0, 1)");
  std::array<bool, kProjs> on{};
  for (const auto& t : config.targets) {
    const auto* it = std::find_if(std::begin(kNames), std::end(kNames), [&](const char* n) { return t == n; });
    if (it == std::end(kNames)) return invalid_argument("unknown LoRA target '" + t + "'; the targets are q, k, v, o, gate, up, down");
    on[static_cast<size_t>(it - std::begin(kNames))] = true;
  }
  if (config.targets.empty()) return invalid_argument("name at least one LoRA target");
  if (gpt2() && on[kGate]) return invalid_argument("GPT-2 has no gate projection; its LoRA targets are q, k, v, o, up, down");
  lora_cfg_ = config;
  lora_tensors_.clear();
  lora_idx_.assign(static_cast<size_t>(c_.n_layers), {});
  size_t at = 0;
  for (int l = 0; l < c_.n_layers; ++l) {
    for (int w = 0; w < kProjs; ++w) {
      lora_idx_[static_cast<size_t>(l)][static_cast<size_t>(w)] = -1;
      if (!on[static_cast<size_t>(w)]) continue;
      const TensorRef& base = proj_tensor(l, w);
      const std::string name = "blk." + std::to_string(l) + "." + kGguf[w];
      lora_idx_[static_cast<size_t>(l)][static_cast<size_t>(w)] = static_cast<int>(lora_tensors_.size());
      lora_tensors_.push_back({name + ".lora_a", at, static_cast<size_t>(config.rank), base.cols});
      at += static_cast<size_t>(config.rank) * base.cols;
      lora_tensors_.push_back({name + ".lora_b", at, base.rows, static_cast<size_t>(config.rank)});
      at += base.rows * static_cast<size_t>(config.rank);
    }
  }
  lora_params_.assign(at, T(0));
  lora_grads_.assign(at, T(0));
  // A as PEFT initialises it (Kaiming-uniform, a = sqrt(5): bound 1/sqrt(in)); B zero, so the
  // adapted model starts as the base.
  std::mt19937_64 rng(config.seed);
  for (size_t i = 0; i < lora_tensors_.size(); i += 2) {
    const TensorRef& a = lora_tensors_[i];
    std::uniform_real_distribution<double> u(-1.0 / std::sqrt(static_cast<double>(a.cols)), 1.0 / std::sqrt(static_cast<double>(a.cols)));
    for (size_t k = 0; k < a.size(); ++k) lora_params_[a.offset + k] = static_cast<T>(u(rng));
  }
  lora_acts_.assign(static_cast<size_t>(c_.n_layers), {});
  lora_on_ = true;
  return ok_status();
}

template <typename T>
void LlamaTrainer<T>::zero_lora_grads() {
  std::fill(lora_grads_.begin(), lora_grads_.end(), T(0));
}

template <typename T>
void LlamaTrainer<T>::project(int layer, int which, const T* x, T* y, int n, int in, int out) {
  linear(pool_, x, p(proj_tensor(layer, which)), y, n, in, out);
  if (!lora_on_) return;
  const int idx = lora_idx_[static_cast<size_t>(layer)][static_cast<size_t>(which)];
  if (idx < 0) return;
  const int r = lora_cfg_.rank;
  const T s = static_cast<T>(lora_cfg_.alpha / r);
  const T* A = lora_params_.data() + lora_tensors_[static_cast<size_t>(idx)].offset;
  const T* B = lora_params_.data() + lora_tensors_[static_cast<size_t>(idx) + 1].offset;
  LoraActs& la = lora_acts_[static_cast<size_t>(layer)][static_cast<size_t>(which)];
  const T* xin = x;
  if (training_ && lora_cfg_.dropout > 0) {
    const size_t m = static_cast<size_t>(n) * in;
    la.xd.resize(m);
    la.keep.resize(m);
    const uint64_t key = lora_dropout_key(lora_cfg_.seed, dropout_stream_, layer * kProjs + which);
    const float p = static_cast<float>(lora_cfg_.dropout);
    const T scale = static_cast<T>(static_cast<float>(1.0 / (1.0 - lora_cfg_.dropout)));
    parallel_for(pool_, m, [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) {
        la.keep[i] = dropout_keeps(key, i, p) ? 1 : 0;
        la.xd[i] = la.keep[i] ? x[i] * scale : T(0);
      }
    });
    xin = la.xd.data();
  } else {
    la.xd.clear();
  }
  la.u.resize(static_cast<size_t>(n) * r);
  gemm(pool_, false, true, n, r, in, xin, in, A, in, T(0), la.u.data(), r);        // u = x·Aᵀ
  gemm(pool_, false, true, n, out, r, la.u.data(), r, B, r, T(1), y, out, s);      // y += s·u·Bᵀ
}

template <typename T>
void LlamaTrainer<T>::project_backward(int layer, int which, const T* x, const T* dy, T* dx, int n, int in, int out) {
  const TensorRef& w = proj_tensor(layer, which);
  gemm(pool_, false, false, n, in, out, dy, out, p(w), in, T(1), dx, in);  // dx += dy·W
  if (!lora_on_) {
    gemm(pool_, true, false, out, in, n, dy, out, x, in, T(1), g(w), in);  // dW += dyᵀ·x
    return;
  }
  const int idx = lora_idx_[static_cast<size_t>(layer)][static_cast<size_t>(which)];
  if (idx < 0) return;
  const int r = lora_cfg_.rank;
  const T s = static_cast<T>(lora_cfg_.alpha / r);
  const TensorRef& ta = lora_tensors_[static_cast<size_t>(idx)];
  const TensorRef& tb = lora_tensors_[static_cast<size_t>(idx) + 1];
  const T* A = lora_params_.data() + ta.offset;
  const T* B = lora_params_.data() + tb.offset;
  T* dA = lora_grads_.data() + ta.offset;
  T* dB = lora_grads_.data() + tb.offset;
  LoraActs& la = lora_acts_[static_cast<size_t>(layer)][static_cast<size_t>(which)];
  const T* xin = la.xd.empty() ? x : la.xd.data();
  std::vector<T> du(static_cast<size_t>(n) * r);
  gemm(pool_, true, false, out, r, n, dy, out, la.u.data(), r, T(1), dB, r, s);  // dB += s·dyᵀ·u
  gemm(pool_, false, false, n, r, out, dy, out, B, r, T(0), du.data(), r, s);     // du = s·dy·B
  gemm(pool_, true, false, r, in, n, du.data(), r, xin, in, T(1), dA, in);       // dA += duᵀ·x
  if (la.xd.empty()) {
    gemm(pool_, false, false, n, in, r, du.data(), r, A, in, T(1), dx, in);      // dx += du·A
    return;
  }
  std::vector<T> dxd(static_cast<size_t>(n) * in);
  gemm(pool_, false, false, n, in, r, du.data(), r, A, in, T(0), dxd.data(), in);
  const T scale = static_cast<T>(static_cast<float>(1.0 / (1.0 - lora_cfg_.dropout)));
  for (size_t i = 0; i < dxd.size(); ++i) dx[i] += la.keep[i] ? dxd[i] * scale : T(0);
}

template <typename T>
void LlamaTrainer<T>::merge_lora() {
  if (!lora_on_) return;
  const int r = lora_cfg_.rank;
  const T s = static_cast<T>(lora_cfg_.alpha / r);
  for (int l = 0; l < c_.n_layers; ++l) {
    for (int w = 0; w < kProjs; ++w) {
      const int idx = lora_idx_[static_cast<size_t>(l)][static_cast<size_t>(w)];
      if (idx < 0) continue;
      const TensorRef& base = proj_tensor(l, w);
      const T* A = lora_params_.data() + lora_tensors_[static_cast<size_t>(idx)].offset;
      const T* B = lora_params_.data() + lora_tensors_[static_cast<size_t>(idx) + 1].offset;
      gemm(pool_, false, false, static_cast<int>(base.rows), static_cast<int>(base.cols), r, B, r, A, static_cast<int>(base.cols), T(1), p(base),
           static_cast<int>(base.cols), s);  // W += s·B·A
    }
  }
  lora_on_ = false;
  lora_tensors_.clear();
  lora_params_.clear();
  lora_grads_.clear();
  lora_acts_.clear();
}

uint64_t lora_dropout_key(uint64_t seed, uint64_t stream, int slot) {
  return llmops_splitmix64(llmops_splitmix64(seed) ^ (stream * 0xD1B54A32D192ED03ULL)) + static_cast<uint64_t>(slot) * 0x8CB92BA72F3D8DD7ULL;
}

bool dropout_keeps(uint64_t key, uint64_t i, float p) {
  return llmops_hash_unit(key, i) >= p;
}

uint64_t dropout_key_at(uint64_t key, uint64_t first) { return key + first * LLMOPS_HASH_GAMMA; }

double learning_rate(const AdamWConfig& c, int64_t step) {
  if (c.warmup_steps > 0 && step < c.warmup_steps) return c.lr * static_cast<double>(step + 1) / static_cast<double>(c.warmup_steps);
  const int64_t span = std::max<int64_t>(1, c.total_steps - c.warmup_steps);
  const double frac = std::clamp(static_cast<double>(step - c.warmup_steps) / static_cast<double>(span), 0.0, 1.0);
  const double shape = c.cosine ? 0.5 * (1.0 + std::cos(M_PI * frac)) : 1.0 - frac;
  return c.min_lr + (c.lr - c.min_lr) * shape;
}

template <typename T>
double AdamW<T>::step(std::vector<T>& params, std::vector<T>& grads, const std::vector<TensorRef>& tensors) {
  double norm2 = 0;
  for (T gi : grads) norm2 += static_cast<double>(gi) * gi;
  const double norm = std::sqrt(norm2);
  const double clip = c_.clip_norm > 0 && norm > c_.clip_norm ? c_.clip_norm / norm : 1.0;
  const double lr = learning_rate(c_, t_);
  ++t_;
  const double bc1 = 1.0 - std::pow(c_.beta1, static_cast<double>(t_)), bc2 = 1.0 - std::pow(c_.beta2, static_cast<double>(t_));
  for (const TensorRef& r : tensors) {
    const double wd = r.matrix() ? c_.weight_decay : 0.0;
    for (size_t i = r.offset; i < r.offset + r.size(); ++i) {
      const double gi = static_cast<double>(grads[i]) * clip;
      m_[i] = static_cast<T>(c_.beta1 * m_[i] + (1 - c_.beta1) * gi);
      v_[i] = static_cast<T>(c_.beta2 * v_[i] + (1 - c_.beta2) * gi * gi);
      const double mhat = m_[i] / bc1, vhat = v_[i] / bc2;
      params[i] = static_cast<T>(params[i] - lr * (mhat / (std::sqrt(vhat) + c_.eps) + wd * params[i]));
    }
  }
  return norm;
}

template class LlamaTrainer<float>;
template class LlamaTrainer<double>;
template class AdamW<float>;
template class AdamW<double>;

}  // namespace llmops::engine::train
