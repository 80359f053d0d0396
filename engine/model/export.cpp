#include "model/export.h"

#include <cmath>
#include <filesystem>
#include <functional>

#include "formats/gguf_writer.h"
#include "formats/quantize.h"
#include "fs.h"
#include "json.h"

namespace llmops::engine {

namespace {

// Row r of a q or k matrix in one RoPE layout is row source_row(r) in the other. Within a head
// of hd rows, the adjacent-pair layout keeps value 2i+j where rotate-half keeps j·hd/2+i.
uint64_t to_adjacent(uint64_t r, uint64_t hd) {  // adjacent-pair row r ← rotate-half row
  const uint64_t h = r / hd, k = r % hd, i = k / 2, j = k % 2;
  return h * hd + j * (hd / 2) + i;
}
uint64_t to_rotate_half(uint64_t r, uint64_t hd) {  // rotate-half row r ← adjacent-pair row
  const uint64_t h = r / hd, k = r % hd, half = hd / 2, j = k / half, i = k % half;
  return h * hd + 2 * i + j;
}

using RowMap = std::function<uint64_t(uint64_t)>;

// A matrix made of row ranges of views (GPT-2's fused qkv is three), optionally re-ordered.
struct Source {
  std::vector<const WeightView*> parts;
  RowMap map;  // output row → source row; null: identity
  uint64_t rows() const {
    uint64_t n = 0;
    for (auto* p : parts) n += p->rows;
    return n;
  }
  uint64_t cols() const { return parts[0]->cols; }
  void row(uint64_t r, float* out) const {
    if (map) r = map(r);
    for (const WeightView* p : parts) {
      if (r < p->rows) return dequantize_row(p->type, p->row(r), out, p->cols);
      r -= p->rows;
    }
  }
};

}  // namespace

Result<std::function<uint64_t(uint64_t)>> rope_row_map(const ModelConfig& c, RopeLayout target) {
  const uint64_t hd = static_cast<uint64_t>(c.head_dim);
  if (c.rope == RopeLayout::kNone || c.rope == target) return RowMap{};
  if (c.rope_dims != 0 && c.rope_dims != c.head_dim) {
    return unimplemented("a model whose RoPE covers part of each head cannot be converted between RoPE layouts");
  }
  if (target == RopeLayout::kNormal) return RowMap([hd](uint64_t r) { return to_adjacent(r, hd); });
  return RowMap([hd](uint64_t r) { return to_rotate_half(r, hd); });
}

namespace {

// Each RoPE frequency's divisor relative to plain (linearly scaled) RoPE; empty when all are 1.
std::vector<float> rope_factors(const Model& m) {
  const ModelConfig& c = m.config();
  std::vector<float> factors;
  bool any = false;
  const int rd = c.rope_dims == 0 ? c.head_dim : c.rope_dims;
  for (size_t i = 0; i < m.rope_inv_freq().size(); ++i) {
    const float base = 1.0f / std::pow(c.rope_theta, static_cast<float>(2 * i) / static_cast<float>(rd)) / c.rope_linear;
    factors.push_back(base / m.rope_inv_freq()[i]);
    any = any || std::fabs(factors.back() - 1.0f) > 1e-6f;
  }
  if (!any) factors.clear();
  return factors;
}

}  // namespace

void add_spm_metadata(GgufWriter& w, const SpmVocab& v, bool add_bos) {
  // Pieces with "▁" for spaces (llama2.c vocabularies store ' '), scores, types.
  std::vector<std::string> pieces;
  pieces.reserve(v.pieces.size());
  for (const std::string& p : v.pieces) {
    if (v.escape_spaces) {
      pieces.push_back(p);
      continue;
    }
    std::string q;
    for (char ch : p) q += ch == ' ' ? std::string("\xE2\x96\x81") : std::string(1, ch);
    pieces.push_back(std::move(q));
  }
  std::vector<int32_t> types;
  for (TokenType t : v.types) types.push_back(static_cast<int32_t>(t));
  w.add_string("tokenizer.ggml.model", "llama");
  w.add_strings("tokenizer.ggml.tokens", pieces);
  w.add_f32s("tokenizer.ggml.scores", v.scores);
  w.add_i32s("tokenizer.ggml.token_type", types);
  if (v.bos_id >= 0) w.add_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(v.bos_id));
  if (v.eos_id >= 0) w.add_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(v.eos_id));
  if (v.unk_id >= 0) w.add_u32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(v.unk_id));
  w.add_bool("tokenizer.ggml.add_space_prefix", v.add_space_prefix);
  w.add_bool("tokenizer.ggml.add_bos_token", add_bos);
}

void copy_tokenizer_metadata(GgufWriter& w, const GgufFile& src, bool with_chat_template) {
  for (const auto& [key, value] : src.metadata()) {
    if (key.rfind("tokenizer.", 0) != 0 || (key == "tokenizer.chat_template" && !with_chat_template)) continue;
    if (!(value.type == GgufType::kArray && value.elem_type == GgufType::kArray)) w.add_value(key, value);
  }
}

Result<GgufLayout> gguf_layout(const ModelConfig& c) {
  // GGUF names: qwen2 keeps its rotate-half RoPE; every other Llama-family model is "llama".
  const bool gpt2 = c.arch == Arch::kGpt2;
  GgufLayout out;
  out.arch = gpt2 ? "gpt2" : (c.arch_name == "qwen2" ? "qwen2" : "llama");
  const RopeLayout target = gpt2 ? RopeLayout::kNone : (out.arch == "qwen2" ? RopeLayout::kNeox : RopeLayout::kNormal);
  LLMOPS_ASSIGN_OR_RETURN(out.qk_row, rope_row_map(c, target));
  return out;
}

void add_tokenizer_metadata(GgufWriter& w, const Model& m, const Tokenizer* tok, bool with_chat_template, std::vector<std::string>* notes) {
  if (const GgufFile* src = m.gguf(); src != nullptr) {
    copy_tokenizer_metadata(w, *src, with_chat_template);
  } else if (tok != nullptr && tok->spm() != nullptr) {
    add_spm_metadata(w, tok->spm()->vocab(), tok->add_bos());
  } else if (tok != nullptr && tok->bpe() != nullptr) {
    // Byte-level BPE as llama.cpp reads it: tokens in GPT-2's byte map, types, "left right"
    // merges in rank order, and the pre-tokenizer by llama.cpp's name for it.
    const BpeTokenizer& bpe = *tok->bpe();
    const BpeVocab& v = bpe.vocab();
    std::vector<int32_t> types;
    for (size_t i = 0; i < v.tokens.size(); ++i) types.push_back(static_cast<int32_t>(v.types.empty() ? TokenType::kNormal : v.types[i]));
    std::vector<std::string> merges;
    for (const auto& [left, right] : bpe.merge_rules()) merges.push_back(left + " " + right);
    const char* pre = "gpt-2";
    if (v.pre_tokenizer == BpePreTokenizer::kLlama3) pre = v.ignore_merges ? "llama-bpe" : "smaug-bpe";
    if (v.pre_tokenizer == BpePreTokenizer::kQwen2) pre = "qwen2";
    w.add_string("tokenizer.ggml.model", "gpt2");
    w.add_string("tokenizer.ggml.pre", pre);
    w.add_strings("tokenizer.ggml.tokens", v.tokens);
    w.add_i32s("tokenizer.ggml.token_type", types);
    w.add_strings("tokenizer.ggml.merges", merges);
    if (v.bos_id >= 0) w.add_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(v.bos_id));
    if (v.eos_id >= 0) w.add_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(v.eos_id));
    if (v.unk_id >= 0) w.add_u32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(v.unk_id));
    if (v.pad_id >= 0) w.add_u32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(v.pad_id));
    w.add_bool("tokenizer.ggml.add_bos_token", tok->add_bos());
  } else if (notes != nullptr) {
    notes->push_back("no tokenizer metadata: the source is not a GGUF; keep its tokenizer files beside the model");
  }
}

void add_shape_metadata(GgufWriter& w, const std::string& arch, const ModelConfig& c) {
  const std::string k = arch + ".";
  const bool gpt2 = c.arch == Arch::kGpt2;
  w.add_u32(k + "context_length", static_cast<uint32_t>(c.seq_len));
  w.add_u32(k + "embedding_length", static_cast<uint32_t>(c.dim));
  w.add_u32(k + "block_count", static_cast<uint32_t>(c.n_layers));
  w.add_u32(k + "feed_forward_length", static_cast<uint32_t>(c.hidden_dim));
  w.add_u32(k + "attention.head_count", static_cast<uint32_t>(c.n_heads));
  if (gpt2) {
    w.add_f32(k + "attention.layer_norm_epsilon", c.norm_eps);
  } else {
    w.add_u32(k + "attention.head_count_kv", static_cast<uint32_t>(c.n_kv_heads));
    w.add_u32(k + "attention.key_length", static_cast<uint32_t>(c.head_dim));
    w.add_u32(k + "attention.value_length", static_cast<uint32_t>(c.head_dim));
    w.add_u32(k + "rope.dimension_count", static_cast<uint32_t>(c.rope_dims == 0 ? c.head_dim : c.rope_dims));
    w.add_f32(k + "attention.layer_norm_rms_epsilon", c.norm_eps);
    w.add_f32(k + "rope.freq_base", c.rope_theta);
    if (c.rope_linear != 1.0f) {
      w.add_string(k + "rope.scaling.type", "linear");
      w.add_f32(k + "rope.scaling.factor", c.rope_linear);
    }
  }
}

Result<ExportReport> export_gguf(const Model& m, GgmlType type, const std::string& path, const Tokenizer* tok, std::string_view chat_template) {
  if (!can_quantize(type)) return unimplemented("cannot write " + ggml_type_name(static_cast<uint32_t>(type)) + " weights");
  const ModelConfig& c = m.config();
  const bool gpt2 = c.arch == Arch::kGpt2;
  LLMOPS_ASSIGN_OR_RETURN(GgufLayout layout, gguf_layout(c));
  const std::string& arch = layout.arch;
  const RowMap& qk_map = layout.qk_row;
  ExportReport report;
  GgufWriter w;
  w.add_string("general.architecture", arch);
  w.add_u32("general.file_type", gguf_file_type(type));
  if (const GgufFile* src = m.gguf(); src != nullptr) {
    if (const GgufValue* name = src->find("general.name"); name != nullptr) w.add_value("general.name", *name);
  }
  add_tokenizer_metadata(w, m, tok, chat_template.empty(), &report.notes);
  if (!chat_template.empty()) w.add_string("tokenizer.chat_template", std::string(chat_template));
  add_shape_metadata(w, arch, c);

  auto matrix = [&](const std::string& name, Source src, GgmlType t) -> Status {
    const uint64_t cols = src.cols(), rows = src.rows();
    GgmlType stored = storable_type(t, cols, name, &report.notes);
    report.bytes += *ggml_row_bytes(stored, cols) * rows;
    auto shared = std::make_shared<Source>(std::move(src));
    return w.add_tensor(name, stored, {cols, rows}, [shared](uint64_t r, float* out) { shared->row(r, out); });
  };
  auto vec = [&](const std::string& name, const float* v, uint64_t n) -> Status {
    if (v == nullptr) return ok_status();
    report.bytes += n * 4;
    return w.add_tensor(name, GgmlType::kF32, {n}, [v, n](uint64_t, float* out) { std::copy(v, v + n, out); });
  };
  const uint64_t d = static_cast<uint64_t>(c.dim), h = static_cast<uint64_t>(c.hidden_dim);
  const uint64_t qd = static_cast<uint64_t>(c.q_dim()), kv = static_cast<uint64_t>(c.kv_dim());
  LLMOPS_RETURN_IF_ERROR(matrix("token_embd.weight", {{&m.token_embedding()}, {}}, type));
  if (gpt2) LLMOPS_RETURN_IF_ERROR(matrix("position_embd.weight", {{&m.position_embedding()}, {}}, GgmlType::kF32));
  std::vector<std::vector<float>> fused_bias;
  for (int l = 0; l < c.n_layers; ++l) {
    const Layer& L = m.layers()[static_cast<size_t>(l)];
    const std::string p = "blk." + std::to_string(l) + ".";
    LLMOPS_RETURN_IF_ERROR(vec(p + "attn_norm.weight", L.attn_norm, d));
    LLMOPS_RETURN_IF_ERROR(vec(p + "attn_norm.bias", L.attn_norm_b, d));
    if (gpt2) {
      LLMOPS_RETURN_IF_ERROR(matrix(p + "attn_qkv.weight", {{&L.wq, &L.wk, &L.wv}, {}}, type));
      std::vector<float> b(L.bq, L.bq + qd);
      b.insert(b.end(), L.bk, L.bk + kv);
      b.insert(b.end(), L.bv, L.bv + kv);
      fused_bias.push_back(std::move(b));
      LLMOPS_RETURN_IF_ERROR(vec(p + "attn_qkv.bias", fused_bias.back().data(), qd + 2 * kv));
    } else {
      LLMOPS_RETURN_IF_ERROR(matrix(p + "attn_q.weight", {{&L.wq}, qk_map}, type));
      LLMOPS_RETURN_IF_ERROR(matrix(p + "attn_k.weight", {{&L.wk}, qk_map}, type));
      LLMOPS_RETURN_IF_ERROR(matrix(p + "attn_v.weight", {{&L.wv}, {}}, type));
      if ((L.bq != nullptr || L.bk != nullptr) && qk_map) {
        return unimplemented("q/k biases cannot be converted between RoPE layouts yet");
      }
      LLMOPS_RETURN_IF_ERROR(vec(p + "attn_q.bias", L.bq, qd));
      LLMOPS_RETURN_IF_ERROR(vec(p + "attn_k.bias", L.bk, kv));
      LLMOPS_RETURN_IF_ERROR(vec(p + "attn_v.bias", L.bv, kv));
    }
    LLMOPS_RETURN_IF_ERROR(matrix(p + "attn_output.weight", {{&L.wo}, {}}, type));
    LLMOPS_RETURN_IF_ERROR(vec(p + "attn_output.bias", L.bo, d));
    LLMOPS_RETURN_IF_ERROR(vec(p + "ffn_norm.weight", L.ffn_norm, d));
    LLMOPS_RETURN_IF_ERROR(vec(p + "ffn_norm.bias", L.ffn_norm_b, d));
    if (L.w_gate.data != nullptr) LLMOPS_RETURN_IF_ERROR(matrix(p + "ffn_gate.weight", {{&L.w_gate}, {}}, type));
    LLMOPS_RETURN_IF_ERROR(matrix(p + "ffn_up.weight", {{&L.w_up}, {}}, type));
    LLMOPS_RETURN_IF_ERROR(vec(p + "ffn_up.bias", L.b_up, h));
    LLMOPS_RETURN_IF_ERROR(matrix(p + "ffn_down.weight", {{&L.w_down}, {}}, type));
    LLMOPS_RETURN_IF_ERROR(vec(p + "ffn_down.bias", L.b_down, d));
  }
  LLMOPS_RETURN_IF_ERROR(vec("output_norm.weight", m.output_norm(), d));
  LLMOPS_RETURN_IF_ERROR(vec("output_norm.bias", m.output_norm_bias(), d));
  if (m.classifier().data != m.token_embedding().data) {
    GgmlType out_type = (type == GgmlType::kQ4_0 || type == GgmlType::kQ4_K) ? GgmlType::kQ6_K : type;
    LLMOPS_RETURN_IF_ERROR(matrix("output.weight", {{&m.classifier()}, {}}, out_type));
  }
  // Frequency scaling beyond linear (Llama 3's, or factors read from a GGUF) travels as
  // llama.cpp's rope_freqs tensor: the divisor of each frequency.
  if (auto factors = std::make_shared<std::vector<float>>(rope_factors(m)); !factors->empty()) {
    report.bytes += factors->size() * 4;
    LLMOPS_RETURN_IF_ERROR(w.add_tensor("rope_freqs.weight", GgmlType::kF32, {factors->size()},
                                        [factors](uint64_t, float* out) { std::copy(factors->begin(), factors->end(), out); }));
  }
  LLMOPS_RETURN_IF_ERROR(w.write(path));
  return report;
}

Result<ExportReport> export_hf(const Model& m, SafetensorsDtype dtype, const std::string& dir) {
  if (dtype != SafetensorsDtype::kF32 && dtype != SafetensorsDtype::kF16 && dtype != SafetensorsDtype::kBF16) {
    return invalid_argument(std::string("safetensors export writes F32, F16 or BF16, not ") + safetensors_dtype_name(dtype));
  }
  const ModelConfig& c = m.config();
  const bool gpt2 = c.arch == Arch::kGpt2;
  if (c.rope_llama3_factor == 0.0f && !rope_factors(m).empty()) {
    return unimplemented("this model's RoPE frequency factors (a GGUF rope_freqs tensor) have no config.json form; export it to GGUF instead");
  }
  LLMOPS_ASSIGN_OR_RETURN(RowMap qk_map, rope_row_map(c, gpt2 ? RopeLayout::kNone : RopeLayout::kNeox));
  ExportReport report;
  const GgmlType gt = dtype == SafetensorsDtype::kF32 ? GgmlType::kF32 : dtype == SafetensorsDtype::kF16 ? GgmlType::kF16 : GgmlType::kBF16;
  const size_t es = safetensors_dtype_bytes(dtype);
  std::vector<std::vector<uint8_t>> store;
  store.reserve(16 + static_cast<size_t>(c.n_layers) * 16);
  std::vector<SafetensorsTensorSource> out;
  std::vector<float> row;
  // Encodes src (rows × cols) into the target dtype; transposed ([cols, rows]) for GPT-2's Conv1D.
  auto put = [&](const std::string& name, const Source& src, bool conv1d) {
    const uint64_t rows = src.rows(), cols = src.cols();
    std::vector<uint8_t> bytes(rows * cols * es);
    row.resize(cols);
    std::vector<uint8_t> enc(cols * es);
    for (uint64_t r = 0; r < rows; ++r) {
      src.row(r, row.data());
      quantize_row(gt, row.data(), enc.data(), cols);
      if (!conv1d) {
        std::copy(enc.begin(), enc.end(), bytes.begin() + static_cast<ptrdiff_t>(r * cols * es));
      } else {
        for (uint64_t k = 0; k < cols; ++k) std::copy_n(enc.begin() + static_cast<ptrdiff_t>(k * es), es, bytes.begin() + static_cast<ptrdiff_t>((k * rows + r) * es));
      }
    }
    report.bytes += bytes.size();
    store.push_back(std::move(bytes));
    out.push_back({name, dtype, conv1d ? std::vector<uint64_t>{cols, rows} : std::vector<uint64_t>{rows, cols}, store.back().data()});
  };
  std::vector<WeightView> vectors;  // fp32 views of norms and biases, to encode like rows
  vectors.reserve(16 + static_cast<size_t>(c.n_layers) * 16);
  auto put_vec = [&](const std::string& name, const float* v, uint64_t n) {
    if (v == nullptr) return;
    vectors.push_back(WeightView{GgmlType::kF32, reinterpret_cast<const uint8_t*>(v), 1, n, n * 4});
    put(name, Source{{&vectors.back()}, {}}, false);
    out.back().shape = {n};
  };
  const uint64_t d = static_cast<uint64_t>(c.dim), h = static_cast<uint64_t>(c.hidden_dim);
  const uint64_t qd = static_cast<uint64_t>(c.q_dim()), kv = static_cast<uint64_t>(c.kv_dim());
  Json cfg;
  if (gpt2) {
    cfg = {{"architectures", {"GPT2LMHeadModel"}}, {"model_type", "gpt2"}, {"n_embd", c.dim}, {"n_layer", c.n_layers},
           {"n_head", c.n_heads}, {"n_inner", c.hidden_dim}, {"n_positions", c.seq_len}, {"n_ctx", c.seq_len},
           {"vocab_size", c.vocab_size}, {"layer_norm_epsilon", c.norm_eps}, {"activation_function", "gelu_new"},
           {"tie_word_embeddings", true}};
    put("transformer.wte.weight", Source{{&m.token_embedding()}, {}}, false);
    put("transformer.wpe.weight", Source{{&m.position_embedding()}, {}}, false);
    for (int l = 0; l < c.n_layers; ++l) {
      const Layer& L = m.layers()[static_cast<size_t>(l)];
      const std::string p = "transformer.h." + std::to_string(l) + ".";
      put_vec(p + "ln_1.weight", L.attn_norm, d);
      put_vec(p + "ln_1.bias", L.attn_norm_b, d);
      put(p + "attn.c_attn.weight", Source{{&L.wq, &L.wk, &L.wv}, {}}, true);
      std::vector<float> b(L.bq, L.bq + qd);
      b.insert(b.end(), L.bk, L.bk + kv);
      b.insert(b.end(), L.bv, L.bv + kv);
      put_vec(p + "attn.c_attn.bias", b.data(), qd + 2 * kv);
      put(p + "attn.c_proj.weight", Source{{&L.wo}, {}}, true);
      put_vec(p + "attn.c_proj.bias", L.bo, d);
      put_vec(p + "ln_2.weight", L.ffn_norm, d);
      put_vec(p + "ln_2.bias", L.ffn_norm_b, d);
      put(p + "mlp.c_fc.weight", Source{{&L.w_up}, {}}, true);
      put_vec(p + "mlp.c_fc.bias", L.b_up, h);
      put(p + "mlp.c_proj.weight", Source{{&L.w_down}, {}}, true);
      put_vec(p + "mlp.c_proj.bias", L.b_down, d);
    }
    put_vec("transformer.ln_f.weight", m.output_norm(), d);
    put_vec("transformer.ln_f.bias", m.output_norm_bias(), d);
  } else {
    const bool qwen2 = c.arch_name == "qwen2";
    const bool tied = m.classifier().data == m.token_embedding().data;
    cfg = {{"architectures", {qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM"}}, {"model_type", qwen2 ? "qwen2" : "llama"},
           {"hidden_size", c.dim}, {"intermediate_size", c.hidden_dim}, {"num_hidden_layers", c.n_layers},
           {"num_attention_heads", c.n_heads}, {"num_key_value_heads", c.n_kv_heads}, {"head_dim", c.head_dim},
           {"max_position_embeddings", c.seq_len}, {"vocab_size", c.vocab_size}, {"rms_norm_eps", c.norm_eps},
           {"rope_theta", c.rope_theta}, {"tie_word_embeddings", tied}, {"hidden_act", "silu"}};
    if (c.rope_llama3_factor > 0.0f) {
      cfg["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", c.rope_llama3_factor}, {"low_freq_factor", c.rope_llama3_low},
                             {"high_freq_factor", c.rope_llama3_high}, {"original_max_position_embeddings", c.rope_llama3_original_ctx}};
    } else if (c.rope_linear != 1.0f) {
      cfg["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope_linear}};
    }
    put("model.embed_tokens.weight", Source{{&m.token_embedding()}, {}}, false);
    for (int l = 0; l < c.n_layers; ++l) {
      const Layer& L = m.layers()[static_cast<size_t>(l)];
      const std::string p = "model.layers." + std::to_string(l) + ".";
      if ((L.bq != nullptr || L.bk != nullptr) && qk_map) return unimplemented("q/k biases cannot be converted between RoPE layouts yet");
      put_vec(p + "input_layernorm.weight", L.attn_norm, d);
      put(p + "self_attn.q_proj.weight", Source{{&L.wq}, qk_map}, false);
      put(p + "self_attn.k_proj.weight", Source{{&L.wk}, qk_map}, false);
      put(p + "self_attn.v_proj.weight", Source{{&L.wv}, {}}, false);
      put_vec(p + "self_attn.q_proj.bias", L.bq, qd);
      put_vec(p + "self_attn.k_proj.bias", L.bk, kv);
      put_vec(p + "self_attn.v_proj.bias", L.bv, kv);
      put(p + "self_attn.o_proj.weight", Source{{&L.wo}, {}}, false);
      put_vec(p + "self_attn.o_proj.bias", L.bo, d);
      put_vec(p + "post_attention_layernorm.weight", L.ffn_norm, d);
      put(p + "mlp.gate_proj.weight", Source{{&L.w_gate}, {}}, false);
      put(p + "mlp.up_proj.weight", Source{{&L.w_up}, {}}, false);
      put(p + "mlp.down_proj.weight", Source{{&L.w_down}, {}}, false);
    }
    put_vec("model.norm.weight", m.output_norm(), d);
    if (!tied) put("lm_head.weight", Source{{&m.classifier()}, {}}, false);
  }
  cfg["torch_dtype"] = dtype == SafetensorsDtype::kF32 ? "float32" : dtype == SafetensorsDtype::kF16 ? "float16" : "bfloat16";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return unavailable("cannot create " + dir + ": " + ec.message());
  LLMOPS_RETURN_IF_ERROR(write_safetensors(dir + "/model.safetensors", out, {{"format", "pt"}}));
  LLMOPS_RETURN_IF_ERROR(write_file_atomic(dir + "/config.json", dump_json(cfg, 2) + "\n"));
  if (!m.hf_dir().empty()) {
    for (const char* name : {"tokenizer.json", "tokenizer_config.json", "generation_config.json", "special_tokens_map.json"}) {
      const std::string from = m.hf_dir() + "/" + name;
      if (!std::filesystem::exists(from)) continue;
      LLMOPS_ASSIGN_OR_RETURN(std::string body, read_file(from, 256u << 20));
      LLMOPS_RETURN_IF_ERROR(write_file_atomic(dir + "/" + name, body));
    }
  } else {
    report.notes.push_back("no tokenizer.json written: the source's tokenizer is in its own format");
  }
  return report;
}

}  // namespace llmops::engine
