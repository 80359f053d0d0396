#include "tuning/adapters.h"

#include <cstring>
#include <map>

#include "formats/gguf_writer.h"
#include "formats/safetensors.h"
#include "fs.h"
#include "json.h"

namespace llmops::tuning {
namespace {

// Our GGUF projection names → PEFT's module paths.
const std::map<std::string, std::pair<std::string, std::string>> kPeft = {
    {"attn_q", {"self_attn", "q_proj"}},   {"attn_k", {"self_attn", "k_proj"}}, {"attn_v", {"self_attn", "v_proj"}},
    {"attn_output", {"self_attn", "o_proj"}}, {"ffn_gate", {"mlp", "gate_proj"}}, {"ffn_up", {"mlp", "up_proj"}},
    {"ffn_down", {"mlp", "down_proj"}}};

// Row r of rotate-half order is row to_adjacent(r) of the adjacent-pair order, per head.
uint64_t adjacent_row_of(uint64_t r, uint64_t hd) {
  const uint64_t h = r / hd, k = r % hd, half = hd / 2, j = k / half, i = k % half;
  return h * hd + 2 * i + j;
}

}  // namespace

Status write_adapters(const Trainer& t, const std::string& base_name, const std::string& architecture, const std::string& dir) {
  auto& tt = const_cast<Trainer&>(t);
  const auto& cfg = t.lora_config();
  const auto& c = t.config();
  const bool adjacent = c.rope == engine::RopeLayout::kNormal;
  std::vector<engine::SafetensorsTensorSource> st;
  std::vector<std::vector<float>> reordered;  // q/k B matrices in rotate-half row order
  reordered.reserve(t.lora_tensors().size());
  std::vector<std::string> targets;
  engine::GgufWriter g;
  g.add_string("general.architecture", architecture);
  g.add_string("general.type", "adapter");
  g.add_string("adapter.type", "lora");
  g.add_f32("adapter.lora.alpha", static_cast<float>(cfg.alpha));
  for (const auto& r : t.lora_tensors()) {
    // "blk.3.attn_q.lora_a" → layer 3, projection attn_q, part a.
    const size_t dot1 = r.name.find('.', 4), dot2 = r.name.rfind('.');
    const std::string layer = r.name.substr(4, dot1 - 4), proj = r.name.substr(dot1 + 1, dot2 - dot1 - 1);
    const bool is_a = r.name.substr(dot2 + 1) == "lora_a";
    const auto& peft = kPeft.at(proj);
    if (is_a && std::find(targets.begin(), targets.end(), peft.second) == targets.end()) targets.push_back(peft.second);
    const float* data = tt.lora_params().data() + r.offset;
    if (!is_a && adjacent && (proj == "attn_q" || proj == "attn_k")) {
      std::vector<float> out(r.size());
      for (uint64_t row = 0; row < r.rows; ++row) {
        std::memcpy(out.data() + row * r.cols, data + adjacent_row_of(row, static_cast<uint64_t>(c.head_dim)) * r.cols, r.cols * sizeof(float));
      }
      reordered.push_back(std::move(out));
      data = reordered.back().data();
    }
    st.push_back({"base_model.model.model.layers." + layer + "." + peft.first + "." + peft.second + (is_a ? ".lora_A.weight" : ".lora_B.weight"),
                  engine::SafetensorsDtype::kF32, {r.rows, r.cols}, data});
    const float* gdata = tt.lora_params().data() + r.offset;  // GGUF keeps the base's own order
    const uint64_t cols = r.cols;
    LLMOPS_RETURN_IF_ERROR(g.add_tensor("blk." + layer + "." + proj + ".weight." + (is_a ? "lora_a" : "lora_b"), engine::GgmlType::kF32,
                                        {r.cols, r.rows}, [gdata, cols](uint64_t row, float* out) {
                                          std::memcpy(out, gdata + row * cols, cols * sizeof(float));
                                        }));
  }
  LLMOPS_RETURN_IF_ERROR(engine::write_safetensors(dir + "/adapter_model.safetensors", st, {{"format", "pt"}}));
  Json config = {{"peft_type", "LORA"},          {"task_type", "CAUSAL_LM"}, {"r", cfg.rank},
                 {"lora_alpha", cfg.alpha},      {"lora_dropout", cfg.dropout}, {"target_modules", targets},
                 {"bias", "none"},               {"fan_in_fan_out", false}, {"inference_mode", true},
                 {"base_model_name_or_path", base_name}};
  LLMOPS_RETURN_IF_ERROR(write_file_atomic(dir + "/adapter_config.json", dump_json(config, 2) + "\n"));
  return g.write(dir + "/adapter.gguf");
}

}  // namespace llmops::tuning
