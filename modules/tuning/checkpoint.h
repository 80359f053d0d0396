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

#include <functional>

#include <string>
#include <string_view>

#include "json.h"
#include "llmops/module.hpp"
#include "model/model.h"
#include "status.h"
#include "tokenizer/tokenizer.h"
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
// The same from a base that is not GGUF (a Hugging Face directory, a llama2.c checkpoint): the
// architecture, shape and tokenizer (tok: the base's) as export_gguf writes them, q/k rows in
// the GGUF architecture's RoPE order. kUnimplemented for what GGUF export cannot carry yet.
// chat_template (may be empty) is written as tokenizer.chat_template.
Status write_converted_gguf(const Trainer& t, const engine::Model& base, const engine::Tokenizer& tok, std::string_view chat_template,
                            const std::string& name, const std::string& path);
// Whether write_converted_gguf can write a model of this shape (checked before training).
Status can_write_converted(const engine::ModelConfig& c);
// The trainer's weights as F32 tensors under their GGUF names; qk_row (may be empty) re-orders
// the rows of attn_q and attn_k and their biases (GGUF row r ← trainer row qk_row(r)).
Status add_trained_tensors(engine::GgufWriter& w, const Trainer& t, const std::function<uint64_t(uint64_t)>& qk_row = {});

}  // namespace llmops::tuning
