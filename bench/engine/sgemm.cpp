// The sgemm rate a prefill of F32 weights is held against (issue 3: prefill >= 60% of the sgemm
// FLOP/s measured in the same run): one layer's products of a synthetic shape (Q, K, V, O, gate,
// up, down) at T tokens, X (T x cols) times each weight matrix transposed, through the engine's
// gemm on a pool of N threads, as the prefill calls it. Prints JSON: the best-of-reps GFLOP/s
// over the layer (total FLOPs / total time) and the FLOPs of those products per token for the
// whole model (2 x the layers' weights), from which bench/engine/run.mjs turns a prefill rate
// into FLOP/s.
//   bench_sgemm [--shape llama-110M] [--threads 1] [--tokens 128] [--reps 5]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/thread_pool.h"
#include "model/synth.h"

using namespace llmops::engine;

int main(int argc, char** argv) {
  std::string shape = "llama-110M";
  int threads = 1, tokens = 128, reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--shape") shape = argv[i + 1];
    else if (a == "--threads") threads = std::atoi(argv[i + 1]);
    else if (a == "--tokens") tokens = std::atoi(argv[i + 1]);
    else if (a == "--reps") reps = std::atoi(argv[i + 1]);
    else return std::fprintf(stderr, "unknown option %s\n", argv[i]), 2;
  }
  auto found = find_synth_shape(shape);
  if (!found.ok()) return std::fprintf(stderr, "%s\n", found.status().message().c_str()), 2;
  const ModelConfig& c = found->config;
  struct Product {
    int rows, cols;
  };
  const std::vector<Product> layer = {{c.q_dim(), c.dim},    {c.kv_dim(), c.dim},     {c.kv_dim(), c.dim},   {c.dim, c.q_dim()},
                                      {c.hidden_dim, c.dim}, {c.hidden_dim, c.dim}, {c.dim, c.hidden_dim}};
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<std::vector<float>> w, x, y;
  double flops = 0;
  for (const Product& p : layer) {
    w.emplace_back(static_cast<size_t>(p.rows) * p.cols);
    x.emplace_back(static_cast<size_t>(tokens) * p.cols);
    y.emplace_back(static_cast<size_t>(tokens) * p.rows);
    for (float& v : w.back()) v = d(rng);
    for (float& v : x.back()) v = d(rng);
    flops += 2.0 * tokens * p.rows * p.cols;
  }
  blas_on_calling_threads();
  ThreadPool pool(std::max(1, threads));
  double best = 0;
  for (int r = 0; r < reps + 1; ++r) {  // the first pass warms up
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < layer.size(); ++i) {
      const Product& p = layer[i];
      gemm(&pool, false, true, tokens, p.rows, p.cols, 1.0f, x[i].data(), p.cols, w[i].data(), p.cols, 0.0f, y[i].data(), p.rows);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) best = std::max(best, flops / s / 1e9);
  }
  std::printf("{\"shape\": \"%s\", \"threads\": %d, \"tokens\": %d, \"gflops\": %.1f, \"flops_per_token\": %.0f}\n", shape.c_str(), threads,
              tokens, best, flops / tokens * c.n_layers);
  return 0;
}
