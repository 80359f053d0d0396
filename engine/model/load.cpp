// Loading models from GGUF and llama2.c files into Model's views; the format is told by content.
#include <cstring>

#include "formats/detect.h"
#include "formats/llama2c.h"
#include "model/loader.h"

namespace llmops::engine {

const float* ModelLoader::vector(Model& m, GgmlType type, const uint8_t* data, uint64_t n) {
  if (type == GgmlType::kF32 && reinterpret_cast<uintptr_t>(data) % alignof(float) == 0) return reinterpret_cast<const float*>(data);
  std::vector<float> v(n);
  dequantize_row(type, data, v.data(), n);
  return m.keep(std::move(v));
}

namespace {

void touch_pages(const WeightView& w, volatile uint8_t* sink) {
  const uint8_t* p = w.data;
  const uint64_t n = w.bytes();
  for (uint64_t off = 0; off < n; off += 4096) *sink = static_cast<uint8_t>(*sink + p[off]);
}

}  // namespace

Status ModelLoader::finish(Model& m, const float* rope_factors) {
  LLMOPS_RETURN_IF_ERROR(m.config_.validate());
  m.init_rope(rope_factors);
  volatile uint8_t sink = 0;
  // Every page a decode step reads is faulted in now, so the first request does not pay for it.
  // The embedding table is not among them (a token reads one row): touching it would only
  // make all of it resident (295 MB for Llama 3 8B at Q4_K), unless it is the classifier too.
  if (m.token_embd_.data == m.output_.data) touch_pages(m.token_embd_, &sink);
  touch_pages(m.pos_embd_, &sink);
  touch_pages(m.output_, &sink);
  for (const Layer& L : m.layers_) {
    for (const WeightView* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) touch_pages(*w, &sink);
  }
  return ok_status();
}

namespace {

// GGUF tensors by name, checked against the shapes the config implies.
struct GgufTensors {
  Model& m;
  const GgufFile& g;

  const GgufTensor* find(const std::string& name) const { return g.tensor(name); }

  Result<WeightView> matrix(const std::string& name, uint64_t rows, uint64_t cols) const {
    const GgufTensor* t = g.tensor(name);
    if (t == nullptr) return invalid_argument("GGUF has no tensor '" + name + "'; the file is not a complete model of its architecture");
    if (t->ne[0] != cols || t->rows() != rows) {
      return invalid_argument("tensor '" + name + "' is " + std::to_string(t->ne[0]) + "x" + std::to_string(t->rows()) + ", expected " +
                              std::to_string(cols) + "x" + std::to_string(rows));
    }
    if (!ggml_type_info(static_cast<uint32_t>(t->type))->can_dequantize) {
      return unimplemented("tensor '" + name + "' is " + ggml_type_name(static_cast<uint32_t>(t->type)) +
                           ", which this engine does not read; requantize the model to Q8_0, Q4_0, Q4_K or F16");
    }
    return WeightView{t->type, t->data, rows, cols, t->bytes / rows};
  }

  // A one-dimensional tensor of n values as fp32; null when absent and optional.
  Result<const float*> vec(const std::string& name, uint64_t n, bool optional = false) const {
    const GgufTensor* t = g.tensor(name);
    if (t == nullptr) {
      if (optional) return static_cast<const float*>(nullptr);
      return invalid_argument("GGUF has no tensor '" + name + "'; the file is not a complete model of its architecture");
    }
    if (t->elements() != n) {
      return invalid_argument("tensor '" + name + "' has " + std::to_string(t->elements()) + " values, expected " + std::to_string(n));
    }
    if (!ggml_type_info(static_cast<uint32_t>(t->type))->can_dequantize) {
      return unimplemented("tensor '" + name + "' is " + ggml_type_name(static_cast<uint32_t>(t->type)) + ", which this engine does not read");
    }
    return ModelLoader::vector(m, t->type, t->data, n);
  }
};

WeightView rows_of(const WeightView& w, uint64_t first, uint64_t n) {
  WeightView v = w;
  v.data = w.data + first * w.row_bytes;
  v.rows = n;
  return v;
}

Result<int> dim_key(const GgufFile& g, const std::string& key) {
  LLMOPS_ASSIGN_OR_RETURN(uint64_t v, g.get_uint(key));
  if (v == 0 || v > (1u << 24)) return invalid_argument("GGUF metadata '" + key + "' = " + std::to_string(v) + " is out of range");
  return static_cast<int>(v);
}

}  // namespace

Result<std::unique_ptr<Model>> ModelLoader::gguf(const std::string& path) {
  std::unique_ptr<Model> m(new Model());
  LLMOPS_ASSIGN_OR_RETURN(m->gguf_, GgufFile::open(path));
  const GgufFile& g = *m->gguf_;
  LLMOPS_ASSIGN_OR_RETURN(std::string arch, g.get_string("general.architecture"));
  ModelConfig& c = m->config_;
  c.arch_name = arch;
  if (arch == "llama" || arch == "mistral") {
    c.arch = Arch::kLlama;
    c.rope = RopeLayout::kNormal;
  } else if (arch == "qwen2") {
    c.arch = Arch::kLlama;
    c.rope = RopeLayout::kNeox;
  } else if (arch == "gpt2") {
    c.arch = Arch::kGpt2;
    c.rope = RopeLayout::kNone;
  } else {
    return unimplemented("architecture '" + arch + "' is not supported (llama, mistral, qwen2 and gpt2 are)");
  }
  const std::string k = arch + ".";
  LLMOPS_ASSIGN_OR_RETURN(c.dim, dim_key(g, k + "embedding_length"));
  LLMOPS_ASSIGN_OR_RETURN(c.hidden_dim, dim_key(g, k + "feed_forward_length"));
  LLMOPS_ASSIGN_OR_RETURN(c.n_layers, dim_key(g, k + "block_count"));
  LLMOPS_ASSIGN_OR_RETURN(c.n_heads, dim_key(g, k + "attention.head_count"));
  LLMOPS_ASSIGN_OR_RETURN(c.seq_len, dim_key(g, k + "context_length"));
  c.n_kv_heads = static_cast<int>(g.get_uint_or(k + "attention.head_count_kv", static_cast<uint64_t>(c.n_heads)));
  c.head_dim = static_cast<int>(g.get_uint_or(k + "attention.key_length", static_cast<uint64_t>(c.dim / c.n_heads)));
  if (c.arch == Arch::kGpt2) {
    c.norm_eps = static_cast<float>(g.get_float_or(k + "attention.layer_norm_epsilon", 1e-5));
  } else {
    c.norm_eps = static_cast<float>(g.get_float_or(k + "attention.layer_norm_rms_epsilon", 1e-5));
    c.rope_theta = static_cast<float>(g.get_float_or(k + "rope.freq_base", 10000.0));
    c.rope_dims = static_cast<int>(g.get_uint_or(k + "rope.dimension_count", static_cast<uint64_t>(c.head_dim)));
    if (const GgufValue* st = g.find(k + "rope.scaling.type"); st != nullptr && st->type == GgufType::kString) {
      if (st->s == "linear") {
        c.rope_linear = static_cast<float>(g.get_float_or(k + "rope.scaling.factor", 1.0));
      } else if (st->s != "none") {
        return unimplemented("rope scaling '" + std::string(st->s) + "' is not supported (linear and Llama 3's rope_freqs are)");
      }
    } else if (double f = g.get_float_or(k + "rope.scale_linear", 0.0); f > 0.0) {
      c.rope_linear = static_cast<float>(f);
    }
  }
  const GgufTensor* embd = g.tensor("token_embd.weight");
  if (embd == nullptr) return invalid_argument("GGUF has no tensor 'token_embd.weight'; it holds no model weights (a vocabulary-only file?)");
  if (embd->rows() == 0 || embd->rows() > (1u << 24)) return invalid_argument("token_embd.weight has an impossible vocabulary size");
  c.vocab_size = static_cast<int>(embd->rows());
  if (c.dim <= 0 || c.n_heads <= 0) return invalid_argument("model shape: dim and head count must be positive");
  LLMOPS_RETURN_IF_ERROR(c.validate());

  GgufTensors t{*m, g};
  const uint64_t dim = static_cast<uint64_t>(c.dim), hidden = static_cast<uint64_t>(c.hidden_dim);
  const uint64_t qd = static_cast<uint64_t>(c.q_dim()), kv = static_cast<uint64_t>(c.kv_dim()), vocab = static_cast<uint64_t>(c.vocab_size);
  const bool gpt2 = c.arch == Arch::kGpt2;
  LLMOPS_ASSIGN_OR_RETURN(m->token_embd_, t.matrix("token_embd.weight", vocab, dim));
  if (gpt2) {
    LLMOPS_ASSIGN_OR_RETURN(m->pos_embd_, t.matrix("position_embd.weight", static_cast<uint64_t>(c.seq_len), dim));
  }
  LLMOPS_ASSIGN_OR_RETURN(m->output_norm_, t.vec("output_norm.weight", dim));
  LLMOPS_ASSIGN_OR_RETURN(m->output_norm_b_, t.vec("output_norm.bias", dim, !gpt2));
  if (t.find("output.weight") != nullptr) {
    LLMOPS_ASSIGN_OR_RETURN(m->output_, t.matrix("output.weight", vocab, dim));
  } else {
    m->output_ = m->token_embd_;  // tied embeddings
  }
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    Layer L;
    LLMOPS_ASSIGN_OR_RETURN(L.attn_norm, t.vec(p + "attn_norm.weight", dim));
    LLMOPS_ASSIGN_OR_RETURN(L.attn_norm_b, t.vec(p + "attn_norm.bias", dim, !gpt2));
    if (t.find(p + "attn_qkv.weight") != nullptr) {
      // Fused q, k and v: consecutive row ranges of one matrix (and of its bias).
      LLMOPS_ASSIGN_OR_RETURN(WeightView qkv, t.matrix(p + "attn_qkv.weight", qd + 2 * kv, dim));
      L.wq = rows_of(qkv, 0, qd), L.wk = rows_of(qkv, qd, kv), L.wv = rows_of(qkv, qd + kv, kv);
      LLMOPS_ASSIGN_OR_RETURN(const float* b, t.vec(p + "attn_qkv.bias", qd + 2 * kv, !gpt2));
      if (b != nullptr) L.bq = b, L.bk = b + qd, L.bv = b + qd + kv;
    } else {
      LLMOPS_ASSIGN_OR_RETURN(L.wq, t.matrix(p + "attn_q.weight", qd, dim));
      LLMOPS_ASSIGN_OR_RETURN(L.wk, t.matrix(p + "attn_k.weight", kv, dim));
      LLMOPS_ASSIGN_OR_RETURN(L.wv, t.matrix(p + "attn_v.weight", kv, dim));
      LLMOPS_ASSIGN_OR_RETURN(L.bq, t.vec(p + "attn_q.bias", qd, true));
      LLMOPS_ASSIGN_OR_RETURN(L.bk, t.vec(p + "attn_k.bias", kv, true));
      LLMOPS_ASSIGN_OR_RETURN(L.bv, t.vec(p + "attn_v.bias", kv, true));
    }
    LLMOPS_ASSIGN_OR_RETURN(L.wo, t.matrix(p + "attn_output.weight", dim, qd));
    LLMOPS_ASSIGN_OR_RETURN(L.bo, t.vec(p + "attn_output.bias", dim, !gpt2));
    LLMOPS_ASSIGN_OR_RETURN(L.ffn_norm, t.vec(p + "ffn_norm.weight", dim));
    LLMOPS_ASSIGN_OR_RETURN(L.ffn_norm_b, t.vec(p + "ffn_norm.bias", dim, !gpt2));
    if (!gpt2) {
      LLMOPS_ASSIGN_OR_RETURN(L.w_gate, t.matrix(p + "ffn_gate.weight", hidden, dim));
    }
    LLMOPS_ASSIGN_OR_RETURN(L.w_up, t.matrix(p + "ffn_up.weight", hidden, dim));
    LLMOPS_ASSIGN_OR_RETURN(L.b_up, t.vec(p + "ffn_up.bias", hidden, !gpt2));
    LLMOPS_ASSIGN_OR_RETURN(L.w_down, t.matrix(p + "ffn_down.weight", dim, hidden));
    LLMOPS_ASSIGN_OR_RETURN(L.b_down, t.vec(p + "ffn_down.bias", dim, !gpt2));
    m->layers_.push_back(L);
  }
  const float* rope_factors = nullptr;
  if (!gpt2) {
    // Llama 3.1's frequency scaling, as llama.cpp's converter stores it: one divisor per pair.
    const uint64_t pairs = static_cast<uint64_t>(c.rope_dims == 0 ? c.head_dim : c.rope_dims) / 2;
    LLMOPS_ASSIGN_OR_RETURN(rope_factors, t.vec("rope_freqs.weight", pairs, true));
  }
  LLMOPS_RETURN_IF_ERROR(finish(*m, rope_factors));
  return m;
}

Result<std::unique_ptr<Model>> ModelLoader::llama2c(const std::string& path) {
  std::unique_ptr<Model> m(new Model());
  LLMOPS_ASSIGN_OR_RETURN(auto file, MappedFile::open(path));
  auto header = parse_llama2c_header(file->data(), file->size());
  if (!header.ok()) return header.status().with_context(path);
  const Llama2cHeader& h = *header;
  ModelConfig& c = m->config_;
  c.arch_name = "llama";
  c.dim = h.dim;
  c.hidden_dim = h.hidden_dim;
  c.n_layers = h.n_layers;
  c.n_heads = h.n_heads;
  c.n_kv_heads = h.n_kv_heads;
  c.head_dim = h.dim / h.n_heads;
  c.vocab_size = h.vocab_size;
  c.seq_len = h.seq_len;
  LLMOPS_RETURN_IF_ERROR(c.validate());
  const uint64_t dim = static_cast<uint64_t>(c.dim), hidden = static_cast<uint64_t>(c.hidden_dim), kv = static_cast<uint64_t>(c.kv_dim());
  const uint64_t vocab = static_cast<uint64_t>(c.vocab_size);
  const uint8_t* p = file->data() + h.weights_offset;
  auto take = [&](uint64_t rows, uint64_t cols) {
    WeightView w{GgmlType::kF32, p, rows, cols, cols * 4};
    p += rows * cols * 4;
    return w;
  };
  auto vec = [&]() { return reinterpret_cast<const float*>(take(1, dim).data); };
  m->layers_.resize(static_cast<size_t>(c.n_layers));
  if (h.version == 0) {
    // Legacy order: embedding, then each kind of weight for all layers in turn.
    m->token_embd_ = take(vocab, dim);
    for (auto& L : m->layers_) L.attn_norm = vec();
    for (auto& L : m->layers_) L.wq = take(dim, dim);
    for (auto& L : m->layers_) L.wk = take(kv, dim);
    for (auto& L : m->layers_) L.wv = take(kv, dim);
    for (auto& L : m->layers_) L.wo = take(dim, dim);
    for (auto& L : m->layers_) L.ffn_norm = vec();
    for (auto& L : m->layers_) L.w_gate = take(hidden, dim);
    for (auto& L : m->layers_) L.w_down = take(dim, hidden);
    for (auto& L : m->layers_) L.w_up = take(hidden, dim);
    m->output_norm_ = vec();
    p += static_cast<uint64_t>(c.seq_len) * (dim / static_cast<uint64_t>(c.n_heads)) * 4;  // freq_cis, unused
  } else {
    // Version 1: norms first, then the embedding and the matrices.
    for (auto& L : m->layers_) L.attn_norm = vec();
    for (auto& L : m->layers_) L.ffn_norm = vec();
    m->output_norm_ = vec();
    m->token_embd_ = take(vocab, dim);
    for (auto& L : m->layers_) L.wq = take(dim, dim);
    for (auto& L : m->layers_) L.wk = take(kv, dim);
    for (auto& L : m->layers_) L.wv = take(kv, dim);
    for (auto& L : m->layers_) L.wo = take(dim, dim);
    for (auto& L : m->layers_) L.w_gate = take(hidden, dim);
    for (auto& L : m->layers_) L.w_down = take(dim, hidden);
    for (auto& L : m->layers_) L.w_up = take(hidden, dim);
  }
  m->output_ = h.shared_classifier ? m->token_embd_ : take(vocab, dim);
  m->files_.push_back(std::move(file));
  LLMOPS_RETURN_IF_ERROR(finish(*m, nullptr));
  return m;
}

Result<std::unique_ptr<Model>> Model::load_gguf(const std::string& path) { return ModelLoader::gguf(path); }
Result<std::unique_ptr<Model>> Model::load_llama2c(const std::string& path) { return ModelLoader::llama2c(path); }

Result<std::unique_ptr<Model>> Model::load(const std::string& path) {
  LLMOPS_ASSIGN_OR_RETURN(ModelFormat f, detect_model_format(path));
  switch (f) {
    case ModelFormat::kGguf: return load_gguf(path);
    case ModelFormat::kLlama2c: return load_llama2c(path);
    case ModelFormat::kHuggingFaceDir: return load_hf(path);
    case ModelFormat::kSafetensors:
      return invalid_argument(path + " is a bare safetensors file; give the directory that holds it with its config.json");
    case ModelFormat::kPickle: break;
  }
  return invalid_argument(path + " is a pickle checkpoint, which is never loaded; convert it to safetensors");
}

}  // namespace llmops::engine
