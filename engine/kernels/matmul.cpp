#include "kernels/matmul.h"

#include <algorithm>
#include <cstring>
#include <memory>

#include "kernels/gemm.h"
#include "kernels/isa_kernels.h"
#include "kernels/thread_pool.h"

namespace llmops::engine {

namespace {

#if defined(__x86_64__)
// The T rows of x quantised into the tiled layout of QuantizedActivations, in buffers carved out
// of the caller's scratch (64-byte aligned pieces), tiles of tokens across the pool.
QuantizedActivations quantize_activations(GgmlType type, const float* x, uint64_t t, uint64_t cols, std::vector<float>* scratch,
                                          ThreadPool* pool) {
  const bool k_type = type == GgmlType::kQ4_K || type == GgmlType::kQ6_K;
  const uint64_t block = k_type ? 256 : 32, blocks = cols / block;
  const uint64_t sum_width = type == GgmlType::kQ6_K ? 16 : 32, pairs = k_type ? cols / sum_width / 2 : 0;
  const uint64_t tiles = (t + kTokenTile - 1) / kTokenTile, slots = tiles * kTokenTile;
  auto round64 = [](uint64_t b) { return (b + 63) / 64 * 64; };
  const uint64_t q_bytes = round64(slots * cols), scale_bytes = round64(slots * blocks * 4);
  const uint64_t offset_bytes = k_type ? 0 : round64(slots * (cols / 32) * 4), pair_bytes = round64(slots * pairs * 4);
  // Each tile of tokens before interleaving: values and scales.
  const uint64_t tile_bytes = round64(kTokenTile * cols) + round64(kTokenTile * (cols / 32) * 4);
  const uint64_t total = q_bytes + scale_bytes + offset_bytes + pair_bytes + tiles * tile_bytes;
  scratch->resize((total + 64) / sizeof(float));
  auto* base = reinterpret_cast<uint8_t*>(scratch->data());
  base += (64 - reinterpret_cast<uintptr_t>(base) % 64) % 64;
  auto* q = reinterpret_cast<int8_t*>(base);
  auto* scale = reinterpret_cast<float*>(base + q_bytes);
  auto* offset = reinterpret_cast<int32_t*>(base + q_bytes + scale_bytes);
  auto* sum_pairs = reinterpret_cast<int32_t*>(base + q_bytes + scale_bytes + offset_bytes);
  uint8_t* tile_scratch = base + q_bytes + scale_bytes + offset_bytes + pair_bytes;
  const QuantizedActivations out{t, cols, q, scale, k_type ? nullptr : offset, k_type ? sum_pairs : nullptr};
  auto run = [&](size_t begin, size_t end) {
    auto* rows = reinterpret_cast<int8_t*>(tile_scratch + begin * tile_bytes);
    auto* row_scales = reinterpret_cast<float*>(rows + round64(kTokenTile * cols));
    quantize_activations_avx512(type, x, t, cols, begin, end, rows, row_scales, out);
  };
  // Worth waking the pool for a prompt's chunk, not for a few tokens.
  if (tiles >= 2 && t * cols >= 8192) parallel_for(pool, tiles, run);
  else run(0, tiles);
  return out;
}

void matmul_int8(GgmlType type, const uint8_t* w, uint64_t rows, uint64_t row_bytes, uint64_t cols, const float* x, uint64_t t, float* y,
                 std::vector<float>* scratch, ThreadPool* pool, const uint8_t* packed) {
  const QuantizedActivations acts = quantize_activations(type, x, t, cols, scratch, pool);
  const uint64_t panels = (rows + 15) / 16;
  auto run = [&](size_t begin, size_t end) {
    if (packed != nullptr) {
      matmul_int8_packed_avx512(type, packed, begin * 16, std::min<uint64_t>(end * 16, rows), rows, acts, y);
      return;
    }
    std::unique_ptr<uint8_t[]> panel(new uint8_t[int8_panel_bytes(type, cols)]);  // every byte written before read
    matmul_int8_avx512(type, w, begin * 16, std::min<uint64_t>(end * 16, rows), rows, row_bytes, acts, y, panel.get());
  };
  parallel_for(pool, panels, run);
}

// The activation form the integer path quantises X into for this type: Q8_0 blocks (Q8_0, Q4_0)
// or Q8_K with the sums Q4_K or Q6_K needs.
int activation_form(GgmlType type) { return type == GgmlType::kQ4_0 ? static_cast<int>(GgmlType::kQ8_0) : static_cast<int>(type); }

#endif  // __x86_64__

}  // namespace

void matmul_rows_together(const MatmulJob* jobs, size_t n, uint64_t cols, const float* x, uint64_t t, std::vector<float>* scratch,
                          ThreadPool* pool, KernelIsa isa) {
#if defined(__x86_64__)
  bool shared = n > 1;
  for (size_t i = 0; shared && i < n; ++i) {
    shared = matmul_uses_int8(jobs[i].type, isa) && jobs[i].packed != nullptr && activation_form(jobs[i].type) == activation_form(jobs[0].type);
  }
  if (shared) {
    const QuantizedActivations acts = quantize_activations(jobs[0].type, x, t, cols, scratch, pool);
    uint64_t total = 0;
    for (size_t i = 0; i < n; ++i) total += (jobs[i].rows + 15) / 16;
    auto run = [&](size_t begin, size_t end) {
      uint64_t first = 0;
      for (size_t i = 0; i < n; ++i) {
        const MatmulJob& j = jobs[i];
        const uint64_t panels = (j.rows + 15) / 16, lo = std::max<uint64_t>(begin, first), hi = std::min<uint64_t>(end, first + panels);
        if (lo < hi) matmul_int8_packed_avx512(j.type, j.packed, (lo - first) * 16, std::min<uint64_t>((hi - first) * 16, j.rows), j.rows, acts, j.y);
        first += panels;
      }
    };
    parallel_for(pool, total, run);
    return;
  }
#endif
  for (size_t i = 0; i < n; ++i) {
    const MatmulJob& j = jobs[i];
    matmul_rows(j.type, j.w, j.rows, j.row_bytes, cols, x, t, j.y, scratch, pool, isa, j.packed);
  }
}

uint64_t int8_packed_bytes(GgmlType type, uint64_t rows, uint64_t cols, KernelIsa isa) {
#if defined(__x86_64__)
  if (matmul_uses_int8(type, isa)) return (rows + 15) / 16 * packed_panel_bytes(type, cols);
#endif
  (void)type, (void)rows, (void)cols, (void)isa;
  return 0;
}

void pack_int8_weights(GgmlType type, const uint8_t* w, uint64_t rows, uint64_t row_bytes, uint64_t cols, uint8_t* packed,
                       ThreadPool* pool) {
#if defined(__x86_64__)
  const uint64_t panels = (rows + 15) / 16;
  auto run = [&](size_t begin, size_t end) {
    pack_int8_avx512(type, w, begin * 16, std::min<uint64_t>(end * 16, rows), row_bytes, cols, packed);
  };
  parallel_for(pool, panels, run);
#else
  (void)type, (void)w, (void)rows, (void)row_bytes, (void)cols, (void)packed, (void)pool;
#endif
}

bool packed_serves_decode(GgmlType type, KernelIsa isa) {
  return matmul_uses_int8(type, isa);  // Q8_0, Q4_0, Q4_K, Q6_K
}

void matvec_packed_panels(GgmlType type, const uint8_t* packed, uint64_t rows, uint64_t cols, const PreparedVector& x, float* y,
                          uint64_t panel_begin, uint64_t panel_end) {
#if defined(__x86_64__)
  gemv_packed_avx512(type, packed, panel_begin * 16, std::min<uint64_t>(panel_end * 16, rows), cols, view_of(x), y);
#else
  (void)type, (void)packed, (void)rows, (void)cols, (void)x, (void)y, (void)panel_begin, (void)panel_end;
#endif
}


bool matmul_uses_int8(GgmlType type, KernelIsa isa) {
#if defined(__x86_64__)
  return isa == KernelIsa::kAvx512 && (type == GgmlType::kQ8_0 || type == GgmlType::kQ4_0 || type == GgmlType::kQ4_K || type == GgmlType::kQ6_K);
#else
  return false;
#endif
}

void matmul_rows(GgmlType type, const uint8_t* w, uint64_t rows, uint64_t row_bytes, uint64_t cols, const float* x, uint64_t t,
                 float* y, std::vector<float>* scratch, ThreadPool* pool, KernelIsa isa, const uint8_t* packed) {
#if defined(__x86_64__)
  if (matmul_uses_int8(type, isa)) {
    matmul_int8(type, w, rows, row_bytes, cols, x, t, y, scratch, pool, packed);
    return;
  }
#endif
  const int T = static_cast<int>(t), C = static_cast<int>(cols), R = static_cast<int>(rows);
  if (type == GgmlType::kF32) {
    gemm(pool, false, true, T, R, C, 1.0f, x, C, reinterpret_cast<const float*>(w), C, 0.0f, y, R);
    return;
  }
  // Tiles of rows dequantised and multiplied by whichever thread claims them, each into a tile
  // buffer of its own (the caller's scratch when it runs alone).
  const uint64_t tile_rows = 256, tiles = (rows + tile_rows - 1) / tile_rows;
  auto run = [&](size_t begin, size_t end, std::vector<float>* tile) {
    tile->resize(tile_rows * cols);
    for (uint64_t r0 = begin * tile_rows; r0 < std::min<uint64_t>(end * tile_rows, rows); r0 += tile_rows) {
      const uint64_t n = std::min(tile_rows, rows - r0);
      for (uint64_t r = 0; r < n; ++r) dequantize_row(type, w + (r0 + r) * row_bytes, tile->data() + r * cols, cols);
      gemm(nullptr, false, true, T, static_cast<int>(n), C, 1.0f, x, C, tile->data(), C, 0.0f, y + r0, R);
    }
  };
  if (pool == nullptr || pool->size() == 1 || tiles < 2) {
    run(0, tiles, scratch);
  } else {
    pool->parallel_for(tiles, [&](size_t begin, size_t end) {
      std::vector<float> tile;
      run(begin, end, &tile);
    });
  }
}

}  // namespace llmops::engine
