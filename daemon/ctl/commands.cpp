#include "commands.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>

#include "client.h"
#include "verbs.h"
#include "fs.h"
#include "table.h"

namespace llmops::ctl {

void print_json(const Json& j) { std::printf("%s\n", dump_json(j, 2).c_str()); }

std::string str(const Json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return "-";
  return j[key].is_string() ? j[key].get<std::string>() : dump_json(j[key]);
}

Status need_words(const Invocation& inv, size_t n, const std::string& usage) {
  if (inv.words.size() < n) return invalid_argument("usage: llmopsctl " + usage);
  return ok_status();
}

namespace {

const char* kGlobalHelp =
    "Global options (anywhere on the line):\n"
    "  --socket PATH   admin socket (default $LLMOPS_SOCKET, /run/llmops/admin.sock)\n"
    "  --json          print the daemon's JSON instead of tables\n"
    "  -h, --help      help for a verb\n"
    "Exit codes: 0 ok, 1 internal error, 2 bad usage or invalid input, 3 not found,\n"
    "4 permission denied, 5 daemon unavailable, 6 conflict, 7 limit reached,\n"
    "8 cancelled, 9 data loss.\n";

// ---- verbs ---------------------------------------------------------------------------------

Status cmd_status(AdminClient& c, const Invocation& inv) {
  LLMOPS_ASSIGN_OR_RETURN(Json s, c.call("GET", "/v1/status"));
  if (inv.json) return print_json(s), ok_status();
  std::printf("llmopsd %s  pid %s  %s (health: %s)  up %s\n", str(s, "version").c_str(), str(s, "pid").c_str(),
              str(s, "state").c_str(), str(s, "health").c_str(), human_duration(s.value("uptime_s", 0.0)).c_str());
  std::printf("  HTTP:          %s\n  admin socket:  %s\n  state dir:     %s\n  config:        %s\n", str(s, "http").c_str(),
              str(s, "admin_socket").c_str(), str(s, "state_dir").c_str(),
              s["config_file"].is_null() ? "embedded defaults" : str(s, "config_file").c_str());
  std::printf("  store:         %s used of a %s map\n", human_bytes(s["store"].value("used_bytes", 0.0)).c_str(),
              human_bytes(s["store"].value("map_bytes", 0.0)).c_str());
  std::string mods;
  for (auto& [k, v] : s["modules"].items()) mods += (mods.empty() ? "" : ", ") + k + " " + v.get<std::string>();
  std::printf("  modules:       %s\n", mods.empty() ? "none" : mods.c_str());
  std::string jobs;
  for (auto& [k, v] : s["jobs"].items()) jobs += (jobs.empty() ? "" : ", ") + std::to_string(v.get<int>()) + " " + k;
  std::printf("  jobs:          %s\n  API keys:      %s active\n", jobs.empty() ? "none" : jobs.c_str(), str(s, "api_keys_active").c_str());
  return ok_status();
}

Status cmd_modules(AdminClient& c, const Invocation& inv) {
  LLMOPS_ASSIGN_OR_RETURN(Json s, c.call("GET", "/v1/modules"));
  if (inv.json) return print_json(s), ok_status();
  Table t({"NAME", "VERSION", "STAGE", "STATE", "HEALTH", "NOTE"});
  for (const auto& m : s["modules"]) {
    std::string note = m.value("reason", "");
    if (note.empty()) note = m["health"].value("message", "");
    t.add({str(m, "name"), m.contains("version") ? str(m, "version") : "-", m.contains("stage") ? str(m, "stage") : "-",
           str(m, "state"), m["health"].value("state", "-"), note});
  }
  t.print(stdout);
  return ok_status();
}

// What runs on which device: the serving stage's loaded models and the tuning stage's running
// training runs (each stage says where its work is; a stage that is not loaded adds nothing).
Json work_placements(AdminClient& c) {
  Json out = Json::array();
  if (auto served = c.call("GET", "/v1/modules/serving/served"); served.ok()) {
    for (const Json& m : (*served)["models"]) out.push_back({{"kind", "model"}, {"name", m.value("name", "")}, {"device", m.value("device", "cpu")}});
  }
  if (auto runs = c.call("GET", "/v1/modules/tuning/runs?limit=100"); runs.ok()) {
    for (const Json& r : (*runs)["runs"]) {
      if (r.value("status", "") != "running") continue;
      out.push_back({{"kind", "training run"}, {"name", std::to_string(r.value("id", 0)) + " → " + r.value("output", std::string())},
                     {"device", r["device"].is_string() ? r["device"].get<std::string>() : std::string("cpu")}});
    }
  }
  return out;
}

Status cmd_topology(AdminClient& c, const Invocation& inv) {
  LLMOPS_ASSIGN_OR_RETURN(Json s, c.call("GET", "/v1/topology"));
  s["work"] = work_placements(c);
  if (inv.json) return print_json(s), ok_status();
  std::printf("%s package(s), %s core(s), %s PU(s); allowed CPUs %s\n\n", str(s, "packages").c_str(), str(s, "cores").c_str(),
              str(s, "pus").c_str(), str(s, "allowed_cpus").c_str());
  Table numa({"NUMA NODE", "CPUS", "MEMORY"});
  for (const auto& n : s["numa_nodes"]) numa.add({str(n, "os_index"), str(n, "cpus"), human_bytes(n.value("memory_bytes", 0.0))});
  numa.print(stdout);
  std::printf("\n");
  if (s["gpus"].empty()) {
    std::printf("GPUs: none found (hwloc sees no PCI display or 3D controller)\n\n");
  } else {
    Table g({"GPU", "PCI", "VENDOR", "MODEL", "NEAR CPUS", "NEAR NUMA"});
    for (const auto& d : s["gpus"]) {
      g.add({str(d, "name"), str(d, "pci"), str(d, "vendor"), str(d, "model"), str(d, "near_cpus"), str(d, "near_numa")});
    }
    g.print(stdout);
    std::printf("\n");
  }
  Table p({"POOL", "THREADS", "CPUS", "NUMA"});
  for (const auto& w : s["pools"]) p.add({str(w, "name"), str(w, "threads"), str(w, "cpus"), str(w, "numa")});
  p.print(stdout);
  std::printf("\n");
  if (s["work"].empty()) {
    std::printf("work: no model loaded and no training run running\n");
  } else {
    Table w({"WORK", "NAME", "DEVICE"});
    for (const auto& x : s["work"]) w.add({str(x, "kind"), str(x, "name"), str(x, "device")});
    w.print(stdout);
  }
  return ok_status();
}

Status cmd_config_show(AdminClient& c, const Invocation&) {
  LLMOPS_ASSIGN_OR_RETURN(Json s, c.call("GET", "/v1/config"));
  print_json(s);  // the configuration is a tree: JSON is its readable form
  return ok_status();
}

Status cmd_audit(AdminClient& c, const Invocation& inv) {
  std::string target = "/v1/audit?limit=" + (inv.options.count("limit") ? inv.options.at("limit") : std::string("20"));
  LLMOPS_ASSIGN_OR_RETURN(Json s, c.call("GET", target));
  if (inv.json) return print_json(s), ok_status();
  Table t({"SEQ", "TIME (UTC)", "WHO", "PID", "ACTION", "STATUS", "DETAIL"});
  for (const auto& e : s["entries"]) {
    std::string who = str(e, "who");
    if (!e.value("user", "").empty()) who += " (" + e.value("user", "") + ")";
    t.add({str(e, "seq"), human_time_ms(e.value("time_ms", uint64_t{0})), who, str(e, "pid"), str(e, "action"), str(e, "status"),
           e.value("detail", "")});
  }
  t.print(stdout);
  return ok_status();
}

Status cmd_keys_list(AdminClient& c, const Invocation& inv) {
  LLMOPS_ASSIGN_OR_RETURN(Json s, c.call("GET", "/v1/keys"));
  if (inv.json) return print_json(s), ok_status();
  Table t({"ID", "NAME", "PREFIX", "CREATED (UTC)", "BY", "STATE"});
  for (const auto& k : s["keys"]) {
    t.add({str(k, "id"), str(k, "name"), str(k, "prefix") + "…", human_time_ms(k.value("created_ms", uint64_t{0})), str(k, "created_by"),
           k.value("active", false) ? "active" : "revoked " + human_time_ms(k.value("revoked_ms", uint64_t{0}))});
  }
  t.print(stdout);
  return ok_status();
}

Status cmd_keys_create(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "keys create NAME"));
  Json body = {{"name", inv.words[2]}};
  LLMOPS_ASSIGN_OR_RETURN(Json k, c.call("POST", "/v1/keys", &body));
  if (inv.json) return print_json(k), ok_status();
  std::printf("created key %s (id %s):\n\n  %s\n\nStore it now: llmopsd keeps only its hash. Use it as 'Authorization: Bearer <key>'.\n",
              str(k, "name").c_str(), str(k, "id").c_str(), str(k, "key").c_str());
  return ok_status();
}

Status cmd_keys_revoke(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "keys revoke ID|NAME"));
  LLMOPS_ASSIGN_OR_RETURN(Json k, c.call("POST", "/v1/keys/" + inv.words[2] + "/revoke"));
  if (inv.json) return print_json(k), ok_status();
  std::printf("revoked key %s (id %s)\n", str(k, "name").c_str(), str(k, "id").c_str());
  return ok_status();
}

std::string job_progress_text(const Json& j) {
  double done = j["progress"].value("done", 0.0), total = j["progress"].value("total", 0.0);
  if (total <= 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f%%", 100.0 * done / total);
  return buf;
}

Status cmd_jobs_list(AdminClient& c, const Invocation& inv) {
  std::string target = "/v1/jobs?limit=" + (inv.options.count("limit") ? inv.options.at("limit") : std::string("50"));
  if (inv.options.count("state")) target += "&state=" + inv.options.at("state");
  LLMOPS_ASSIGN_OR_RETURN(Json s, c.call("GET", target));
  if (inv.json) return print_json(s), ok_status();
  Table t({"ID", "KIND", "STATE", "PROGRESS", "CREATED (UTC)", "MESSAGE"});
  for (const auto& j : s["jobs"]) {
    t.add({str(j, "id"), str(j, "kind"), str(j, "state"), job_progress_text(j), human_time_ms(j.value("created_ms", uint64_t{0})),
           j.value("message", "")});
  }
  if (t.empty()) {
    std::printf("no jobs\n");
    return ok_status();
  }
  t.print(stdout);
  return ok_status();
}

void print_job(const Json& j) {
  std::printf("job %s  %s  %s\n", str(j, "id").c_str(), str(j, "kind").c_str(), str(j, "state").c_str());
  std::printf("  progress:   %s %s\n", progress_bar(j["progress"].value("done", 0.0), j["progress"].value("total", 0.0), 30).c_str(),
              job_progress_text(j).c_str());
  std::printf("  message:    %s\n  owner:      %s\n  submitted:  %s by %s\n  started:    %s\n  finished:   %s\n  attempts:   %s\n",
              j.value("message", "").c_str(), str(j, "owner").c_str(), human_time_ms(j.value("created_ms", uint64_t{0})).c_str(),
              str(j, "submitted_by").c_str(), human_time_ms(j.value("started_ms", uint64_t{0})).c_str(),
              human_time_ms(j.value("finished_ms", uint64_t{0})).c_str(), str(j, "attempts").c_str());
  std::printf("  params:     %s\n", dump_json(j["params"]).c_str());
}

Status cmd_jobs_show(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "jobs show ID"));
  LLMOPS_ASSIGN_OR_RETURN(Json j, c.call("GET", "/v1/jobs/" + inv.words[2]));
  if (inv.json) return print_json(j), ok_status();
  print_job(j);
  return ok_status();
}

Status cmd_jobs_cancel(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "jobs cancel ID"));
  LLMOPS_ASSIGN_OR_RETURN(Json j, c.call("POST", "/v1/jobs/" + inv.words[2] + "/cancel"));
  if (inv.json) return print_json(j), ok_status();
  std::printf("job %s: %s (%s)\n", str(j, "id").c_str(), j["cancel_requested"].get<bool>() && str(j, "state") == "running"
                                                             ? "cancel requested; it stops at its next check"
                                                             : str(j, "state").c_str(),
              j.value("message", "").c_str());
  return ok_status();
}

Status cmd_jobs_submit(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "jobs submit KIND [--params JSON]"));
  Json params = Json::object();
  if (inv.options.count("params")) {
    LLMOPS_ASSIGN_OR_RETURN(params, parse_json_bounded(inv.options.at("params"), 64));
  }
  Json body = {{"kind", inv.words[2]}, {"params", params}};
  LLMOPS_ASSIGN_OR_RETURN(Json j, c.call("POST", "/v1/jobs", &body));
  if (inv.json) return print_json(j), ok_status();
  std::printf("submitted job %s (%s); follow it with: llmopsctl jobs watch %s\n", str(j, "id").c_str(), str(j, "kind").c_str(),
              str(j, "id").c_str());
  return ok_status();
}

Status cmd_jobs_watch(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "jobs watch ID"));
  return watch_job(c, inv.words[2], inv.json);
}

Status cmd_gc(AdminClient& c, const Invocation& inv) {
  LLMOPS_ASSIGN_OR_RETURN(Json r, c.call("POST", "/v1/gc"));
  if (inv.json) return print_json(r), ok_status();
  std::printf("removed %s unreferenced blob(s), %s orphan file(s), %s temp file(s); freed %s; %s blob(s) kept\n",
              str(r, "blobs_removed").c_str(), str(r, "orphan_files_removed").c_str(), str(r, "temp_files_removed").c_str(),
              human_bytes(r.value("bytes_freed", 0.0)).c_str(), str(r, "blobs_kept").c_str());
  return ok_status();
}

Status cmd_blobs_list(AdminClient& c, const Invocation& inv) {
  LLMOPS_ASSIGN_OR_RETURN(Json r, c.call("GET", "/v1/blobs"));
  if (inv.json) return print_json(r), ok_status();
  Table t({"SHA256", "SIZE", "REFS", "CREATED (UTC)"});
  for (const auto& b : r["blobs"]) {
    t.add({str(b, "sha256"), human_bytes(b.value("size", 0.0)), str(b, "refs"), human_time_ms(b.value("created_ms", uint64_t{0}))});
  }
  if (t.empty()) return std::printf("no blobs\n"), ok_status();
  t.print(stdout);
  return ok_status();
}

// ---- serving: loaded models, the catalogue of versions, aliases ---------------------------------

const char kServing[] = "/v1/modules/serving";

Status cmd_serve_list(AdminClient& c, const Invocation& inv) {
  LLMOPS_ASSIGN_OR_RETURN(Json j, c.call("GET", std::string(kServing) + "/served"));
  if (inv.json) return print_json(j), ok_status();
  if (j["models"].empty()) {
    std::printf("no model loaded (imported models load on their first request, or with: llmopsctl serve load NAME)\n");
  } else {
    Table t({"NAME", "ARCH", "DEVICE", "CONTEXT", "RUNNING", "WAITING", "KV IN USE", "TOKENS", "IDLE", "FROM"});
    for (const Json& m : j["models"]) {
      std::string name = str(m, "name") + (m.value("default", false) ? " *" : "");
      t.add({name, str(m, "arch"), m.value("device", std::string("cpu")), str(m, "context"), str(m, "running"), str(m, "waiting"),
             human_bytes(m.value("kv_bytes_in_use", 0.0)),
             str(m, "tokens_generated"), m.value("pinned", false) ? "pinned" : human_duration(m.value("idle_s", 0.0)), str(m, "path")});
    }
    t.print(stdout);
  }
  std::printf("\nmemory: %s of a %s budget in use; idle models unload after %s\n", human_bytes(j.value("bytes_in_use", 0.0)).c_str(),
              human_bytes(j.value("memory_budget_bytes", 0.0)).c_str(),
              j.value("idle_unload_s", 0) > 0 ? human_duration(j.value("idle_unload_s", 0.0)).c_str() : "never");
  return ok_status();
}

Status cmd_serve_load(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "serve load NAME"));
  Json body = {{"model", inv.words[2]}};
  LLMOPS_ASSIGN_OR_RETURN(Json j, c.call("POST", std::string(kServing) + "/served", &body));
  if (inv.json) return print_json(j), ok_status();
  std::printf("loaded %s (%s, context %s, %s of weights)\n", str(j, "name").c_str(), str(j, "arch").c_str(), str(j, "context").c_str(),
              human_bytes(j.value("weight_bytes", 0.0)).c_str());
  return ok_status();
}

Status cmd_serve_unload(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "serve unload NAME"));
  LLMOPS_ASSIGN_OR_RETURN(Json j, c.call("DELETE", std::string(kServing) + "/served/" + inv.words[2]));
  if (inv.json) return print_json(j), ok_status();
  std::printf("unloaded %s (requests in flight finish first)\n", inv.words[2].c_str());
  return ok_status();
}

// An absolute form of a path given on the command line (the daemon has its own working directory).
std::string absolute_path(const std::string& p) {
  if (p.empty() || p[0] == '/') return p;
  char cwd[4096];
  if (::getcwd(cwd, sizeof cwd) == nullptr) return p;
  return std::string(cwd) + "/" + p;
}

Status cmd_model_import(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "model import PATH --name NAME [--tokenizer FILE] [--chat-template NAME|FILE]"));
  auto name = inv.options.find("name");
  if (name == inv.options.end()) return invalid_argument("model import needs --name NAME (the version's name, e.g. support-bot-v3)");
  Json body = {{"path", absolute_path(inv.words[2])}, {"name", name->second}};
  if (auto t = inv.options.find("tokenizer"); t != inv.options.end()) body["tokenizer"] = absolute_path(t->second);
  if (auto t = inv.options.find("chat-template"); t != inv.options.end()) {
    static const char* kBuiltin[] = {"chatml", "llama2", "llama3", "zephyr"};
    bool builtin = false;
    for (const char* b : kBuiltin) builtin = builtin || t->second == b;
    if (builtin) {
      body["chat_template"] = t->second;
    } else {
      auto text = read_file(t->second, 1u << 20);
      if (!text.ok()) return text.status().with_context("--chat-template (a built-in name: chatml, llama2, llama3, zephyr; or a Jinja file)");
      body["chat_template"] = *text;
    }
  }
  LLMOPS_ASSIGN_OR_RETURN(Json j, c.call("POST", std::string(kServing) + "/models", &body));
  if (inv.json) return print_json(j), ok_status();
  std::printf("imported %s: %s %s, %s layers, context %s, %s in %zu file(s)\n", str(j, "name").c_str(), str(j, "format").c_str(),
              str(j, "arch").c_str(), str(j, "layers").c_str(), str(j, "context").c_str(), human_bytes(j.value("bytes", 0.0)).c_str(),
              j["files"].size());
  return ok_status();
}

Status cmd_model_list(AdminClient& c, const Invocation& inv) {
  LLMOPS_ASSIGN_OR_RETURN(Json j, c.call("GET", std::string(kServing) + "/models"));
  if (inv.json) return print_json(j), ok_status();
  if (j["models"].empty()) return std::printf("no models imported (llmopsctl model import PATH --name NAME)\n"), ok_status();
  Table t({"NAME", "FORMAT", "ARCH", "CONTEXT", "SIZE", "ALIASES", "LOADED", "IMPORTED (UTC)"});
  for (const Json& m : j["models"]) {
    std::string aliases;
    for (const Json& a : m["aliases"]) aliases += (aliases.empty() ? "" : ",") + a.get<std::string>();
    t.add({str(m, "name"), str(m, "format"), str(m, "arch"), str(m, "context"), human_bytes(m.value("bytes", 0.0)),
           aliases.empty() ? "-" : aliases, m.value("loaded", false) ? "yes" : "no", human_time_ms(m.value("imported_ms", uint64_t{0}))});
  }
  t.print(stdout);
  return ok_status();
}

Status cmd_model_show(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "model show NAME"));
  LLMOPS_ASSIGN_OR_RETURN(Json j, c.call("GET", std::string(kServing) + "/models/" + inv.words[2]));
  if (inv.json) return print_json(j), ok_status();
  std::string aliases;
  for (const Json& a : j["aliases"]) aliases += (aliases.empty() ? "" : ", ") + a.get<std::string>();
  std::printf("%s\n  format:        %s (%s)\n  shape:         %s layers, dim %s, vocabulary %s, context %s\n", str(j, "name").c_str(),
              str(j, "format").c_str(), str(j, "arch").c_str(), str(j, "layers").c_str(), str(j, "dim").c_str(), str(j, "vocab").c_str(),
              str(j, "context").c_str());
  std::printf("  weights:       %s in memory, %s on disk\n  imported:      %s by %s from %s\n  aliases:       %s\n",
              human_bytes(j.value("weight_bytes", 0.0)).c_str(), human_bytes(j.value("bytes", 0.0)).c_str(),
              human_time_ms(j.value("imported_ms", uint64_t{0})).c_str(), str(j, "imported_by").c_str(), str(j, "source").c_str(),
              aliases.empty() ? "none" : aliases.c_str());
  std::printf("  chat template: %s\n  loaded:        %s\n", j.value("chat_template", "").empty() ? "the model's own" : str(j, "chat_template").c_str(),
              j.value("loaded", false) ? "yes" : "no");
  if (const Json& l = object_member(j, "lineage"); !l.empty()) {
    const Json& data = object_member(l, "data");
    std::printf("  made by:       %s run %s: %s of %s on %s, final loss %s (validation %s), llmops %s\n", str(l, "stage").c_str(),
                str(l, "run").c_str(), str(l, "method").c_str(), l.value("base", "").empty() ? "a new model" : str(l, "base").c_str(),
                str(data, "ref").c_str(), str(l, "final_train_loss").c_str(), str(l, "final_validation_loss").c_str(), str(l, "code_version").c_str());
  }
  Table t({"FILE", "ROLE", "SIZE", "SHA256"});
  for (const Json& f : j["files"]) t.add({str(f, "name"), str(f, "role"), human_bytes(f.value("size", 0.0)), str(f, "sha256")});
  std::printf("\n");
  t.print(stdout);
  return ok_status();
}

Status cmd_model_rm(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "model rm NAME"));
  LLMOPS_ASSIGN_OR_RETURN(Json j, c.call("DELETE", std::string(kServing) + "/models/" + inv.words[2]));
  if (inv.json) return print_json(j), ok_status();
  std::printf("removed %s; llmopsctl gc frees its %s once no other version shares the files\n", inv.words[2].c_str(),
              human_bytes(j.value("bytes", 0.0)).c_str());
  return ok_status();
}

Status cmd_model_set(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "model set NAME --log-bodies on|off"));
  auto v = inv.options.find("log-bodies");
  if (v == inv.options.end() || (v->second != "on" && v->second != "off")) {
    return invalid_argument("model set takes --log-bodies on|off (whether the request log keeps prompts and completions)");
  }
  Json body = {{"log_bodies", v->second == "on"}};
  LLMOPS_ASSIGN_OR_RETURN(Json j, c.call("PATCH", std::string(kServing) + "/models/" + inv.words[2], &body));
  if (inv.json) return print_json(j), ok_status();
  std::printf("%s: the request log %s prompts and completions\n", str(j, "name").c_str(),
              j.value("log_bodies", false) ? "keeps" : "does not keep");
  return ok_status();
}

Status cmd_serve_log(AdminClient& c, const Invocation& inv) {
  std::string target = std::string(kServing) + "/requests?limit=" + (inv.options.count("limit") ? inv.options.at("limit") : "20");
  if (auto m = inv.options.find("model"); m != inv.options.end()) target += "&model=" + m->second;
  LLMOPS_ASSIGN_OR_RETURN(Json j, c.call("GET", target));
  if (inv.json) return print_json(j), ok_status();
  if (j["requests"].empty()) return std::printf("no requests logged\n"), ok_status();
  auto ms = [](const Json& r, const char* key) {
    if (!r.contains(key) || r[key].is_null()) return std::string("-");
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", r[key].get<double>() * 1000);
    return std::string(buf);
  };
  Table t({"TIME (UTC)", "MODEL", "CALLER", "ROUTE", "STATUS", "OUTCOME", "IN", "OUT", "QUEUE MS", "TTFT MS", "ITL MS", "TOTAL MS"});
  for (const Json& r : j["requests"]) {
    std::string model = str(r, "model");
    if (!r.value("requested", "").empty() && r.value("requested", "") != model) model = r.value("requested", "") + "→" + model;
    t.add({human_time_ms(r.value("time_ms", uint64_t{0})), model, str(r, "caller"), str(r, "route"), str(r, "status"), str(r, "outcome"),
           str(r, "prompt_tokens"), str(r, "completion_tokens"), ms(r, "queue_s"), ms(r, "ttft_s"), ms(r, "itl_mean_s"), ms(r, "e2e_s")});
  }
  t.print(stdout);
  return ok_status();
}

// serve priority: list; serve priority KEY LEVEL: set (KEY: an API key's id or name, or anonymous).
Status cmd_serve_priority(AdminClient& c, const Invocation& inv) {
  if (inv.words.size() < 4) {
    if (inv.words.size() == 3) return invalid_argument("usage: llmopsctl serve priority [KEY batch|normal|interactive]");
    LLMOPS_ASSIGN_OR_RETURN(Json j, c.call("GET", std::string(kServing) + "/priorities"));
    if (inv.json) return print_json(j), ok_status();
    if (j["priorities"].empty()) return std::printf("every caller has normal priority\n"), ok_status();
    Table t({"CALLER", "KEY NAME", "PRIORITY", "SINCE (UTC)", "BY"});
    for (const Json& p : j["priorities"]) {
      t.add({str(p, "caller"), p.value("name", "").empty() ? "-" : str(p, "name"), str(p, "priority"),
             human_time_ms(p.value("updated_ms", uint64_t{0})), str(p, "updated_by")});
    }
    t.print(stdout);
    return ok_status();
  }
  std::string caller = "anonymous", name;
  if (inv.words[2] != "anonymous") {
    LLMOPS_ASSIGN_OR_RETURN(Json keys, c.call("GET", "/v1/keys"));
    for (const Json& k : keys["keys"]) {
      if (str(k, "id") == inv.words[2] || str(k, "name") == inv.words[2]) {
        caller = "key:" + str(k, "id");
        name = str(k, "name");
      }
    }
    if (name.empty()) return not_found("no API key '" + inv.words[2] + "' (llmopsctl keys list shows them)");
  }
  Json body = {{"priority", inv.words[3]}, {"name", name}};
  LLMOPS_ASSIGN_OR_RETURN(Json j, c.call("PUT", std::string(kServing) + "/priorities/" + caller, &body));
  if (inv.json) return print_json(j), ok_status();
  std::printf("%s%s: %s priority\n", caller.c_str(), name.empty() ? "" : (" (" + name + ")").c_str(), str(j, "priority").c_str());
  return ok_status();
}

Status cmd_alias_set(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 4, "alias set ALIAS MODEL"));
  Json body = {{"model", inv.words[3]}};
  LLMOPS_ASSIGN_OR_RETURN(Json j, c.call("PUT", std::string(kServing) + "/aliases/" + inv.words[2], &body));
  if (inv.json) return print_json(j), ok_status();
  if (j["previous"].is_null()) std::printf("%s → %s\n", str(j, "name").c_str(), str(j, "target").c_str());
  else std::printf("%s → %s (was %s; requests in flight finish on it)\n", str(j, "name").c_str(), str(j, "target").c_str(), str(j, "previous").c_str());
  return ok_status();
}

Status cmd_alias_list(AdminClient& c, const Invocation& inv) {
  LLMOPS_ASSIGN_OR_RETURN(Json j, c.call("GET", std::string(kServing) + "/aliases"));
  if (inv.json) return print_json(j), ok_status();
  if (j["aliases"].empty()) return std::printf("no aliases (llmopsctl alias set ALIAS MODEL)\n"), ok_status();
  Table t({"ALIAS", "MODEL", "SINCE (UTC)", "BY"});
  for (const Json& a : j["aliases"]) t.add({str(a, "name"), str(a, "target"), human_time_ms(a.value("updated_ms", uint64_t{0})), str(a, "updated_by")});
  t.print(stdout);
  return ok_status();
}

Status cmd_alias_rm(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "alias rm ALIAS"));
  LLMOPS_ASSIGN_OR_RETURN(Json j, c.call("DELETE", std::string(kServing) + "/aliases/" + inv.words[2]));
  if (inv.json) return print_json(j), ok_status();
  std::printf("removed alias %s\n", inv.words[2].c_str());
  return ok_status();
}

// Streams one generation over the admin socket, printing text as it arrives; *text gets the
// whole of it. The finish reason, or an error.
Result<std::string> stream_generation(AdminClient& c, const std::string& route, const Json& body, std::string* text) {
  std::string finish, failure;
  Status st = c.stream("POST", std::string(kServing) + route, &body, [&](const Json& j) {
    if (j.contains("error")) {
      failure = j["error"].value("message", "");
      return false;
    }
    for (const Json& choice : j.value("choices", Json::array())) {
      std::string piece = choice.contains("delta") ? choice["delta"].value("content", "") : choice.value("text", "");
      std::fputs(piece.c_str(), stdout);
      *text += piece;
      if (!choice["finish_reason"].is_null()) finish = choice["finish_reason"].get<std::string>();
    }
    std::fflush(stdout);
    return true;
  });
  LLMOPS_RETURN_IF_ERROR(st);
  if (!failure.empty()) return internal_error(failure);
  return finish;
}

// The sampling options generate and chat share: --model --max-tokens --temperature --seed.
Status sampling_options(const Invocation& inv, Json* body, const char* default_max_tokens) {
  auto opt = [&](const char* name, const std::string& fallback = "") {
    auto it = inv.options.find(name);
    return it == inv.options.end() ? fallback : it->second;
  };
  if (auto m = opt("model"); !m.empty()) (*body)["model"] = m;
  try {
    if (auto n = opt("max-tokens", default_max_tokens); !n.empty()) (*body)["max_tokens"] = std::stoi(n);
    if (auto t = opt("temperature"); !t.empty()) (*body)["temperature"] = std::stod(t);
    if (auto sd = opt("seed"); !sd.empty()) (*body)["seed"] = std::stoll(sd);
  } catch (const std::exception&) {
    return invalid_argument("--max-tokens, --temperature and --seed take numbers");
  }
  return ok_status();
}

Status cmd_generate(AdminClient& c, const Invocation& inv) {
  std::string prompt = inv.options.count("prompt") ? inv.options.at("prompt") : "";
  if (prompt.empty() && inv.words.size() > 1) prompt = inv.words[1];
  if (prompt.empty()) return invalid_argument("generate needs --prompt TEXT");
  Json body = {{"prompt", prompt}, {"stream", !inv.json}};
  LLMOPS_RETURN_IF_ERROR(sampling_options(inv, &body, "128"));
  if (inv.json) {
    LLMOPS_ASSIGN_OR_RETURN(Json j, c.call("POST", std::string(kServing) + "/completions", &body));
    return print_json(j), ok_status();
  }
  std::string text;
  auto finish = stream_generation(c, "/completions", body, &text);
  std::printf("\n");
  return finish.status();
}

// An interactive conversation: each line read is a user turn; the answer streams back and
// joins the history. Works on a pipe too (one turn per line). /exit or end of input ends it.
Status cmd_chat(AdminClient& c, const Invocation& inv) {
  Json messages = Json::array();
  if (auto sys = inv.options.find("system"); sys != inv.options.end()) messages.push_back({{"role", "system"}, {"content", sys->second}});
  Json base = {{"stream", !inv.json}};
  LLMOPS_RETURN_IF_ERROR(sampling_options(inv, &base, ""));
  const bool tty = ::isatty(STDIN_FILENO) != 0;
  if (tty && !inv.json) std::printf("chatting with %s; /exit or Ctrl-D ends, /reset forgets the conversation\n",
                                    base.contains("model") ? base["model"].get<std::string>().c_str() : "the default model");
  char buf[65536];
  for (;;) {
    if (tty && !inv.json) {
      std::printf(">>> ");
      std::fflush(stdout);
    }
    if (std::fgets(buf, sizeof buf, stdin) == nullptr) break;
    std::string line(buf);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (line == "/exit" || line == "/bye") break;
    if (line == "/reset") {
      Json kept = Json::array();
      if (!messages.empty() && messages[0]["role"] == "system") kept.push_back(messages[0]);
      messages = kept;
      continue;
    }
    if (line.empty()) continue;
    messages.push_back({{"role", "user"}, {"content", line}});
    Json body = base;
    body["messages"] = messages;
    std::string answer;
    if (inv.json) {
      LLMOPS_ASSIGN_OR_RETURN(Json j, c.call("POST", std::string(kServing) + "/chat/completions", &body));
      answer = j["choices"][0]["message"].value("content", "");
      std::printf("%s\n", dump_json(j).c_str());
    } else {
      auto finish = stream_generation(c, "/chat/completions", body, &answer);
      std::printf("\n");
      if (!finish.ok()) {
        messages.erase(messages.end() - 1);  // the turn failed: it does not join the history
        if (finish.status().code() == Code::kInvalidArgument && tty) {
          std::fprintf(stderr, "llmopsctl: %s\n", finish.status().message().c_str());
          continue;
        }
        return finish.status();
      }
      if (tty) std::printf("\n");
    }
    std::fflush(stdout);
    messages.push_back({{"role", "assistant"}, {"content", answer}});
  }
  return ok_status();
}

Status cmd_blobs_verify(AdminClient& c, const Invocation& inv) {
  LLMOPS_ASSIGN_OR_RETURN(Json j, c.call("POST", "/v1/blobs/verify"));
  if (inv.json) return print_json(j), ok_status();
  std::printf("submitted job %s (blobs.verify); follow it with: llmopsctl jobs watch %s\n", str(j, "id").c_str(), str(j, "id").c_str());
  return ok_status();
}

const VerbTable& verbs() {
  static const std::vector<std::pair<std::vector<std::string>, Verb>> kVerbs = {
      {{"status"}, {"status", "the daemon's state, endpoints, store, modules, jobs", cmd_status}},
      {{"modules"}, {"modules", "loaded and refused modules with version, stage and health", cmd_modules}},
      {{"topology"}, {"topology", "NUMA nodes, cores, GPUs, where the worker pools are pinned, and which device serves each loaded model and trains each running run", cmd_topology}},
      {{"config", "show"}, {"config show", "the effective configuration", cmd_config_show}},
      {{"audit"}, {"audit [--limit N]", "the newest admin-plane audit entries", cmd_audit}},
      {{"keys", "list"}, {"keys list", "API keys for the HTTP endpoint (without secrets)", cmd_keys_list}},
      {{"keys", "create"}, {"keys create NAME", "make an API key; the secret is printed once", cmd_keys_create}},
      {{"keys", "revoke"}, {"keys revoke ID|NAME", "revoke an API key at once", cmd_keys_revoke}},
      {{"jobs", "list"}, {"jobs list [--state S] [--limit N]", "jobs, newest first", cmd_jobs_list}},
      {{"jobs", "show"}, {"jobs show ID", "one job in full", cmd_jobs_show}},
      {{"jobs", "watch"}, {"jobs watch ID", "a live progress bar until the job ends (exit code says how)", cmd_jobs_watch}},
      {{"jobs", "cancel"}, {"jobs cancel ID", "cancel a queued or running job", cmd_jobs_cancel}},
      {{"jobs", "submit"}, {"jobs submit KIND [--params JSON]", "queue a job of a registered kind", cmd_jobs_submit}},
      {{"gc"}, {"gc", "remove unreferenced blobs, orphan and stale temp files", cmd_gc}},
      {{"blobs", "list"}, {"blobs list", "content-addressed blobs with sizes and reference counts", cmd_blobs_list}},
      {{"blobs", "verify"}, {"blobs verify", "re-hash every blob as a job", cmd_blobs_verify}},
      {{"generate"}, {"generate --prompt TEXT [--model M] [--max-tokens N] [--temperature T] [--seed S]",
                      "generate from a served model, streaming to the terminal", cmd_generate}},
      {{"chat"}, {"chat [--model M] [--system TEXT] [--max-tokens N] [--temperature T] [--seed S]",
                  "an interactive conversation with a served model (one turn per input line)", cmd_chat}},
      {{"serve", "list"}, {"serve list", "loaded models: device (CPU or which GPU), context, running and waiting sequences, KV in use, memory", cmd_serve_list}},
      {{"serve", "load"}, {"serve load NAME", "load a model version or alias now", cmd_serve_load}},
      {{"serve", "unload"}, {"serve unload NAME", "unload a model (requests in flight finish)", cmd_serve_unload}},
      {{"model", "import"}, {"model import PATH --name NAME [--tokenizer F] [--chat-template T]",
                             "import a GGUF file, HF directory or llama2.c checkpoint as a version", cmd_model_import}},
      {{"model", "list"}, {"model list", "imported model versions with aliases", cmd_model_list}},
      {{"model", "show"}, {"model show NAME", "one version: shape, files, sha256, aliases", cmd_model_show}},
      {{"model", "rm"}, {"model rm NAME", "remove a version no alias points at", cmd_model_rm}},
      {{"model", "set"}, {"model set NAME --log-bodies on|off", "whether the request log keeps this version's prompts and completions", cmd_model_set}},
      {{"serve", "priority"}, {"serve priority [KEY batch|normal|interactive]",
                               "scheduling priority by API key: interactive goes first, batch gives way", cmd_serve_priority}},
      {{"serve", "log"}, {"serve log [--model M] [--limit N]", "the newest requests: outcome, tokens, queue, TTFT, inter-token latency", cmd_serve_log}},
      {{"alias", "set"}, {"alias set ALIAS MODEL", "point an alias at a version (atomic; drops no request)", cmd_alias_set}},
      {{"alias", "list"}, {"alias list", "aliases and the versions they point at", cmd_alias_list}},
      {{"alias", "rm"}, {"alias rm ALIAS", "remove an alias", cmd_alias_rm}},
  };
  static const std::vector<std::pair<std::vector<std::string>, Verb>> kAll = [] {
    auto all = kVerbs;
    for (const auto& v : data_verbs()) all.push_back(v);
    for (const auto& v : eval_verbs()) all.push_back(v);
    for (const auto& v : tune_verbs()) all.push_back(v);
    return all;
  }();
  return kAll;
}

void print_overview() {
  std::printf("llmopsctl %s - drive llmopsd over its admin socket.\n\nUsage: llmopsctl [--socket PATH] [--json] VERB ...\n\nVerbs:\n",
              LLMOPS_VERSION_STRING);
  for (const auto& [words, v] : verbs()) std::printf("  %-38s %s\n", v.usage.c_str(), v.summary.c_str());
  std::printf("\n%s", kGlobalHelp);
}

Result<Invocation> parse(const std::vector<std::string>& args) {
  Invocation inv;
  inv.socket = default_socket_path();
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--json") {
      inv.json = true;
    } else if (a == "-h" || a == "--help") {
      inv.help = true;
    } else if (a.rfind("--", 0) == 0 && a.size() > 2) {
      std::string name = a.substr(2), value;
      auto eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      } else if (is_flag_option(name)) {
        value = "true";
      } else {
        if (i + 1 >= args.size()) return invalid_argument("option --" + name + " needs a value");
        value = args[++i];
      }
      if (name == "socket") inv.socket = value;
      else inv.options[name] = value;
    } else {
      inv.words.push_back(a);
    }
  }
  return inv;
}

}  // namespace

Status job_final_status(const Json& j) {
  std::string state = j.value("state", "");
  if (state == "succeeded") return ok_status();
  std::string msg = "job " + str(j, "id") + " " + state + ": " + j.value("message", "");
  if (state == "cancelled") return cancelled(msg);
  if (state == "interrupted") return aborted(msg);
  if (state == "queued" || state == "running") return unavailable(msg);
  return internal_error(msg);
}

Status watch_job(AdminClient& c, const std::string& id, bool json) {
  bool tty = ::isatty(STDOUT_FILENO) != 0 && !json;
  Json last;
  auto t0 = std::chrono::steady_clock::now();
  double done0 = -1;
  Status st = c.stream("/v1/jobs/" + id + "/watch", [&](const Json& j) {
    if (j.contains("event")) {
      if (!json) std::printf("%sllmopsd is stopping; the job continues or resumes when it restarts\n", tty ? "\n" : "");
      return false;
    }
    last = j;
    if (json) {
      std::printf("%s\n", dump_json(j).c_str());
      std::fflush(stdout);
      return true;
    }
    double done = j["progress"].value("done", 0.0), total = j["progress"].value("total", 0.0);
    if (done0 < 0) done0 = done;
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double rate = elapsed > 0 ? (done - done0) / elapsed : 0;
    std::string eta = rate > 0 && total > done ? human_duration((total - done) / rate) : "-";
    std::string line = progress_bar(done, total, 30) + " " + job_progress_text(j) + "  " + str(j, "state") + "  ETA " + eta + "  " +
                       j.value("message", "");
    if (line.size() > 110) line.resize(110);
    if (tty) std::printf("\r\033[K%s", line.c_str());
    else std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    return true;
  });
  if (tty) std::printf("\n");
  LLMOPS_RETURN_IF_ERROR(st);
  if (last.is_null()) return unavailable("the watch ended before any update");
  if (!json) std::printf("job %s %s: %s\n", str(last, "id").c_str(), str(last, "state").c_str(), last.value("message", "").c_str());
  return job_final_status(last);
}

int run_ctl(const std::vector<std::string>& args) {
  if (!args.empty() && args[0] == "--version") {
    std::printf("llmopsctl %s\n", LLMOPS_VERSION_STRING);
    return 0;
  }
  auto inv = parse(args);
  if (!inv.ok()) {
    std::fprintf(stderr, "llmopsctl: %s\n", inv.status().message().c_str());
    return 2;
  }
  if (inv->words.empty()) {
    print_overview();
    return inv->help ? 0 : 2;
  }
  const Verb* verb = nullptr;
  size_t best = 0;
  bool group_known = false;
  for (const auto& [words, v] : verbs()) {
    if (words[0] == inv->words[0]) group_known = true;
    if (words.size() <= inv->words.size() && words.size() > best &&
        std::equal(words.begin(), words.end(), inv->words.begin())) {
      verb = &v;
      best = words.size();
    }
  }
  if (verb == nullptr) {
    if (group_known) {
      std::fprintf(stderr, "llmopsctl: '%s' needs a sub-command:\n", inv->words[0].c_str());
      for (const auto& [words, v] : verbs()) {
        if (words[0] == inv->words[0]) std::fprintf(stderr, "  llmopsctl %-34s %s\n", v.usage.c_str(), v.summary.c_str());
      }
      return inv->help ? 0 : 2;
    }
    std::fprintf(stderr, "llmopsctl: unknown verb '%s' (llmopsctl --help lists them)\n", inv->words[0].c_str());
    return 2;
  }
  if (inv->help) {
    std::printf("Usage: llmopsctl %s\n\n%s.\n\n%s", verb->usage.c_str(), verb->summary.c_str(), kGlobalHelp);
    return 0;
  }
  AdminClient client(inv->socket);
  Status st = verb->run(client, *inv);
  if (!st.ok()) {
    std::fprintf(stderr, "llmopsctl: %s\n", st.message().c_str());
    if (st.code() == Code::kInvalidArgument && st.message().rfind("usage:", 0) == 0) return 2;
  }
  return exit_code_for(st.code());
}

}  // namespace llmops::ctl
