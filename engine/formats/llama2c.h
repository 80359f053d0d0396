// llama2.c checkpoints (karpathy/llama2.c): the legacy header of 7 int32 followed by fp32
// weights, and the versioned export ("ak42" magic, version 1 = fp32, 256-byte header). The
// header is checked — positive, bounded dimensions that divide as the architecture needs —
// and the file size must equal exactly what the header implies. Pure parsing; any thread.
#pragma once

#include <cstddef>
#include <cstdint>

#include "status.h"

namespace llmops::engine {

struct Llama2cHeader {
  int32_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0, seq_len = 0;
  bool shared_classifier = true;
  int version = 0;             // 0: legacy; 1: versioned fp32 export
  uint64_t weights_offset = 0;  // where the fp32 weights begin
};

// Checks the header of a file of `size` bytes starting at data.
Result<Llama2cHeader> parse_llama2c_header(const uint8_t* data, size_t size);

}  // namespace llmops::engine
