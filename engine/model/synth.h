// Random-weight Llama and GPT-2 models of realistic shapes, written as GGUF, so speed is measured on real
// shapes and the same file can be given to llama.cpp. Used by llmops-synth and the tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "formats/ggml_types.h"
#include "model/model.h"
#include "status.h"

namespace llmops::engine {

struct SynthShape {
  std::string name;
  ModelConfig config;  // arch, shape and vocabulary size
};

const std::vector<SynthShape>& synth_shapes();
Result<SynthShape> find_synth_shape(const std::string& name);

struct SynthReport {
  std::vector<std::string> fallbacks;  // tensors stored in another type, and why
  uint64_t bytes = 0;
};

// Writes a model of the shape with N(0, 0.02) weights (norms 1) drawn from seed, matrices in
// `type` (rows that are not whole blocks of it fall back to Q8_0 or F32, as llama.cpp does;
// Q4_0 and Q4_K files keep output.weight in Q6_K like llama.cpp's quantizer), and a synthetic
// vocabulary: SentencePiece with byte fallback for Llama shapes, byte-level BPE with merges for
// GPT-2 shapes.
Result<SynthReport> write_synth_model(const SynthShape& shape, GgmlType type, uint64_t seed, const std::string& path);

}  // namespace llmops::engine
