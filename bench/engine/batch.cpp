// Batched decode in the engine alone (issue 4): one decode step of B sequences through the
// Runner against B = 1, on the same model, pool and weights (packed for batches as serving
// packs them), alternating so a noisy neighbour hits both alike. Each sequence first prefills
// --context tokens; a step then decodes one token per sequence. Prints the median step time per
// B and the aggregate tokens/s relative to one sequence, the number serving's 16-stream figure
// over HTTP (bench/serving/run.mjs) is held against.
//   bench_batch MODEL.gguf [--threads 2] [--batch 16] [--context 32] [--steps 40] [--kv f16|f32]
// --kv: the KV cache's type (serving's kv-cache-type; default f16 as serving's).
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

struct Batch {
  std::vector<std::unique_ptr<Session>> sessions;
  int pos = 0;
};

Batch start(const Model& m, Runner& r, ThreadPool* pool, int b, int context, int positions, KvType kv) {
  Batch out;
  const int vocab = m.config().vocab_size;
  for (int i = 0; i < b; ++i) {
    out.sessions.push_back(std::make_unique<Session>(m, positions, pool, kv));
    std::vector<BatchToken> prompt;
    for (int p = 0; p < context; ++p) prompt.push_back({out.sessions.back().get(), (p * 7919 + i * 131) % vocab, p, p + 1 == context});
    (void)r.run(prompt.data(), prompt.size());
  }
  out.pos = context;
  return out;
}

double step_ms(Runner& r, Batch& b, int vocab) {
  std::vector<BatchToken> row;
  for (size_t i = 0; i < b.sessions.size(); ++i) row.push_back({b.sessions[i].get(), static_cast<int32_t>((b.pos * 13 + i) % vocab), b.pos, true});
  const auto t0 = std::chrono::steady_clock::now();
  (void)r.run(row.data(), row.size());
  ++b.pos;
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return std::fprintf(stderr, "usage: bench_batch MODEL.gguf [--threads 2] [--batch 16] [--context 32] [--steps 40] [--kv f16|f32]\n"), 2;
  int threads = 2, batch = 16, context = 32, steps = 40;
  KvType kv = KvType::kF16;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--threads") threads = std::atoi(argv[i + 1]);
    else if (a == "--batch") batch = std::atoi(argv[i + 1]);
    else if (a == "--context") context = std::atoi(argv[i + 1]);
    else if (a == "--steps") steps = std::atoi(argv[i + 1]);
    else if (a == "--kv") {
      auto parsed = parse_kv_type(argv[i + 1]);
      if (!parsed.ok()) return std::fprintf(stderr, "%s\n", parsed.status().message().c_str()), 2;
      kv = *parsed;
    }
  }
  auto m = Model::load(argv[1]);
  if (!m.ok()) return std::fprintf(stderr, "%s\n", m.status().message().c_str()), 1;
  blas_on_calling_threads();
  ThreadPool pool(std::max(1, threads));
  (*m)->pack_for_batches(&pool);
  const int positions = std::min((*m)->config().seq_len, context + steps + 1), vocab = (*m)->config().vocab_size;
  if (context + steps + 1 > (*m)->config().seq_len) return std::fprintf(stderr, "context + steps is past the model's context\n"), 2;
  Runner r(**m, &pool, std::max(batch, context));
  Batch one = start(**m, r, &pool, 1, context, positions, kv), many = start(**m, r, &pool, batch, context, positions, kv);
  std::vector<double> t1, tb;
  for (int s = 0; s < steps; ++s) {
    t1.push_back(step_ms(r, one, vocab));
    tb.push_back(step_ms(r, many, vocab));
  }
  const double m1 = median(t1), mb = median(tb);
  std::printf("{\"threads\": %d, \"kv\": \"%s\", \"context\": %d, \"one_step_ms\": %.3f, \"one_tokens_per_s\": %.1f, \"batch\": %d, \"batch_step_ms\": %.3f, "
              "\"batch_tokens_per_s\": %.1f, \"batch_vs_one\": %.3f}\n",
              threads, kv_type_name(kv), context, m1, 1000.0 / m1, batch, mb, batch * 1000.0 / mb, (batch * 1000.0 / mb) / (1000.0 / m1));
  return 0;
}
