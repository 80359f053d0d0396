#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

namespace llmops::engine {

Sampler::Sampler(int vocab_size, SamplingParams params) : vocab_size_(vocab_size), p_(params), rng_(params.seed) {}

int32_t Sampler::sample(const float* logits, const std::vector<int32_t>& history) {
  const bool penalties = p_.repetition_penalty != 1.0f || p_.frequency_penalty != 0.0f || p_.presence_penalty != 0.0f;
  if (!penalties && p_.temperature <= 0.0f) {
    // Greedy without penalties: the first largest logit, read in place (no copy of the vocabulary).
    int32_t best = 0;
    float top = logits[0];
    for (int32_t i = 1; i < vocab_size_; ++i) {
      if (logits[i] > top) top = logits[i], best = i;
    }
    return best;
  }
  work_.assign(logits, logits + vocab_size_);
  if (penalties) {
    std::unordered_map<int32_t, int> counts;
    for (int32_t t : history) {
      if (t >= 0 && t < vocab_size_) ++counts[t];
    }
    for (auto [t, n] : counts) {
      float& l = work_[static_cast<size_t>(t)];
      if (p_.repetition_penalty != 1.0f) l = l > 0 ? l / p_.repetition_penalty : l * p_.repetition_penalty;
      l -= static_cast<float>(n) * p_.frequency_penalty + p_.presence_penalty;
    }
  }
  if (p_.temperature <= 0.0f) {
    return static_cast<int32_t>(std::max_element(work_.begin(), work_.end()) - work_.begin());
  }
  // Softmax at temperature, over candidates sorted by probability.
  order_.resize(static_cast<size_t>(vocab_size_));
  for (int i = 0; i < vocab_size_; ++i) order_[static_cast<size_t>(i)] = i;
  size_t keep = order_.size();
  if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < keep) keep = static_cast<size_t>(p_.top_k);
  std::partial_sort(order_.begin(), order_.begin() + static_cast<long>(keep), order_.end(),
                    [&](int32_t a, int32_t b) { return work_[static_cast<size_t>(a)] > work_[static_cast<size_t>(b)]; });
  order_.resize(keep);
  float max = work_[static_cast<size_t>(order_[0])];
  std::vector<float> probs(keep);
  float sum = 0.0f;
  for (size_t i = 0; i < keep; ++i) {
    probs[i] = std::exp((work_[static_cast<size_t>(order_[i])] - max) / p_.temperature);
    sum += probs[i];
  }
  for (auto& p : probs) p /= sum;
  if (p_.min_p > 0.0f) {
    size_t n = 1;
    while (n < keep && probs[n] >= p_.min_p * probs[0]) ++n;
    keep = n;
  }
  if (p_.top_p < 1.0f) {
    float cum = 0.0f;
    size_t n = 0;
    while (n < keep) {
      cum += probs[n++];
      if (cum >= p_.top_p) break;
    }
    keep = n;
  }
  float total = 0.0f;
  for (size_t i = 0; i < keep; ++i) total += probs[i];
  float r = std::uniform_real_distribution<float>(0.0f, total)(rng_);
  for (size_t i = 0; i < keep; ++i) {
    r -= probs[i];
    if (r <= 0.0f) return order_[i];
  }
  return order_[keep - 1];
}

}  // namespace llmops::engine
