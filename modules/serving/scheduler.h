// Continuous batching for one loaded model. Requests wait in a bounded queue; the scheduler
// thread admits them while the KV-cache budget and the sequence limit allow, and every step
// runs one batch through the engine's Runner: one decode token for each generating sequence
// plus chunks of waiting prompts (so a long prompt never stalls the others), sampling the next
// token of every sequence whose logits came out. Sequences join and leave at token
// boundaries; a cancelled one (client gone, timeout) leaves at the next step and frees its
// KV cache.
//
// Threads: submit() and the Request's reader side run on HTTP handler threads; everything
// else on the scheduler's own thread. The model and tokenizer are immutable and shared.
//
// With a GpuExecution the steps run on the GPU (the model's device copy, KV caches in device
// memory, the same batching, prefix cache and sampling); embeddings still run on the CPU.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gpu/gpu_model.h"
#include "kernels/thread_pool.h"
#include "model/logprobs.h"
#include "model/model.h"
#include "model/sampler.h"
#include "status.h"
#include "tokenizer/tokenizer.h"

namespace llmops::serving {

using Clock = std::chrono::steady_clock;

struct GenerationParams {
  int max_tokens = 16;
  engine::SamplingParams sampling;
  std::vector<std::string> stop;
  int top_logprobs = -1;  // -1: no log-probabilities; 0..20: the token's and that many alternatives
  bool ignore_eos = false;
  Clock::time_point deadline = Clock::time_point::max();
  // Admission order: higher first, then arrival. 0 batch, 1 normal, 2 interactive (per API key).
  int priority = 1;
};

// One generated token as the client sees it.
struct Piece {
  int32_t id = 0;
  std::string text;  // the text this token completes (may be "" while a character or a possible stop is held back)
  float logprob = 0.0f;
  std::vector<engine::TokenLogprob> top;
};

// A request's life, shared by the HTTP handler (reader) and the scheduler (writer).
class Request {
 public:
  Request(std::vector<int32_t> prompt, GenerationParams params) : prompt_(std::move(prompt)), params_(std::move(params)) {}

  // Blocks until pieces are available, the request finished, or `wait` passes; moves the
  // pieces out. Returns true while more may come.
  bool next(std::vector<Piece>* out, std::chrono::milliseconds wait);
  // Blocks until the request finished or `wait` passes (without waking for every token, so a
  // reader that wants the whole answer costs the generating thread nothing per token).
  bool wait_finished(std::chrono::milliseconds wait);
  // Asks the scheduler to drop the sequence (client gone); it leaves at the next step.
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

  // Valid once next() returned false.
  const std::string& finish_reason() const { return finish_reason_; }  // "stop" | "length" | "cancelled" | "error"
  const Status& error() const { return error_; }
  int prompt_tokens() const { return static_cast<int>(prompt_.size()); }
  int completion_tokens() const { return completion_tokens_.load(); }
  double queue_seconds() const { return queue_s_; }
  double first_token_seconds() const { return ttft_s_; }
  // Seconds between consecutive tokens (inter-token latency); valid once next() returned false.
  const std::vector<float>& token_gaps() const { return gaps_; }

  const std::vector<int32_t>& prompt() const { return prompt_; }
  const GenerationParams& params() const { return params_; }

 private:
  friend class Scheduler;
  void push(Piece p);
  void finish(std::string reason, Status error = ok_status());

  std::vector<int32_t> prompt_;
  GenerationParams params_;
  std::atomic<bool> cancelled_{false};
  std::atomic<int> completion_tokens_{0};
  std::mutex mu_;
  std::condition_variable cv_;       // pieces or the end
  std::condition_variable done_cv_;  // the end only
  std::vector<Piece> pieces_;
  bool finished_ = false;
  std::string finish_reason_;
  Status error_;
  Clock::time_point submitted_ = Clock::now();
  double queue_s_ = 0, ttft_s_ = 0;
  Clock::time_point last_token_;
  std::vector<float> gaps_;
};

struct SchedulerOptions {
  int max_sequences = 16;         // running at once
  int max_queue = 64;             // waiting beyond the running ones; past it submit() refuses
  uint64_t kv_budget_bytes = 1ull << 30;
  int context = 0;                // positions per sequence at most; 0: the model's
  int prefill_chunk = 128;        // prompt tokens per step, shared by the prefilling sequences
  int threads = 1;
  std::function<void(int)> on_thread_start;  // pins engine threads (placement)
  // Pins the calling thread next to a GPU (its PCI address): the scheduler thread that drives
  // one, and the thread that opens its context and uploads the weights.
  std::function<void(const std::string&)> on_gpu_thread_start;
  // Finished sequences keep their KV cache, in what the running ones leave of the KV budget,
  // so a request that starts with the same tokens (a system prompt, an earlier chat turn)
  // copies those positions instead of computing them.
  bool prefix_cache = true;
  int prefix_cache_entries = 64;
  // How CPU sequences hold keys and values (serving.kv-cache-type); fp16 halves the cache and
  // the bytes attention reads per step. GPU sequences keep the device's own (fp32) cache.
  engine::KvType kv_type = engine::KvType::kF16;
};

struct SchedulerStats {
  int running = 0, waiting = 0;
  uint64_t kv_bytes_in_use = 0;
  uint64_t steps = 0, tokens_generated = 0;
  uint64_t prompt_tokens = 0, prefix_hit_tokens = 0;  // prompt positions admitted, and those copied from the prefix cache
  int cached_prefixes = 0;
  uint64_t prefix_cache_bytes = 0;
};

// A model's copy on a GPU and the device context the scheduler runs it on (its own stream).
struct GpuExecution {
  std::unique_ptr<engine::GpuDevice> device;
  std::unique_ptr<engine::GpuModel> model;
};

class Scheduler {
 public:
  Scheduler(std::shared_ptr<const engine::Model> model, std::shared_ptr<const engine::Tokenizer> tokenizer, SchedulerOptions options,
            std::unique_ptr<GpuExecution> gpu = nullptr);
  ~Scheduler();  // cancels everything and joins the thread
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request behind those of its priority or higher. kResourceExhausted when the queue
  // is full (HTTP 429) of requests of its priority or higher; a full queue with a lower-priority
  // request in it gives that one's place (the newest of the lowest) to this one, and the one
  // that gave it up finishes with kResourceExhausted. kInvalidArgument when the prompt cannot
  // fit the context or the KV budget even alone.
  Status submit(const std::shared_ptr<Request>& r);
  // The embedding of a token sequence: the mean of its final hidden states (after the output
  // norm), L2-normalised. Runs on the scheduler thread between two steps (the runner and its
  // threads are the scheduler's); blocks the caller until done.
  Result<std::vector<float>> embed(const std::vector<int32_t>& tokens);
  SchedulerStats stats() const;
  int context() const { return context_; }
  const engine::Model& model() const { return *model_; }
  const engine::Tokenizer& tokenizer() const { return *tok_; }
  // "cpu", or the GPU: "cuda:0 NVIDIA H200 (0000:41:00.0)" (the PCI address llmopsctl topology shows).
  std::string device() const;
  const char* kv_cache_type() const { return gpu_ ? "f32" : engine::kv_type_name(opt_.kv_type); }

 private:
  struct Seq;
  // One row of a step's batch, before it becomes the CPU's or the GPU's batch token.
  struct Row {
    Seq* seq;
    int32_t token;
    int pos;
    bool logits;
  };
  Result<const float*> run(const std::vector<Row>& rows);
  // On a GPU, when no asking row wants logprobs: the next tokens sampled on the device (plain
  // greedy rows through its argmax), so only token ids cross the bus. wants: each asking
  // row's sequence, in order.
  Result<std::vector<int32_t>> run_on_device(const std::vector<Row>& rows, const std::vector<Seq*>& wants);
  void loop();
  void admit();
  bool step();
  void emit(Seq& s, int32_t token, const float* logits);
  uint64_t kv_bytes(int positions) const;  // one sequence's cache, on this scheduler's device

  std::shared_ptr<const engine::Model> model_;
  std::shared_ptr<const engine::Tokenizer> tok_;
  SchedulerOptions opt_;
  int context_;
  engine::ThreadPool pool_;
  engine::Runner runner_;
  std::unique_ptr<GpuExecution> gpu_;
  std::unique_ptr<engine::GpuRunner> gpu_runner_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Request>> waiting_;
  std::deque<std::function<void()>> exclusive_;  // work run on the scheduler thread between steps
  std::vector<std::unique_ptr<Seq>> running_;  // scheduler thread only (sizes mirrored in stats_)
  // The prefix cache (scheduler thread only): finished sequences' caches and their tokens.
  struct CachedPrefix {
    std::vector<int32_t> tokens;  // those whose K and V are in the session
    std::unique_ptr<engine::Session> session;
    std::unique_ptr<engine::GpuSession> gpu_session;
    uint64_t bytes = 0;
    uint64_t last_used = 0;
  };
  std::vector<CachedPrefix> cache_;
  uint64_t cache_bytes_ = 0, cache_clock_ = 0;
  void cache_finished(Seq& s);
  void reuse_prefix(Seq& s);
  void evict_lru();
  SchedulerStats stats_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace llmops::serving
