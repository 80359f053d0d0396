// Tensor element types of GGUF files (ggml's numbering) and their block layouts, and scalar
// dequantisation of rows to fp32. These are the reference kernels the fast quantized dot
// products are tested against. Pure functions; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace llmops::engine {

enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kBF16 = 30,
};

struct GgmlTypeInfo {
  const char* name;
  uint32_t block_elements;  // elements per block (1 for plain floats)
  uint32_t block_bytes;     // bytes per block
  bool can_dequantize;      // this engine reads it
};

// nullopt for a type number this engine does not know.
std::optional<GgmlTypeInfo> ggml_type_info(uint32_t type);
std::string ggml_type_name(uint32_t type);
// Bytes of a row of n elements; nullopt when n is not a whole number of blocks.
std::optional<uint64_t> ggml_row_bytes(GgmlType type, uint64_t n);

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);  // round to nearest even
float bf16_to_fp32(uint16_t h);

// Dequantises n elements (a whole number of blocks) starting at src into dst.
void dequantize_row(GgmlType type, const void* src, float* dst, uint64_t n);

}  // namespace llmops::engine
