// Hyperparameter search: a search run holds the trial configurations; its job runs each trial
// as a child training job (not registered as a model: its losses and cost are the result) and
// ranks them by validation loss (training loss where the data has no validation split).
//
//   grid     every combination of the space's values
//   random   `trials` distinct combinations, drawn with the seed
//   asha     successive halving: `trials` combinations run min_steps steps; the best 1/eta go on
//            with eta times the steps, and so on until one is left (synchronous rungs, each
//            trial trained afresh at its rung's budget)
//
// The child jobs need a free job worker beside the search's own ([jobs] workers ≥ 2); a trial
// that waits a minute in the queue fails the search saying so. Cancelling the search lets the
// running trial finish and starts no other.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <set>
#include <thread>

#include "tuning/state.h"

namespace llmops::tuning {
namespace {

uint64_t now_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

const std::set<std::string> kSearchable = {"lr", "rank", "alpha", "dropout", "epochs", "batch", "weight_decay", "steps", "warmup"};

// Every combination of the space's values, in a fixed order.
std::vector<Json> grid(const Json& space) {
  std::vector<Json> out = {Json::object()};
  for (const auto& [k, values] : space.items()) {
    std::vector<Json> next;
    for (const auto& partial : out) {
      for (const auto& v : values) {
        Json c = partial;
        c[k] = v;
        next.push_back(c);
      }
    }
    out.swap(next);
  }
  return out;
}

double trial_loss(const Json& child) {
  const Json& r = object_member(child, "results");
  for (const char* k : {"best_validation_loss", "final_validation_loss", "final_train_loss"}) {
    if (r.contains(k) && r[k].is_number()) return r[k].get<double>();
  }
  return INFINITY;
}

}  // namespace

Result<Json> prepare_search(State* s, const Json& req, const std::string& caller) {
  if (!req.is_object()) return invalid_argument("the request body must be a JSON object");
  const std::string strategy = req.value("strategy", "grid");
  if (strategy != "grid" && strategy != "random" && strategy != "asha") return invalid_argument("--strategy is grid, random or asha");
  const Json space = req.value("space", Json::object());
  if (!space.is_object() || space.empty()) return invalid_argument("give a search space: --space lr=0.001,0.003 rank=4,8 (or a JSON object)");
  for (const auto& [k, v] : space.items()) {
    if (!kSearchable.count(k)) return invalid_argument("'" + k + "' cannot be searched; the searchable settings are lr, rank, alpha, dropout, epochs, batch, weight_decay, steps, warmup");
    if (!v.is_array() || v.empty()) return invalid_argument("the space's '" + k + "' must be a non-empty list of values");
  }
  std::vector<Json> configs = grid(space);
  if (configs.size() > 1000) return invalid_argument("the space has " + std::to_string(configs.size()) + " combinations; at most 1000");
  const uint64_t seed = req.value("seed", uint64_t{0});
  const int trials = req.value("trials", 0);
  if (strategy != "grid" && trials > 0 && static_cast<size_t>(trials) < configs.size()) {
    std::mt19937_64 rng(seed);
    for (size_t i = configs.size(); i > 1; --i) std::swap(configs[i - 1], configs[std::uniform_int_distribution<size_t>(0, i - 1)(rng)]);
    configs.resize(static_cast<size_t>(trials));
  }
  const int eta = req.value("eta", 3);
  const int min_steps = req.value("min_steps", 20);
  if (strategy == "asha" && (eta < 2 || min_steps < 1)) return invalid_argument("asha needs --eta ≥ 2 and --min-steps ≥ 1");
  // The fixed settings: everything but the search's own keys.
  Json fixed = req;
  for (const char* k : {"strategy", "space", "trials", "eta", "min_steps"}) fixed.erase(k);
  for (const auto& c : configs) {
    Json merged = fixed;
    for (const auto& [k, v] : c.items()) merged[k] = v;
    LLMOPS_RETURN_IF_ERROR(check_hyperparameters(merged).with_context("trial " + dump_json(c)));
  }
  LLMOPS_ASSIGN_OR_RETURN(peers::ModelRef model, peers::resolve_model(s->sdk(), fixed.value("base", "")));
  LLMOPS_ASSIGN_OR_RETURN(peers::DatasetRef d, peers::resolve_dataset(s->sdk(), fixed.value("data", "")));
  Json run = {{"kind", "search"}, {"status", "queued"}, {"created_ms", now_ms()}, {"created_by", caller}, {"strategy", strategy},
              {"space", space}, {"configs", configs}, {"fixed", fixed}, {"eta", eta}, {"min_steps", min_steps},
              {"base", {{"name", model.name}}}, {"data", {{"ref", d.ref}}}};
  LLMOPS_ASSIGN_OR_RETURN(uint64_t id, s->runs->create(run));
  run["id"] = id;
  return run;
}

llmops_code run_search_job(void* user, llmops_job* job, llmops_error* err) {
  auto* s = static_cast<State*>(user);
  const llmops_host_api* h = s->host;
  return runs::run_job(*s->runs, h->job_params(job), err, [&](uint64_t id, Json& run) -> llmops_code {
    auto finish = [&](const std::string& status, const Status& st) { return runs::finish_run(*s->runs, run, status, st, err); };
    run["status"] = "running";
    run["job"] = h->job_id(job);
    if (!run.contains("trials")) run["trials"] = Json::array();
    (void)s->runs->put(run);
    const std::string strategy = run["strategy"];
    const int eta = run["eta"];
    std::vector<Json> rung_configs = run["configs"].get<std::vector<Json>>();
    int rung = 0;
    const size_t total_trials = [&] {
      if (strategy != "asha") return rung_configs.size();
      size_t n = 0;
      for (size_t k = rung_configs.size(); k >= 1; k = k / static_cast<size_t>(eta)) {
        n += k;
        if (k == 1) break;
      }
      return n;
    }();
    size_t finished = 0;
    while (!rung_configs.empty()) {
      std::vector<std::pair<double, Json>> scored;
      for (const auto& config : rung_configs) {
        if (h->job_cancelled(job) || h->job_stopping(job)) return finish("cancelled", cancelled("the search was stopped after " + std::to_string(finished) + " trials"));
        // A resumed search skips the trials it already has for this rung.
        const Json* have = nullptr;
        for (const auto& t : run["trials"]) {
          if (t["rung"] == rung && t["config"] == config && t["status"] == "done") have = &t;
        }
        if (have != nullptr) {
          scored.emplace_back((*have)["loss"].is_number() ? (*have)["loss"].get<double>() : INFINITY, config);
          ++finished;
          continue;
        }
        Json child = run["fixed"];
        for (const auto& [k, v] : config.items()) child[k] = v;
        if (strategy == "asha") child["steps"] = run["min_steps"].get<int64_t>() * static_cast<int64_t>(std::pow(eta, rung));
        child["register"] = false;
        child["parent"] = id;
        child.erase("output");
        auto prepared = prepare_training(s, child, "search:" + std::to_string(id));
        if (!prepared.ok()) return finish("failed", prepared.status().with_context("trial " + dump_json(config)));
        const uint64_t child_id = (*prepared)["id"];
        uint64_t child_job = 0;
        llmops_error e{};
        if (h->job_submit(s->ctx, "train", dump_json(Json{{"run", child_id}}).c_str(), &child_job, &e) != LLMOPS_OK) {
          return finish("failed", Status(static_cast<Code>(e.code), std::string("queuing a trial: ") + e.message));
        }
        h->job_progress(job, static_cast<double>(finished), static_cast<double>(total_trials),
                        ("trial " + std::to_string(finished + 1) + "/" + std::to_string(total_trials) + " (run " + std::to_string(child_id) + ")").c_str());
        Json result;
        const auto queued_at = std::chrono::steady_clock::now();
        while (true) {
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          auto c = s->runs->get(child_id);
          if (!c.ok()) return finish("failed", c.status());
          const std::string st = c->value("status", "");
          if (st == "done" || st == "failed" || st == "cancelled") {
            result = *c;
            break;
          }
          if (st == "queued" && std::chrono::steady_clock::now() - queued_at > std::chrono::seconds(60)) {
            return finish("failed", unavailable("trial run " + std::to_string(child_id) + " waited a minute for a job worker: a search needs "
                                                "[jobs] workers of 2 or more (one for the search, one for its trials)"));
          }
        }
        const double loss = result.value("status", "") == "done" ? trial_loss(result) : INFINITY;
        const Json& r = object_member(result, "results");
        run["trials"].push_back({{"rung", rung}, {"config", config}, {"run", child_id}, {"status", result.value("status", "")},
                                 {"loss", std::isfinite(loss) ? Json(loss) : Json(nullptr)},
                                 {"steps", result["plan"].value("steps", 0)}, {"seconds", r.value("seconds", 0.0)},
                                 {"cpu_seconds", r.value("cpu_seconds", 0.0)}, {"energy_joules", r.value("energy_joules", 0.0)},
                                 {"energy_source", r.value("energy_source", "")}, {"tokens", r.value("tokens", uint64_t{0})},
                                 {"error", result.value("error", "")}});
        (void)s->runs->put(run);
        scored.emplace_back(loss, config);
        ++finished;
      }
      if (strategy != "asha" || scored.size() <= 1) break;
      // Successive halving: the best 1/eta go on with eta times the steps.
      std::stable_sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      const size_t keep = std::max<size_t>(1, scored.size() / static_cast<size_t>(eta));
      rung_configs.clear();
      for (size_t k = 0; k < keep; ++k) rung_configs.push_back(scored[k].second);
      ++rung;
    }
    // The best: the lowest loss at the highest rung reached.
    const Json* best = nullptr;
    for (const auto& t : run["trials"]) {
      if (!t["loss"].is_number()) continue;
      if (best == nullptr || t["rung"].get<int>() > (*best)["rung"].get<int>() ||
          (t["rung"] == (*best)["rung"] && t["loss"].get<double>() < (*best)["loss"].get<double>())) {
        best = &t;
      }
    }
    if (best == nullptr) return finish("failed", failed_precondition("no trial finished with a loss; see the trials' errors"));
    run["best"] = *best;
    return finish("done", ok_status());
  });
}

}  // namespace llmops::tuning
