// Eval runs as durable jobs. prepare_run checks a request against its dataset (and model) and
// stores the run before its job is queued; run_eval_job scores it:
//
//   score  predictions already in the dataset (prediction_field) against reference_field
//   run    generates predictions with a model (template over the record's fields), scores them,
//          and computes perplexity over text_field when "ppl" is asked
//
// Examples are stored in batches as they finish. A resumed job (after a restart) skips the
// examples already stored; a cancelled one keeps them and the run says "cancelled". The
// aggregates are computed at the end from every stored example's statistics.
#include <chrono>
#include <cmath>
#include <map>
#include <set>

#include "data/record.h"
#include "eval/generate.h"
#include "eval/judge.h"
#include "eval/metrics.h"
#include "eval/probes.h"
#include "common/peers.h"
#include "common/training_pool.h"
#include "eval/state.h"
#include "kernels/thread_pool.h"
#include "sha256.h"

namespace llmops::eval {
namespace {

uint64_t now_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

// The fields "{name}" of a template.
std::vector<std::string> template_fields(const std::string& t) {
  std::vector<std::string> out;
  for (size_t i = 0; i < t.size(); ++i) {
    if ((t[i] == '{' || t[i] == '}') && i + 1 < t.size() && t[i + 1] == t[i]) {
      ++i;
      continue;
    }
    if (t[i] != '{') continue;
    size_t close = t.find('}', i);
    if (close == std::string::npos) break;
    out.push_back(t.substr(i + 1, close - i - 1));
    i = close;
  }
  return out;
}

// A record's references: one string, or a list of strings (other values as their JSON text).
std::optional<std::vector<std::string>> references_of(const Json& rec, const std::string& field) {
  auto it = rec.find(field);
  if (it == rec.end() || it->is_null()) return std::nullopt;
  std::vector<std::string> out;
  if (it->is_array() && !(it->size() > 0 && (*it)[0].is_object())) {
    for (const auto& r : *it) out.push_back(r.is_string() ? r.get<std::string>() : dump_json(r));
    return out;
  }
  auto text = data::record_text(rec, field);
  if (text) out.push_back(*text);
  else out.push_back(it->is_string() ? it->get<std::string>() : dump_json(*it));
  return out;
}

struct Metrics {
  std::vector<std::unique_ptr<Metric>> reference;  // scored against references
  bool ppl = false;
  bool judge = false;
};

Result<Metrics> make_metrics(const Json& names, bool rouge_stemmer, bool allow_ppl) {
  Metrics m;
  if (!names.is_array() || names.empty()) return invalid_argument("name at least one metric (--metrics bleu,rougeL,...)");
  std::set<std::string> seen;
  for (const auto& n : names) {
    if (!n.is_string()) return invalid_argument("metrics are names");
    std::string name = n.get<std::string>();
    if (!seen.insert(name).second) continue;
    if (name == "ppl" || name == "perplexity") {
      if (!allow_ppl) return invalid_argument("perplexity needs a model: use llmopsctl eval run, not eval score");
      m.ppl = true;
      continue;
    }
    if (name == "judge") {
      m.judge = true;
      continue;
    }
    MetricOptions o;
    o.rouge_stemmer = rouge_stemmer;
    LLMOPS_ASSIGN_OR_RETURN(auto metric, make_metric(name, o));
    m.reference.push_back(std::move(metric));
  }
  return m;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// Checks that every field the run needs is in the dataset's schema.
Status check_fields(const DatasetRef& d, const std::vector<std::string>& needed) {
  std::vector<std::string> missing;
  for (const auto& f : needed) {
    if (!d.schema.contains(f)) missing.push_back(f);
  }
  if (missing.empty()) return ok_status();
  return invalid_argument(d.ref + " has no field " + join(missing) + ", which the metrics need; its fields are " + field_list(d.schema) +
                          " (choose them with --prediction-field, --reference-field, --text-field or --template)");
}

struct Example {
  uint64_t i = 0;
  std::string prompt, prediction, text;
  std::vector<std::string> references;
  bool has_refs = false, has_text = false;
};

Json score_example(const Metrics& m, const Example& e, const Json& extra) {
  Json j = extra;
  j["i"] = e.i;
  if (!e.prompt.empty()) j["prompt"] = e.prompt;
  j["prediction"] = e.prediction;
  j["references"] = e.references;
  Json scores = Json::object(), stats = Json::object(), skipped = Json::object();
  for (const auto& metric : m.reference) {
    if (!e.has_refs) {
      skipped[metric->name()] = "no reference";
      continue;
    }
    std::vector<double> st = metric->example_stats(e.prediction, e.references);
    if (st.empty()) {
      skipped[metric->name()] = "no non-empty reference (sacreBLEU refuses such a segment)";
      continue;
    }
    scores[metric->name()] = metric->example_score(st);
    stats[metric->name()] = st;
  }
  j["scores"] = scores;
  j["stats"] = stats;
  if (!skipped.empty()) j["skipped"] = skipped;
  return j;
}

// The aggregates of a run from all its stored examples.
Result<Json> aggregate(RunStore& store, uint64_t id, const Metrics& m, const std::string& judge_signature, uint64_t* examples) {
  std::map<std::string, std::vector<double>> sums;
  std::map<std::string, uint64_t> counts, skipped;
  std::map<std::string, std::set<size_t>> nrefs;
  *examples = 0;
  LLMOPS_RETURN_IF_ERROR(store.for_each_example(id, [&](Json& e) {
    ++*examples;
    for (const auto& [name, st] : object_member(e, "stats").items()) {
      add_stats(sums[name], st.get<std::vector<double>>());
      ++counts[name];
      if (name != "ppl") nrefs[name].insert(e.value("references", Json::array()).size());
    }
    for (const auto& [name, why] : object_member(e, "skipped").items()) ++skipped[name];
    return true;
  }));
  Json results = Json::object();
  auto put = [&](const Metric& metric) {
    const auto& sum = sums[metric.name()];
    Json r = {{"score", sum.empty() ? Json(nullptr) : Json(metric.aggregate(sum))},
              {"examples", counts[metric.name()]},
              {"higher_is_better", metric.higher_is_better()}};
    if (skipped[metric.name()] > 0) r["skipped"] = skipped[metric.name()];
    Json details = Json::object();
    if (!sum.empty()) {
      for (const auto& [k, v] : metric.details(sum)) details[k] = v;
    }
    if (!details.empty()) r["details"] = details;
    const auto& nr = nrefs[metric.name()];
    std::string sig = metric.signature(nr.size() == 1 ? static_cast<int>(*nr.begin()) : -1);
    if (!sig.empty()) r["signature"] = sig;
    results[metric.name()] = r;
  };
  for (const auto& metric : m.reference) put(*metric);
  if (m.ppl) put(PerplexityMetric());
  if (m.judge) put(JudgeMetric(judge_signature));
  return results;
}

// The judge settings of a request (with "judge" among the metrics), checked.
Result<JudgeConfig> judge_config(const Json& p) {
  JudgeConfig c;
  c.model = p.value("judge_model", "");
  c.rubric = p.value("rubric", "");
  if (c.model.empty() || c.rubric.empty()) return invalid_argument("the judge metric needs --judge-model NAME and --rubric FILE");
  for (const auto& f : template_fields(c.rubric)) {
    if (f != "prompt" && f != "prediction" && f != "reference") {
      return invalid_argument("the rubric may use {prompt}, {prediction} and {reference}, not {" + f + "}");
    }
  }
  c.rubric_version = p.value("rubric_version", "");
  if (c.rubric_version.empty()) c.rubric_version = sha256_hex(c.rubric).substr(0, 12);
  const std::string scale = p.value("judge_scale", "1-5");
  const size_t dash = scale.find('-');
  try {
    c.low = std::stoi(scale.substr(0, dash));
    c.high = dash == std::string::npos ? -1 : std::stoi(scale.substr(dash + 1));
  } catch (...) {
    c.high = -1;
  }
  if (c.high <= c.low || c.low < 0 || c.high > 100) return invalid_argument("--judge-scale is LOW-HIGH, like 1-5 or 0-10");
  return c;
}

}  // namespace

Result<RunModel> open_run_model(State* s, const Json& run) {
  RunModel rm;
  models::ModelSource src;
  src.name = run["model"]["name"];
  src.format = run["model"]["format"];
  src.chat_source = "registry";
  std::vector<models::StoredFile> files;
  for (const auto& f : run["model"]["files"]) files.push_back({f["name"], f["role"], f["sha256"]});
  rm.hold = std::make_unique<BlobHold>(s->sdk(), files);
  LLMOPS_RETURN_IF_ERROR(rm.hold->status());
  LLMOPS_ASSIGN_OR_RETURN(rm.opened, models::open_stored_model(s->sdk(), src, files, [&](const std::string& m) { s->sdk().warn(m); }, nullptr));
  // The job thread and the pool's workers run on the training pool's CPUs: serving keeps its own.
  rm.pool = runs::training_pool(s->sdk(), s->threads);
  return rm;
}

// A probe run needs a model and a valid probe set; it reads no dataset.
Result<Json> prepare_probe_run(State* s, const Json& req, const std::string& caller) {
  const std::string model = req.value("model", "");
  if (model.empty()) return invalid_argument("name the model: --model NAME (llmopsctl model list shows them)");
  if (!req.contains("probes")) return invalid_argument("give the probe set: --probes FILE (a JSON object)");
  LLMOPS_ASSIGN_OR_RETURN(ProbeSet set, parse_probe_set(req["probes"]));
  LLMOPS_ASSIGN_OR_RETURN(ModelRef mr, resolve_model(s->sdk(), model));
  Json files = Json::array();
  for (const auto& f : mr.files) files.push_back({{"name", f.name}, {"role", f.role}, {"sha256", f.sha256}});
  Json run = {{"kind", "probe"}, {"status", "queued"}, {"created_ms", now_ms()}, {"created_by", caller},
              {"data", {{"ref", "probes:" + set.name + "@" + set.version}, {"content_hash", sha256_hex(dump_json(req["probes"]))}, {"records", 0}}},
              {"model", {{"requested", model}, {"name", mr.name}, {"format", mr.format}, {"arch", mr.arch}, {"files", files}}},
              {"params", {{"probes", req["probes"]}}}};
  LLMOPS_ASSIGN_OR_RETURN(uint64_t id, s->runs->create(run));
  run["id"] = id;
  return run;
}

Result<Json> prepare_run(State* s, const std::string& kind, const Json& req, const std::string& caller) {
  if (!req.is_object()) return invalid_argument("the request body must be a JSON object");
  if (kind == "probe") return prepare_probe_run(s, req, caller);
  const std::string data_spec = req.value("data", "");
  if (data_spec.empty()) return invalid_argument("name the dataset: --data DATASET[@V][:SPLIT]");
  const bool stem = req.value("rouge_stemmer", false);
  // Without --metrics: every reference metric for scoring, the common generation ones for a run.
  const Json default_metrics = kind == "score" ? Json{"bleu", "chrf", "rouge1", "rouge2", "rougeL", "rougeLsum", "em", "f1"} : Json{"bleu", "rougeL", "em"};
  const Json metric_names = req.contains("metrics") ? req["metrics"] : default_metrics;
  LLMOPS_ASSIGN_OR_RETURN(Metrics metrics, make_metrics(metric_names, stem, kind == "run"));
  LLMOPS_ASSIGN_OR_RETURN(DatasetRef d, resolve_dataset(s->sdk(), data_spec));
  if (d.records == 0) return invalid_argument(d.ref + " holds no records: there is nothing to evaluate");
  Json params = {{"metrics", metric_names}, {"rouge_stemmer", stem}, {"limit", req.value("limit", uint64_t{0})}};
  std::vector<std::string> needed;
  const std::string ref_field = req.value("reference_field", "reference");
  const bool rubric_wants_reference = metrics.judge && req.value("rubric", "").find("{reference}") != std::string::npos;
  if (!metrics.reference.empty() || rubric_wants_reference) needed.push_back(ref_field), params["reference_field"] = ref_field;
  Json run = {{"kind", kind}, {"status", "queued"}, {"created_ms", now_ms()}, {"created_by", caller},
              {"data", {{"spec", data_spec}, {"ref", d.ref}, {"content_hash", d.content_hash}, {"records", d.records}, {"split", d.split}}}};
  if (kind == "score") {
    const std::string pf = req.value("prediction_field", "prediction");
    needed.push_back(pf);
    params["prediction_field"] = pf;
  } else if (kind == "run") {
    const std::string model = req.value("model", "");
    if (model.empty()) return invalid_argument("name the model: --model NAME (llmopsctl model list shows them)");
    LLMOPS_ASSIGN_OR_RETURN(ModelRef mr, resolve_model(s->sdk(), model));
    Json files = Json::array();
    for (const auto& f : mr.files) files.push_back({{"name", f.name}, {"role", f.role}, {"sha256", f.sha256}});
    run["model"] = {{"requested", model}, {"name", mr.name}, {"format", mr.format}, {"arch", mr.arch}, {"files", files}};
    if (!metrics.reference.empty() || metrics.judge) {
      const std::string tmpl = req.value("template", "{prompt}");
      for (const auto& f : template_fields(tmpl)) needed.push_back(f);
      params["template"] = tmpl;
      const int max_tokens = req.value("max_tokens", 128);
      if (max_tokens < 1 || max_tokens > 32768) return invalid_argument("--max-tokens must be 1..32768");
      const double temperature = req.value("temperature", 0.0);
      if (temperature < 0 || temperature > 5) return invalid_argument("--temperature must be 0..5");
      params["max_tokens"] = max_tokens;
      params["temperature"] = temperature;
      params["seed"] = req.value("seed", uint64_t{0});
      params["batch"] = std::clamp(req.value("batch", 16), 1, 256);
      params["stop"] = req.value("stop", Json::array());
    }
    if (metrics.ppl) {
      const std::string tf = req.value("text_field", "text");
      needed.push_back(tf);
      params["text_field"] = tf;
      params["window"] = req.value("window", 0);  // 0: the model's context
      params["stride"] = req.value("stride", 0);  // 0: half the window
    }
  } else {
    return invalid_argument("unknown eval kind '" + kind + "'");
  }
  if (metrics.judge) {
    LLMOPS_ASSIGN_OR_RETURN(JudgeConfig jc, judge_config(req));
    LLMOPS_ASSIGN_OR_RETURN(ModelRef judge_model, resolve_model(s->sdk(), jc.model));
    if (kind == "run" && !params.contains("template")) {
      return invalid_argument("the judge grades generated outputs: add a reference metric or --template to generate");
    }
    params["judge_model"] = judge_model.name;
    params["rubric"] = jc.rubric;
    params["rubric_version"] = jc.rubric_version;
    params["judge_scale"] = std::to_string(jc.low) + "-" + std::to_string(jc.high);
  }
  LLMOPS_RETURN_IF_ERROR(check_fields(d, needed));
  if (s->max_examples > 0 && d.records > static_cast<uint64_t>(s->max_examples) && params["limit"].get<uint64_t>() == 0) {
    return invalid_argument(d.ref + " holds " + std::to_string(d.records) + " records, more than eval.max-examples (" +
                            std::to_string(s->max_examples) + "); pass --limit N or raise the setting");
  }
  run["params"] = params;
  LLMOPS_ASSIGN_OR_RETURN(uint64_t id, s->runs->create(run));
  run["id"] = id;
  return run;
}

llmops_code run_eval_job(void* user, llmops_job* job, llmops_error* err) {
  auto* s = static_cast<State*>(user);
  const llmops_host_api* h = s->host;
  return runs::run_job(*s->runs, h->job_params(job), err, [&](uint64_t id, Json& run) -> llmops_code {
    auto fail = [&](const Status& st) { return sdk::fail(err, static_cast<llmops_code>(st.code()), st.message()); };
    const Json p = run["params"];
    const std::string kind = run.value("kind", "score");
    auto finish = [&](const std::string& status, const Status& st) { return runs::finish_run(*s->runs, run, status, st, err); };
    if (kind == "probe") {
      run["status"] = "running";
      run["job"] = h->job_id(job);
      run["started_ms"] = now_ms();
      if (Status st = s->runs->put(run); !st.ok()) return fail(st);
      auto stop = [&] { return h->job_cancelled(job) != 0 || h->job_stopping(job) != 0; };
      Status st = run_probes(s, id, run, stop, [&](double d, double t, const std::string& m) { h->job_progress(job, d, t, m.c_str()); });
      if (st.code() == Code::kCancelled && h->job_stopping(job) && !h->job_cancelled(job)) {
        run["status"] = "interrupted";
        (void)s->runs->put(run);
        return sdk::fail(err, LLMOPS_ABORTED, "llmopsd is stopping; the probe run starts again at the next start");
      }
      if (!st.ok()) return finish(st.code() == Code::kCancelled ? "cancelled" : "failed", st);
      h->metric_add(s->ctx, s->m_runs, 1);
      return finish("done", ok_status());
    }
    auto metrics = make_metrics(p["metrics"], p.value("rouge_stemmer", false), kind == "run");
    if (!metrics.ok()) return finish("failed", metrics.status());
    JudgeConfig judge;
    if (metrics->judge) {
      auto jc = judge_config(p);
      if (!jc.ok()) return finish("failed", jc.status());
      judge = *jc;
    }
    // Grades one scored example with the judge; a judge that cannot answer fails the run.
    Status judge_failed = ok_status();
    auto add_judgement = [&](Json& j, const Example& e) {
      if (!metrics->judge || !judge_failed.ok()) return;
      auto v = judge_example(s->sdk(), judge, e.prompt, j.value("prediction", ""), e.references);
      if (!v.ok()) {
        judge_failed = v.status();
        return;
      }
      j["judge"] = {{"reply", v->reply.substr(0, 500)}, {"method", v->method}};
      if (v->score) {
        j["scores"]["judge"] = *v->score;
        j["stats"]["judge"] = std::vector<double>{*v->score, 1.0};
      } else {
        j["skipped"]["judge"] = "the judge's reply held no number of the scale";
      }
    };
    run["status"] = "running";
    run["job"] = h->job_id(job);
    if (!run.contains("started_ms")) run["started_ms"] = now_ms();
    if (Status st = s->runs->put(run); !st.ok()) return fail(st);

    // What earlier attempts of this job stored already.
    std::set<uint64_t> done;
    if (Status st = s->runs->for_each_example(id, [&](Json& e) { return done.insert(e["i"].get<uint64_t>()), true; }); !st.ok()) {
      return finish("failed", st);
    }
    DatasetRef d;
    d.ref = run["data"]["ref"];
    d.content_hash = run["data"]["content_hash"];
    d.records = run["data"]["records"];
    const uint64_t limit = p.value("limit", uint64_t{0});
    const uint64_t total = limit > 0 ? std::min(limit, d.records) : d.records;

    // Read the examples still to do.
    std::vector<Example> todo;
    uint64_t missing_prediction = 0;
    Status read = read_records(s->sdk(), d, [&](uint64_t i, Json& rec) {
      if (i >= total) return false;
      if (done.count(i) != 0) return true;
      Example e;
      e.i = i;
      if (p.contains("reference_field")) {
        auto refs = references_of(rec, p["reference_field"]);
        if (refs) e.references = std::move(*refs), e.has_refs = true;
      }
      if (kind == "score") {
        auto pred = data::record_text(rec, p["prediction_field"]);
        if (!pred) ++missing_prediction;
        e.prediction = pred.value_or("");
      } else {
        if (p.contains("template")) {
          auto prompt = data::fill_template(p["template"], rec);
          e.prompt = prompt.ok() ? *prompt : "";
        }
        if (p.contains("text_field")) {
          auto text = data::record_text(rec, p["text_field"]);
          if (text) e.text = std::move(*text), e.has_text = true;
        }
      }
      todo.push_back(std::move(e));
      return true;
    });
    if (!read.ok()) return finish("failed", read);
    const auto started = std::chrono::steady_clock::now();
    uint64_t finished = done.size();
    std::vector<Json> batch;
    Status store_failed = ok_status();
    auto flush = [&] {
      if (batch.empty() || !store_failed.ok()) return;
      store_failed = s->runs->put_examples(id, batch);
      h->metric_add(s->ctx, s->m_examples, static_cast<double>(batch.size()));
      batch.clear();
    };
    auto progress = [&] {
      h->job_progress(job, static_cast<double>(finished), static_cast<double>(total), ("example " + std::to_string(finished) + "/" + std::to_string(total)).c_str());
    };
    progress();
    Status outcome = ok_status();
    if (kind == "score") {
      for (const auto& e : todo) {
        if (h->job_cancelled(job) || h->job_stopping(job)) {
          outcome = cancelled("cancelled");
          break;
        }
        Json j = score_example(*metrics, e, Json::object());
        add_judgement(j, e);
        if (!judge_failed.ok()) {
          outcome = judge_failed;
          break;
        }
        batch.push_back(std::move(j));
        ++finished;
        if (batch.size() >= 256) flush(), progress();
      }
    } else {
      // The model: opened from its blobs, held for the run's length.
      auto rm = open_run_model(s, run);
      if (!rm.ok()) return finish("failed", rm.status());
      engine::ThreadPool& pool = *rm->pool;
      const auto& opened = rm->opened;
      const engine::Model& model = *opened.model;
      const engine::Tokenizer& tok = *opened.tok;
      auto stop_now = [&] { return h->job_cancelled(job) != 0 || h->job_stopping(job) != 0; };
      std::map<uint64_t, Json> extras;  // per example: generation facts and perplexity statistics
      auto emit = [&](const Example& e, const Generated* g) {
        Json x = extras.count(e.i) ? extras[e.i] : Json::object();
        Json j = score_example(*metrics, e, Json::object());
        if (g != nullptr) {
          j["generation"] = {{"prompt_tokens", g->prompt_tokens}, {"completion_tokens", g->completion_tokens}, {"finish_reason", g->finish_reason}};
          if (g->prompt_truncated) j["generation"]["prompt_truncated"] = true;
        }
        if (x.contains("ppl_stats")) {
          std::vector<double> st = x["ppl_stats"];
          j["stats"]["ppl"] = st;
          j["scores"]["ppl"] = PerplexityMetric().example_score(st);
        }
        if (x.contains("skipped")) {
          for (const auto& [k, v] : x["skipped"].items()) j["skipped"][k] = v;
        }
        if (g != nullptr) add_judgement(j, e);
        if (!judge_failed.ok()) return;
        batch.push_back(std::move(j));
        ++finished;
        if (batch.size() >= 32) flush(), progress();
      };
      if (p.contains("text_field")) {
        const int window = p.value("window", 0) > 0 ? p.value("window", 0) : model.config().seq_len;
        const int stride = p.value("stride", 0) > 0 ? p.value("stride", 0) : std::max(1, window / 2);
        run["params"]["window_used"] = window;
        run["params"]["stride_used"] = stride;
        for (const auto& e : todo) {
          if (stop_now()) {
            outcome = cancelled("cancelled");
            break;
          }
          Json& x = extras[e.i];
          if (!e.has_text) {
            x["skipped"]["ppl"] = "no text in the text field";
            continue;
          }
          auto lk = likelihood(model, tok, &pool, e.text, window, stride);
          if (!lk.ok()) return finish("failed", lk.status());
          if (lk->tokens == 0) {
            x["skipped"]["ppl"] = "too short to score (fewer than two tokens)";
            continue;
          }
          x["ppl_stats"] = std::vector<double>{lk->nll, static_cast<double>(lk->tokens), static_cast<double>(lk->bytes)};
        }
        if (metrics->reference.empty() && !metrics->judge) {
          // Perplexity alone: each example is done as soon as it is scored.
          for (const auto& e : todo) {
            if (extras.count(e.i) != 0) emit(e, nullptr);
          }
        }
      }
      if (outcome.ok() && (!metrics->reference.empty() || metrics->judge)) {
        std::vector<std::string> prompts;
        for (const auto& e : todo) prompts.push_back(e.prompt);
        GenerateOptions go;
        go.max_tokens = p.value("max_tokens", 128);
        go.max_batch = p.value("batch", 16);
        go.sampling.temperature = static_cast<float>(p.value("temperature", 0.0));
        go.sampling.seed = p.value("seed", uint64_t{0});
        go.stop = p.value("stop", std::vector<std::string>{});
        Status gen = generate_all(model, tok, &pool, prompts, go, [&](size_t k, Generated g) {
          Example e = todo[k];
          e.prediction = g.text;
          emit(e, &g);
        }, stop_now);
        if (!gen.ok()) outcome = gen;
        if (outcome.ok() && !judge_failed.ok()) outcome = judge_failed;
      }
    }
    flush();
    if (!store_failed.ok()) return finish("failed", store_failed);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    uint64_t stored = 0;
    auto results = aggregate(*s->runs, id, *metrics, judge.signature(), &stored);
    if (!results.ok()) return finish("failed", results.status());
    run["results"] = *results;
    run["examples"] = {{"total", total}, {"done", stored}};
    if (missing_prediction > 0) run["examples"]["missing_prediction"] = missing_prediction;
    run["timing"] = {{"seconds", seconds}, {"examples_per_s", seconds > 0 ? static_cast<double>(todo.size()) / seconds : 0.0}};
    if (!outcome.ok()) {
      if (outcome.code() == Code::kCancelled) {
        if (h->job_stopping(job) && !h->job_cancelled(job)) {
          // The daemon is stopping: the job resumes at the next start and skips what is stored.
          run["status"] = "interrupted";
          (void)s->runs->put(run);
          return sdk::fail(err, LLMOPS_ABORTED, "llmopsd is stopping; the eval run resumes at the next start");
        }
        return finish("cancelled", cancelled("cancelled; the " + std::to_string(stored) + " finished examples are kept"));
      }
      return finish("failed", outcome);
    }
    h->metric_add(s->ctx, s->m_runs, 1);
    h->job_progress(job, static_cast<double>(total), static_cast<double>(total), ("scored " + std::to_string(stored) + " examples").c_str());
    return finish("done", ok_status());
  });
}

}  // namespace llmops::eval
