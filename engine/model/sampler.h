// Token sampling from logits: greedy at temperature 0, otherwise temperature, top-k, top-p,
// min-p and repetition/frequency/presence penalties, from a seeded generator (same seed, same
// tokens). One sampler per sequence; not thread-safe.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace llmops::engine {

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy (argmax)
  int top_k = 0;             // 0: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off; keep tokens with p >= min_p * p_max
  float repetition_penalty = 1.0f;  // >1 discourages tokens already seen (llama.cpp / CTRL style)
  float frequency_penalty = 0.0f;   // OpenAI: minus count × this
  float presence_penalty = 0.0f;    // OpenAI: minus this once a token appeared
  uint64_t seed = 0;

  bool has_penalties() const { return repetition_penalty != 1.0f || frequency_penalty != 0.0f || presence_penalty != 0.0f; }
  // The first largest logit, nothing else: what a device's argmax gives.
  bool plain_greedy() const { return temperature <= 0.0f && !has_penalties(); }
};

class Sampler {
 public:
  Sampler(int vocab_size, SamplingParams params);
  // history: the tokens so far (prompt and generated), for the penalties.
  int32_t sample(const float* logits, const std::vector<int32_t>& history);

 private:
  int vocab_size_;
  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<float> work_;
  std::vector<int32_t> order_;
};

}  // namespace llmops::engine
