// What a model trained from scratch needs besides data: a shape, and a tokenizer learned from
// its own training text when it borrows none from a base model.
//
//   shape  "dim=192,layers=6,heads=6[,kv_heads=K][,hidden=H][,context=N][,rope_theta=T][,tied=0|1]",
//          the same keys as a JSON object, or the name of a synthetic shape (llmops-synth --list:
//          tiny, llama-15M, llama-110M, ...). hidden defaults to SwiGLU's 8/3 · dim rounded up
//          to a multiple of 32, kv_heads to heads, context to 256; embeddings are tied unless
//          tied=0.
//   vocab  N: a SentencePiece-style BPE vocabulary of N tokens learned from the training split
//          (engine/tokenizer/spm_train.h), written into the model's GGUF.
#pragma once

#include <optional>
#include <string>

#include "common/peers.h"
#include "json.h"
#include "model/model.h"
#include "status.h"
#include "tokenizer/spm.h"
#include "tuning/checkpoint.h"
#include "tuning/examples.h"

namespace llmops::tuning {

struct ScratchShape {
  engine::ModelConfig config;  // vocab_size is set once the tokenizer is known
  bool tied = true;
  Json to_json() const;
};

// kInvalidArgument names the key or value that is wrong.
Result<ScratchShape> parse_shape(const Json& spec);

// The text of every usable training record (as the examples read it) through an SpmTrainer.
Result<engine::SpmVocab> learn_vocabulary(sdk::Host host, const peers::DatasetRef& d, const ExampleOptions& opt, int vocab_size);

// Writes the trainer's weights as GGUF under its own shape: "llama" metadata, the vocabulary
// learned (vocab) or the base's tokenizer keys (base), general.name = name.
Status write_scratch_gguf(const Trainer& t, const engine::SpmVocab* vocab, const engine::GgufFile* base, const std::string& name,
                          const std::string& path);

}  // namespace llmops::tuning
