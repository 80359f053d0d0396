#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

namespace llmops::engine {

Sampler::Sampler(int vocab_size, SamplingParams params) : vocab_size_(vocab_size), p_(params), rng_(params.seed) {}

int32_t Sampler::sample(const float* logits, const std::vector<int32_t>& history) {
  const bool penalties = p_.has_penalties();
  if (p_.plain_greedy()) {
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
  // Softmax at temperature, unnormalised in place: the largest is exp(0) = 1.
  const float max = *std::max_element(work_.begin(), work_.end());
  float sum = 0.0f;
  for (float& l : work_) {
    l = std::exp((l - max) / p_.temperature);
    sum += l;
  }
  if (p_.top_k <= 0 && p_.top_p >= 1.0f && p_.min_p <= 0.0f) {
    // No cut: a draw from the whole distribution needs no ordering.
    float r = std::uniform_real_distribution<float>(0.0f, sum)(rng_);
    for (int32_t i = 0; i < vocab_size_; ++i) {
      r -= work_[static_cast<size_t>(i)];
      if (r <= 0.0f) return i;
    }
    return vocab_size_ - 1;
  }
  // Candidates in descending probability, as few as decide the cuts: top_k's k (selected in linear
  // time), else those above a threshold lowered until the nucleus (top_p) and the min_p cut both
  // fall among them. Everything below the threshold is smaller than everything above it, so the
  // sorted candidates are the sorted vocabulary's first entries. Sorting all 32,000 took ~1.5 ms
  // a token; a few hundred candidates take microseconds.
  auto by_probability = [&](int32_t a, int32_t b) { return work_[static_cast<size_t>(a)] > work_[static_cast<size_t>(b)]; };
  float norm = sum;  // probabilities are normalised over the top-k when there is one
  if (p_.top_k > 0 && p_.top_k < vocab_size_) {
    order_.resize(static_cast<size_t>(vocab_size_));
    for (int i = 0; i < vocab_size_; ++i) order_[static_cast<size_t>(i)] = i;
    std::nth_element(order_.begin(), order_.begin() + p_.top_k - 1, order_.end(), by_probability);
    order_.resize(static_cast<size_t>(p_.top_k));
    std::sort(order_.begin(), order_.end(), by_probability);
    norm = 0.0f;
    for (int32_t t : order_) norm += work_[static_cast<size_t>(t)];
  } else {
    for (int shift = 8;; shift += 8) {
      const float floor = shift >= 128 ? 0.0f : std::ldexp(1.0f, -shift);
      order_.clear();
      float mass = 0.0f;
      for (int32_t i = 0; i < vocab_size_; ++i) {
        if (work_[static_cast<size_t>(i)] >= floor) order_.push_back(i), mass += work_[static_cast<size_t>(i)];
      }
      const bool min_p_decided = p_.min_p <= 0.0f || floor <= p_.min_p;
      const bool top_p_decided = p_.top_p >= 1.0f || mass >= p_.top_p * sum;
      if ((min_p_decided && top_p_decided) || floor == 0.0f) break;
    }
    std::sort(order_.begin(), order_.end(), by_probability);
  }
  size_t keep = order_.size();
  if (p_.min_p > 0.0f) {
    size_t n = 1;  // the largest is 1: keep those of at least min_p
    while (n < keep && work_[static_cast<size_t>(order_[n])] / work_[static_cast<size_t>(order_[0])] >= p_.min_p) ++n;
    keep = n;
  }
  if (p_.top_p < 1.0f) {
    float cum = 0.0f;
    size_t n = 0;
    while (n < keep) {
      cum += work_[static_cast<size_t>(order_[n++])] / norm;
      if (cum >= p_.top_p) break;
    }
    keep = n;
  }
  float total = 0.0f;
  for (size_t i = 0; i < keep; ++i) total += work_[static_cast<size_t>(order_[i])];
  float r = std::uniform_real_distribution<float>(0.0f, total)(rng_);
  for (size_t i = 0; i < keep; ++i) {
    r -= work_[static_cast<size_t>(order_[i])];
    if (r <= 0.0f) return order_[i];
  }
  return order_[keep - 1];
}

}  // namespace llmops::engine
