// fp32 → stored types: F16, BF16, Q8_0, Q4_0, Q4_K and Q6_K, each producing blocks that
// dequantize_row reads back (round-trip error bounds are in the tests). Used to convert models
// (llmops-synth, and model quantize later). Pure functions; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "formats/ggml_types.h"

namespace llmops::engine {

// True for the types quantize_row can write.
bool can_quantize(GgmlType type);
// Writes n values (a whole number of blocks) of src as `type` into dst (ggml_row_bytes bytes).
void quantize_row(GgmlType type, const float* src, void* dst, uint64_t n);

// The writable type named name ("Q4_K"), or nullopt.
std::optional<GgmlType> writable_type_from_name(std::string_view name);
// The type rows of `cols` values are stored in when `want` is asked for: want itself when the
// rows are whole blocks of it, else Q8_0, else F32 (as llama.cpp's quantizer does); a fallback
// appends a line about tensor `name` to *notes.
GgmlType storable_type(GgmlType want, uint64_t cols, const std::string& name, std::vector<std::string>* notes);
// GGUF general.file_type for a file whose matrices are `type` (Q4_K: Q4_K_M).
uint32_t gguf_file_type(GgmlType type);

}  // namespace llmops::engine
