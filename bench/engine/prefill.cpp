// Prefill in the engine alone: one prompt of T tokens through Session::prefill, repeated. Three
// figures, medians: a new session each time (first touch of its cache and buffers), the same
// session rewound with the weights as loaded (each product repacks its panels, as llmops-infer),
// and the same with the weights packed once (as serving). No loading and no sampling: what the
// engine itself costs per prompt.
//   bench_prefill MODEL.gguf [--threads 2] [--tokens 128] [--reps 7] [--kv f16|f32]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/thread_pool.h"
#include "model/model.h"

namespace {

using namespace llmops::engine;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// One prefill of the prompt from position 0 into s (its cache rewound): milliseconds.
double prefill_ms(Session& s, const std::vector<int32_t>& tokens) {
  s.reset();
  const auto t0 = std::chrono::steady_clock::now();
  auto r = s.prefill(tokens.data(), static_cast<int>(tokens.size()), 0);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (!r.ok()) std::fprintf(stderr, "%s\n", r.status().message().c_str()), std::exit(1);
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return std::fprintf(stderr, "usage: bench_prefill MODEL.gguf [--threads 2] [--tokens 128] [--reps 7] [--kv f16|f32]\n"), 2;
  int threads = 2, tokens = 128, reps = 7;
  KvType kv = KvType::kF16;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--threads") threads = std::atoi(argv[i + 1]);
    else if (a == "--tokens") tokens = std::atoi(argv[i + 1]);
    else if (a == "--reps") reps = std::atoi(argv[i + 1]);
    else if (a == "--kv") {
      auto parsed = parse_kv_type(argv[i + 1]);
      if (!parsed.ok()) return std::fprintf(stderr, "%s\n", parsed.status().message().c_str()), 2;
      kv = *parsed;
    }
  }
  auto loaded = Model::load(argv[1]);
  if (!loaded.ok()) return std::fprintf(stderr, "%s\n", loaded.status().message().c_str()), 1;
  Model& m = **loaded;
  if (tokens < 1 || tokens >= m.config().seq_len) return std::fprintf(stderr, "--tokens must be within the model's context\n"), 2;
  blas_on_calling_threads();
  ThreadPool pool(std::max(1, threads));
  std::vector<int32_t> prompt;
  for (int i = 0; i < tokens; ++i) prompt.push_back((i * 7919 + 13) % m.config().vocab_size);
  // The first prefill of a new session: its cache and the runner's buffers are touched for the
  // first time (llmops-infer's case). Then the same session again and again (a server's case, and
  // what llama-bench and node-llama-cpp time after their warm-up).
  const int positions = tokens + 1;
  auto cold = [&] {
    Session s(m, positions, &pool, kv);
    return prefill_ms(s, prompt);
  };
  cold();  // the weights faulted in
  std::vector<double> first, as_loaded, packed;
  for (int r = 0; r < reps; ++r) first.push_back(cold());
  Session s(m, positions, &pool, kv);
  prefill_ms(s, prompt);
  for (int r = 0; r < reps; ++r) as_loaded.push_back(prefill_ms(s, prompt));
  m.pack_for_batches(&pool);
  for (int r = 0; r < reps; ++r) packed.push_back(prefill_ms(s, prompt));
  const double f = median(first), a = median(as_loaded), p = median(packed);
  std::printf("{\"threads\": %d, \"tokens\": %d, \"kv\": \"%s\", \"new_session_ms\": %.2f, \"new_session_tokens_per_s\": %.0f, "
              "\"as_loaded_ms\": %.2f, \"as_loaded_tokens_per_s\": %.0f, \"packed_ms\": %.2f, \"packed_tokens_per_s\": %.0f}\n",
              threads, tokens, kv_type_name(kv), f, tokens * 1000.0 / f, a, tokens * 1000.0 / a, p, tokens * 1000.0 / p);
  return 0;
}
