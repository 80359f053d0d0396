#include "formats/detect.h"

#include "formats/llama2c.h"

#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <string_view>
#include <fstream>

namespace llmops::engine {
namespace {

const char* kPickleAdvice =
    " is a PyTorch pickle checkpoint; pickles can run code when loaded, so llmops never opens them. Convert it to "
    "safetensors (e.g. with the transformers library: model.save_pretrained(dir, safe_serialization=True)) or to GGUF "
    "(llama.cpp's convert_hf_to_gguf.py) and import that instead";

bool exists(const std::string& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0;
}

// Weights a Hugging Face directory loads without pickle: an index or any *.safetensors file.
bool has_safetensors(const std::string& dir) {
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    for (std::string_view suffix : {".safetensors", ".safetensors.index.json"}) {
      if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) return true;
    }
  }
  return false;
}

}  // namespace

const char* model_format_name(ModelFormat f) {
  switch (f) {
    case ModelFormat::kGguf: return "gguf";
    case ModelFormat::kLlama2c: return "llama2c";
    case ModelFormat::kSafetensors: return "safetensors";
    case ModelFormat::kHuggingFaceDir: return "huggingface";
    case ModelFormat::kPickle: return "pickle";
  }
  return "unknown";
}

Result<ModelFormat> detect_model_format(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return not_found("no such file or directory: " + path);
  if (S_ISDIR(st.st_mode)) {
    const bool config = exists(path + "/config.json");
    if (config && has_safetensors(path)) return ModelFormat::kHuggingFaceDir;
    if (exists(path + "/pytorch_model.bin")) return invalid_argument(path + "/pytorch_model.bin" + kPickleAdvice);
    if (config) return invalid_argument(path + " has config.json but no *.safetensors weights: not a Hugging Face model directory llmops can load");
    return invalid_argument(path + " is a directory without config.json: not a Hugging Face model directory");
  }
  std::ifstream in(path, std::ios::binary);
  unsigned char head[64] = {};
  in.read(reinterpret_cast<char*>(head), sizeof head);
  size_t got = static_cast<size_t>(in.gcount());
  if (got >= 4 && std::memcmp(head, "GGUF", 4) == 0) return ModelFormat::kGguf;
  // A zip (torch.save since 1.6) or a raw pickle stream (protocol 2+ starts with 0x80 N).
  if (got >= 4 && std::memcmp(head, "PK\x03\x04", 4) == 0) return invalid_argument(path + kPickleAdvice);
  if (got >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5) return invalid_argument(path + kPickleAdvice);
  // safetensors: 8-byte little-endian header length that fits in the file, then a JSON object.
  if (got >= 9) {
    uint64_t n = 0;
    std::memcpy(&n, head, 8);
    if (head[8] == '{' && n > 0 && n <= static_cast<uint64_t>(st.st_size) - 8) return ModelFormat::kSafetensors;
  }
  // llama2.c: a header that checks out against the file's size (the header parser reads only
  // the first 37 bytes, all within `head`).
  if (got >= 28 && parse_llama2c_header(head, static_cast<size_t>(st.st_size)).ok()) return ModelFormat::kLlama2c;
  return invalid_argument(path + " is not a model this engine recognises (GGUF, safetensors, a Hugging Face directory or a llama2.c checkpoint)");
}

}  // namespace llmops::engine
