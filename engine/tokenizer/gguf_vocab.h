// Builds a tokenizer vocabulary from a GGUF file's tokenizer.ggml.* metadata.
#pragma once

#include "formats/gguf.h"
#include "tokenizer/spm.h"

namespace llmops::engine {

// tokenizer.ggml.model must be "llama" (SentencePiece BPE); other models (gpt2 byte-level
// BPE) get kUnimplemented until their tokenizer lands.
Result<SpmVocab> spm_vocab_from_gguf(const GgufFile& g);

}  // namespace llmops::engine
