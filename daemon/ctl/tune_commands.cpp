// llmopsctl tune ...: training runs (full fine-tuning, training from scratch) as durable jobs,
// their loss curves and results.
#include <cmath>
#include <cstdio>
#include <set>

#include "fs.h"
#include "table.h"
#include "verbs.h"

namespace llmops::ctl {
namespace {

const std::string kBase = "/v1/modules/tuning";

std::string num(const Json& v, int digits = 4) {
  if (!v.is_number()) return "-";
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", digits, v.get<double>());
  return b;
}

Status cmd_start(AdminClient& c, const Invocation& inv) {
  static const std::set<std::string> kNumbers = {"lr", "min-lr", "weight-decay", "clip", "epochs", "steps", "warmup", "batch", "seq-len",
                                                 "eval-every", "eval-batches", "patience", "checkpoint-every", "seed", "rank", "accumulate",
                                                 "alpha", "dropout", "vocab"};
  static const std::set<std::string> kText = {"base", "data", "method", "validation", "output", "long", "text-field", "config", "detach", "no-packing",
                                              "targets", "merge", "shape"};
  Json b = Json::object();
  // --config FILE: the same keys as JSON (snake_case); options on the command line win.
  if (auto it = inv.options.find("config"); it != inv.options.end()) {
    LLMOPS_ASSIGN_OR_RETURN(std::string text, read_file(it->second, 1u << 20));
    auto j = parse_json_bounded(text, 8);
    if (!j.ok() || !j->is_object()) return invalid_argument(it->second + " is not a JSON object of training settings");
    b = *j;
  }
  for (const auto& [k, v] : inv.options) {
    if (!kNumbers.count(k) && !kText.count(k)) return invalid_argument("unknown option --" + k + " for tune start");
    if (k == "config" || k == "detach") continue;
    std::string key = k;
    for (auto& ch : key) ch = ch == '-' ? '_' : ch;
    if (k == "long") key = "long_records";
    if (k == "no-packing") {
      b["packing"] = false;
    } else if (k == "merge") {
      b["merge"] = true;
    } else if (kNumbers.count(k)) {
      LLMOPS_ASSIGN_OR_RETURN(b[key], number_option(k, v));
    } else {
      b[key] = v;
    }
  }
  LLMOPS_ASSIGN_OR_RETURN(Json q, c.call("POST", kBase + "/runs", &b));
  const std::string run = str(q, "run"), job = str(q, "job");
  if (opt(inv, "detach") == "true") {
    if (inv.json) return print_json(q), ok_status();
    std::printf("queued training run %s (job %s) → model %s; follow it with: llmopsctl jobs watch %s\n", run.c_str(), job.c_str(),
                str(q, "output").c_str(), job.c_str());
    return ok_status();
  }
  Status watched = watch_job(c, job, inv.json);
  auto r = c.call("GET", kBase + "/runs/" + run);
  if (r.ok()) {
    if (inv.json) {
      print_json(*r);
    } else {
      const Json& res = (*r).value("results", Json::object());
      const std::string device = (*r).value("device", std::string("cpu"));
      const std::string where = device == "cpu" ? num((*r).value("threads", Json()), 0) + " threads" : device;
      std::printf("run %s %s: model %s, train loss %s, validation loss %s (perplexity %s), %s tokens/s on %s\n", run.c_str(),
                  str(*r, "status").c_str(), str(*r, "output").c_str(), num(res.value("final_train_loss", Json())).c_str(),
                  num(res.value("final_validation_loss", Json())).c_str(), num(res.value("final_validation_perplexity", Json()), 2).c_str(),
                  num(res.value("tokens_per_s", Json()), 0).c_str(), where.c_str());
    }
  }
  return watched;
}

// --space "lr=0.001,0.003;rank=4,8" (numbers) or a JSON object.
Result<Json> parse_space(const std::string& text) {
  if (!text.empty() && text[0] == '{') {
    auto j = parse_json_bounded(text, 8);
    if (!j.ok() || !j->is_object()) return invalid_argument("--space is not a JSON object");
    return *j;
  }
  Json space = Json::object();
  size_t at = 0;
  while (at < text.size()) {
    size_t semi = text.find(';', at);
    if (semi == std::string::npos) semi = text.size();
    const std::string part = text.substr(at, semi - at);
    const size_t eq = part.find('=');
    if (eq == std::string::npos || eq == 0) return invalid_argument("--space takes name=v1,v2;name=v1,... not '" + part + "'");
    Json values = Json::array();
    for (const auto& v : comma_list(part.substr(eq + 1))) {
      LLMOPS_ASSIGN_OR_RETURN(Json n, number_option("space", v.get<std::string>()));
      values.push_back(n);
    }
    space[part.substr(0, eq)] = values;
    at = semi + 1;
  }
  return space;
}

Status cmd_search(AdminClient& c, const Invocation& inv) {
  static const std::set<std::string> kNumbers = {"lr", "min-lr", "weight-decay", "clip", "epochs", "steps", "warmup", "batch", "seq-len", "eval-every",
                                                 "eval-batches", "seed", "rank", "alpha", "dropout", "trials", "eta", "min-steps"};
  static const std::set<std::string> kText = {"base", "data", "method", "validation", "strategy", "space", "targets", "text-field", "detach"};
  Json b = Json::object();
  for (const auto& [k, v] : inv.options) {
    if (!kNumbers.count(k) && !kText.count(k)) return invalid_argument("unknown option --" + k + " for tune search");
    if (k == "detach") continue;
    std::string key = k;
    for (auto& ch : key) ch = ch == '-' ? '_' : ch;
    if (k == "space") {
      LLMOPS_ASSIGN_OR_RETURN(b["space"], parse_space(v));
    } else if (kNumbers.count(k)) {
      LLMOPS_ASSIGN_OR_RETURN(b[key], number_option(k, v));
    } else {
      b[key] = v;
    }
  }
  LLMOPS_ASSIGN_OR_RETURN(Json q, c.call("POST", kBase + "/searches", &b));
  const std::string run = str(q, "run"), job = str(q, "job");
  if (opt(inv, "detach") == "true") {
    if (inv.json) return print_json(q), ok_status();
    std::printf("queued search %s (job %s, %s trials); follow it with: llmopsctl jobs watch %s\n", run.c_str(), job.c_str(), str(q, "trials").c_str(),
                job.c_str());
    return ok_status();
  }
  Status watched = watch_job(c, job, inv.json);
  auto r = c.call("GET", kBase + "/runs/" + run);
  if (!r.ok()) return watched;
  if (inv.json) return print_json(*r), watched;
  Table t({"RUNG", "CONFIG", "RUN", "STATUS", "LOSS", "STEPS", "WALL", "CPU-S", "ENERGY J", "TOKENS"});
  for (const auto& tr : (*r).value("trials", Json::array())) {
    t.add({str(tr, "rung"), dump_json(tr["config"]), str(tr, "run"), str(tr, "status"), num(tr.value("loss", Json())), str(tr, "steps"),
           human_duration(tr.value("seconds", 0.0)), num(tr.value("cpu_seconds", Json()), 1), num(tr.value("energy_joules", Json()), 0),
           str(tr, "tokens")});
  }
  t.print(stdout);
  if (r->contains("best")) std::printf("best: %s (loss %s)\n", dump_json((*r)["best"]["config"]).c_str(), num((*r)["best"]["loss"]).c_str());
  return watched;
}

Status cmd_list(AdminClient& c, const Invocation& inv) {
  LLMOPS_ASSIGN_OR_RETURN(Json r, c.call("GET", kBase + "/runs?limit=" + opt(inv, "limit", "50")));
  if (inv.json) return print_json(r), ok_status();
  Table t({"RUN", "KIND", "STATUS", "METHOD", "BASE", "DATA", "OUTPUT", "TRAIN LOSS", "VAL LOSS"});
  for (const auto& run : r["runs"]) {
    const Json& res = run["results"];
    t.add({str(run, "id"), str(run, "kind"), str(run, "status"), str(run, "method"), str(run, "base"), str(run, "data"), str(run, "output"),
           num(res.value("final_train_loss", Json())), num(res.value("final_validation_loss", Json()))});
  }
  if (t.empty()) std::printf("no training runs yet (llmopsctl tune start makes one)\n");
  else t.print(stdout);
  return ok_status();
}

Status cmd_show(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "tune show RUN"));
  LLMOPS_ASSIGN_OR_RETURN(Json r, c.call("GET", kBase + "/runs/" + enc(inv.words[2])));
  print_json(r);
  return ok_status();
}

Status cmd_curve(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "tune curve RUN"));
  LLMOPS_ASSIGN_OR_RETURN(Json r, c.call("GET", kBase + "/runs/" + enc(inv.words[2]) + "/curve"));
  if (inv.json) return print_json(r), ok_status();
  Table t({"STEP", "LOSS", "VAL LOSS", "VAL PPL", "LR", "GRAD NORM", "TOKENS"});
  for (const auto& p : r["points"]) {
    t.add({str(p, "step"), num(p.value("loss", Json())), num(p.value("val_loss", Json())), num(p.value("val_ppl", Json()), 2), num(p.value("lr", Json()), 6),
           num(p.value("grad_norm", Json()), 3), str(p, "tokens")});
  }
  t.print(stdout);
  return ok_status();
}

}  // namespace

const VerbTable& tune_verbs() {
  static const VerbTable kVerbs = {
      {{"tune", "start"},
       {"tune start --base MODEL --data DATASET[@V][:SPLIT] --method lora|full|scratch [--rank R --alpha A --dropout P --targets q,k,v,o --merge] [--lr X] [--epochs N | --steps N] [--batch N] [--accumulate N] "
        "[--seq-len N] [--validation DATASET] [--eval-every N] [--patience N] [--checkpoint-every N] [--seed S] [--output NAME] [--config FILE]; "
        "from scratch without a base: --method scratch --shape dim=192,layers=6,heads=6[,kv_heads=K,hidden=H,context=N] --vocab N (a tokenizer learned from the data)",
        "train a model as a durable job (resumes after a restart); the result is a new model version", cmd_start}},
      {{"tune", "search"},
       {"tune search --base MODEL --data DATASET[@V][:SPLIT] --method lora|full --space 'lr=0.001,0.003;rank=4,8' [--strategy grid|random|asha] "
        "[--trials N] [--eta 3 --min-steps 20] [--steps N]",
        "hyperparameter search: trials as child training jobs, ranked by validation loss with wall time, CPU-seconds and energy", cmd_search}},
      {{"tune", "list"}, {"tune list", "training runs with their losses", cmd_list}},
      {{"tune", "show"}, {"tune show RUN", "one run: lineage, hyperparameters, plan, data report, results", cmd_show}},
      {{"tune", "curve"}, {"tune curve RUN", "the loss curve, one point per step (validation loss and perplexity where they were measured)", cmd_curve}},
  };
  return kVerbs;
}

}  // namespace llmops::ctl
