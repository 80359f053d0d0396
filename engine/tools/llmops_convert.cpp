// llmops-convert: loads any model the engine reads (GGUF, llama2.c, Hugging Face directory) and
// writes it as GGUF at a chosen type, or as a Hugging Face directory (config.json +
// model.safetensors). A development tool; `llmopsctl model quantize` will call the same code.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "chat/chat_template.h"
#include "formats/quantize.h"
#include "model/export.h"

using namespace llmops;
using namespace llmops::engine;

namespace {

const char* kUsage =
    "Usage: llmops-convert --model PATH --type F32|F16|BF16|Q8_0|Q4_0|Q4_K|Q6_K --out FILE.gguf\n"
    "       llmops-convert --model PATH --hf-dtype F32|F16|BF16 --out-dir DIR\n\n"
    "  --model PATH     a GGUF file, a llama2.c checkpoint or a Hugging Face directory\n"
    "  --tokenizer PATH a llama2.c tokenizer.bin, written into the GGUF (GGUF sources keep their own)\n"
    "  --type T         GGUF matrix type (vectors stay F32; Q4_0/Q4_K keep the classifier at Q6_K)\n"
    "  --out FILE       the GGUF to write (appears only when complete)\n"
    "  --chat-template FILE  a Jinja chat template written into the GGUF (replacing the source's)\n"
    "  --hf-dtype D     write a Hugging Face directory with weights in D instead\n"
    "  --out-dir DIR    where config.json and model.safetensors go\n";

int fail(const std::string& msg) {
  std::fprintf(stderr, "llmops-convert: %s\n", msg.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path, tokenizer_path, type_name, out, hf_dtype, out_dir, template_path;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--model") model_path = next();
    else if (a == "--tokenizer") tokenizer_path = next();
    else if (a == "--type") type_name = next();
    else if (a == "--out") out = next();
    else if (a == "--chat-template") template_path = next();
    else if (a == "--hf-dtype") hf_dtype = next();
    else if (a == "--out-dir") out_dir = next();
    else if (a == "--help" || a == "-h") return std::fputs(kUsage, stdout), 0;
    else return fail("unknown option " + a + "\n" + kUsage);
  }
  if (model_path.empty()) return fail(std::string("--model is required\n") + kUsage);
  if (type_name.empty() == hf_dtype.empty()) return fail(std::string("give either --type (GGUF) or --hf-dtype (Hugging Face)\n") + kUsage);
  auto model = Model::load(model_path);
  if (!model.ok()) return fail(model.status().message());
  Result<ExportReport> report = internal_error("no export ran");
  if (!type_name.empty()) {
    if (out.empty()) return fail("--out FILE.gguf is required with --type");
    auto type = writable_type_from_name(type_name);
    if (!type) return fail("--type " + type_name + " is not one of F32 F16 BF16 Q8_0 Q4_0 Q4_K Q6_K");
    std::unique_ptr<Tokenizer> tok;
    if (!tokenizer_path.empty()) {
      auto t = Tokenizer::from_llama2c(tokenizer_path, (*model)->config().vocab_size);
      if (!t.ok()) return fail(t.status().message());
      tok = std::make_unique<Tokenizer>(std::move(t).value());
    } else if (!(*model)->hf_dir().empty()) {
      auto t = Tokenizer::from_hf_dir((*model)->hf_dir());
      if (t.ok()) tok = std::make_unique<Tokenizer>(std::move(t).value());
    }
    std::string chat_template;
    if (!template_path.empty()) {
      std::ifstream f(template_path, std::ios::binary);
      if (!f) return fail("cannot read the chat template " + template_path);
      chat_template.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
      if (auto parsed = ChatTemplate::parse(chat_template); !parsed.ok()) return fail(template_path + ": " + parsed.status().message());
    }
    report = export_gguf(**model, *type, out, tok.get(), chat_template);
  } else {
    if (out_dir.empty()) return fail("--out-dir DIR is required with --hf-dtype");
    auto dtype = safetensors_dtype_from_name(hf_dtype);
    if (!dtype) return fail("--hf-dtype " + hf_dtype + " is not one of F32 F16 BF16");
    report = export_hf(**model, *dtype, out_dir);
  }
  if (!report.ok()) return fail(report.status().message());
  for (const auto& n : report->notes) std::fprintf(stderr, "note: %s\n", n.c_str());
  std::printf("wrote %s: %.1f MB of weights\n", out.empty() ? out_dir.c_str() : out.c_str(), static_cast<double>(report->bytes) / 1e6);
  return 0;
}
