#include "model/logprobs.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace llmops::engine {
namespace {

// log Σ exp(logits), computed stably.
double log_sum_exp(const float* logits, int n) {
  float max = *std::max_element(logits, logits + n);
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i]) - max);
  return max + std::log(sum);
}

}  // namespace

float token_logprob(const float* logits, int vocab_size, int32_t id) {
  return static_cast<float>(logits[id] - log_sum_exp(logits, vocab_size));
}

std::vector<TokenLogprob> top_logprobs(const float* logits, int vocab_size, int k) {
  k = std::clamp(k, 0, vocab_size);
  std::vector<int32_t> ids(static_cast<size_t>(vocab_size));
  std::iota(ids.begin(), ids.end(), 0);
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  double lse = log_sum_exp(logits, vocab_size);
  std::vector<TokenLogprob> out;
  for (int i = 0; i < k; ++i) out.push_back({ids[static_cast<size_t>(i)], static_cast<float>(logits[ids[static_cast<size_t>(i)]] - lse)});
  return out;
}

size_t find_stop(const std::string& text, size_t new_bytes, const std::vector<std::string>& stops) {
  size_t best = std::string::npos;
  for (const auto& stop : stops) {
    if (stop.empty()) continue;
    // A match must end inside the new bytes: start no earlier than that minus the stop's length.
    size_t from = text.size() > new_bytes + stop.size() ? text.size() - new_bytes - stop.size() + 1 : 0;
    size_t at = text.find(stop, from);
    if (at != std::string::npos) best = std::min(best, at);
  }
  return best;
}

}  // namespace llmops::engine
