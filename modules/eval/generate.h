// The model work of an eval run, on the engine directly (the run's own threads, not the
// serving stage's): batched generation of many prompts, continuously refilled as sequences
// finish, and the log-likelihood of texts for perplexity over a sliding window.
// One thread at a time per object; the model and tokenizer are shared read-only.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/sampler.h"
#include "status.h"
#include "tokenizer/tokenizer.h"

namespace llmops::eval {

struct Generated {
  std::string text;
  int prompt_tokens = 0, completion_tokens = 0;
  bool prompt_truncated = false;  // the prompt was cut from the left to leave room to generate
  std::string finish_reason;      // "stop" (end of generation or a stop string) | "length"
};

struct GenerateOptions {
  int max_tokens = 128;
  int max_batch = 16;  // sequences decoded together
  engine::SamplingParams sampling;  // temperature 0: greedy
  std::vector<std::string> stop;
};

// Generates a completion of each prompt. done(i, result) is called as each finishes (in any
// order); cancelled() is checked every step, and a cancel returns kCancelled after the
// finished ones were reported. Seeded sampling gives each prompt its own stream (seed + i), so
// results do not depend on the batching.
Status generate_all(const engine::Model& model, const engine::Tokenizer& tok, engine::ThreadPool* pool,
                    const std::vector<std::string>& prompts, const GenerateOptions& opt,
                    const std::function<void(size_t, Generated)>& done, const std::function<bool()>& cancelled);

// The negative log-likelihood (nats) of text's tokens under the model, the tokens scored and
// the text's bytes. The text is tokenized with BOS when the model uses one (the first token is
// then scored given BOS; without BOS it is not scored). Texts longer than the context run in
// windows of `window` tokens advancing by `stride`: each token is scored once, with at least
// window - stride tokens of context after the first window (Hugging Face's perplexity recipe).
struct Likelihood {
  double nll = 0;
  uint64_t tokens = 0, bytes = 0;
};
Result<Likelihood> likelihood(const engine::Model& model, const engine::Tokenizer& tok, engine::ThreadPool* pool,
                              const std::string& text, int window, int stride);

}  // namespace llmops::eval
