// Matrix-matrix products for prefill: Y[T × rows] = X[T × cols] · Wᵀ with W in its stored type.
//
// Q8_0, Q4_0, Q4_K and Q6_K weights on an AVX-512 VNNI CPU go through an integer GEMM: the T rows
// of X are quantised once per call exactly as the decode path quantises its vector (Q8_0 blocks
// for Q8_0/Q4_0, Q8_K for the K-quants), and the dot products run in int8 → int32 on weights
// repacked 16 rows at a time (matmul_avx512.cpp), split across the pool by groups of 16 rows.
// So Y equals T decode-path matrix-vector products up to fp32 summation order, and differs from
// the fp32 product by the activation quantisation (about 1% of Σ|w·x| per output at worst; see
// tests/engine/matmul_test.cpp).
//
// Everything else (F32, F16, the other types, and any CPU without AVX-512) goes to OpenBLAS's
// sgemm on the pool's threads (kernels/gemm.h): F32 directly, other types dequantised in tiles
// of rows (into `scratch`, or a tile buffer per worker) so no full fp32 copy of the weights is
// ever made.
//
// scratch: a buffer the caller owns and reuses across calls (tiles, quantised activations).
// pool: may be null (one thread). isa: kAvx512 enables the integer path; lower levels force the
// dequantise + sgemm path (tests and benchmarks compare them). Any thread; one call per scratch.
#pragma once

#include <cstdint>
#include <vector>

#include "formats/ggml_types.h"
#include "kernels/matvec.h"

namespace llmops::engine {

class ThreadPool;

// Whether matmul_rows takes the integer path for this type at this level.
bool matmul_uses_int8(GgmlType type, KernelIsa isa);

void matmul_rows(GgmlType type, const uint8_t* w, uint64_t rows, uint64_t row_bytes, uint64_t cols, const float* x, uint64_t t,
                 float* y, std::vector<float>* scratch, ThreadPool* pool, KernelIsa isa = best_isa(), const uint8_t* packed = nullptr);

// Several products of the same X (attention's Q, K and V; the MLP's gate and up): where all take
// the integer path from packed panels with the same activation form, X is quantised once and one
// pass across the pool runs all their panels; otherwise one matmul_rows each. The same outputs
// either way.
struct MatmulJob {
  GgmlType type;
  const uint8_t* w;
  uint64_t rows, row_bytes;
  const uint8_t* packed;
  float* y;  // t × rows
};
void matmul_rows_together(const MatmulJob* jobs, size_t n, uint64_t cols, const float* x, uint64_t t, std::vector<float>* scratch,
                          ThreadPool* pool, KernelIsa isa = best_isa());

// Weights repacked once into the integer GEMM's panels, so batched calls (serving several
// sequences: a few tokens per call) stream them instead of repacking every call. 0 when the
// type or CPU has no integer path. pack_int8_weights fills int8_packed_bytes() bytes at packed.
uint64_t int8_packed_bytes(GgmlType type, uint64_t rows, uint64_t cols, KernelIsa isa = best_isa());
void pack_int8_weights(GgmlType type, const uint8_t* w, uint64_t rows, uint64_t row_bytes, uint64_t cols, uint8_t* packed,
                       ThreadPool* pool);

// Whether packed panels of this type also serve decode (matvec_packed_panels), so the original rows
// need not stay resident: Q8_0, and Q4_0 and Q4_K, whose panels keep four bits per weight (Q8_0's
// and Q4_0's take the same bytes as their rows, Q4_K's 2.8% more). Decoding from them reads 16 rows
// per pass, one vpdpbusd per 64 (Q8_0) or 32 weight bytes, where the row-at-a-time kernels are
// bound by their per-block work.
bool packed_serves_decode(GgmlType type, KernelIsa isa = best_isa());
// y = W·x for panels [panel_begin, panel_end) (16 rows each) of packed panels
// (packed_serves_decode types) on this thread, x prepared with the form its type reads; the same
// outputs, to the bit, as matmul_rows on the same panels gives each token of a batch.
void matvec_packed_panels(GgmlType type, const uint8_t* packed, uint64_t rows, uint64_t cols, const PreparedVector& x, float* y,
                          uint64_t panel_begin, uint64_t panel_end);

}  // namespace llmops::engine
