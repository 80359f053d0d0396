// llmopsctl eval ...: scoring existing predictions, eval runs that generate with a model,
// their results and examples, and comparisons of two runs with a paired bootstrap.
#include <cmath>
#include <cstdio>
#include <set>

#include "fs.h"
#include "table.h"
#include "verbs.h"

namespace llmops::ctl {
namespace {

const std::string kBase = "/v1/modules/eval";

std::string fixed(double v, int digits) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

// A score in its metric's own scale: 0..100 metrics with 2 decimals, 0..1 ones with 4.
std::string score_text(const std::string& metric, const Json& v) {
  if (!v.is_number()) return "-";
  const double d = v.get<double>();
  const bool unit = metric.rfind("rouge", 0) == 0;
  return fixed(d, unit ? 4 : 2);
}

// Options into the request body: numbers as numbers, lists split at commas, flags as booleans;
// --kebab-case becomes snake_case.
Result<Json> body_from(const Invocation& inv, const std::set<std::string>& allowed, const std::set<std::string>& numbers) {
  Json b = Json::object();
  for (const auto& [k, v] : inv.options) {
    if (!allowed.count(k)) return invalid_argument("unknown option --" + k + " here (llmopsctl eval --help lists each verb's)");
    std::string key = k;
    for (auto& c : key) c = c == '-' ? '_' : c;
    if (k == "detach") continue;
    if (is_flag_option(k)) {
      b[key] = v == "true";
    } else if (numbers.count(k)) {
      LLMOPS_ASSIGN_OR_RETURN(b[key], number_option(k, v));
    } else if (k == "metrics" || k == "stop") {
      b[key] = comma_list(v);
    } else {
      b[key] = v;
    }
  }
  return b;
}

void print_results(const Json& run) {
  std::printf("run %s  %s  %s  data %s%s\n", str(run, "id").c_str(), str(run, "kind").c_str(), str(run, "status").c_str(),
              run["data"].value("ref", "-").c_str(), run.contains("model") ? ("  model " + run["model"].value("name", "-")).c_str() : "");
  if (run.contains("error")) std::printf("error: %s\n", run.value("error", "").c_str());
  if (run.contains("examples")) {
    std::printf("examples: %s of %s scored", str(run["examples"], "done").c_str(), str(run["examples"], "total").c_str());
    if (run.contains("timing")) std::printf(" in %s (%.1f examples/s)", human_duration(run["timing"].value("seconds", 0.0)).c_str(), run["timing"].value("examples_per_s", 0.0));
    std::printf("\n");
  }
  Table t({"METRIC", "SCORE", "EXAMPLES", "DETAILS", "SIGNATURE"});
  for (const auto& [name, r] : object_member(run, "results").items()) {
    std::string details;
    for (const auto& [k, v] : object_member(r, "details").items()) {
      details += (details.empty() ? "" : " ") + k + "=" + (v.is_number() ? fixed(v.get<double>(), std::fabs(v.get<double>()) >= 100 ? 0 : 3) : dump_json(v));
    }
    std::string ex = str(r, "examples");
    if (r.contains("skipped")) ex += " (" + str(r, "skipped") + " left out)";
    t.add({name, score_text(name, r["score"]), ex, details.empty() ? "-" : details, r.value("signature", "-")});
  }
  if (!t.empty()) t.print(stdout);
}

Status follow_and_show(AdminClient& c, const Invocation& inv, const Json& queued) {
  const std::string run = str(queued, "run"), job = str(queued, "job");
  if (opt(inv, "detach") == "true") {
    if (inv.json) return print_json(queued), ok_status();
    std::printf("queued eval run %s (job %s); follow it with: llmopsctl jobs watch %s, then llmopsctl eval show %s\n", run.c_str(),
                job.c_str(), job.c_str(), run.c_str());
    return ok_status();
  }
  Status watched = watch_job(c, job, inv.json);
  auto r = c.call("GET", kBase + "/runs/" + run);
  if (r.ok()) {
    if (inv.json) print_json(*r);
    else print_results(*r);
  }
  return watched;
}

// --rubric names a file here; the request carries its text.
Status rubric_from_file(Json& b) {
  if (!b.contains("rubric")) return ok_status();
  LLMOPS_ASSIGN_OR_RETURN(std::string text, read_file(b["rubric"].get<std::string>(), 1u << 20));
  b["rubric"] = text;
  return ok_status();
}

Status cmd_score(AdminClient& c, const Invocation& inv) {
  LLMOPS_ASSIGN_OR_RETURN(Json b, body_from(inv, {"data", "prediction-field", "reference-field", "metrics", "rouge-stemmer", "limit", "detach",
                                                  "judge-model", "rubric", "rubric-version", "judge-scale"},
                                            {"limit"}));
  LLMOPS_RETURN_IF_ERROR(rubric_from_file(b));
  LLMOPS_ASSIGN_OR_RETURN(Json q, c.call("POST", kBase + "/score", &b));
  return follow_and_show(c, inv, q);
}

Status cmd_run(AdminClient& c, const Invocation& inv) {
  LLMOPS_ASSIGN_OR_RETURN(Json b, body_from(inv, {"model", "data", "metrics", "template", "reference-field", "text-field", "max-tokens",
                                                  "temperature", "seed", "batch", "stop", "window", "stride", "limit", "rouge-stemmer", "detach",
                                                  "judge-model", "rubric", "rubric-version", "judge-scale"},
                                            {"max-tokens", "temperature", "seed", "batch", "window", "stride", "limit"}));
  LLMOPS_RETURN_IF_ERROR(rubric_from_file(b));
  LLMOPS_ASSIGN_OR_RETURN(Json q, c.call("POST", kBase + "/runs", &b));
  return follow_and_show(c, inv, q);
}

Status cmd_list(AdminClient& c, const Invocation& inv) {
  LLMOPS_ASSIGN_OR_RETURN(Json r, c.call("GET", kBase + "/runs?limit=" + opt(inv, "limit", "50")));
  if (inv.json) return print_json(r), ok_status();
  Table t({"RUN", "KIND", "STATUS", "DATA", "MODEL", "CREATED", "SCORES"});
  for (const auto& run : r["runs"]) {
    std::string scores;
    for (const auto& [name, v] : object_member(run, "scores").items()) scores += (scores.empty() ? "" : " ") + name + "=" + score_text(name, v);
    t.add({str(run, "id"), str(run, "kind"), str(run, "status"), str(run, "data"), str(run, "model"),
           human_time_ms(run.value("created_ms", uint64_t{0})), scores.empty() ? "-" : scores});
  }
  if (t.empty()) std::printf("no eval runs yet (llmopsctl eval run or eval score makes one)\n");
  else t.print(stdout);
  return ok_status();
}

Status cmd_show(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "eval show RUN"));
  LLMOPS_ASSIGN_OR_RETURN(Json r, c.call("GET", kBase + "/runs/" + enc(inv.words[2])));
  if (inv.json) return print_json(r), ok_status();
  print_results(r);
  return ok_status();
}

Status cmd_examples(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "eval examples RUN"));
  LLMOPS_ASSIGN_OR_RETURN(Json r, c.call("GET", kBase + "/runs/" + enc(inv.words[2]) + "/examples?offset=" + opt(inv, "offset", "0") +
                                                    "&limit=" + opt(inv, "limit", "10")));
  if (inv.json) return print_json(r), ok_status();
  for (const auto& e : r["examples"]) {
    std::printf("#%s", str(e, "i").c_str());
    for (const auto& [name, v] : object_member(e, "scores").items()) std::printf("  %s=%s", name.c_str(), score_text(name, v).c_str());
    std::printf("\n");
    if (e.contains("prompt")) std::printf("  prompt:     %s\n", e.value("prompt", "").c_str());
    std::printf("  prediction: %s\n", e.value("prediction", "").c_str());
    for (const auto& ref : e.value("references", Json::array())) std::printf("  reference:  %s\n", ref.is_string() ? ref.get<std::string>().c_str() : dump_json(ref).c_str());
  }
  return ok_status();
}

Status cmd_compare(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 4, "eval compare RUN_A RUN_B"));
  std::string q = kBase + "/compare?a=" + enc(inv.words[2]) + "&b=" + enc(inv.words[3]) + "&samples=" + opt(inv, "samples", "1000") +
                  "&show=" + opt(inv, "show", "5");
  if (!opt(inv, "metric").empty()) q += "&metric=" + enc(opt(inv, "metric"));
  LLMOPS_ASSIGN_OR_RETURN(Json r, c.call("GET", q));
  if (inv.json) return print_json(r), ok_status();
  std::printf("A: run %s (%s, %s)   B: run %s (%s, %s)   %s paired examples\n", str(r["a"], "id").c_str(), str(r["a"], "model").c_str(),
              str(r["a"], "data").c_str(), str(r["b"], "id").c_str(), str(r["b"], "model").c_str(), str(r["b"], "data").c_str(),
              str(r, "paired_examples").c_str());
  Table t({"METRIC", "A", "B", "DELTA", "95% CI", "P", "BETTER"});
  for (const auto& m : r["metrics"]) {
    const std::string name = m.value("metric", "");
    const int digits = name.rfind("rouge", 0) == 0 ? 4 : 2;
    t.add({name, score_text(name, m["a"]), score_text(name, m["b"]), (m.value("delta", 0.0) >= 0 ? "+" : "") + fixed(m.value("delta", 0.0), digits),
           "[" + fixed(m["ci95"][0].get<double>(), digits) + ", " + fixed(m["ci95"][1].get<double>(), digits) + "]",
           fixed(m.value("p_value", 1.0), 4), m.value("significant", false) ? m.value("better", "") : "not significant"});
  }
  t.print(stdout);
  std::printf("%s\n", r.value("method", "").c_str());
  if (!r["most_changed"].empty()) std::printf("\nexamples that changed most on %s:\n", r.value("focus_metric", "").c_str());
  for (const auto& e : r["most_changed"]) {
    const std::string focus = r.value("focus_metric", "");
    std::printf("#%s  %s → %s\n", str(e, "i").c_str(), score_text(focus, e["a"]).c_str(), score_text(focus, e["b"]).c_str());
    std::printf("  A: %s\n  B: %s\n", e.value("prediction_a", "").c_str(), e.value("prediction_b", "").c_str());
  }
  return ok_status();
}

Status cmd_probe(AdminClient& c, const Invocation& inv) {
  const std::string model = opt(inv, "model"), file = opt(inv, "probes");
  if (model.empty() || file.empty()) return invalid_argument("usage: llmopsctl eval probe --model NAME --probes FILE");
  for (const auto& [k, v] : inv.options) {
    if (k != "model" && k != "probes" && k != "detach") return invalid_argument("unknown option --" + k + " for eval probe");
  }
  LLMOPS_ASSIGN_OR_RETURN(std::string text, read_file(file, 16u << 20));
  auto probes = parse_json_bounded(text, 32);
  if (!probes.ok()) return probes.status().with_context(file);
  Json b = {{"model", model}, {"probes", *probes}};
  LLMOPS_ASSIGN_OR_RETURN(Json q, c.call("POST", kBase + "/probes", &b));
  return follow_and_show(c, inv, q);
}

Status cmd_model(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "eval model NAME"));
  LLMOPS_ASSIGN_OR_RETURN(Json r, c.call("GET", kBase + "/models/" + enc(inv.words[2])));
  if (inv.json) return print_json(r), ok_status();
  Table t({"RUN", "KIND", "DATA", "FINISHED", "RESULTS"});
  for (const auto& e : r["evaluations"]) {
    std::string res;
    for (const auto& [name, v] : object_member(e, "results").items()) res += (res.empty() ? "" : " ") + name + "=" + score_text(name, v["score"]);
    t.add({str(e, "run"), str(e, "kind"), str(e, "data"), human_time_ms(e.value("finished_ms", uint64_t{0})), res.empty() ? "-" : res});
  }
  if (t.empty()) std::printf("no finished evaluation of %s yet\n", inv.words[2].c_str());
  else t.print(stdout);
  return ok_status();
}

Status cmd_rm(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "eval rm RUN"));
  LLMOPS_ASSIGN_OR_RETURN(Json r, c.call("DELETE", kBase + "/runs/" + enc(inv.words[2])));
  if (inv.json) return print_json(r), ok_status();
  std::printf("removed eval run %s\n", str(r, "removed").c_str());
  return ok_status();
}

}  // namespace

const VerbTable& eval_verbs() {
  static const VerbTable kVerbs = {
      {{"eval", "score"},
       {"eval score --data DATASET[@V][:SPLIT] --prediction-field F --reference-field R [--metrics bleu,chrf,rouge1,rouge2,rougeL,rougeLsum,em,f1] [--rouge-stemmer]",
        "score predictions already in a dataset (a reference field may hold one string or a list); metric judge with "
        "--judge-model M --rubric FILE grades them with a served model", cmd_score}},
      {{"eval", "run"},
       {"eval run --model NAME --data DATASET[@V][:SPLIT] --metrics ppl,bleu,rougeL,em [--template T] [--reference-field R] [--text-field F] "
        "[--max-tokens N] [--temperature 0] [--batch N] [--window N --stride N] [--limit N]",
        "generate with a model and score the outputs; perplexity over a text field", cmd_run}},
      {{"eval", "list"}, {"eval list [--limit N]", "eval runs, newest first, with their scores", cmd_list}},
      {{"eval", "show"}, {"eval show RUN", "one run: status, scores with sacreBLEU-style signatures", cmd_show}},
      {{"eval", "examples"}, {"eval examples RUN [--offset N] [--limit N]", "a run's examples: prompt, prediction, references, scores", cmd_examples}},
      {{"eval", "compare"},
       {"eval compare RUN_A RUN_B [--metric M] [--samples 1000] [--show 5]",
        "metrics side by side with deltas, paired bootstrap 95% intervals and p-values, and the examples that changed most", cmd_compare}},
      {{"eval", "rm"}, {"eval rm RUN", "remove a finished run and its examples", cmd_rm}},
      {{"eval", "probe"},
       {"eval probe --model NAME --probes FILE",
        "review probes: score disparity across groups of terms (templates, paired continuations) and the block-list rate of trigger outputs", cmd_probe}},
      {{"eval", "model"}, {"eval model NAME", "the latest finished evaluation of a model per dataset and probe set (approval gate inputs)", cmd_model}},
  };
  return kVerbs;
}

}  // namespace llmops::ctl
