#include "kernels/gemm.h"

#include <cblas.h>

#include <algorithm>
#include <cstddef>

#include "kernels/thread_pool.h"

namespace llmops::engine {
namespace {

void blas(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb, float beta, float* c,
          int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void blas(bool ta, bool tb, int m, int n, int k, double alpha, const double* a, int lda, const double* b, int ldb, double beta, double* c,
          int ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// Below this many multiply-adds a product is not worth waking the workers for.
constexpr double kSplitWork = 1 << 18;
// Blocks are whole multiples of this many rows or columns (the micro-kernels' width).
constexpr int kGrain = 16;

template <typename T>
void split_gemm(ThreadPool* pool, bool ta, bool tb, int m, int n, int k, T alpha, const T* a, int lda, const T* b, int ldb, T beta, T* c,
                int ldc) {
  const int threads = pool != nullptr ? pool->size() : 1;
  const bool by_rows = m >= n;  // cut the longer side of C: each block repacks the other operand
  const int side = by_rows ? m : n;
  const int blocks = std::min(threads, (side + kGrain - 1) / kGrain);
  if (blocks < 2 || static_cast<double>(m) * n * k < kSplitWork) {
    blas(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  const int grains = (side + kGrain - 1) / kGrain;
  auto edge = [&](int i) { return std::min(side, grains * i / blocks * kGrain); };
  pool->parallel_for(static_cast<size_t>(blocks), [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      const int lo = edge(static_cast<int>(i)), hi = edge(static_cast<int>(i) + 1);
      if (lo >= hi) continue;
      if (by_rows) {  // rows lo..hi of op(A) and C
        const T* ab = ta ? a + lo : a + static_cast<size_t>(lo) * lda;
        blas(ta, tb, hi - lo, n, k, alpha, ab, lda, b, ldb, beta, c + static_cast<size_t>(lo) * ldc, ldc);
      } else {  // columns lo..hi of op(B) and C
        const T* bb = tb ? b + static_cast<size_t>(lo) * ldb : b + lo;
        blas(ta, tb, m, hi - lo, k, alpha, a, lda, bb, ldb, beta, c + lo, ldc);
      }
    }
  });
}

}  // namespace

void blas_on_calling_threads() { openblas_set_num_threads(1); }

void gemm(ThreadPool* pool, bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb,
          float beta, float* c, int ldc) {
  split_gemm(pool, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm(ThreadPool* pool, bool trans_a, bool trans_b, int m, int n, int k, double alpha, const double* a, int lda, const double* b,
          int ldb, double beta, double* c, int ldc) {
  split_gemm(pool, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace llmops::engine
