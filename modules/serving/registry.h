// The serving stage's model catalogue: imported model versions and the aliases that point at
// them, kept in the module's own LMDB database through the host's kv calls; the files live in
// the host's content-addressed blob store (one reference per file per version).
//
//   m/<name>   → a ModelRecord (JSON): format, files (name, sha256, size), what loading it showed
//   a/<alias>  → an AliasRecord (JSON): the model version it points at
//   p/<caller> → a scheduling priority for an API key
//
// Model names and aliases share one namespace (a request's "model" may be either), so neither
// may take a name the other holds. Threads: any; the Registry serialises its own writes.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "json.h"
#include "llmops/module.hpp"
#include "status.h"

namespace llmops::serving {

struct ModelFile {
  std::string name;    // the file name the loader expects ("model.gguf", "config.json", "tokenizer.bin")
  std::string role;    // "weights" | "tokenizer" | "config" (Hugging Face side files)
  std::string sha256;  // the blob
  uint64_t size = 0;
};

struct ModelRecord {
  std::string name;
  std::string format;  // "gguf" | "llama2c" | "hf"
  std::vector<ModelFile> files;
  std::string chat_template;  // "" (the model's own), a built-in name, or template text
  std::string arch;
  int64_t context = 0, vocab = 0, layers = 0, dim = 0;
  uint64_t weight_bytes = 0;
  uint64_t imported_ms = 0;
  std::string imported_by;  // the admin caller ("uid:1000")
  std::string source;       // the path it was imported from
  bool log_bodies = false;  // the request log keeps prompts and completions
  // Where the version came from when a stage made it (the tuning run: base, data, method,
  // hyperparameters, code version, losses); null for an imported file.
  Json lineage;

  uint64_t bytes() const;  // the files' total size
  Json to_json() const;
  static Result<ModelRecord> from_json(const Json& j);
};

struct AliasRecord {
  std::string name;
  std::string target;  // a model name
  uint64_t updated_ms = 0;
  std::string updated_by;
  Json to_json() const;
  static Result<AliasRecord> from_json(const Json& j);
};

// 1-128 characters of A-Z a-z 0-9 . _ : - (Ollama-style "llama3:8b" works), not starting with
// a dot or a dash; the message says which.
Status check_model_name(const std::string& name, const char* what = "model name");

class Registry {
 public:
  explicit Registry(sdk::Host host) : host_(host) {}

  Result<std::optional<ModelRecord>> model(const std::string& name) const;
  Result<std::vector<ModelRecord>> models() const;
  // Stores a new version; kAlreadyExists when the name is taken by a model or an alias.
  Status add_model(const ModelRecord& rec);
  Status update_model(const ModelRecord& rec);  // an existing one (settings)
  Status remove_model(const std::string& name);

  Result<std::optional<AliasRecord>> alias(const std::string& name) const;
  Result<std::vector<AliasRecord>> aliases() const;
  // Creates or repoints an alias at an existing model; one kv write, so readers see the old
  // target or the new one, never neither.
  Status set_alias(const AliasRecord& rec);
  Status remove_alias(const std::string& name);
  // The aliases that point at a model.
  Result<std::vector<std::string>> aliases_of(const std::string& model) const;

  // What a request's "model" names: an alias's target, else the name itself.
  Result<std::string> resolve(const std::string& name) const;

  // Scheduling priority by caller ("key:<id>", "anonymous"): p/<caller> → {"priority", "name"}.
  Result<std::vector<Json>> priorities() const;
  Status set_priority(const std::string& caller, const Json& entry);
  Status remove_priority(const std::string& caller);

 private:
  Result<std::optional<Json>> get(const std::string& key) const;
  Result<std::vector<Json>> scan(const std::string& prefix) const;
  Status put(const std::string& key, const Json& value);
  Status del(const std::string& key);

  sdk::Host host_;
  std::mutex write_mu_;  // check-then-write sequences (name uniqueness, alias targets)
};

}  // namespace llmops::serving
