// The engine's matrix kernels on llama-110M shapes, every variant of a case timed in the same run
// (alternating, so a noisy neighbour hits them alike), medians of several repetitions:
//   decode: matvec_rows per weight type on each ISA level this CPU has (µs per call, GB/s of
//           weights read);
//   prefill: matmul_rows at T tokens per type, the integer path (AVX-512 VNNI) against the old
//           dequantise + sgemm path and against sgemm on F32 weights of the same shape (GFLOP/s
//           counting 2·T·rows·cols); the F32 product also as before the pool ran it (one call,
//           OpenBLAS's own threads), and the ratio of the two.
// Usage: bench_kernels [--threads N] [--reps N] [--tokens T] [--decode-only | --prefill-only]
//                      [--int8-only] (prefill: the integer path alone, for profiling)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <cblas.h>

#include "formats/quantize.h"
#include "kernels/gemm.h"
#include "kernels/matmul.h"
#include "kernels/matvec.h"
#include "kernels/thread_pool.h"

using namespace llmops::engine;

namespace {

struct Shape {
  uint64_t rows, cols;
  const char* role;
};
const Shape kShapes[] = {{768, 768, "wq/wk/wv/wo"}, {2048, 768, "w_gate/w_up"}, {768, 2048, "w_down"}, {32000, 768, "output"}};
const GgmlType kTypes[] = {GgmlType::kF32, GgmlType::kF16, GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K, GgmlType::kQ6_K};

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

struct Matrix {
  GgmlType type;
  uint64_t rows, cols, row_bytes;
  std::vector<uint8_t> bytes;
};

Matrix make_matrix(GgmlType type, const Shape& s, const std::vector<float>& source) {
  Matrix m{type, s.rows, s.cols, *ggml_row_bytes(type, s.cols), {}};
  m.bytes.resize(m.rows * m.row_bytes);
  for (uint64_t r = 0; r < m.rows; ++r) quantize_row(type, source.data() + r * s.cols, m.bytes.data() + r * m.row_bytes, s.cols);
  return m;
}

// Seconds per call of each variant: every repetition runs each variant for about `slice`
// seconds (the call count fixed from a first timing), variants alternating.
std::vector<double> time_variants(const std::vector<std::function<void()>>& variants, int reps, double slice) {
  std::vector<int> calls(variants.size());
  for (size_t v = 0; v < variants.size(); ++v) {
    variants[v]();  // warm caches and buffers
    double t0 = now_s();
    variants[v]();
    double one = std::max(now_s() - t0, 1e-7);
    calls[v] = std::max(1, static_cast<int>(slice / one));
  }
  std::vector<std::vector<double>> per(variants.size());
  for (int r = 0; r < reps; ++r) {
    for (size_t v = 0; v < variants.size(); ++v) {
      double t0 = now_s();
      for (int c = 0; c < calls[v]; ++c) variants[v]();
      per[v].push_back((now_s() - t0) / calls[v]);
    }
  }
  std::vector<double> out;
  for (auto& p : per) out.push_back(median(p));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1, reps = 7;
  uint64_t tokens = 128;
  bool decode = true, prefill = true, int8_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--reps" && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (a == "--tokens" && i + 1 < argc) tokens = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--decode-only") prefill = false;
    else if (a == "--prefill-only") decode = false;
    else if (a == "--int8-only") int8_only = true, decode = false;
    else {
      std::fprintf(stderr, "usage: bench_kernels [--threads N] [--reps N] [--tokens T] [--decode-only | --prefill-only] [--int8-only]\n");
      return 2;
    }
  }
  threads = std::max(1, threads);
  reps = std::max(1, reps);
  blas_on_calling_threads();
  std::unique_ptr<ThreadPool> pool = threads > 1 ? std::make_unique<ThreadPool>(threads) : nullptr;
  std::vector<KernelIsa> isas;
  for (KernelIsa isa : {KernelIsa::kPortable, KernelIsa::kAvx2, KernelIsa::kAvx512}) {
    if (isa_supported(isa)) isas.push_back(isa);
  }
  const KernelIsa old_path = isa_supported(KernelIsa::kAvx2) ? KernelIsa::kAvx2 : KernelIsa::kPortable;
  std::printf("bench_kernels: %d thread(s), median of %d, best ISA %s%s\n\n", threads, reps, isa_name(best_isa()),
              isa_supported(KernelIsa::kAvx512) ? "" : " (no AVX-512: the integer prefill path is not available here)");

  std::mt19937 rng(42);
  std::normal_distribution<float> dist(0.0f, 0.02f);

  for (int part = 0; part < 2; ++part) {
    if ((part == 0 && !decode) || (part == 1 && !prefill)) continue;
    if (part == 0) {
      std::printf("decode: matvec_rows per ISA, and matvec_packed_panels (the panels decode reads where the type has them), µs per call (GB/s of weights)\n");
      std::printf("| shape | type | MB |");
      for (KernelIsa isa : isas) std::printf(" %s |", isa_name(isa));
      std::printf(" panels | best/avx2 |\n|---|---|---|");
      for (size_t i = 0; i < isas.size(); ++i) std::printf("---|");
      std::printf("---|---|\n");
    } else {
      std::printf("\nprefill: matmul_rows at T=%llu, GFLOP/s (ms per call)\n", static_cast<unsigned long long>(tokens));
      std::printf("| shape | type | int8 path | dequant+sgemm | F32 sgemm | F32 sgemm, OpenBLAS threads | int8/old | int8/F32 | F32 pool/OpenBLAS |\n"
                  "|---|---|---|---|---|---|---|---|---|\n");
    }
    for (const Shape& s : kShapes) {
      std::vector<float> source(s.rows * s.cols);
      for (auto& v : source) v = dist(rng);
      std::vector<float> x(tokens * s.cols);
      for (auto& v : x) v = dist(rng) * 50.0f;
      Matrix f32 = make_matrix(GgmlType::kF32, s, source);
      for (GgmlType type : kTypes) {
        Matrix m = type == GgmlType::kF32 ? Matrix{} : make_matrix(type, s, source);
        const Matrix& w = type == GgmlType::kF32 ? f32 : m;
        const std::string shape = std::to_string(s.rows) + "×" + std::to_string(s.cols);
        const double mb = static_cast<double>(w.bytes.size()) / 1e6;
        if (part == 0) {
          PreparedVector pv;
          prepare_vector(x.data(), s.cols, vector_forms(type), &pv);
          std::vector<float> y(s.rows);
          std::vector<std::function<void()>> variants;
          for (KernelIsa isa : isas) {
            variants.push_back([&, isa] { matvec_rows(type, w.bytes.data(), w.rows, w.row_bytes, pv, y.data(), pool.get(), isa); });
          }
          // Panels on whole cache lines, as Model::pack lays them out.
          const uint64_t panel_bytes = packed_serves_decode(type) ? int8_packed_bytes(type, w.rows, w.cols) : 0;
          std::unique_ptr<uint8_t, decltype(&std::free)> panels(
              panel_bytes ? static_cast<uint8_t*>(std::aligned_alloc(64, (panel_bytes + 63) / 64 * 64)) : nullptr, &std::free);
          if (panels) {
            pack_int8_weights(type, w.bytes.data(), w.rows, w.row_bytes, w.cols, panels.get(), pool.get());
            const uint64_t n_panels = (w.rows + 15) / 16;
            variants.push_back([&] {
              auto run = [&](size_t begin, size_t end) { matvec_packed_panels(type, panels.get(), w.rows, w.cols, pv, y.data(), begin, end); };
              if (pool) pool->parallel_for(n_panels, run);
              else run(0, n_panels);
            });
          }
          auto secs = time_variants(variants, reps, 0.02);
          std::printf("| %s | %s | %.1f |", shape.c_str(), ggml_type_name(static_cast<uint32_t>(type)).c_str(), mb);
          for (size_t i = 0; i < isas.size(); ++i) std::printf(" %.0f (%.1f) |", secs[i] * 1e6, mb / 1e3 / secs[i]);
          if (panels) std::printf(" %.0f (%.1f) |", secs.back() * 1e6, mb / 1e3 / secs.back());
          else std::printf(" |");
          const double avx2 = isas.size() > 1 ? secs[1] : secs[0];
          std::printf(" %.2f× |\n", avx2 / secs.back());
        } else {
          std::vector<float> y(tokens * s.rows), scratch_int, scratch_old, scratch_f32;
          auto run_int = [&] {
            matmul_rows(type, w.bytes.data(), w.rows, w.row_bytes, s.cols, x.data(), tokens, y.data(), &scratch_int, pool.get(), best_isa());
          };
          auto run_old = [&] {
            matmul_rows(type, w.bytes.data(), w.rows, w.row_bytes, s.cols, x.data(), tokens, y.data(), &scratch_old, pool.get(), old_path);
          };
          auto run_f32 = [&] {
            matmul_rows(GgmlType::kF32, f32.bytes.data(), f32.rows, f32.row_bytes, s.cols, x.data(), tokens, y.data(), &scratch_f32,
                        pool.get(), old_path);
          };
          // The F32 product as before the pool ran it: one call, OpenBLAS's own threads inside.
          auto run_f32_openblas = [&] {
            openblas_set_num_threads(threads);
            matmul_rows(GgmlType::kF32, f32.bytes.data(), f32.rows, f32.row_bytes, s.cols, x.data(), tokens, y.data(), &scratch_f32,
                        nullptr, old_path);
            blas_on_calling_threads();
          };
          const bool int8 = matmul_uses_int8(type, best_isa());
          if (int8_only && !int8) continue;
          std::vector<std::function<void()>> variants = {run_old, run_f32, run_f32_openblas};
          if (int8_only) variants = {run_int, run_int, run_int};
          else if (int8) variants.insert(variants.begin(), run_int);
          // The big output matrix: fewer, single-call slices.
          auto secs = time_variants(variants, s.rows > 10000 ? std::max(3, reps / 2) : reps, s.rows > 10000 ? 0.0 : 0.05);
          const double flop = 2.0 * static_cast<double>(tokens) * static_cast<double>(s.rows) * static_cast<double>(s.cols);
          auto cell = [&](double t) {
            char b[64];
            std::snprintf(b, sizeof b, "%.1f (%.2f)", flop / t / 1e9, t * 1e3);
            return std::string(b);
          };
          const double t_int = int8 ? secs[0] : 0, t_old = secs[int8 ? 1 : 0], t_f32 = secs[int8 ? 2 : 1];
          const double t_f32_ob = int8_only ? t_f32 : secs[int8 ? 3 : 2];
          std::printf("| %s | %s | %s | %s | %s | %s | %s | %s | %.2f× |\n", shape.c_str(), ggml_type_name(static_cast<uint32_t>(type)).c_str(),
                      int8 ? cell(t_int).c_str() : "—", type == GgmlType::kF32 ? "—" : cell(t_old).c_str(), cell(t_f32).c_str(),
                      cell(t_f32_ob).c_str(), int8 ? (std::to_string(t_old / t_int).substr(0, 5) + "×").c_str() : "—",
                      int8 ? (std::to_string(t_f32 / t_int).substr(0, 5) + "×").c_str() : "—", t_f32_ob / t_f32);
        }
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
