#include "tuning/adapters.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "formats/gguf_writer.h"
#include "formats/safetensors.h"
#include "fs.h"
#include "json.h"
#include "model/export.h"

namespace llmops::tuning {
namespace {

// Our GGUF projection names → PEFT's module paths.
const std::map<std::string, std::pair<std::string, std::string>> kPeft = {
    {"attn_q", {"self_attn", "q_proj"}},   {"attn_k", {"self_attn", "k_proj"}}, {"attn_v", {"self_attn", "v_proj"}},
    {"attn_output", {"self_attn", "o_proj"}}, {"ffn_gate", {"mlp", "gate_proj"}}, {"ffn_up", {"mlp", "up_proj"}},
    {"ffn_down", {"mlp", "down_proj"}}};

// The GGUF adapter's header as llama.cpp reads it.
void start_gguf_adapter(engine::GgufWriter& g, const std::string& architecture, double alpha) {
  g.add_string("general.architecture", architecture);
  g.add_string("general.type", "adapter");
  g.add_string("adapter.type", "lora");
  g.add_f32("adapter.lora.alpha", static_cast<float>(alpha));
}

// Writes the PEFT pair (adapter_model.safetensors, adapter_config.json) and the GGUF adapter.
Status finish_adapters(const std::string& dir, const std::vector<engine::SafetensorsTensorSource>& st, engine::GgufWriter& g,
                       const engine::train::LoraConfig& cfg, const std::vector<std::string>& targets, const std::string& base_name,
                       bool fan_in_fan_out, const Json& rank_pattern) {
  LLMOPS_RETURN_IF_ERROR(engine::write_safetensors(dir + "/adapter_model.safetensors", st, {{"format", "pt"}}));
  Json config = {{"peft_type", "LORA"},          {"task_type", "CAUSAL_LM"}, {"r", cfg.rank},
                 {"lora_alpha", cfg.alpha},      {"lora_dropout", cfg.dropout}, {"target_modules", targets},
                 {"bias", "none"},               {"fan_in_fan_out", fan_in_fan_out}, {"inference_mode", true},
                 {"base_model_name_or_path", base_name}};
  if (!rank_pattern.empty()) config["rank_pattern"] = rank_pattern;
  LLMOPS_RETURN_IF_ERROR(write_file_atomic(dir + "/adapter_config.json", dump_json(config, 2) + "\n"));
  return g.write(dir + "/adapter.gguf");
}

// GPT-2 keeps q, k and v in one fused projection (attn_qkv; Hugging Face's attn.c_attn), and so
// must its adapter: the targeted ones among q, k, v become one adapter of rank k·r whose A
// stacks theirs and whose B places each one's rows in its block (zero elsewhere). Both llama.cpp
// and PEFT scale an adapter by alpha / its rank, so the fused B is multiplied by k to keep each
// part's alpha / r.
Status write_gpt2_adapters(const Trainer& t, const std::string& base_name, const std::string& dir) {
  auto& tt = const_cast<Trainer&>(t);
  const auto& cfg = t.lora_config();
  const auto& c = t.config();
  const uint64_t d = static_cast<uint64_t>(c.dim), qd = static_cast<uint64_t>(c.q_dim()), kvd = static_cast<uint64_t>(c.kv_dim());
  const uint64_t r = static_cast<uint64_t>(cfg.rank);
  std::map<std::pair<int, std::string>, std::pair<const engine::train::TensorRef*, const engine::train::TensorRef*>> adapters;
  for (size_t i = 0; i + 1 < t.lora_tensors().size(); i += 2) {
    const auto& a = t.lora_tensors()[i];
    const size_t dot1 = a.name.find('.', 4), dot2 = a.name.rfind('.');
    adapters[{std::stoi(a.name.substr(4, dot1 - 4)), a.name.substr(dot1 + 1, dot2 - dot1 - 1)}] = {&a, &t.lora_tensors()[i + 1]};
  }
  auto data = [&](const engine::train::TensorRef* x) { return tt.lora_params().data() + x->offset; };
  std::vector<std::vector<float>> owned;
  std::vector<engine::SafetensorsTensorSource> st;
  engine::GgufWriter g;
  start_gguf_adapter(g, "gpt2", cfg.alpha);
  std::vector<std::string> targets;
  Json rank_pattern = Json::object();
  // One adapter: A (a_rows × in_cols) and B (b_rows × a_rows), under GGUF and Hugging Face names.
  auto add = [&](const std::string& gguf, const std::string& hf, const float* a, uint64_t a_rows, uint64_t in_cols, const float* b,
                 uint64_t b_rows) -> Status {
    if (std::find(targets.begin(), targets.end(), hf) == targets.end()) targets.push_back(hf);
    const std::string layer_hf = gguf.substr(4, gguf.find('.', 4) - 4);
    st.push_back({"base_model.model.transformer.h." + layer_hf + "." + hf + ".lora_A.weight", engine::SafetensorsDtype::kF32, {a_rows, in_cols}, a});
    st.push_back({"base_model.model.transformer.h." + layer_hf + "." + hf + ".lora_B.weight", engine::SafetensorsDtype::kF32, {b_rows, a_rows}, b});
    LLMOPS_RETURN_IF_ERROR(g.add_tensor(gguf + ".weight.lora_a", engine::GgmlType::kF32, {in_cols, a_rows}, [a, in_cols](uint64_t row, float* out) {
      std::memcpy(out, a + row * in_cols, in_cols * sizeof(float));
    }));
    return g.add_tensor(gguf + ".weight.lora_b", engine::GgmlType::kF32, {a_rows, b_rows}, [b, a_rows](uint64_t row, float* out) {
      std::memcpy(out, b + row * a_rows, a_rows * sizeof(float));
    });
  };
  owned.reserve(static_cast<size_t>(c.n_layers) * 2);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string blk = "blk." + std::to_string(l) + ".";
    // The fused q/k/v.
    std::vector<std::pair<uint64_t, std::pair<const engine::train::TensorRef*, const engine::train::TensorRef*>>> parts;  // row offset
    for (auto [proj, row0] : {std::pair<const char*, uint64_t>{"attn_q", 0}, {"attn_k", qd}, {"attn_v", qd + kvd}}) {
      if (auto it = adapters.find({l, proj}); it != adapters.end()) parts.push_back({row0, it->second});
    }
    if (!parts.empty()) {
      const uint64_t k = parts.size(), R = k * r, rows = qd + 2 * kvd;
      std::vector<float>& A = owned.emplace_back(R * d, 0.0f);
      std::vector<float>& B = owned.emplace_back(rows * R, 0.0f);
      for (uint64_t j = 0; j < k; ++j) {
        const auto* ta = parts[j].second.first;
        const auto* tb = parts[j].second.second;
        std::memcpy(A.data() + j * r * d, data(ta), r * d * sizeof(float));
        for (uint64_t row = 0; row < tb->rows; ++row) {
          for (uint64_t col = 0; col < r; ++col) B[(parts[j].first + row) * R + j * r + col] = data(tb)[row * r + col] * static_cast<float>(k);
        }
      }
      LLMOPS_RETURN_IF_ERROR(add(blk + "attn_qkv", "attn.c_attn", A.data(), R, d, B.data(), rows));
      if (R != r) rank_pattern["attn.c_attn"] = R;
    }
    for (auto [proj, hf] : {std::pair<const char*, const char*>{"attn_output", "attn.c_proj"}, {"ffn_up", "mlp.c_fc"}, {"ffn_down", "mlp.c_proj"}}) {
      auto it = adapters.find({l, proj});
      if (it == adapters.end()) continue;
      LLMOPS_RETURN_IF_ERROR(add(blk + proj, hf, data(it->second.first), r, it->second.first->cols, data(it->second.second), it->second.second->rows));
    }
  }
  return finish_adapters(dir, st, g, cfg, targets, base_name, /*fan_in_fan_out=*/true, rank_pattern);
}

}  // namespace

Status write_adapters(const Trainer& t, const std::string& base_name, const std::string& architecture, const std::string& dir,
                      const std::function<uint64_t(uint64_t)>& gguf_qk_row) {
  if (architecture == "gpt2") return write_gpt2_adapters(t, base_name, dir);
  auto& tt = const_cast<Trainer&>(t);
  const auto& cfg = t.lora_config();
  // PEFT holds q/k rows in Hugging Face's rotate-half order.
  LLMOPS_ASSIGN_OR_RETURN(const std::function<uint64_t(uint64_t)> peft_qk_row, engine::rope_row_map(t.config(), engine::RopeLayout::kNeox));
  std::vector<engine::SafetensorsTensorSource> st;
  std::vector<std::vector<float>> reordered;  // q/k B matrices in rotate-half row order
  reordered.reserve(t.lora_tensors().size());
  std::vector<std::string> targets;
  engine::GgufWriter g;
  start_gguf_adapter(g, architecture, cfg.alpha);
  for (const auto& r : t.lora_tensors()) {
    // "blk.3.attn_q.lora_a" → layer 3, projection attn_q, part a.
    const size_t dot1 = r.name.find('.', 4), dot2 = r.name.rfind('.');
    const std::string layer = r.name.substr(4, dot1 - 4), proj = r.name.substr(dot1 + 1, dot2 - dot1 - 1);
    const bool is_a = r.name.substr(dot2 + 1) == "lora_a";
    const auto& peft = kPeft.at(proj);
    if (is_a && std::find(targets.begin(), targets.end(), peft.second) == targets.end()) targets.push_back(peft.second);
    const float* data = tt.lora_params().data() + r.offset;
    const bool qk_b = !is_a && (proj == "attn_q" || proj == "attn_k");
    if (qk_b && peft_qk_row) {
      std::vector<float> out(r.size());
      for (uint64_t row = 0; row < r.rows; ++row) std::memcpy(out.data() + row * r.cols, data + peft_qk_row(row) * r.cols, r.cols * sizeof(float));
      reordered.push_back(std::move(out));
      data = reordered.back().data();
    }
    st.push_back({"base_model.model.model.layers." + layer + "." + peft.first + "." + peft.second + (is_a ? ".lora_A.weight" : ".lora_B.weight"),
                  engine::SafetensorsDtype::kF32, {r.rows, r.cols}, data});
    // GGUF keeps the base GGUF's order (that of the base's conversion when it is not GGUF).
    const float* gdata = tt.lora_params().data() + r.offset;
    const uint64_t cols = r.cols;
    std::function<uint64_t(uint64_t)> map = qk_b ? gguf_qk_row : nullptr;
    LLMOPS_RETURN_IF_ERROR(g.add_tensor("blk." + layer + "." + proj + ".weight." + (is_a ? "lora_a" : "lora_b"), engine::GgmlType::kF32,
                                        {r.cols, r.rows}, [gdata, cols, map](uint64_t row, float* out) {
                                          std::memcpy(out, gdata + (map ? map(row) : row) * cols, cols * sizeof(float));
                                        }));
  }
  return finish_adapters(dir, st, g, cfg, targets, base_name, /*fan_in_fan_out=*/false, Json::object());
}

}  // namespace llmops::tuning
