#include "common/open_model.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>

#include "fs.h"
#include "json.h"

namespace llmops::models {
namespace fs = std::filesystem;
namespace {

// The chat template: an explicit one (a built-in name or template text), else the model's own
// (GGUF metadata or tokenizer_config.json), else the built-in its vocabulary suggests.
Result<std::pair<engine::ChatTemplate, std::string>> chat_template_for(const ModelSource& src, const engine::Model& m,
                                                                       const engine::Tokenizer& tok,
                                                                       const std::function<void(const std::string&)>& warn) {
  if (!src.chat_template.empty()) {
    auto names = engine::ChatTemplate::builtin_names();
    if (std::find(names.begin(), names.end(), src.chat_template) != names.end()) {
      LLMOPS_ASSIGN_OR_RETURN(auto t, engine::ChatTemplate::builtin(src.chat_template));
      return std::make_pair(std::move(t), "builtin:" + src.chat_template);
    }
    auto t = engine::ChatTemplate::parse(src.chat_template);
    if (!t.ok()) return t.status().with_context("the chat template (" + src.chat_source + ")");
    return std::make_pair(std::move(t).value(), src.chat_source);
  }
  Result<engine::ChatTemplate> own = not_found("no template");
  if (m.gguf() != nullptr) {
    own = engine::chat_template_from_gguf(*m.gguf());
  } else if (!m.hf_dir().empty()) {
    auto text = read_file(m.hf_dir() + "/tokenizer_config.json", 16u << 20);
    if (text.ok()) {
      auto j = parse_json_bounded(*text, 64);
      if (j.ok()) own = engine::chat_template_from_tokenizer_config(*j);
    }
  }
  if (own.ok()) return std::make_pair(std::move(own).value(), std::string("model"));
  if (own.status().code() != Code::kNotFound) warn("the model's chat template is unusable (" + own.status().message() + "); using a built-in one");
  auto has_token = [&](std::string_view text) {
    for (int32_t id = 0; id < tok.size(); ++id) {
      if (tok.token_text(id) == text) return true;
    }
    return false;
  };
  std::string name = engine::detect_builtin_template(has_token, !tok.is_byte_level());
  if (name.empty()) name = "chatml";
  LLMOPS_ASSIGN_OR_RETURN(auto t, engine::ChatTemplate::builtin(name));
  return std::make_pair(std::move(t), "builtin:" + name);
}

// A Hugging Face model stored as blobs: a private directory of links named as the loader
// expects, removed once the model is open (the mapped files stay mapped).
class LinkedDir {
 public:
  static Result<std::unique_ptr<LinkedDir>> make(const std::vector<std::pair<std::string, std::string>>& links) {
    static std::atomic<int> counter{0};
    auto d = std::unique_ptr<LinkedDir>(new LinkedDir());
    d->path_ = (fs::temp_directory_path() / ("llmops-model-" + std::to_string(::getpid()) + "-" + std::to_string(counter++))).string();
    std::error_code ec;
    fs::remove_all(d->path_, ec);
    if (!fs::create_directories(d->path_, ec) || ec) return internal_error("cannot make " + d->path_ + ": " + ec.message());
    for (const auto& [name, target] : links) {
      fs::create_symlink(target, fs::path(d->path_) / name, ec);
      if (ec) return internal_error("cannot link " + name + " in " + d->path_ + ": " + ec.message());
    }
    return d;
  }
  ~LinkedDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  LinkedDir() = default;
  std::string path_;
};

}  // namespace

Result<OpenedModel> open_model(const ModelSource& src, const std::function<void(const std::string&)>& warn) {
  Result<std::unique_ptr<engine::Model>> model = invalid_argument("unknown model format '" + src.format + "'");
  if (src.format.empty()) model = engine::Model::load(src.weights);
  else if (src.format == "gguf") model = engine::Model::load_gguf(src.weights);
  else if (src.format == "llama2c") model = engine::Model::load_llama2c(src.weights);
  else if (src.format == "hf") model = engine::Model::load_hf(src.weights);
  if (!model.ok()) return model.status().with_context("the model " + src.name);
  if (src.pack_for_batches) (*model)->pack_for_batches();
  std::shared_ptr<const engine::Model> m(std::move(model).value());
  Result<engine::Tokenizer> tok = invalid_argument("a llama2.c checkpoint carries no vocabulary: give its tokenizer.bin as the tokenizer");
  if (!src.tokenizer.empty()) {
    tok = fs::is_directory(src.tokenizer) ? engine::Tokenizer::from_hf_dir(src.tokenizer)
                                          : engine::Tokenizer::from_llama2c(src.tokenizer, m->config().vocab_size);
  } else if (m->gguf() != nullptr) {
    tok = engine::Tokenizer::from_gguf(*m->gguf());
  } else if (!m->hf_dir().empty()) {
    tok = engine::Tokenizer::from_hf_dir(m->hf_dir());
  }
  if (!tok.ok()) return tok.status().with_context("the tokenizer of " + src.name);
  if (tok->size() > m->config().vocab_size) {
    return invalid_argument("the tokenizer has more tokens (" + std::to_string(tok->size()) + ") than the model (" +
                            std::to_string(m->config().vocab_size) + "); give the model's own tokenizer");
  }
  OpenedModel out;
  out.model = m;
  auto tokenizer = std::make_shared<const engine::Tokenizer>(std::move(tok).value());
  out.tok = tokenizer;
  LLMOPS_ASSIGN_OR_RETURN(auto chat, chat_template_for(src, *m, *tokenizer, warn));
  out.chat = std::make_shared<const engine::ChatTemplate>(std::move(chat.first));
  out.chat_source = chat.second;
  return out;
}

Result<OpenedModel> open_stored_model(sdk::Host host, ModelSource src, const std::vector<StoredFile>& files,
                                      const std::function<void(const std::string&)>& warn, std::string* where) {
  std::vector<std::pair<std::string, std::string>> paths;  // file name → blob path
  for (const auto& f : files) {
    char path[4096];
    llmops_error err{};
    if (host.api()->blob_path(host.ctx(), f.sha256.c_str(), path, sizeof path, &err) != LLMOPS_OK) {
      return data_loss("the file " + f.name + " of model '" + src.name + "' is missing from the blob store (" + err.message +
                       "); import the model again");
    }
    paths.emplace_back(f.name, path);
  }
  std::unique_ptr<LinkedDir> dir;
  if (src.format == "hf") {
    LLMOPS_ASSIGN_OR_RETURN(dir, LinkedDir::make(paths));
    src.weights = dir->path();
  } else {
    for (size_t i = 0; i < files.size(); ++i) {
      if (files[i].role == "weights") src.weights = paths[i].second;
      if (files[i].role == "tokenizer") src.tokenizer = paths[i].second;
    }
  }
  if (where != nullptr) *where = src.weights;
  return open_model(src, warn);
}

}  // namespace llmops::models
