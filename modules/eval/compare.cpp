// Two runs side by side: for each metric both scores, the delta (B − A), a paired bootstrap 95%
// interval and p-value over the examples both runs scored, and the examples whose score moved
// most. Runs on different data (content hashes differ) cannot be paired and are refused.
#include <algorithm>
#include <cmath>
#include <map>

#include "eval/bootstrap.h"
#include "eval/metrics.h"
#include "eval/state.h"

namespace llmops::eval {
namespace {

struct Side {
  Json run;
  std::map<uint64_t, Json> examples;
};

Result<Side> load(State* s, uint64_t id) {
  Side side;
  LLMOPS_ASSIGN_OR_RETURN(side.run, s->runs->get(id));
  LLMOPS_RETURN_IF_ERROR(s->runs->for_each_example(id, [&](Json& e) {
    // The index first: nlohmann's operator= takes its argument by value, and the right side of
    // an assignment is evaluated first, so e would already be moved from.
    const uint64_t i = e["i"].get<uint64_t>();
    side.examples[i] = std::move(e);
    return true;
  }));
  if (side.examples.empty()) return failed_precondition("run " + std::to_string(id) + " has no scored examples yet (status " + side.run.value("status", "?") + ")");
  return side;
}

std::unique_ptr<Metric> metric_for(const std::string& name, const Json& run) {
  if (name == "ppl") return std::make_unique<PerplexityMetric>();
  if (name == "judge") return std::make_unique<JudgeMetric>();
  MetricOptions o;
  o.rouge_stemmer = run["params"].value("rouge_stemmer", false);
  auto m = make_metric(name, o);
  return m.ok() ? std::move(*m) : nullptr;
}

}  // namespace

Result<Json> compare_runs(State* s, uint64_t a_id, uint64_t b_id, const std::string& focus_metric, int samples, size_t show) {
  LLMOPS_ASSIGN_OR_RETURN(Side a, load(s, a_id));
  LLMOPS_ASSIGN_OR_RETURN(Side b, load(s, b_id));
  if (a.run["data"].value("content_hash", "") != b.run["data"].value("content_hash", "")) {
    return failed_precondition("runs " + std::to_string(a_id) + " (" + a.run["data"].value("ref", "") + ") and " + std::to_string(b_id) + " (" +
                               b.run["data"].value("ref", "") + ") were scored on different data; compare runs on the same dataset version");
  }
  std::vector<std::string> names;
  for (const auto& [name, r] : object_member(a.run, "results").items()) {
    if (b.run.value("results", Json::object()).contains(name)) names.push_back(name);
  }
  if (names.empty()) return failed_precondition("runs " + std::to_string(a_id) + " and " + std::to_string(b_id) + " share no metric");
  std::vector<uint64_t> common;
  for (const auto& [i, e] : a.examples) {
    if (b.examples.count(i) != 0) common.push_back(i);
  }
  Json rows = Json::array();
  for (const auto& name : names) {
    auto metric = metric_for(name, a.run);
    if (metric == nullptr) continue;
    std::vector<std::vector<double>> sa, sb;
    for (uint64_t i : common) {
      const Json& ea = a.examples[i]["stats"];
      const Json& eb = b.examples[i]["stats"];
      sa.push_back(ea.contains(name) ? ea[name].get<std::vector<double>>() : std::vector<double>{});
      sb.push_back(eb.contains(name) ? eb[name].get<std::vector<double>>() : std::vector<double>{});
    }
    PairedResult r = paired_bootstrap(*metric, sa, sb, samples, 12345);
    const bool significant = r.p_value < 0.05;
    std::string better = "neither";
    if (significant && r.delta != 0) better = (r.delta > 0) == metric->higher_is_better() ? "B" : "A";
    rows.push_back({{"metric", name}, {"a", r.a}, {"b", r.b}, {"delta", r.delta}, {"ci95", {r.ci_low, r.ci_high}},
                    {"p_value", r.p_value}, {"significant", significant}, {"better", better},
                    {"higher_is_better", metric->higher_is_better()}, {"examples", r.examples}, {"samples", r.samples}});
  }
  // The examples whose score on the focus metric moved most.
  const std::string focus = focus_metric.empty() ? names.front() : focus_metric;
  if (std::find(names.begin(), names.end(), focus) == names.end()) {
    return invalid_argument("metric '" + focus + "' is not in both runs; they share " + [&] {
      std::string l;
      for (const auto& n : names) l += (l.empty() ? "" : ", ") + n;
      return l;
    }());
  }
  struct Moved {
    uint64_t i;
    double sa, sb;
  };
  std::vector<Moved> moved;
  for (uint64_t i : common) {
    const Json& xa = a.examples[i]["scores"];
    const Json& xb = b.examples[i]["scores"];
    if (xa.contains(focus) && xb.contains(focus)) moved.push_back({i, xa[focus].get<double>(), xb[focus].get<double>()});
  }
  std::stable_sort(moved.begin(), moved.end(), [](const Moved& x, const Moved& y) { return std::fabs(x.sb - x.sa) > std::fabs(y.sb - y.sa); });
  Json changed = Json::array();
  for (size_t k = 0; k < moved.size() && k < show; ++k) {
    if (moved[k].sb == moved[k].sa) break;
    const Json& ea = a.examples[moved[k].i];
    const Json& eb = b.examples[moved[k].i];
    Json row = {{"i", moved[k].i}, {"a", moved[k].sa}, {"b", moved[k].sb}, {"delta", moved[k].sb - moved[k].sa},
                {"prediction_a", ea.value("prediction", "")}, {"prediction_b", eb.value("prediction", "")},
                {"references", ea.value("references", Json::array())}};
    if (ea.contains("prompt")) row["prompt"] = ea["prompt"];
    changed.push_back(row);
  }
  auto summary = [](const Json& run) {
    Json j = {{"id", run["id"]}, {"kind", run.value("kind", "")}, {"status", run.value("status", "")}, {"data", run["data"].value("ref", "")}};
    if (run.contains("model")) j["model"] = run["model"].value("name", "");
    return j;
  };
  return Json{{"a", summary(a.run)}, {"b", summary(b.run)}, {"paired_examples", common.size()}, {"metrics", rows},
              {"focus_metric", focus}, {"most_changed", changed},
              {"method", "paired bootstrap (Koehn 2004), " + std::to_string(samples) + " resamples, seed 12345; two-sided p from the null-centred differences"}};
}

}  // namespace llmops::eval
