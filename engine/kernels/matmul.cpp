#include "kernels/matmul.h"

#include <cblas.h>

#include <algorithm>

#include "kernels/thread_pool.h"

namespace llmops::engine {

void set_blas_threads(int threads) { openblas_set_num_threads(std::max(1, threads)); }

void matmul_rows(GgmlType type, const uint8_t* w, uint64_t rows, uint64_t row_bytes, uint64_t cols, const float* x, uint64_t t,
                 float* y, std::vector<float>* tile, ThreadPool* pool) {
  const auto T = static_cast<blasint>(t), C = static_cast<blasint>(cols), R = static_cast<blasint>(rows);
  if (type == GgmlType::kF32) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, R, C, 1.0f, x, C, reinterpret_cast<const float*>(w), C, 0.0f, y, R);
    return;
  }
  const uint64_t tile_rows = 256;
  tile->resize(tile_rows * cols);
  for (uint64_t r0 = 0; r0 < rows; r0 += tile_rows) {
    uint64_t n = std::min(tile_rows, rows - r0);
    auto dequant = [&](size_t b, size_t e) {
      for (size_t r = b; r < e; ++r) dequantize_row(type, w + (r0 + r) * row_bytes, tile->data() + r * cols, cols);
    };
    if (pool != nullptr) pool->parallel_for(n, dequant);
    else dequant(0, n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, static_cast<blasint>(n), C, 1.0f, x, C, tile->data(), C, 0.0f,
                y + r0, R);
  }
}

}  // namespace llmops::engine
