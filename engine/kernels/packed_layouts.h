// The layouts of the packed panels that decode and prefill both read (Q4_0 and Q4_K at four
// bits, Q6_K at six), and the scalar code that lays rows out in them. Constants and plain
// functions only: matmul_avx512.cpp, built for AVX-512, includes this, so nothing here may be an
// inline function the linker could share with code built for other targets (isa_kernels.h).
#pragma once

#include <cstdint>

namespace llmops::engine {
namespace {  // internal to each file that includes it (see above)

constexpr uint64_t kPanelRows = 16;  // rows per panel
constexpr uint64_t kQ4NibbleStride = 256 + 32;
// Q4_K kept at four bits, per super-block of 16 rows: 4 pairs of sub-blocks × 8 lines (line k of
// pair j: bytes 4k..4k+3 of each row's 32 bytes of that pair, sub-block 2j in the low nibbles and
// 2j + 1 in the high ones), then the 8 sub-blocks' scales and mins as bytes (16 rows each), then
// the rows' fp16 d and dmin: 2368 bytes, 37 lines, against 2304 in the rows.
constexpr uint64_t kQ4KNibbleScales = 2048, kQ4KNibbleMins = 2048 + 128, kQ4KNibbleD = 2048 + 256, kQ4KNibbleDmin = 2048 + 288,
                   kQ4KNibbleStride = 2048 + 320;
// Q6_K kept at six bits, per super-block of 16 rows. Byte line L (0..63) stands for elements
// 4L..4L+3 of the 16 rows (as a line of the expanded layouts); group g of 16 is lines 4g..4g+3.
//   32 nibble lines: line n holds the low four bits of byte line n in its low nibbles and of byte
//     line n + 32 in its high ones;
//   16 lines of high bits: line m holds the top two bits of byte lines m, m + 16, m + 32, m + 48
//     at bits 0-1, 2-3, 4-5, 6-7 of each byte;
//   in four runs of 768 bytes, run Q holding what byte lines 4Q..4Q+3 + 16k need (nibble lines
//     4Q.., nibble lines 16 + 4Q.., high-bits lines 4Q..), the order decode reads them in: one
//     forward stream, which the prefetchers follow (three interleaved ones measured 13 GB/s from
//     DRAM against 20 for the rows);
//   then the 16 groups' int8 scales (16 rows each), the rows' fp16 d, zeros to a whole line:
//   3392 bytes, 53 lines, against 3360 in the rows.
constexpr uint64_t kQ6Scales = 3072, kQ6D = 3072 + 256, kQ6Stride = 3392;
constexpr uint64_t q6_nibble_line(int n) { return 768 * ((n % 16) / 4) + 256 * (n / 16) + 64 * (n % 4); }
constexpr uint64_t q6_high_line(int m) { return 768 * (m / 4) + 512 + 64 * (m % 4); }

}  // namespace

// Rows [r0, r0 + n) (n ≤ 16) of row_bytes each into one panel of each layout.
void repack_q4_0_nibbles(const uint8_t* w, uint64_t r0, uint64_t n, uint64_t row_bytes, uint64_t blocks, uint8_t* panel);
void repack_q4_k_nibbles(const uint8_t* w, uint64_t r0, uint64_t n, uint64_t row_bytes, uint64_t supers, uint8_t* panel);
void repack_q6_k(const uint8_t* w, uint64_t r0, uint64_t n, uint64_t row_bytes, uint64_t supers, uint8_t* panel);

}  // namespace llmops::engine
