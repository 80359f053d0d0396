// Loading Llama-family weights from GGUF and llama2.c files into LlamaModel's views.
#include <cmath>

#include "formats/llama2c.h"
#include "model/llama.h"

namespace llmops::engine {

struct LlamaLoader {
  static Result<WeightView> view(const GgufFile& g, const std::string& name, uint64_t rows, uint64_t cols) {
    const GgufTensor* t = g.tensor(name);
    if (t == nullptr) return invalid_argument("GGUF has no tensor '" + name + "'");
    if (t->ne[0] != cols || t->rows() != rows) {
      return invalid_argument("tensor '" + name + "' is " + std::to_string(t->ne[0]) + "x" + std::to_string(t->rows()) + ", expected " +
                              std::to_string(cols) + "x" + std::to_string(rows));
    }
    if (!ggml_type_info(static_cast<uint32_t>(t->type))->can_dequantize) {
      return unimplemented("tensor '" + name + "' is " + ggml_type_name(static_cast<uint32_t>(t->type)) + ", which this engine does not read yet");
    }
    return WeightView{t->type, t->data, rows, cols, t->bytes / rows};
  }

  static Result<int> dim_key(const GgufFile& g, const std::string& key) {
    LLMOPS_ASSIGN_OR_RETURN(uint64_t v, g.get_uint(key));
    if (v == 0 || v > (1u << 24)) return invalid_argument("GGUF metadata '" + key + "' = " + std::to_string(v) + " is out of range");
    return static_cast<int>(v);
  }

  static Result<std::unique_ptr<LlamaModel>> gguf(const std::string& path) {
    std::unique_ptr<LlamaModel> m(new LlamaModel());
    LLMOPS_ASSIGN_OR_RETURN(m->gguf_, GgufFile::open(path));
    const GgufFile& g = *m->gguf_;
    LLMOPS_ASSIGN_OR_RETURN(std::string arch, g.get_string("general.architecture"));
    if (arch != "llama") return unimplemented("architecture '" + arch + "' is not supported yet (llama is)");
    LlamaConfig& c = m->config_;
    LLMOPS_ASSIGN_OR_RETURN(c.dim, dim_key(g, "llama.embedding_length"));
    LLMOPS_ASSIGN_OR_RETURN(c.hidden_dim, dim_key(g, "llama.feed_forward_length"));
    LLMOPS_ASSIGN_OR_RETURN(c.n_layers, dim_key(g, "llama.block_count"));
    LLMOPS_ASSIGN_OR_RETURN(c.n_heads, dim_key(g, "llama.attention.head_count"));
    c.n_kv_heads = static_cast<int>(g.get_uint_or("llama.attention.head_count_kv", static_cast<uint64_t>(c.n_heads)));
    LLMOPS_ASSIGN_OR_RETURN(c.seq_len, dim_key(g, "llama.context_length"));
    c.norm_eps = static_cast<float>(g.get_float_or("llama.attention.layer_norm_rms_epsilon", 1e-5));
    c.rope_theta = static_cast<float>(g.get_float_or("llama.rope.freq_base", 10000.0));
    if (c.dim % c.n_heads != 0 || c.n_kv_heads <= 0 || c.n_heads % c.n_kv_heads != 0 || c.head_dim() % 2 != 0) {
      return invalid_argument("inconsistent attention shape: dim " + std::to_string(c.dim) + ", heads " + std::to_string(c.n_heads) +
                              ", kv heads " + std::to_string(c.n_kv_heads));
    }
    const GgufTensor* embd = g.tensor("token_embd.weight");
    if (embd == nullptr) return invalid_argument("GGUF has no tensor 'token_embd.weight'");
    c.vocab_size = static_cast<int>(embd->rows());
    const uint64_t dim = static_cast<uint64_t>(c.dim), hidden = static_cast<uint64_t>(c.hidden_dim), kv = static_cast<uint64_t>(c.kv_dim());
    const uint64_t vocab = static_cast<uint64_t>(c.vocab_size);
    LLMOPS_ASSIGN_OR_RETURN(m->token_embd_, view(g, "token_embd.weight", vocab, dim));
    LLMOPS_ASSIGN_OR_RETURN(m->output_norm_, view(g, "output_norm.weight", 1, dim));
    if (g.tensor("output.weight") != nullptr) {
      LLMOPS_ASSIGN_OR_RETURN(m->output_, view(g, "output.weight", vocab, dim));
    } else {
      m->output_ = m->token_embd_;  // tied embeddings
    }
    for (int l = 0; l < c.n_layers; ++l) {
      std::string p = "blk." + std::to_string(l) + ".";
      LlamaLayer L;
      LLMOPS_ASSIGN_OR_RETURN(L.attn_norm, view(g, p + "attn_norm.weight", 1, dim));
      LLMOPS_ASSIGN_OR_RETURN(L.wq, view(g, p + "attn_q.weight", dim, dim));
      LLMOPS_ASSIGN_OR_RETURN(L.wk, view(g, p + "attn_k.weight", kv, dim));
      LLMOPS_ASSIGN_OR_RETURN(L.wv, view(g, p + "attn_v.weight", kv, dim));
      LLMOPS_ASSIGN_OR_RETURN(L.wo, view(g, p + "attn_output.weight", dim, dim));
      LLMOPS_ASSIGN_OR_RETURN(L.ffn_norm, view(g, p + "ffn_norm.weight", 1, dim));
      LLMOPS_ASSIGN_OR_RETURN(L.w_gate, view(g, p + "ffn_gate.weight", hidden, dim));
      LLMOPS_ASSIGN_OR_RETURN(L.w_down, view(g, p + "ffn_down.weight", dim, hidden));
      LLMOPS_ASSIGN_OR_RETURN(L.w_up, view(g, p + "ffn_up.weight", hidden, dim));
      m->layers_.push_back(L);
    }
    return m;
  }

  static Result<std::unique_ptr<LlamaModel>> llama2c(const std::string& path) {
    std::unique_ptr<LlamaModel> m(new LlamaModel());
    LLMOPS_ASSIGN_OR_RETURN(m->file_, MappedFile::open(path));
    auto header = parse_llama2c_header(m->file_->data(), m->file_->size());
    if (!header.ok()) return header.status().with_context(path);
    const Llama2cHeader& h = *header;
    LlamaConfig& c = m->config_;
    c.dim = h.dim;
    c.hidden_dim = h.hidden_dim;
    c.n_layers = h.n_layers;
    c.n_heads = h.n_heads;
    c.n_kv_heads = h.n_kv_heads;
    c.vocab_size = h.vocab_size;
    c.seq_len = h.seq_len;
    const uint64_t dim = static_cast<uint64_t>(c.dim), hidden = static_cast<uint64_t>(c.hidden_dim), kv = static_cast<uint64_t>(c.kv_dim());
    const uint64_t layers = static_cast<uint64_t>(c.n_layers), vocab = static_cast<uint64_t>(c.vocab_size);
    const uint8_t* p = m->file_->data() + h.weights_offset;
    auto take = [&](uint64_t rows, uint64_t cols) {
      WeightView w{GgmlType::kF32, p, rows, cols, cols * 4};
      p += rows * cols * 4;
      return w;
    };
    m->layers_.resize(layers);
    if (h.version == 0) {
      // Legacy order: embedding, then each kind of weight for all layers in turn.
      m->token_embd_ = take(vocab, dim);
      for (auto& L : m->layers_) L.attn_norm = take(1, dim);
      for (auto& L : m->layers_) L.wq = take(dim, dim);
      for (auto& L : m->layers_) L.wk = take(kv, dim);
      for (auto& L : m->layers_) L.wv = take(kv, dim);
      for (auto& L : m->layers_) L.wo = take(dim, dim);
      for (auto& L : m->layers_) L.ffn_norm = take(1, dim);
      for (auto& L : m->layers_) L.w_gate = take(hidden, dim);
      for (auto& L : m->layers_) L.w_down = take(dim, hidden);
      for (auto& L : m->layers_) L.w_up = take(hidden, dim);
      m->output_norm_ = take(1, dim);
      p += static_cast<uint64_t>(c.seq_len) * (dim / static_cast<uint64_t>(c.n_heads)) * 4;  // freq_cis, unused
    } else {
      // Version 1: norms first, then the embedding and the matrices.
      for (auto& L : m->layers_) L.attn_norm = take(1, dim);
      for (auto& L : m->layers_) L.ffn_norm = take(1, dim);
      m->output_norm_ = take(1, dim);
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
    return m;
  }
};

Result<std::unique_ptr<LlamaModel>> LlamaModel::load_gguf(const std::string& path) { return LlamaLoader::gguf(path); }
Result<std::unique_ptr<LlamaModel>> LlamaModel::load_llama2c(const std::string& path) { return LlamaLoader::llama2c(path); }

}  // namespace llmops::engine
