// llmops-infer: generate text with the engine from a GGUF or llama2.c model, or tokenize
// llama.cpp's test-vector files. A development tool; the daemon uses the library directly.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "formats/detect.h"
#include "gpu/gpu_model.h"
#include "json.h"
#include "kernels/gemm.h"
#include "kernels/matmul.h"
#include "kernels/thread_pool.h"
#include "model/model.h"
#include "model/logprobs.h"
#include "model/sampler.h"
#include "tokenizer/tokenizer.h"

using namespace llmops;
using namespace llmops::engine;

namespace {

const char* kUsage =
    "Usage: llmops-infer --model PATH [--tokenizer PATH] [--prompt TEXT] [--max-tokens N]\n"
    "                    [--temperature T] [--top-p P] [--top-k K] [--seed S] [--threads N] [--device cpu|cuda] [--json]\n"
    "       llmops-infer --model PATH [--tokenizer PATH] --tokenize-file FILE.inp\n\n"
    "  --model PATH         a GGUF file (llama, mistral, qwen2, gpt2), a Hugging Face directory\n"
    "                       (config.json + safetensors) or a llama2.c checkpoint (.bin)\n"
    "  --tokenizer PATH     llama2.c tokenizer.bin, or a Hugging Face tokenizer.json or its\n"
    "                       directory (GGUF files and Hugging Face directories carry their own)\n"
    "  --prompt TEXT        text to continue (default: none, start from BOS)\n"
    "  --max-tokens N       tokens to generate (default 64)\n"
    "  --temperature T      0 = greedy (default 0)\n"
    "  --top-p P, --top-k K, --seed S   sampling controls (same seed, same output)\n"
    "  --threads N          threads for the matrix-vector products (default 1)\n"
    "  --device cpu|cuda    where the model runs (default cpu); cuda needs the llmops-cuda driver and a GPU\n"
    "  --json               print one JSON object: prompt_ids, generated_ids, text, speeds\n"
    "  --prompt-tokens N    cut the tokenized prompt (with BOS) to N tokens (benchmarks)\n"
    "  --ignore-eos         keep generating past the end-of-text token (benchmarks)\n"
    "  --warmup             run the prompt and one decode step once, untimed, before the timed run\n"
    "                       (benchmarks: first-touch costs left out, as llama-bench does)\n"
    "  --stop TEXT          stop when TEXT appears (repeatable; TEXT is not printed)\n"
    "  --kv-budget-mb N     refuse a KV cache larger than N MiB (default 4096)\n"
    "  --kv-type f16|f32    how the KV cache holds keys and values (default f16, as llmopsd's\n"
    "                       serving.kv-cache-type and llama.cpp; f32 keeps every bit)\n"
    "  --top-logprobs N     with --json: each generated token's log-probability and the N likeliest\n"
    "  --tokenize-file F    read strings separated by lines __ggml_vocab_test__ and print one\n"
    "                       line of token ids per string, without BOS (llama.cpp's .out format)\n";

// The process's peak resident set (mapped weights count once touched).
// VmHWM, this address space's own high-water mark: getrusage's ru_maxrss survives exec, so a child
// of a large process (the Node benchmark that drives this tool) would report its parent's peak.
uint64_t peak_rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f != nullptr) {
    char line[256];
    unsigned long long kb = 0;
    bool found = false;
    while (!found && std::fgets(line, sizeof line, f) != nullptr) found = std::sscanf(line, "VmHWM: %llu kB", &kb) == 1;
    std::fclose(f);
    if (found) return static_cast<uint64_t>(kb) * 1024;
  }
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;
}

int fail(const std::string& msg) {
  std::fprintf(stderr, "llmops-infer: %s\n", msg.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path, tokenizer_path, prompt, tokenize_file, device = "cpu";
  int max_tokens = 64, threads = 1, prompt_tokens = 0, n_top = 0;
  uint64_t kv_budget_mb = 4096;
  KvType kv_type = KvType::kF16;
  std::vector<std::string> stops;
  bool json = false, ignore_eos = false, warmup = false;
  SamplingParams sp;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "llmops-infer: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    try {
      if (a == "--model") model_path = next();
      else if (a == "--tokenizer") tokenizer_path = next();
      else if (a == "--prompt") prompt = next();
      else if (a == "--max-tokens") max_tokens = std::stoi(next());
      else if (a == "--temperature") sp.temperature = std::stof(next());
      else if (a == "--top-p") sp.top_p = std::stof(next());
      else if (a == "--top-k") sp.top_k = std::stoi(next());
      else if (a == "--seed") sp.seed = std::stoull(next());
      else if (a == "--threads") threads = std::stoi(next());
      else if (a == "--device") device = next();
      else if (a == "--prompt-tokens") prompt_tokens = std::stoi(next());
      else if (a == "--json") json = true;
      else if (a == "--ignore-eos") ignore_eos = true;
      else if (a == "--warmup") warmup = true;
      else if (a == "--stop") stops.push_back(next());
      else if (a == "--top-logprobs") n_top = std::stoi(next());
      else if (a == "--kv-budget-mb") kv_budget_mb = std::stoull(next());
      else if (a == "--kv-type") {
        auto kv = parse_kv_type(next());
        if (!kv.ok()) return fail(kv.status().message());
        kv_type = *kv;
      }
      else if (a == "--tokenize-file") tokenize_file = next();
      else if (a == "--help" || a == "-h") return std::fputs(kUsage, stdout), 0;
      else return fail("unknown option " + a + "\n" + kUsage);
    } catch (const std::exception&) {
      return fail("bad number for " + a);
    }
  }
  if (model_path.empty()) return fail(std::string("--model is required\n") + kUsage);
  if (max_tokens < 0 || max_tokens > 1000000) return fail("--max-tokens must be between 0 and 1000000");
  if (threads < 1 || threads > 512) return fail("--threads must be between 1 and 512");
  if (device != "cpu" && device != "cuda") return fail("--device must be cpu or cuda");
  if (n_top < 0 || n_top > 20) return fail("--top-logprobs must be between 0 and 20");

  auto format = detect_model_format(model_path);
  if (!format.ok()) return fail(format.status().message());
  // A vocabulary-only GGUF (llama.cpp's test vocabularies) has no weights: tokenize only.
  const bool vocab_only = *format == ModelFormat::kGguf && !tokenize_file.empty() && tokenizer_path.empty();
  std::unique_ptr<GgufFile> vocab_file;
  std::unique_ptr<Model> model;
  if (vocab_only) {
    auto g = GgufFile::open(model_path);
    if (!g.ok()) return fail(g.status().message());
    vocab_file = std::move(g).value();
  } else {
    auto m = Model::load(model_path);
    if (!m.ok()) return fail(m.status().message());
    model = std::move(m).value();
  }
  // The tokenizer: --tokenizer (a Hugging Face directory or tokenizer.json, else a llama2.c
  // tokenizer.bin), or the model's own (GGUF metadata, the Hugging Face directory's files).
  Result<Tokenizer> tok = invalid_argument("a llama2.c model needs --tokenizer tokenizer.bin");
  if (!tokenizer_path.empty()) {
    namespace fs = std::filesystem;
    if (fs::is_directory(tokenizer_path)) {
      tok = Tokenizer::from_hf_dir(tokenizer_path);
    } else if (fs::path(tokenizer_path).filename() == "tokenizer.json") {
      tok = Tokenizer::from_hf_dir(fs::path(tokenizer_path).parent_path().string());
    } else {
      tok = Tokenizer::from_llama2c(tokenizer_path, model ? model->config().vocab_size : 0);
    }
  } else if (vocab_only) {
    tok = Tokenizer::from_gguf(*vocab_file);
  } else if (model->gguf() != nullptr) {
    tok = Tokenizer::from_gguf(*model->gguf());
  } else if (!model->hf_dir().empty()) {
    tok = Tokenizer::from_hf_dir(model->hf_dir());
  }
  if (!tok.ok()) return fail(tok.status().message());
  if (model && tok->size() > model->config().vocab_size) {
    return fail("the tokenizer has " + std::to_string(tok->size()) + " tokens, more than the model's " +
                std::to_string(model->config().vocab_size) + "; is it the model's own tokenizer?");
  }

  if (!tokenize_file.empty()) {
    std::ifstream in(tokenize_file, std::ios::binary);
    if (!in) return fail("cannot read " + tokenize_file);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str(), sep = "\n__ggml_vocab_test__\n";
    for (size_t pos = 0, next; (next = text.find(sep, pos)) != std::string::npos; pos = next + sep.size()) {
      std::string line;
      for (int32_t id : tok->encode(text.substr(pos, next - pos))) line += " " + std::to_string(id);
      std::printf("%s\n", line.c_str());
    }
    return 0;
  }

  const ModelConfig& c = model->config();
  std::vector<int32_t> ids;
  if (tok->add_bos() && tok->bos_id() >= 0) ids.push_back(tok->bos_id());
  for (int32_t id : tok->encode(prompt)) ids.push_back(id);
  if (ids.empty()) {
    // Byte-level vocabularies without BOS still need one token to start from.
    if (tok->eos_id() < 0) return fail("give a --prompt: this vocabulary has no BOS or EOS token to start from");
    ids.push_back(tok->eos_id());
  }
  if (prompt_tokens > 0 && static_cast<int>(ids.size()) > prompt_tokens) ids.resize(static_cast<size_t>(prompt_tokens));
  int positions = std::min<int>(c.seq_len, static_cast<int>(ids.size()) + max_tokens);
  if (static_cast<int>(ids.size()) > c.seq_len) return fail("the prompt is longer than the model's context of " + std::to_string(c.seq_len));
  ThreadPool pool(threads);
  blas_on_calling_threads();
  // Q4_0 rows repacked once into the panels its decode and prefill kernels stream (no larger).
  if (device == "cpu") model->pack_for_decode(&pool);
  // Runs n tokens from position `at` and returns the last one's logits, on the chosen device.
  std::function<Result<const float*>(const int32_t*, int, int)> run_tokens;
  std::unique_ptr<Session> session;
  std::unique_ptr<GpuDevice> gpu;
  std::unique_ptr<GpuModel> gpu_model;
  std::unique_ptr<GpuSession> gpu_session;
  std::unique_ptr<GpuRunner> gpu_runner;
  if (device == "cuda") {
    auto dev = GpuDevice::open_default();
    if (!dev.ok()) return fail(dev.status().message());
    gpu = std::move(*dev);
    auto up = GpuModel::upload(*gpu, *model);
    if (!up.ok()) return fail(up.status().message());
    gpu_model = std::move(*up);
    auto gs = GpuSession::create(*gpu_model, positions);
    if (!gs.ok()) return fail(gs.status().message());
    gpu_session = std::move(*gs);
    gpu_runner = std::make_unique<GpuRunner>(*gpu_model);
    run_tokens = [&](const int32_t* tokens, int n, int at) -> Result<const float*> {
      std::vector<GpuBatchToken> batch;
      for (int i = 0; i < n; ++i) batch.push_back({gpu_session.get(), tokens[i], at + i, i + 1 == n});
      return gpu_runner->run(batch.data(), batch.size());
    };
  } else {
    auto made = Session::create(*model, positions, kv_budget_mb << 20, &pool, kv_type);
    if (!made.ok()) return fail(made.status().message());
    session = std::move(*made);
    run_tokens = [&](const int32_t* tokens, int n, int at) {
      return n == 1 ? session->forward(tokens[0], at) : session->prefill(tokens, n, at);
    };
  }
  if (warmup) {
    // As llama-bench before it times: the prompt and one decode step once, untimed; the timed run
    // then starts again from position 0 (the cache rewinds), with buffers and caches touched.
    auto w = run_tokens(ids.data(), static_cast<int>(ids.size()), 0);
    if (!w.ok()) return fail(w.status().message());
    if (static_cast<int>(ids.size()) < positions) {
      const int32_t first = ids.back();
      if (auto r = run_tokens(&first, 1, static_cast<int>(ids.size())); !r.ok()) return fail(r.status().message());
    }
  }
  Sampler sampler(c.vocab_size, sp);
  std::vector<int32_t> history = ids, generated;
  auto t0 = std::chrono::steady_clock::now();
  auto prefilled = run_tokens(ids.data(), static_cast<int>(ids.size()), 0);
  if (!prefilled.ok()) return fail(prefilled.status().message());
  const float* logits = *prefilled;
  int pos = static_cast<int>(ids.size());
  auto t1 = std::chrono::steady_clock::now();
  std::string text, finish_reason = "length";
  Json logprobs = Json::array();
  size_t printed = 0;
  for (int i = 0; i < max_tokens && pos <= positions; ++i) {
    int32_t next = sampler.sample(logits, history);
    if (tok->is_eog(next) && !ignore_eos) {
      finish_reason = "stop";
      break;
    }
    if (n_top > 0) {
      Json top = Json::array();
      for (const auto& t : top_logprobs(logits, c.vocab_size, n_top)) top.push_back({{"id", t.id}, {"logprob", t.logprob}});
      logprobs.push_back({{"id", next}, {"logprob", token_logprob(logits, c.vocab_size, next)}, {"top", top}});
    }
    generated.push_back(next);
    history.push_back(next);
    std::string piece = tok->decode_piece(next, generated.size() == 1 && ids.size() == 1 && ids[0] == tok->bos_id());
    text += piece;
    size_t stop_at = find_stop(text, piece.size(), stops);
    if (stop_at != std::string::npos) {
      text.resize(stop_at);
      finish_reason = "stop";
    }
    // Print what is complete: a piece may end inside a UTF-8 character.
    const size_t shown = stop_at != std::string::npos ? text.size() : complete_utf8_prefix(text);
    if (!json && shown > printed) {
      std::fwrite(text.data() + printed, 1, shown - printed, stdout);
      std::fflush(stdout);
      printed = shown;
    }
    if (stop_at != std::string::npos) break;
    if (pos >= positions) break;
    auto r = run_tokens(&next, 1, pos++);
    if (!r.ok()) return fail(r.status().message());
    logits = *r;
  }
  if (!json && text.size() > printed) std::fwrite(text.data() + printed, 1, text.size() - printed, stdout);
  auto t2 = std::chrono::steady_clock::now();
  double prefill_s = std::chrono::duration<double>(t1 - t0).count();
  double decode_s = std::chrono::duration<double>(t2 - t1).count();
  double prefill_tps = prefill_s > 0 ? static_cast<double>(ids.size()) / prefill_s : 0;
  double decode_tps = decode_s > 0 ? static_cast<double>(generated.size()) / decode_s : 0;
  if (json) {
    const uint64_t per_token = model->bytes_per_token();
    Json out = {{"prompt_ids", ids}, {"generated_ids", generated}, {"text", text},
                {"prefill_tokens_per_s", prefill_tps}, {"decode_tokens_per_s", decode_tps},
                {"weight_bytes_per_token", per_token}, {"threads", threads}, {"warmup", warmup}, {"isa", isa_name(best_isa())}, {"device", device},
                {"finish_reason", finish_reason}, {"weight_bytes", model->weight_bytes()},
                {"kv_cache_bytes", Session::kv_cache_bytes(c, positions, kv_type)}, {"kv_type", kv_type_name(kv_type)}, {"peak_rss_bytes", peak_rss_bytes()}};
    if (n_top > 0) out["logprobs"] = logprobs;
    std::printf("%s\n", dump_json(out).c_str());
  } else {
    std::fprintf(stderr, "\n[prefill %zu tokens at %.1f tok/s, decode %zu tokens at %.1f tok/s]\n", ids.size(), prefill_tps,
                 generated.size(), decode_tps);
  }
  return 0;
}
