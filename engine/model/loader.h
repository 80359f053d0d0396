// What the format loaders (load.cpp, load_hf.cpp) share: the friend that fills a Model in.
#pragma once

#include "model/model.h"

namespace llmops::engine {

struct ModelLoader {
  static Result<std::unique_ptr<Model>> gguf(const std::string& path);
  static Result<std::unique_ptr<Model>> llama2c(const std::string& path);
  static Result<std::unique_ptr<Model>> hf(const std::string& dir);
  // n values of a one-dimensional tensor as fp32: the stored data itself when it is aligned
  // fp32, otherwise a widened copy the model keeps.
  static const float* vector(Model& m, GgmlType type, const uint8_t* data, uint64_t n);
  static const float* keep(Model& m, std::vector<float> v) { return m.keep(std::move(v)); }
  // Validates the config, derives the RoPE frequencies (factors: optional per-pair divisors)
  // and reads every page of the weights once, so the first request does not pay the page
  // faults of a fresh mapping (llama.cpp maps with MAP_POPULATE for the same reason).
  static Status finish(Model& m, const float* rope_factors);
};

}  // namespace llmops::engine
