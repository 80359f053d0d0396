#include "eval/bootstrap.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace llmops::eval {

PairedResult paired_bootstrap(const Metric& m, const std::vector<std::vector<double>>& stats_a,
                              const std::vector<std::vector<double>>& stats_b, int samples, uint64_t seed) {
  std::vector<size_t> idx;
  for (size_t i = 0; i < std::min(stats_a.size(), stats_b.size()); ++i) {
    if (!stats_a[i].empty() && !stats_b[i].empty()) idx.push_back(i);
  }
  PairedResult r;
  r.examples = idx.size();
  r.samples = samples;
  if (idx.empty()) return r;
  std::vector<double> sum_a, sum_b;
  for (size_t i : idx) add_stats(sum_a, stats_a[i]), add_stats(sum_b, stats_b[i]);
  r.a = m.aggregate(sum_a);
  r.b = m.aggregate(sum_b);
  r.delta = r.b - r.a;
  if (samples <= 0) return r;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, idx.size() - 1);
  std::vector<double> deltas;
  deltas.reserve(samples);
  for (int s = 0; s < samples; ++s) {
    std::fill(sum_a.begin(), sum_a.end(), 0.0);
    std::fill(sum_b.begin(), sum_b.end(), 0.0);
    for (size_t k = 0; k < idx.size(); ++k) {
      size_t i = idx[pick(rng)];
      add_stats(sum_a, stats_a[i]);
      add_stats(sum_b, stats_b[i]);
    }
    deltas.push_back(m.aggregate(sum_b) - m.aggregate(sum_a));
  }
  int extreme = 0;
  for (double d : deltas) extreme += std::fabs(d - r.delta) >= std::fabs(r.delta) ? 1 : 0;
  r.p_value = (1.0 + extreme) / (1.0 + samples);
  std::sort(deltas.begin(), deltas.end());
  auto pct = [&](double q) {
    double pos = q * (deltas.size() - 1);
    size_t lo = static_cast<size_t>(std::floor(pos));
    size_t hi = std::min(lo + 1, deltas.size() - 1);
    return deltas[lo] + (pos - lo) * (deltas[hi] - deltas[lo]);
  };
  r.ci_low = pct(0.025);
  r.ci_high = pct(0.975);
  return r;
}

}  // namespace llmops::eval
