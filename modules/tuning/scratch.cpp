#include "tuning/scratch.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "formats/gguf_writer.h"
#include "model/export.h"
#include "model/synth.h"
#include "tokenizer/spm_train.h"

namespace llmops::tuning {

Json ScratchShape::to_json() const {
  const auto& c = config;
  return {{"dim", c.dim},           {"layers", c.n_layers},      {"heads", c.n_heads}, {"kv_heads", c.n_kv_heads},
          {"hidden", c.hidden_dim}, {"context", c.seq_len},      {"rope_theta", c.rope_theta}, {"tied", tied}};
}

Result<ScratchShape> parse_shape(const Json& spec) {
  Json j = Json::object();
  if (spec.is_string()) {
    const std::string s = spec.get<std::string>();
    if (s.find('=') == std::string::npos) {
      // A synthetic shape by name.
      LLMOPS_ASSIGN_OR_RETURN(engine::SynthShape synth, engine::find_synth_shape(s));
      if (synth.config.arch != engine::Arch::kLlama) return unimplemented("training covers Llama shapes; '" + s + "' is not one");
      const auto& c = synth.config;
      j = {{"dim", c.dim}, {"layers", c.n_layers}, {"heads", c.n_heads}, {"kv_heads", c.n_kv_heads}, {"hidden", c.hidden_dim}, {"context", c.seq_len}};
    } else {
      for (size_t at = 0; at < s.size();) {
        size_t comma = s.find(',', at);
        if (comma == std::string::npos) comma = s.size();
        const std::string part = s.substr(at, comma - at);
        const size_t eq = part.find('=');
        if (eq == std::string::npos || eq == 0) return invalid_argument("--shape takes key=value pairs (dim=192,layers=6,heads=6), not '" + part + "'");
        const std::string value = part.substr(eq + 1);
        char* end = nullptr;
        const double v = std::strtod(value.c_str(), &end);
        if (value.empty() || end == nullptr || *end != '\0') return invalid_argument("--shape " + part.substr(0, eq) + " needs a number, not '" + value + "'");
        j[part.substr(0, eq)] = v;
        at = comma + 1;
      }
    }
  } else if (spec.is_object()) {
    j = spec;
  } else {
    return invalid_argument("shape is a string (dim=192,layers=6,heads=6 or a shape name) or an object");
  }
  static const char* kKeys[] = {"dim", "layers", "heads", "kv_heads", "hidden", "context", "rope_theta", "tied"};
  for (const auto& [k, v] : j.items()) {
    if (std::find(std::begin(kKeys), std::end(kKeys), k) == std::end(kKeys)) {
      return invalid_argument("unknown shape key '" + k + "'; the keys are dim, layers, heads, kv_heads, hidden, context, rope_theta, tied");
    }
    if (!v.is_number() && !v.is_boolean()) return invalid_argument("shape key '" + k + "' needs a number");
  }
  auto whole = [&](const char* k, int def) -> Result<int> {
    if (!j.contains(k)) {
      if (def > 0) return def;
      return invalid_argument("the shape needs " + std::string(k) + " (for example dim=192,layers=6,heads=6)");
    }
    const double v = j[k].is_boolean() ? (j[k].get<bool>() ? 1 : 0) : j[k].get<double>();
    if (!(v >= 1 && v <= (1 << 20)) || std::floor(v) != v) return invalid_argument("shape " + std::string(k) + " must be a whole number 1.." + std::to_string(1 << 20));
    return static_cast<int>(v);
  };
  ScratchShape s;
  auto& c = s.config;
  c.arch = engine::Arch::kLlama;
  c.arch_name = "llama";
  LLMOPS_ASSIGN_OR_RETURN(c.dim, whole("dim", 0));
  LLMOPS_ASSIGN_OR_RETURN(c.n_layers, whole("layers", 0));
  LLMOPS_ASSIGN_OR_RETURN(c.n_heads, whole("heads", 0));
  LLMOPS_ASSIGN_OR_RETURN(c.n_kv_heads, whole("kv_heads", c.n_heads));
  LLMOPS_ASSIGN_OR_RETURN(c.hidden_dim, whole("hidden", (8 * c.dim / 3 + 31) / 32 * 32));
  LLMOPS_ASSIGN_OR_RETURN(c.seq_len, whole("context", 256));
  if (c.dim % c.n_heads != 0) return invalid_argument("shape dim " + std::to_string(c.dim) + " does not split into " + std::to_string(c.n_heads) + " heads");
  c.head_dim = c.dim / c.n_heads;
  if (c.head_dim % 2 != 0) return invalid_argument("shape heads of " + std::to_string(c.head_dim) + " values cannot rotate (RoPE needs an even head size)");
  c.rope = engine::RopeLayout::kNormal;
  c.rope_theta = j.contains("rope_theta") ? j["rope_theta"].get<float>() : 10000.0f;
  c.norm_eps = 1e-5f;
  c.vocab_size = 1;  // checked again once the tokenizer is known
  if (j.contains("tied")) s.tied = j["tied"].is_boolean() ? j["tied"].get<bool>() : j["tied"].get<double>() != 0;
  LLMOPS_RETURN_IF_ERROR(c.validate());
  return s;
}

Result<engine::SpmVocab> learn_vocabulary(sdk::Host host, const peers::DatasetRef& d, const ExampleOptions& opt, int vocab_size) {
  engine::SpmTrainer trainer;
  LLMOPS_RETURN_IF_ERROR(peers::read_records(host, d, [&](uint64_t, Json& rec) {
    if (auto text = example_text(rec, opt)) trainer.add(*text);
    return true;
  }));
  engine::SpmTrainOptions to;
  to.vocab_size = vocab_size;
  auto v = trainer.train(to);
  if (!v.ok()) return v.status().with_context("learning a vocabulary from " + d.ref);
  return v;
}

Status write_scratch_gguf(const Trainer& t, const engine::SpmVocab* vocab, const engine::GgufFile* base, const std::string& name,
                          const std::string& path) {
  engine::GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_string("general.name", name);
  w.add_u32("general.file_type", 0);  // all F32
  if (vocab != nullptr) {
    engine::add_spm_metadata(w, *vocab, true);
  } else if (base != nullptr) {
    engine::copy_tokenizer_metadata(w, *base);
  }
  engine::add_shape_metadata(w, "llama", t.config());
  LLMOPS_RETURN_IF_ERROR(add_trained_tensors(w, t));
  return w.write(path);
}

}  // namespace llmops::tuning
