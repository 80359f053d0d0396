// Opening a model for inference with its tokenizer and chat template, from paths or from the
// blob store (a registry version's files): shared by the stages that run models (serving, eval)
// so a model opens the same way everywhere and every failure says which part and what to do.
// Any thread; nothing here keeps state.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "llmops/module.hpp"
#include "model/model.h"
#include "status.h"
#include "tokenizer/tokenizer.h"

namespace llmops::models {

// What to open. Files are paths on this machine (blobs or the configured ones).
struct ModelSource {
  std::string name;           // what clients call it
  std::string format;         // "gguf" | "llama2c" | "hf" | "" (detect)
  std::string weights;        // a file, or a Hugging Face directory
  std::string tokenizer;      // llama2.c tokenizer.bin or a Hugging Face tokenizer directory; "" when the model carries one
  std::string chat_template;  // "" (the model's own), a built-in name, or template text
  std::string chat_source;    // how to name an explicit template in logs ("config:/etc/...", "registry")
  bool pack_for_batches = false;  // repack quantised weights for batched decode (Model::pack_for_batches)
};

// A model opened and checked, not yet served.
struct OpenedModel {
  std::shared_ptr<const engine::Model> model;
  std::shared_ptr<const engine::Tokenizer> tok;
  std::shared_ptr<const engine::ChatTemplate> chat;
  std::string chat_source;  // "model", "builtin:<name>", "config:<file>", "registry"
};

// Opens weights, tokenizer and chat template; every failure says which part and what to do.
// warn receives non-fatal notes (an unusable own template replaced by a built-in one).
Result<OpenedModel> open_model(const ModelSource& src, const std::function<void(const std::string&)>& warn);

// One file of a stored model version: the name the loader expects, its role ("weights",
// "tokenizer", "config") and its blob.
struct StoredFile {
  std::string name, role, sha256;
};

// Opens a model whose files are blobs: a Hugging Face model through a private directory of
// links named as the loader expects (removed once open: the files stay mapped), the others by
// their blob paths. src gives the name, format and chat template; its paths are filled here.
// where receives the weights' path. kDataLoss when a blob is missing.
Result<OpenedModel> open_stored_model(sdk::Host host, ModelSource src, const std::vector<StoredFile>& files,
                                      const std::function<void(const std::string&)>& warn, std::string* where);

}  // namespace llmops::models
