// fp32 → stored types: F16, BF16, Q8_0, Q4_0, Q4_K and Q6_K, each producing blocks that
// dequantize_row reads back (round-trip error bounds are in the tests). Used to convert models
// (llmops-synth, and model quantize later). Pure functions; any thread.
#pragma once

#include <cstdint>

#include "formats/ggml_types.h"

namespace llmops::engine {

// True for the types quantize_row can write.
bool can_quantize(GgmlType type);
// Writes n values (a whole number of blocks) of src as `type` into dst (ggml_row_bytes bytes).
void quantize_row(GgmlType type, const float* src, void* dst, uint64_t n);

}  // namespace llmops::engine
