// Training checkpoints and outputs as files the host keeps:
//
// A checkpoint is one blob: a JSON header line (step, the parameters' layout) followed by the
// parameters and AdamW's two moments as raw fp32. It is written whole into the blob store first
// and only then named in the job's checkpoint record (job_save_checkpoint), so a crash or a
// full disk while writing leaves the previous checkpoint the job's record names intact.
//
// The trained model is written as GGUF with the base's metadata (architecture, shape,
// tokenizer) and the new weights at F32, ready for the serving stage to import.
#pragma once

#include <string>

#include "json.h"
#include "llmops/module.hpp"
#include "model/model.h"
#include "status.h"
#include "train/llama_train.h"

namespace llmops::engine {
class GgufWriter;
}

namespace llmops::tuning {

using Trainer = engine::train::LlamaTrainer<float>;
using Optimizer = engine::train::AdamW<float>;

// Writes a checkpoint blob of the trained parameters (all of them, or a LoRA run's adapters)
// and their optimiser moments; returns its sha256 (one reference taken).
Result<std::string> save_checkpoint(sdk::Host host, std::vector<float>& params, Optimizer& opt, const Json& header);
// Reads one back into params and opt (their sizes must match); returns the header.
Result<Json> load_checkpoint(sdk::Host host, const std::string& blob, std::vector<float>& params, Optimizer& opt);

// Writes the trainer's weights as GGUF at path with the base GGUF's metadata.
Status write_gguf(const Trainer& t, const engine::GgufFile& base, const std::string& path);
// The trainer's weights as F32 tensors under their GGUF names.
Status add_trained_tensors(engine::GgufWriter& w, const Trainer& t);

}  // namespace llmops::tuning
