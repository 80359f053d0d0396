// llama.cpp's CUDA build — node-llama-cpp@3.21.1's linux-x64-cuda prebuilt — decoding a GGUF the
// way bench_gpu --gguf decodes it, for the side-by-side the GPU notes report: B sequences of a
// C-token context (prefilled once per repetition), then S steps that each decode one token of
// every sequence in one batch and take each row's largest logit as the next token (greedy, as
// bench_gpu's run_greedy does; here the argmax runs on the host over the logits llama.cpp
// returns). tokens/s = B·S ÷ the steps' wall time, median of R repetitions.
//
// Built on a machine without a GPU against llama.h of the very release the prebuilt comes from
// (the llama.cpp source node-llama-cpp carries), linked to the prebuilt's libllama and libggml;
// the CUDA backend (libggml-cuda.so) is loaded at run time from --backends (bench/gpu/llama_cuda.sh).
//   llama_cuda_bench --model F.gguf --backends DIR [--batches 1,32] [--context 128] [--steps 64] [--reps 3]
//                    [--cpu-ok 1]   (run on the CPU backend where no GPU is: a check of the program itself)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "ggml-backend.h"
#include "llama.h"

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::vector<int> ints(const std::string& csv) {
  std::vector<int> out;
  size_t at = 0;
  while (at <= csv.size()) {
    const size_t comma = csv.find(',', at);
    const std::string part = csv.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    if (!part.empty()) out.push_back(std::stoi(part));
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return out;
}

void put(llama_batch& b, llama_token tok, llama_pos pos, llama_seq_id seq, bool logits) {
  const int i = b.n_tokens++;
  b.token[i] = tok, b.pos[i] = pos, b.n_seq_id[i] = 1, b.seq_id[i][0] = seq, b.logits[i] = logits ? 1 : 0;
}

// One repetition: prefill, then timed greedy steps; tokens/s, or < 0 on a failed decode.
double one_rep(llama_context* ctx, int vocab, int batch, int context, int steps) {
  llama_memory_clear(llama_get_memory(ctx), true);
  llama_batch b = llama_batch_init(std::max(batch * context, batch), 0, 1);
  // Prefill each sequence on its own (as bench_gpu's prompt), pseudo-random ids past the first 256.
  std::vector<llama_token> next(static_cast<size_t>(batch));
  for (int s = 0; s < batch; ++s) {
    b.n_tokens = 0;
    for (int p = 0; p < context; ++p) put(b, 256 + (s * 7919 + p * 104729) % (vocab - 256), p, s, p == context - 1);
    if (llama_decode(ctx, b) != 0) return llama_batch_free(b), -1.0;
    const float* row = llama_get_logits_ith(ctx, -1);
    next[static_cast<size_t>(s)] = static_cast<llama_token>(std::max_element(row, row + vocab) - row);
  }
  llama_synchronize(ctx);
  const double t0 = now_s();
  for (int step = 0; step < steps; ++step) {
    b.n_tokens = 0;
    for (int s = 0; s < batch; ++s) put(b, next[static_cast<size_t>(s)], context + step, s, true);
    if (llama_decode(ctx, b) != 0) return llama_batch_free(b), -1.0;
    for (int s = 0; s < batch; ++s) {
      const float* row = llama_get_logits_ith(ctx, s);
      next[static_cast<size_t>(s)] = static_cast<llama_token>(std::max_element(row, row + vocab) - row);
    }
  }
  const double secs = now_s() - t0;
  llama_batch_free(b);
  return static_cast<double>(batch) * steps / secs;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path, backends, batches = "1,32";
  int context = 128, steps = 64, reps = 3;
  bool cpu_ok = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") model_path = v;
    else if (k == "--backends") backends = v;
    else if (k == "--batches") batches = v;
    else if (k == "--context") context = std::stoi(v);
    else if (k == "--steps") steps = std::stoi(v);
    else if (k == "--reps") reps = std::stoi(v);
    else if (k == "--cpu-ok") cpu_ok = v != "0";
    else {
      std::fprintf(stderr, "llama_cuda_bench: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (model_path.empty() || backends.empty()) {
    std::fprintf(stderr, "usage: llama_cuda_bench --model F.gguf --backends DIR [--batches 1,32] [--context 128] [--steps 64] [--reps 3]\n");
    return 2;
  }
  ggml_backend_load_all_from_path(backends.c_str());
  bool cuda = false;
  for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
    ggml_backend_dev_t d = ggml_backend_dev_get(i);
    if (ggml_backend_dev_type(d) == GGML_BACKEND_DEVICE_TYPE_GPU) {
      cuda = true;
      std::printf("llama.cpp device: %s (%s)\n", ggml_backend_dev_name(d), ggml_backend_dev_description(d));
    }
  }
  if (!cuda && !cpu_ok) {
    std::fprintf(stderr, "llama_cuda_bench: no GPU backend loaded from %s (libggml-cuda.so there, and a GPU?)\n", backends.c_str());
    return 1;
  }
  llama_backend_init();
  llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = 999;
  llama_model* model = llama_model_load_from_file(model_path.c_str(), mp);
  if (model == nullptr) {
    std::fprintf(stderr, "llama_cuda_bench: cannot load %s\n", model_path.c_str());
    return 1;
  }
  const int vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  for (int batch : ints(batches)) {
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = static_cast<uint32_t>(batch * (context + steps + 16));
    cp.n_batch = static_cast<uint32_t>(std::max(context, batch));
    cp.n_ubatch = cp.n_batch;
    cp.n_seq_max = static_cast<uint32_t>(batch);
    cp.n_threads = cp.n_threads_batch = static_cast<int32_t>(std::max(1u, std::thread::hardware_concurrency()));
    llama_context* ctx = llama_init_from_model(model, cp);
    if (ctx == nullptr) {
      std::fprintf(stderr, "llama_cuda_bench: cannot make a context for batch %d\n", batch);
      return 1;
    }
    std::vector<double> rates;
    for (int r = 0; r < reps; ++r) {
      const double rate = one_rep(ctx, vocab, batch, context, steps);
      if (rate < 0) {
        std::fprintf(stderr, "llama_cuda_bench: llama_decode failed (batch %d)\n", batch);
        return 1;
      }
      rates.push_back(rate);
    }
    std::sort(rates.begin(), rates.end());
    std::printf("llama.cpp %s %s batch %d: %.1f tok/s (median of %d; all:", cuda ? "CUDA" : "CPU", model_path.c_str(), batch,
                rates[rates.size() / 2], reps);
    for (double x : rates) std::printf(" %.1f", x);
    std::printf(")\n");
    llama_free(ctx);
  }
  llama_model_free(model);
  return 0;
}
