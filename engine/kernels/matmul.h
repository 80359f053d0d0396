// Matrix-matrix products for prefill: Y[T × rows] = X[T × cols] · Wᵀ with W in its stored type.
// F32 weights go straight to OpenBLAS's sgemm; other types are dequantised in tiles of rows
// (into a buffer the caller owns) and each tile goes to sgemm, so no full fp32 copy of the
// weights is ever made. Any thread; OpenBLAS uses its own threads (set_blas_threads).
#pragma once

#include <cstdint>
#include <vector>

#include "formats/ggml_types.h"

namespace llmops::engine {

class ThreadPool;

void set_blas_threads(int threads);

void matmul_rows(GgmlType type, const uint8_t* w, uint64_t rows, uint64_t row_bytes, uint64_t cols, const float* x, uint64_t t,
                 float* y, std::vector<float>* tile, ThreadPool* pool);

}  // namespace llmops::engine
