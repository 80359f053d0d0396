// The eval stage's metrics on any text: sacreBLEU's 13a tokenizer and chrF, rouge-score's
// tokenizer and Porter stemmer, SQuAD's normalisation. Any bytes (bad UTF-8 included) give
// finite scores in each metric's range, never a crash or a hang. The input is a hypothesis and
// references separated by NUL bytes.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "eval/metrics.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string all(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts;
  size_t at = 0;
  for (size_t nul; (nul = all.find('\0', at)) != std::string::npos; at = nul + 1) parts.push_back(all.substr(at, nul - at));
  parts.push_back(all.substr(at));
  const std::string hyp = parts[0];
  std::vector<std::string> refs(parts.begin() + 1, parts.end());
  if (refs.empty()) refs.push_back(hyp);
  for (bool stem : {false, true}) {
    llmops::eval::MetricOptions opt;
    opt.rouge_stemmer = stem;
    for (const auto& name : llmops::eval::reference_metric_names()) {
      auto m = llmops::eval::make_metric(name, opt);
      if (!m.ok()) std::abort();
      std::vector<double> st = (*m)->example_stats(hyp, refs);
      if (st.empty()) continue;
      const double s = (*m)->example_score(st), c = (*m)->aggregate(st);
      const double top = name.rfind("rouge", 0) == 0 ? 1.0 : 100.0;
      for (double v : {s, c}) {
        if (!std::isfinite(v) || v < 0 || v > top + 1e-9) std::abort();
      }
    }
  }
  return 0;
}
