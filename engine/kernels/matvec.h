// Matrix-vector products over weights in their stored type, the decode hot path. The vector is
// fp32; for Q8_0 and Q4_0 weights it is first quantised to Q8_0 blocks, for Q4_K and Q6_K to
// Q8_K (one scale per 256), and the dot products run in integers (as llama.cpp does); the other
// types are dequantised block by block.
// Each kernel has a portable version, an AVX2+FMA+F16C version and, for F32, F16, Q8_0, Q4_0,
// Q4_K and Q6_K, an AVX-512 (F, BW, DQ, VL, VNNI) version, chosen at run time; tests compare each
// to the dequantise-then-dot reference. Pure functions; any thread.
#pragma once

#include <cstdint>
#include <vector>

#include "formats/ggml_types.h"

namespace llmops::engine {

class ThreadPool;

// Ordered: each level runs on a CPU that has the one above it.
enum class KernelIsa { kPortable, kAvx2, kAvx512 };
// The best level this CPU and OS run, capped by the environment variable
// LLMOPS_ISA=portable|avx2|avx512 (read once; for tests and comparisons).
KernelIsa best_isa();
// Whether this CPU and OS run the level, whatever LLMOPS_ISA says.
bool isa_supported(KernelIsa isa);
const char* isa_name(KernelIsa isa);

// A vector prepared for one weight type: the fp32 values and, where the type needs it, their
// Q8_0 quantisation. Reused across the matrices that read the same vector.
struct PreparedVector {
  const float* x = nullptr;
  uint64_t n = 0;
  std::vector<int8_t> q8;    // n values
  std::vector<float> q8_scale;  // one per 32
  std::vector<int32_t> q8_sum;  // sum of the quantised values of each 32
  // Q8_K: one scale per 256 (for the K-quants, whose integer sums then run a whole super-block).
  std::vector<int8_t> qk;
  std::vector<float> qk_scale;      // one per 256
  std::vector<int32_t> qk_sum16;    // sum of the quantised values of each 16
  bool has_q8 = false;
  bool has_qk = false;
};
// Which quantised forms of the vector a weight type reads: bit kVectorQ8_0 and/or kVectorQ8_K.
inline constexpr unsigned kVectorQ8_0 = 1, kVectorQ8_K = 2;
unsigned vector_forms(GgmlType type);
// Prepares only the forms asked for; the bool form asks for both or none.
void prepare_vector(const float* x, uint64_t n, unsigned forms, PreparedVector* out);
void prepare_vector(const float* x, uint64_t n, bool need_q8, PreparedVector* out);
bool type_uses_q8(GgmlType type);
// The quantisation prepare_vector uses: n values (a multiple of block) to int8 with one scale
// per block (amax / 127), rounded through fp16 where fp16_scale (Q8_0) and kept fp32 if not (Q8_K).
// Every ISA level writes the same bytes.
void quantize_q8(const float* x, uint64_t n, uint64_t block, bool fp16_scale, int8_t* q, float* scale, KernelIsa isa = best_isa());

// dot(a, b) over n floats (attention scores), and y += a·x (attention values).
float dot_f32(const float* a, const float* b, uint64_t n, KernelIsa isa);
void axpy_f32(float a, const float* x, float* y, uint64_t n, KernelIsa isa);
// One attention head over n cached positions, stride floats apart: scores[j] = scale ·
// dot(q, keys + j·stride) over d floats, and o += Σ_j p[j] · (values + j·stride). One call per
// block of positions instead of one per position; the query and the output stay in registers.
void dot_f32_strided(const float* q, const float* keys, uint64_t stride, int n, uint64_t d, float scale, float* scores, KernelIsa isa);
void axpy_f32_strided(const float* p, const float* values, uint64_t stride, int n, uint64_t d, float* o, KernelIsa isa);
// The same over an fp16 cache (the serving default, as llama.cpp's): rows of d halves, stride
// halves apart.
void dot_f16_strided(const float* q, const uint16_t* keys, uint64_t stride, int n, uint64_t d, float scale, float* scores, KernelIsa isa);
void axpy_f16_strided(const float* p, const uint16_t* values, uint64_t stride, int n, uint64_t d, float* o, KernelIsa isa);
// n floats to fp16, rounded to nearest even (fp32_to_fp16's bits at every ISA level).
void fp32_to_fp16_row(const float* x, uint16_t* out, uint64_t n, KernelIsa isa);

// dot(row, x) for one weight row of n elements.
float dot_row(GgmlType type, const void* row, const PreparedVector& x, KernelIsa isa);

// y[r] = dot(row r, x) for rows [0, rows), rows row_bytes apart, split across the pool (may be
// null).
// y[r] for rows [begin, end) on this thread.
void matvec_row_range(GgmlType type, const uint8_t* data, uint64_t row_bytes, const PreparedVector& x, float* y, uint64_t begin,
                      uint64_t end, KernelIsa isa);
void matvec_rows(GgmlType type, const uint8_t* data, uint64_t rows, uint64_t row_bytes, const PreparedVector& x, float* y,
                 ThreadPool* pool, KernelIsa isa);

}  // namespace llmops::engine
