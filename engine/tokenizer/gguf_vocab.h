// Builds a tokenizer vocabulary from a GGUF file's tokenizer.ggml.* metadata.
#pragma once

#include "formats/gguf.h"
#include "tokenizer/spm.h"

namespace llmops::engine {

// tokenizer.ggml.model must be "llama" (SentencePiece BPE); other models get kUnimplemented
// naming them. Byte-level BPE ("gpt2") is bpe_vocab_from_gguf's (bpe_load.h); Tokenizer::from_gguf
// (tokenizer.h) picks the right one.
Result<SpmVocab> spm_vocab_from_gguf(const GgufFile& g);

}  // namespace llmops::engine
