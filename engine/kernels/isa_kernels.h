// Entry points of the per-ISA kernel files, for the dispatchers in matvec.cpp and matmul.cpp only.
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
float dot_f16_avx2(const uint16_t* a, const float* b, uint64_t n);
void axpy_f16_avx2(float a, const uint16_t* x, float* y, uint64_t n);
void fp32_to_fp16_avx2(const float* x, uint16_t* out, uint64_t n);

// matvec_avx512.cpp: F32, F16, Q8_0, Q4_0, Q4_K and Q6_K only (the others run the AVX2 kernel).
float dot_row_avx512(GgmlType type, const uint8_t* row, const VectorView& x);
// quantize_q8 (matvec.h), the same bytes; block a multiple of 16.
void quantize_q8_avx512(const float* x, uint64_t n, uint64_t block, bool fp16_scale, int8_t* q, float* scale);
float dot_f32_avx512(const float* a, const float* b, uint64_t n);
void axpy_f32_avx512(float a, const float* x, float* y, uint64_t n);
// d a multiple of 16, at most 256.
void dot_f32_strided_avx512(const float* q, const float* keys, uint64_t stride, int n, uint64_t d, float scale, float* scores);
void axpy_f32_strided_avx512(const float* p, const float* values, uint64_t stride, int n, uint64_t d, float* o);
void dot_f16_strided_avx512(const float* q, const uint16_t* keys, uint64_t stride, int n, uint64_t d, float scale, float* scores);
void axpy_f16_strided_avx512(const float* p, const uint16_t* values, uint64_t stride, int n, uint64_t d, float* o);
void fp32_to_fp16_avx512(const float* x, uint16_t* out, uint64_t n);

// matmul_avx512.cpp: the integer GEMM of prefill, on weights repacked 16 rows at a time.
//
// Activations, T rows quantised once per call (matmul.cpp): for Q8_0/Q4_0 weights in Q8_0 blocks
// of 32 (fp16-rounded scales, as the decode path), for Q4_K/Q6_K in Q8_K blocks of 256. Tokens
// are interleaved in tiles of kTokenTile (the last tile padded with zeros), so one tile's values
// for the same four columns sit side by side: element c of token t of tile i is at
// q[((i · cols/4 + c/4) · kTokenTile + t) · 4 + c % 4].
inline constexpr uint64_t kTokenTile = 8;
struct QuantizedActivations {
  uint64_t t, cols;
  int8_t* q;           // tiles × cols/4 × kTokenTile × 4
  float* scale;        // tiles × cols/block × kTokenTile
  // Q8_0/Q4_0: −128 × the sum of each 32 (the weights are fed as unsigned w + 128).
  int32_t* offset;     // tiles × cols/32 × kTokenTile
  // Q4_K: the sums of each 32, Q6_K: of each 16, as int16 pairs (two consecutive sums).
  int32_t* sum_pairs;  // tiles × pairs per row × kTokenTile
};
// Quantises tiles [tile_begin, tile_end) of the T rows of x (t × cols) into the layout above,
// into the buffers out points at (of the sizes above; offset or sum_pairs as the type needs; t
// and cols already set), using rows (kTokenTile × cols bytes) and row_scales (kTokenTile × cols
// / 32) as scratch. Tiles are independent: threads may quantise different ones at once.
void quantize_activations_avx512(GgmlType type, const float* x, uint64_t t, uint64_t cols, uint64_t tile_begin, uint64_t tile_end,
                                 int8_t* rows, float* row_scales, const QuantizedActivations& out);
// Bytes of the scratch a thread needs for one panel of 16 rows of `cols` columns.
uint64_t int8_panel_bytes(GgmlType type, uint64_t cols);
// Y[t][r] for r in [row_begin, row_end) (a multiple of 16 apart from the last range), rows
// row_bytes apart; y has `rows` floats per token. panel: int8_panel_bytes() of scratch.
void matmul_int8_avx512(GgmlType type, const uint8_t* w, uint64_t row_begin, uint64_t row_end, uint64_t rows,
                        uint64_t row_bytes, const QuantizedActivations& x, float* y, uint8_t* panel);
// Repacks rows [row_begin, row_end) (panel-aligned) into `packed`, packed_panel_bytes(type, cols)
// per 16 rows (the last panel zero-padded), so matmul_int8_packed_avx512 reads panels straight.
void pack_int8_avx512(GgmlType type, const uint8_t* w, uint64_t row_begin, uint64_t row_end, uint64_t row_bytes, uint64_t cols,
                      uint8_t* packed);
void matmul_int8_packed_avx512(GgmlType type, const uint8_t* packed, uint64_t row_begin, uint64_t row_end, uint64_t rows,
                               const QuantizedActivations& x, float* y);
// Bytes of one packed panel of 16 rows (Q4_0: four-bit, no larger than its rows; the others as
// int8_panel_bytes).
uint64_t packed_panel_bytes(GgmlType type, uint64_t cols);
// y[r] for rows [row_begin, row_end) (panel-aligned) of packed Q8_0, Q4_0 or Q4_K panels, one token in the
// decode path's Q8_0 form (x.q8, q8_scale, q8_sum).
void gemv_packed_avx512(GgmlType type, const uint8_t* packed, uint64_t row_begin, uint64_t row_end, uint64_t cols, const VectorView& x,
                        float* y);

}  // namespace llmops::engine
