// Training throughput (issue 6): full fine-tuning steps (forward, backward, AdamW) at sequence
// length 256 for the stories260K shape and the synthetic llama-15M and llama-110M shapes, as
// tokens/s, and model FLOP utilisation = 6 × parameters × tokens/s ÷ the sgemm FLOP/s measured
// in the same run with the same threads (the baseline). Peak RSS of the process is reported,
// with what it held before any model (code, libraries, OpenBLAS's buffers), against
// 4.5 × fp32 weight bytes + activations, where activations =
// batch × seq × (layers × (7·dim + 2·q_dim + 2·kv_dim + 3·hidden) + 2·dim + vocab) × 4 bytes +
// layers × batch × heads × seq² × 4 bytes (what forward keeps for backward).
//
// LoRA (rank 16 on q/k/v/o) runs after full fine-tuning on the same weights: its tokens/s and the
// ratio to full fine-tuning's (peak RSS is taken before it).
//
// The trainer runs on a ThreadPool of --threads (as the tuning stage runs it: OpenBLAS on the
// pool's threads, kernels/gemm.h); --pool 0 runs it as before, on one thread with OpenBLAS's own
// threads inside each product. The sgemm baseline always uses OpenBLAS's own threads.
//
//   bench_train [--threads 2] [--seq 256] [--batch 4] [--steps 3] [--pool 1] [--shapes stories260K,llama-15M,llama-110M]
#include <sys/resource.h>

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/thread_pool.h"
#include "model/synth.h"
#include "train/llama_train.h"

extern "C" void openblas_set_num_threads(int);

namespace {

using Clock = std::chrono::steady_clock;
using llmops::engine::ModelConfig;
using llmops::engine::train::AdamW;
using llmops::engine::train::AdamWConfig;
using llmops::engine::train::LlamaTrainer;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// sgemm FLOP/s on a training-sized product (tokens × dim × dim), median of 5.
double sgemm_flops(int m, int n, int k) {
  std::vector<float> a(static_cast<size_t>(m) * k, 0.01f), b(static_cast<size_t>(n) * k, 0.02f), c(static_cast<size_t>(m) * n);
  std::vector<double> rates;
  for (int r = 0; r < 6; ++r) {
    auto t = Clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(), n);
    const double s = seconds_since(t);
    if (r > 0) rates.push_back(2.0 * m * n * k / s);
  }
  return median(rates);
}

double peak_rss_mb() {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;
}

ModelConfig stories_shape() {
  ModelConfig c;
  c.dim = 64;
  c.hidden_dim = 172;
  c.n_layers = 5;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.head_dim = 8;
  c.vocab_size = 512;
  c.seq_len = 512;
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, seq = 256, batch = 4, steps = 3, use_pool = 1;
  std::string shapes = "stories260K,llama-15M,llama-110M";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--threads") threads = std::stoi(argv[i + 1]);
    else if (a == "--seq") seq = std::stoi(argv[i + 1]);
    else if (a == "--batch") batch = std::stoi(argv[i + 1]);
    else if (a == "--steps") steps = std::stoi(argv[i + 1]);
    else if (a == "--shapes") shapes = argv[i + 1];
    else if (a == "--pool") use_pool = std::stoi(argv[i + 1]);
  }
  std::unique_ptr<llmops::engine::ThreadPool> pool = use_pool ? std::make_unique<llmops::engine::ThreadPool>(threads) : nullptr;
  // What the process holds before any model (code, libraries, OpenBLAS's buffers once warmed):
  // training's own peak is the peak above it.
  (void)sgemm_flops(256, 64, 64);
  const double base_rss = peak_rss_mb();
  std::stringstream ss(shapes);
  std::string name;
  std::printf("[");
  bool first = true;
  while (std::getline(ss, name, ',')) {
    ModelConfig c;
    if (name == "stories260K") {
      c = stories_shape();
    } else {
      auto s = llmops::engine::find_synth_shape(name);
      if (!s.ok()) return std::fprintf(stderr, "%s\n", s.status().message().c_str()), 2;
      c = s->config;
    }
    c.seq_len = std::max(c.seq_len, seq);
    openblas_set_num_threads(threads);
    const double gemm = sgemm_flops(batch * seq, c.dim, c.dim);
    if (use_pool) llmops::engine::blas_on_calling_threads();
    auto t = LlamaTrainer<float>::random(c, false, 1);
    if (!t.ok()) return std::fprintf(stderr, "%s\n", t.status().message().c_str()), 2;
    t->set_pool(pool.get());
    AdamWConfig oc;
    oc.total_steps = steps + 1;
    AdamW<float> opt(oc, t->parameter_count());
    std::vector<int32_t> tokens(static_cast<size_t>(batch) * seq), targets(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 7919) % c.vocab_size), targets[i] = static_cast<int32_t>((i * 104729 + 1) % c.vocab_size);
    std::vector<double> rates;
    for (int s = 0; s <= steps; ++s) {
      auto t0 = Clock::now();
      (void)t->forward(tokens.data(), targets.data(), batch, seq);
      t->zero_grads();
      t->backward();
      opt.step(t->params(), t->grads(), t->tensors());
      const double secs = seconds_since(t0);
      if (s > 0) rates.push_back(static_cast<double>(tokens.size()) / secs);  // the first step warms up
    }
    const double tps = median(rates);
    const double rss = peak_rss_mb();
    // LoRA (rank 16 on q, k, v, o) on the same shape, relative to full fine-tuning.
    llmops::engine::train::LoraConfig lc;
    lc.rank = 16;
    lc.alpha = 32;
    (void)t->enable_lora(lc);
    AdamW<float> lopt(oc, t->lora_params().size());
    std::vector<double> lrates;
    for (int s = 0; s <= steps; ++s) {
      auto t0 = Clock::now();
      (void)t->forward(tokens.data(), targets.data(), batch, seq);
      t->zero_lora_grads();
      t->backward();
      lopt.step(t->lora_params(), t->lora_grads(), t->lora_tensors());
      const double secs = seconds_since(t0);
      if (s > 0) lrates.push_back(static_cast<double>(tokens.size()) / secs);
    }
    const double lora_tps = median(lrates);
    const double params = static_cast<double>(t->parameter_count());
    const double act = 4.0 * batch * seq * (c.n_layers * (7.0 * c.dim + 2.0 * c.q_dim() + 2.0 * c.kv_dim() + 3.0 * c.hidden_dim) + 2.0 * c.dim + c.vocab_size) +
                       4.0 * c.n_layers * batch * c.n_heads * static_cast<double>(seq) * seq;
    const double bound_mb = (4.5 * 4.0 * params + act) / (1 << 20);
    std::printf("%s{\"shape\": \"%s\", \"parameters\": %.0f, \"threads\": %d, \"pool\": %s, \"seq\": %d, \"batch\": %d, \"tokens_per_s\": %.1f, "
                "\"sgemm_gflops\": %.2f, \"mfu\": %.4f, \"peak_rss_mb\": %.1f, \"process_base_rss_mb\": %.1f, \"rss_bound_mb\": %.1f, \"lora_tokens_per_s\": %.1f, \"lora_vs_full\": %.3f}",
                first ? "" : ",\n ", name.c_str(), params, threads, use_pool ? "true" : "false", seq, batch, tps, gemm / 1e9, 6.0 * params * tps / gemm, rss, base_rss, bound_mb, lora_tps, lora_tps / tps);
    std::fflush(stdout);
    first = false;
  }
  std::printf("]\n");
  return 0;
}
