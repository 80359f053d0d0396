#include "tuning/checkpoint.h"

#include <cstdio>
#include <cstring>
#include <memory>

#include "formats/gguf_writer.h"
#include "model/export.h"

namespace llmops::tuning {
namespace {

constexpr char kMagic[] = "LLMOPS-CHECKPOINT-1\n";

Status from_c(const llmops_error& err, const std::string& what) { return Status(static_cast<Code>(err.code), what + ": " + err.message); }

}  // namespace

Result<std::string> save_checkpoint(sdk::Host host, std::vector<float>& params, Optimizer& opt, const Json& header) {
  const auto* api = host.api();
  llmops_blob_writer* w = nullptr;
  llmops_error err{};
  if (api->blob_begin(host.ctx(), &w, &err) != LLMOPS_OK) return from_c(err, "starting a checkpoint");
  auto write = [&](const void* data, size_t n) { return api->blob_write(w, data, n, &err) == LLMOPS_OK; };
  Json h = header;
  h["parameters"] = params.size();
  h["optimizer_steps"] = opt.steps();
  const std::string line = dump_json(h) + "\n";
  bool ok = write(kMagic, std::strlen(kMagic)) && write(line.data(), line.size()) &&
            write(params.data(), params.size() * sizeof(float)) && write(opt.m().data(), opt.m().size() * sizeof(float)) &&
            write(opt.v().data(), opt.v().size() * sizeof(float));
  if (!ok) {
    api->blob_abort(w);
    return from_c(err, "writing a checkpoint (is the disk full?); the previous checkpoint is kept");
  }
  char hex[65];
  uint64_t size = 0;
  if (api->blob_commit(w, hex, &size, &err) != LLMOPS_OK) return from_c(err, "storing a checkpoint; the previous checkpoint is kept");
  return std::string(hex);
}

Result<Json> load_checkpoint(sdk::Host host, const std::string& blob, std::vector<float>& params, Optimizer& opt) {
  char path[4096];
  llmops_error err{};
  if (host.api()->blob_path(host.ctx(), blob.c_str(), path, sizeof path, &err) != LLMOPS_OK) return from_c(err, "finding checkpoint " + blob);
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path, "rb"), std::fclose);
  if (!f) return data_loss("cannot open checkpoint " + blob);
  char magic[sizeof kMagic - 1];
  if (std::fread(magic, 1, sizeof magic, f.get()) != sizeof magic || std::memcmp(magic, kMagic, sizeof magic) != 0) {
    return data_loss("checkpoint " + blob + " is not one of ours");
  }
  std::string line;
  for (int c; (c = std::fgetc(f.get())) != EOF && c != '\n' && line.size() < (1u << 20);) line.push_back(static_cast<char>(c));
  LLMOPS_ASSIGN_OR_RETURN(Json h, parse_json_bounded(line, 16));
  if (h.value("parameters", uint64_t{0}) != params.size()) return data_loss("checkpoint " + blob + " holds another model shape");
  auto read = [&](std::vector<float>& v) { return std::fread(v.data(), sizeof(float), v.size(), f.get()) == v.size(); };
  if (!read(params) || !read(opt.m()) || !read(opt.v())) return data_loss("checkpoint " + blob + " is cut short");
  opt.set_steps(h.value("optimizer_steps", int64_t{0}));
  return h;
}

Status write_gguf(const Trainer& t, const engine::GgufFile& base, const std::string& path) {
  engine::GgufWriter w;
  for (const auto& [key, value] : base.metadata()) {
    if (key == "general.file_type" || key == "general.alignment") continue;
    if (value.type == engine::GgufType::kArray && value.elem_type == engine::GgufType::kArray) continue;
    w.add_value(key, value);
  }
  w.add_u32("general.file_type", 0);  // all F32
  LLMOPS_RETURN_IF_ERROR(add_trained_tensors(w, t));
  return w.write(path);
}

Status add_trained_tensors(engine::GgufWriter& w, const Trainer& t, const std::function<uint64_t(uint64_t)>& qk_row) {
  const std::vector<float>& p = const_cast<Trainer&>(t).params();
  for (const auto& r : t.tensors()) {
    const float* data = p.data() + r.offset;
    const bool reorder = qk_row && (r.name.ends_with(".attn_q") || r.name.ends_with(".attn_k"));
    const std::function<uint64_t(uint64_t)> map = reorder ? qk_row : nullptr;
    const std::string name = r.name + (r.bias ? ".bias" : ".weight");
    if (r.matrix()) {
      const uint64_t cols = r.cols;
      LLMOPS_RETURN_IF_ERROR(w.add_tensor(name, engine::GgmlType::kF32, {r.cols, r.rows}, [data, cols, map](uint64_t row, float* out) {
        std::memcpy(out, data + (map ? map(row) : row) * cols, cols * sizeof(float));
      }));
    } else {  // one row of r.rows values; a q/k bias is re-ordered like its matrix's rows
      const uint64_t n = r.rows;
      LLMOPS_RETURN_IF_ERROR(w.add_tensor(name, engine::GgmlType::kF32, {r.rows}, [data, n, map](uint64_t, float* out) {
        for (uint64_t i = 0; i < n; ++i) out[i] = data[map ? map(i) : i];
      }));
    }
  }
  return ok_status();
}

Status can_write_converted(const engine::ModelConfig& c) {
  if (c.rope_llama3_factor != 0.0f) {
    return unimplemented("this base's Llama 3 RoPE scaling cannot be written to GGUF from a non-GGUF base yet; import the base as GGUF (llmops-convert) and train from that");
  }
  return engine::gguf_layout(c).status();
}

Status write_converted_gguf(const Trainer& t, const engine::Model& base, const engine::Tokenizer& tok, std::string_view chat_template,
                            const std::string& name, const std::string& path) {
  LLMOPS_RETURN_IF_ERROR(can_write_converted(t.config()));
  LLMOPS_ASSIGN_OR_RETURN(engine::GgufLayout layout, engine::gguf_layout(t.config()));
  engine::GgufWriter w;
  w.add_string("general.architecture", layout.arch);
  w.add_string("general.name", name);
  w.add_u32("general.file_type", 0);  // all F32
  std::vector<std::string> notes;
  engine::add_tokenizer_metadata(w, base, &tok, true, &notes);
  if (!notes.empty()) return unimplemented("the base's tokenizer cannot be written into GGUF: " + notes.front());
  if (!chat_template.empty()) w.add_string("tokenizer.chat_template", std::string(chat_template));
  engine::add_shape_metadata(w, layout.arch, t.config());
  LLMOPS_RETURN_IF_ERROR(add_trained_tensors(w, t, layout.qk_row));
  return w.write(path);
}

}  // namespace llmops::tuning
