// Hugging Face directories: config.json + safetensors. (Filled in when the safetensors reader lands.)
#include "model/loader.h"

namespace llmops::engine {

Result<std::unique_ptr<Model>> ModelLoader::hf(const std::string& dir) {
  return unimplemented(dir + ": Hugging Face directories are not loaded by this build yet; convert to GGUF");
}

Result<std::unique_ptr<Model>> Model::load_hf(const std::string& dir) { return ModelLoader::hf(dir); }

}  // namespace llmops::engine
