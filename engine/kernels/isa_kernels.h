// Entry points of the per-ISA kernel files, for the dispatcher in matvec.cpp only.
// Call one only after isa_supported() said yes for its level.
//
// The AVX-512 files are compiled whole with -mavx512* (engine/CMakeLists.txt), so everything
// they instantiate from a header could be emitted as a weak symbol built for AVX-512 and chosen by
// the linker for the rest of the program. They therefore see plain pointers and PODs only (no
// std::vector, no inline helpers shared with other files).
#pragma once

#include <cstdint>

#include "formats/ggml_types.h"

namespace llmops::engine {

struct PreparedVector;

// A PreparedVector as plain pointers (null where the form was not prepared).
struct VectorView {
  const float* x;
  uint64_t n;
  const int8_t* q8;          // Q8_0: n values
  const float* q8_scale;     // one per 32
  const int32_t* q8_sum;     // sum of each 32
  const int8_t* qk;          // Q8_K: n values
  const float* qk_scale;     // one per 256
  const int32_t* qk_sum16;   // sum of each 16
};
VectorView view_of(const PreparedVector& v);

// matvec_avx2.cpp (function-level target attributes).
float dot_row_avx2(GgmlType type, const void* row, const PreparedVector& x);
float dot_f32_avx2(const float* a, const float* b, uint64_t n);
void axpy_f32_avx2(float a, const float* x, float* y, uint64_t n);

// matvec_avx512.cpp: F32, F16, Q8_0, Q4_0, Q4_K and Q6_K only (the others run the AVX2 kernel).
float dot_row_avx512(GgmlType type, const uint8_t* row, const VectorView& x);
float dot_f32_avx512(const float* a, const float* b, uint64_t n);
void axpy_f32_avx512(float a, const float* x, float* y, uint64_t n);

}  // namespace llmops::engine
