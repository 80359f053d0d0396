// Paired bootstrap resampling (Koehn 2004) of the difference between two systems scored on the
// same examples: resample the examples with replacement, score both systems on each sample from
// their summed statistics (so corpus BLEU stays corpus BLEU), and read the 95% interval of the
// difference from the percentiles. The p-value is two-sided, from the resampled differences
// shifted to the null (centred on zero): how often a difference at least as large as the one
// observed arises by chance. Pure and seeded: the same inputs give the same answer.
#pragma once

#include <cstdint>
#include <vector>

#include "eval/metrics.h"

namespace llmops::eval {

struct PairedResult {
  double a = 0, b = 0;     // the scores on all examples
  double delta = 0;        // b - a
  double ci_low = 0, ci_high = 0;  // 95% percentile interval of the delta
  double p_value = 1;
  int samples = 0;
  size_t examples = 0;
};

// stats_a[i] and stats_b[i] are the same example's statistics under each system; examples
// where either is empty (left out of the metric) are dropped from both.
PairedResult paired_bootstrap(const Metric& m, const std::vector<std::vector<double>>& stats_a,
                              const std::vector<std::vector<double>>& stats_b, int samples = 1000, uint64_t seed = 12345);

}  // namespace llmops::eval
