// Log-probabilities of the next token, for OpenAI's logprobs/top_logprobs and for scoring.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace llmops::engine {

struct TokenLogprob {
  int32_t id;
  float logprob;
};

// log softmax(logits)[id].
float token_logprob(const float* logits, int vocab_size, int32_t id);
// The k most likely tokens, most likely first (k is clamped to the vocabulary).
std::vector<TokenLogprob> top_logprobs(const float* logits, int vocab_size, int k);

// Stop strings: where the earliest stop that ends within the last `new_bytes` bytes of text
// begins (the text to return ends there, the stop excluded as OpenAI does); npos when none.
size_t find_stop(const std::string& text, size_t new_bytes, const std::vector<std::string>& stops);

}  // namespace llmops::engine
