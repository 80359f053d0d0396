// Hugging Face directories: config.json names the architecture and shape; the weights are in
// model.safetensors or shards listed by model.safetensors.index.json. Llama-family weights are
// used in place (Hugging Face keeps q/k in the rotate-half RoPE layout, so these models run
// with RopeLayout::kNeox). GPT-2's Conv1D matrices are stored input-major and are transposed
// once into fp32 at load.
#include <cstring>

#include "formats/safetensors.h"
#include "fs.h"
#include "json.h"
#include "model/loader.h"

namespace llmops::engine {

namespace {

struct HfTensors {
  Model& m;
  const SafetensorsModel& st;
  std::vector<std::vector<uint8_t>>& owned;

  static Result<GgmlType> ggml_type(const SafetensorsTensor& t) {
    switch (t.dtype) {
      case SafetensorsDtype::kF32: return GgmlType::kF32;
      case SafetensorsDtype::kF16: return GgmlType::kF16;
      case SafetensorsDtype::kBF16: return GgmlType::kBF16;
      default:
        return unimplemented("tensor '" + t.name + "' is " + safetensors_dtype_name(t.dtype) +
                             "; the engine reads F32, F16 and BF16 safetensors (quantized Hugging Face formats are not supported)");
    }
  }

  Result<const SafetensorsTensor*> find(const std::string& name, std::vector<uint64_t> shape) const {
    const SafetensorsTensor* t = st.tensor(name);
    if (t == nullptr) return invalid_argument("the safetensors have no tensor '" + name + "'; the directory is not a complete model of its config.json");
    if (t->shape != shape) {
      auto str = [](const std::vector<uint64_t>& s) {
        std::string out = "[";
        for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
        return out + "]";
      };
      return invalid_argument("tensor '" + name + "' has shape " + str(t->shape) + ", config.json implies " + str(shape));
    }
    return t;
  }

  // Data the kernels may read in place: aligned to its element size; otherwise a copy.
  const uint8_t* aligned(const SafetensorsTensor& t) {
    const size_t align = safetensors_dtype_bytes(t.dtype);
    if (reinterpret_cast<uintptr_t>(t.data) % align == 0) return t.data;
    owned.emplace_back(t.data, t.data + t.bytes);
    return owned.back().data();
  }

  // A Linear weight [out, in]: rows are outputs, as the engine stores them.
  Result<WeightView> linear(const std::string& name, uint64_t rows, uint64_t cols) {
    LLMOPS_ASSIGN_OR_RETURN(const SafetensorsTensor* t, find(name, {rows, cols}));
    LLMOPS_ASSIGN_OR_RETURN(GgmlType type, ggml_type(*t));
    return WeightView{type, aligned(*t), rows, cols, t->bytes / rows};
  }

  // A Conv1D weight [in, out] (GPT-2), transposed to [out, in] fp32; rows [first, first+n) of
  // the output only (to split GPT-2's fused qkv).
  Result<WeightView> conv1d(const std::string& name, uint64_t in, uint64_t out, uint64_t first, uint64_t n) {
    LLMOPS_ASSIGN_OR_RETURN(const SafetensorsTensor* t, find(name, {in, out}));
    LLMOPS_RETURN_IF_ERROR(ggml_type(*t).status());
    std::vector<float> src(in * out);
    LLMOPS_RETURN_IF_ERROR(safetensors_to_f32(*t, src.data()));
    std::vector<uint8_t> bytes(n * in * sizeof(float));
    auto* dst = reinterpret_cast<float*>(bytes.data());
    for (uint64_t r = 0; r < n; ++r) {
      for (uint64_t c = 0; c < in; ++c) dst[r * in + c] = src[c * out + first + r];
    }
    owned.push_back(std::move(bytes));
    return WeightView{GgmlType::kF32, owned.back().data(), n, in, in * sizeof(float)};
  }

  // A vector of n values as fp32; null when absent and optional.
  Result<const float*> vec(const std::string& name, uint64_t n, bool optional = false) {
    if (optional && st.tensor(name) == nullptr) return static_cast<const float*>(nullptr);
    LLMOPS_ASSIGN_OR_RETURN(const SafetensorsTensor* t, find(name, {n}));
    LLMOPS_RETURN_IF_ERROR(ggml_type(*t).status());
    std::vector<float> v(n);
    LLMOPS_RETURN_IF_ERROR(safetensors_to_f32(*t, v.data()));
    return ModelLoader::keep(m, std::move(v));
  }
};

Result<int> int_field(const Json& j, const char* key, int fallback = -1) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (fallback >= 0) return fallback;
    return invalid_argument(std::string("config.json has no '") + key + "'");
  }
  if (!it->is_number_integer() || it->get<int64_t>() <= 0 || it->get<int64_t>() > (1 << 24)) {
    return invalid_argument(std::string("config.json '") + key + "' must be a positive integer");
  }
  return static_cast<int>(it->get<int64_t>());
}

double num_field(const Json& j, const char* key, double fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : fallback;
}

}  // namespace

Result<std::unique_ptr<Model>> ModelLoader::hf(const std::string& dir) {
  LLMOPS_ASSIGN_OR_RETURN(std::string text, read_file(dir + "/config.json", 1u << 20));
  auto parsed = parse_json_bounded(text, 32);
  if (!parsed.ok()) return parsed.status().with_context(dir + "/config.json");
  const Json& cfg = *parsed;
  if (!cfg.is_object()) return invalid_argument(dir + "/config.json is not a JSON object");
  std::string type = cfg.contains("model_type") && cfg["model_type"].is_string() ? cfg["model_type"].get<std::string>() : "";

  std::unique_ptr<Model> m(new Model());
  ModelConfig& c = m->config_;
  c.arch_name = type;
  const bool gpt2 = type == "gpt2";
  if (type == "llama" || type == "mistral" || type == "qwen2") {
    c.arch = Arch::kLlama;
    c.rope = RopeLayout::kNeox;
    LLMOPS_ASSIGN_OR_RETURN(c.dim, int_field(cfg, "hidden_size"));
    LLMOPS_ASSIGN_OR_RETURN(c.hidden_dim, int_field(cfg, "intermediate_size"));
    LLMOPS_ASSIGN_OR_RETURN(c.n_layers, int_field(cfg, "num_hidden_layers"));
    LLMOPS_ASSIGN_OR_RETURN(c.n_heads, int_field(cfg, "num_attention_heads"));
    LLMOPS_ASSIGN_OR_RETURN(c.n_kv_heads, int_field(cfg, "num_key_value_heads", c.n_heads));
    LLMOPS_ASSIGN_OR_RETURN(c.head_dim, int_field(cfg, "head_dim", c.dim / c.n_heads));
    LLMOPS_ASSIGN_OR_RETURN(c.seq_len, int_field(cfg, "max_position_embeddings", 4096));
    c.norm_eps = static_cast<float>(num_field(cfg, "rms_norm_eps", 1e-6));
    c.rope_theta = static_cast<float>(num_field(cfg, "rope_theta", 10000.0));
    if (auto rs = cfg.find("rope_scaling"); rs != cfg.end() && rs->is_object()) {
      std::string kind = rs->value("rope_type", rs->value("type", std::string()));
      if (kind == "linear") {
        c.rope_linear = static_cast<float>(num_field(*rs, "factor", 1.0));
      } else if (kind == "llama3") {
        c.rope_llama3_factor = static_cast<float>(num_field(*rs, "factor", 8.0));
        c.rope_llama3_low = static_cast<float>(num_field(*rs, "low_freq_factor", 1.0));
        c.rope_llama3_high = static_cast<float>(num_field(*rs, "high_freq_factor", 4.0));
        c.rope_llama3_original_ctx = static_cast<int>(num_field(*rs, "original_max_position_embeddings", 8192));
      } else if (!kind.empty() && kind != "default") {
        return unimplemented("config.json rope_scaling type '" + kind + "' is not supported (linear and llama3 are)");
      }
    }
  } else if (gpt2) {
    c.arch = Arch::kGpt2;
    c.rope = RopeLayout::kNone;
    LLMOPS_ASSIGN_OR_RETURN(c.dim, int_field(cfg, "n_embd"));
    LLMOPS_ASSIGN_OR_RETURN(c.n_layers, int_field(cfg, "n_layer"));
    LLMOPS_ASSIGN_OR_RETURN(c.n_heads, int_field(cfg, "n_head"));
    LLMOPS_ASSIGN_OR_RETURN(c.hidden_dim, int_field(cfg, "n_inner", 4 * c.dim));
    LLMOPS_ASSIGN_OR_RETURN(c.seq_len, int_field(cfg, "n_positions", 1024));
    c.n_kv_heads = c.n_heads;
    c.head_dim = c.dim / c.n_heads;
    c.norm_eps = static_cast<float>(num_field(cfg, "layer_norm_epsilon", 1e-5));
  } else {
    return unimplemented("config.json model_type '" + type + "' is not supported (llama, mistral, qwen2 and gpt2 are)");
  }
  LLMOPS_ASSIGN_OR_RETURN(c.vocab_size, int_field(cfg, "vocab_size"));
  LLMOPS_RETURN_IF_ERROR(c.validate());

  auto opened = SafetensorsModel::open(dir);
  if (!opened.ok()) return opened.status().with_context(dir);
  std::shared_ptr<const SafetensorsModel> st(std::move(opened).value());
  m->keepalive_ = st;
  m->hf_dir_ = dir;
  HfTensors t{*m, *st, m->owned_bytes_};
  const uint64_t d = static_cast<uint64_t>(c.dim), h = static_cast<uint64_t>(c.hidden_dim), qd = static_cast<uint64_t>(c.q_dim());
  const uint64_t kv = static_cast<uint64_t>(c.kv_dim()), vocab = static_cast<uint64_t>(c.vocab_size);

  if (gpt2) {
    // Names with or without the "transformer." prefix (GPT2LMHeadModel vs GPT2Model).
    const std::string pre = st->tensor("transformer.wte.weight") != nullptr ? "transformer." : "";
    LLMOPS_ASSIGN_OR_RETURN(m->token_embd_, t.linear(pre + "wte.weight", vocab, d));
    LLMOPS_ASSIGN_OR_RETURN(m->pos_embd_, t.linear(pre + "wpe.weight", static_cast<uint64_t>(c.seq_len), d));
    LLMOPS_ASSIGN_OR_RETURN(m->output_norm_, t.vec(pre + "ln_f.weight", d));
    LLMOPS_ASSIGN_OR_RETURN(m->output_norm_b_, t.vec(pre + "ln_f.bias", d));
    m->output_ = m->token_embd_;
    for (int l = 0; l < c.n_layers; ++l) {
      const std::string p = pre + "h." + std::to_string(l) + ".";
      Layer L;
      LLMOPS_ASSIGN_OR_RETURN(L.attn_norm, t.vec(p + "ln_1.weight", d));
      LLMOPS_ASSIGN_OR_RETURN(L.attn_norm_b, t.vec(p + "ln_1.bias", d));
      LLMOPS_ASSIGN_OR_RETURN(L.wq, t.conv1d(p + "attn.c_attn.weight", d, 3 * d, 0, d));
      LLMOPS_ASSIGN_OR_RETURN(L.wk, t.conv1d(p + "attn.c_attn.weight", d, 3 * d, d, d));
      LLMOPS_ASSIGN_OR_RETURN(L.wv, t.conv1d(p + "attn.c_attn.weight", d, 3 * d, 2 * d, d));
      LLMOPS_ASSIGN_OR_RETURN(const float* bqkv, t.vec(p + "attn.c_attn.bias", 3 * d));
      L.bq = bqkv, L.bk = bqkv + d, L.bv = bqkv + 2 * d;
      LLMOPS_ASSIGN_OR_RETURN(L.wo, t.conv1d(p + "attn.c_proj.weight", d, d, 0, d));
      LLMOPS_ASSIGN_OR_RETURN(L.bo, t.vec(p + "attn.c_proj.bias", d));
      LLMOPS_ASSIGN_OR_RETURN(L.ffn_norm, t.vec(p + "ln_2.weight", d));
      LLMOPS_ASSIGN_OR_RETURN(L.ffn_norm_b, t.vec(p + "ln_2.bias", d));
      LLMOPS_ASSIGN_OR_RETURN(L.w_up, t.conv1d(p + "mlp.c_fc.weight", d, h, 0, h));
      LLMOPS_ASSIGN_OR_RETURN(L.b_up, t.vec(p + "mlp.c_fc.bias", h));
      LLMOPS_ASSIGN_OR_RETURN(L.w_down, t.conv1d(p + "mlp.c_proj.weight", h, d, 0, d));
      LLMOPS_ASSIGN_OR_RETURN(L.b_down, t.vec(p + "mlp.c_proj.bias", d));
      m->layers_.push_back(L);
    }
  } else {
    LLMOPS_ASSIGN_OR_RETURN(m->token_embd_, t.linear("model.embed_tokens.weight", vocab, d));
    LLMOPS_ASSIGN_OR_RETURN(m->output_norm_, t.vec("model.norm.weight", d));
    const bool tied = cfg.value("tie_word_embeddings", false) || st->tensor("lm_head.weight") == nullptr;
    if (tied) {
      m->output_ = m->token_embd_;
    } else {
      LLMOPS_ASSIGN_OR_RETURN(m->output_, t.linear("lm_head.weight", vocab, d));
    }
    for (int l = 0; l < c.n_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      Layer L;
      LLMOPS_ASSIGN_OR_RETURN(L.attn_norm, t.vec(p + "input_layernorm.weight", d));
      LLMOPS_ASSIGN_OR_RETURN(L.wq, t.linear(p + "self_attn.q_proj.weight", qd, d));
      LLMOPS_ASSIGN_OR_RETURN(L.wk, t.linear(p + "self_attn.k_proj.weight", kv, d));
      LLMOPS_ASSIGN_OR_RETURN(L.wv, t.linear(p + "self_attn.v_proj.weight", kv, d));
      LLMOPS_ASSIGN_OR_RETURN(L.bq, t.vec(p + "self_attn.q_proj.bias", qd, true));
      LLMOPS_ASSIGN_OR_RETURN(L.bk, t.vec(p + "self_attn.k_proj.bias", kv, true));
      LLMOPS_ASSIGN_OR_RETURN(L.bv, t.vec(p + "self_attn.v_proj.bias", kv, true));
      LLMOPS_ASSIGN_OR_RETURN(L.wo, t.linear(p + "self_attn.o_proj.weight", d, qd));
      LLMOPS_ASSIGN_OR_RETURN(L.bo, t.vec(p + "self_attn.o_proj.bias", d, true));
      LLMOPS_ASSIGN_OR_RETURN(L.ffn_norm, t.vec(p + "post_attention_layernorm.weight", d));
      LLMOPS_ASSIGN_OR_RETURN(L.w_gate, t.linear(p + "mlp.gate_proj.weight", h, d));
      LLMOPS_ASSIGN_OR_RETURN(L.w_up, t.linear(p + "mlp.up_proj.weight", h, d));
      LLMOPS_ASSIGN_OR_RETURN(L.w_down, t.linear(p + "mlp.down_proj.weight", d, h));
      m->layers_.push_back(L);
    }
  }
  LLMOPS_RETURN_IF_ERROR(finish(*m, nullptr));
  return m;
}

Result<std::unique_ptr<Model>> Model::load_hf(const std::string& dir) { return ModelLoader::hf(dir); }

}  // namespace llmops::engine
