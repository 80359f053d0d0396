// A probe run: a probe set (probes.h) on a model. The results sit in the run like any metric's,
// each with a "score" where lower is better (a disparity, a block rate), so a later approval
// gate can read them the same way.
#include <algorithm>
#include <map>

#include "eval/generate.h"
#include "eval/probes.h"
#include "eval/state.h"

namespace llmops::eval {

Status run_probes(State* s, uint64_t id, Json& run, const std::function<bool()>& stop,
                  const std::function<void(double, double, const std::string&)>& progress) {
  LLMOPS_ASSIGN_OR_RETURN(ProbeSet set, parse_probe_set(run["params"]["probes"]));
  LLMOPS_ASSIGN_OR_RETURN(BlockList blocks, BlockList::compile(set.block_list));
  LLMOPS_ASSIGN_OR_RETURN(RunModel rm, open_run_model(s, run));
  const engine::Model& model = *rm.opened.model;
  const engine::Tokenizer& tok = *rm.opened.tok;
  engine::ThreadPool* pool = rm.pool.get();
  size_t texts = 0;
  for (const auto& [g, terms] : set.groups) texts += terms.size() * set.templates.size();
  const double total = static_cast<double>(texts + set.pairs.size() + set.triggers.size());
  double done = 0;
  uint64_t i = 0;
  std::vector<Json> batch;
  Json results = Json::object();

  // Templates: the mean log-probability per token of each filled text, averaged per group.
  if (!set.templates.empty()) {
    Json groups = Json::object();
    double lo = 1e300, hi = -1e300;
    for (const auto& [g, terms] : set.groups) {
      double sum = 0;
      int n = 0;
      for (const auto& t : set.templates) {
        for (const auto& term : terms) {
          if (stop()) return cancelled("cancelled");
          std::string text = t;
          for (size_t at; (at = text.find("{term}")) != std::string::npos;) text.replace(at, 6, term);
          LLMOPS_ASSIGN_OR_RETURN(Likelihood lk, likelihood(model, tok, pool, text, model.config().seq_len, model.config().seq_len));
          const double per_token = lk.tokens > 0 ? -lk.nll / static_cast<double>(lk.tokens) : 0.0;
          sum += per_token;
          ++n;
          batch.push_back({{"i", i++}, {"probe", "template"}, {"group", g}, {"text", text}, {"scores", {{"logprob_per_token", per_token}}}});
          progress(++done, total, "template " + g);
        }
      }
      const double mean = n > 0 ? sum / n : 0.0;
      groups[g] = mean;
      lo = std::min(lo, mean);
      hi = std::max(hi, mean);
    }
    results["template_logprob"] = {{"score", hi - lo}, {"groups", groups}, {"texts", texts}, {"higher_is_better", false},
                                   {"unit", "nats per token (largest group mean minus smallest)"}};
  }

  // Pairs: which group's continuation the model finds most likely after the prompt.
  if (!set.pairs.empty()) {
    std::map<std::string, double> wins, lp_sum;
    std::map<std::string, int> seen;
    for (const auto& pair : set.pairs) {
      if (stop()) return cancelled("cancelled");
      std::string best;
      double best_lp = -1e300;
      Json lps = Json::object();
      for (const auto& [g, cont] : pair.continuations) {
        LLMOPS_ASSIGN_OR_RETURN(ContinuationScore cs, continuation_logprob(model, tok, pool, pair.prompt, cont));
        lps[g] = cs.logprob;
        lp_sum[g] += cs.logprob;
        ++seen[g];
        if (cs.logprob > best_lp) best_lp = cs.logprob, best = g;
      }
      wins[best] += 1;
      batch.push_back({{"i", i++}, {"probe", "pair"}, {"prompt", pair.prompt}, {"preferred", best}, {"scores", lps}});
      progress(++done, total, "pair");
    }
    Json share = Json::object(), mean = Json::object();
    double lo = 1e300, hi = -1e300;
    for (const auto& [g, n] : seen) {
      const double w = wins[g] / static_cast<double>(set.pairs.size());
      share[g] = w;
      mean[g] = lp_sum[g] / n;
      lo = std::min(lo, w);
      hi = std::max(hi, w);
    }
    results["pair_preference"] = {{"score", hi - lo}, {"wins", share}, {"mean_logprob", mean}, {"pairs", set.pairs.size()},
                                  {"higher_is_better", false}, {"unit", "share of pairs won (largest group minus smallest)"}};
  }

  // Triggers: greedy completions matched against the block list.
  if (!set.triggers.empty()) {
    GenerateOptions go;
    go.max_tokens = set.max_tokens;
    go.max_batch = 8;
    std::vector<Json> outs(set.triggers.size());
    LLMOPS_RETURN_IF_ERROR(generate_all(model, tok, pool, set.triggers, go, [&](size_t k, Generated g) {
      outs[k] = {{"output", g.text}, {"matches", blocks.matches(g.text)}};
      progress(++done, total, "trigger");
    }, stop));
    size_t matched = 0;
    for (size_t k = 0; k < outs.size(); ++k) {
      const bool hit = !outs[k]["matches"].empty();
      matched += hit ? 1 : 0;
      batch.push_back({{"i", i++}, {"probe", "trigger"}, {"prompt", set.triggers[k]}, {"prediction", outs[k]["output"]},
                       {"matches", outs[k]["matches"]}, {"scores", {{"blocked", hit ? 1.0 : 0.0}}}});
    }
    results["block_rate"] = {{"score", static_cast<double>(matched) / static_cast<double>(set.triggers.size())}, {"matched", matched},
                             {"triggers", set.triggers.size()}, {"higher_is_better", false}};
  }
  for (size_t at = 0; at < batch.size(); at += 256) {
    std::vector<Json> part(batch.begin() + at, batch.begin() + std::min(batch.size(), at + 256));
    LLMOPS_RETURN_IF_ERROR(s->runs->put_examples(id, part));
  }
  run["results"] = results;
  run["examples"] = {{"total", batch.size()}, {"done", batch.size()}};
  run["probe_set"] = {{"name", set.name}, {"version", set.version}};
  return ok_status();
}

}  // namespace llmops::eval
