// Dense products on the engine's own threads: C[m×n] = alpha·op(A)·op(B) + beta·C (row-major,
// op = transpose when asked), cut into one block of C per thread of the pool, each block an
// OpenBLAS call on that thread alone.
//
// Why not OpenBLAS's threads: they are started once, at load, on whatever CPUs the process had
// then, and the count is global. A training job's products would run on the serving pool's
// cores (and a prefill's on the training pool's). Products cut across our pools run where
// placement pinned the pool. blas_on_calling_threads() makes OpenBLAS run each call on the
// thread that makes it; every user of these functions calls it before its first product (serving
// at start, a batch job when it makes its pool, tools and benchmarks at start), else OpenBLAS's
// threads run inside each of our blocks as well.
//
// The blocks depend only on the shape and the pool's size, so a result is the same from run to
// run with the same thread count.
#pragma once

namespace llmops::engine {

class ThreadPool;

void blas_on_calling_threads();

// pool may be null (the calling thread only). Small products run on the calling thread.
void gemm(ThreadPool* pool, bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb,
          float beta, float* c, int ldc);
void gemm(ThreadPool* pool, bool trans_a, bool trans_b, int m, int n, int k, double alpha, const double* a, int lda, const double* b,
          int ldb, double beta, double* c, int ldc);

}  // namespace llmops::engine
