// The eval stage's admin plane for llmopsctl (mounted under /v1/modules/eval):
//
//   POST   /score                 score predictions already in a dataset (a job) → {run, job}
//   POST   /runs                  generate with a model and score (a job) → {run, job}
//   GET    /runs                  ?limit= runs, newest first
//   GET    /runs/{id}             one run: parameters, status, aggregates with signatures
//   GET    /runs/{id}/examples    ?offset=&limit= its examples: prediction, references, scores
//   DELETE /runs/{id}             remove a run and its examples (not while it runs)
//   GET    /compare               ?a=&b=&metric=&samples=&show= two runs side by side
//   POST   /probes                run a probe set on a model (a job) → {run, job}
//   GET    /models/{name}         the latest finished evaluation of a model per dataset and probe
//                                 set: the inputs of an approval gate
#include <map>

#include "common/admin_request.h"
#include "eval/state.h"

namespace llmops::eval {
namespace {

using admin::query;
using admin::query_number;

llmops_code error(State* s, llmops_response* resp, const Status& st) { return admin::respond_error(s->sdk(), resp, st); }

llmops_code submit(State* s, const llmops_request* req, llmops_response* resp, const std::string& kind) {
  auto body = parse_json_bounded(std::string_view(req->body, req->body_size), 32);
  if (!body.ok()) return error(s, resp, body.status().with_context("the request body"));
  auto run = prepare_run(s, kind, *body, req->caller);
  if (!run.ok()) return error(s, resp, run.status());
  const uint64_t id = (*run)["id"].get<uint64_t>();
  auto job = runs::queue_run_job(s->sdk(), *s->runs, *run, kind.c_str());
  if (!job.ok()) return error(s, resp, job.status());
  admin::respond(s->sdk(), resp, 202, {{"run", id}, {"job", *job}, {"kind", "eval." + kind}, {"data", (*run)["data"]["ref"]}});
  return LLMOPS_OK;
}

llmops_code score_route(void* user, const llmops_request* req, llmops_response* resp) {
  return submit(static_cast<State*>(user), req, resp, "score");
}
llmops_code run_route(void* user, const llmops_request* req, llmops_response* resp) {
  return submit(static_cast<State*>(user), req, resp, "run");
}
llmops_code probe_route(void* user, const llmops_request* req, llmops_response* resp) {
  return submit(static_cast<State*>(user), req, resp, "probe");
}

Json summary(const Json& run) {
  Json j = {{"id", run["id"]}, {"kind", run.value("kind", "")}, {"status", run.value("status", "")},
            {"data", run["data"].value("ref", "")}, {"created_ms", run.value("created_ms", uint64_t{0})}};
  if (run.contains("model")) j["model"] = run["model"].value("name", "");
  if (run.contains("job")) j["job"] = run["job"];
  Json scores = Json::object();
  for (const auto& [name, r] : object_member(run, "results").items()) scores[name] = r["score"];
  j["scores"] = scores;
  if (run.contains("examples")) j["examples"] = run["examples"];
  return j;
}

llmops_code list_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto limit = query_number(req, "limit", 50, 10000);
  if (!limit.ok()) return error(s, resp, limit.status());
  auto runs = s->runs->list(*limit);
  if (!runs.ok()) return error(s, resp, runs.status());
  Json list = Json::array();
  for (const auto& r : *runs) list.push_back(summary(r));
  admin::respond(s->sdk(), resp, 200, {{"runs", list}});
  return LLMOPS_OK;
}

Result<uint64_t> id_of(const llmops_request* req) { return parse_run_id(admin::segment(req, "eval", 1)); }

llmops_code show_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto id = id_of(req);
  if (!id.ok()) return error(s, resp, id.status());
  auto run = s->runs->get(*id);
  if (!run.ok()) return error(s, resp, run.status());
  admin::respond(s->sdk(), resp, 200, *run);
  return LLMOPS_OK;
}

llmops_code examples_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto id = id_of(req);
  if (!id.ok()) return error(s, resp, id.status());
  auto offset = query_number(req, "offset", 0, UINT64_MAX >> 12);
  auto limit = query_number(req, "limit", 20, 10000);
  if (!offset.ok() || !limit.ok()) return error(s, resp, offset.ok() ? limit.status() : offset.status());
  auto run = s->runs->get(*id);
  if (!run.ok()) return error(s, resp, run.status());
  auto ex = s->runs->examples(*id, *offset, *limit);
  if (!ex.ok()) return error(s, resp, ex.status());
  Json list = Json::array();
  for (auto& e : *ex) {
    e.erase("stats");  // resampling material, not for reading
    list.push_back(std::move(e));
  }
  admin::respond(s->sdk(), resp, 200, {{"run", *id}, {"offset", *offset}, {"examples", list}});
  return LLMOPS_OK;
}

llmops_code remove_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto id = id_of(req);
  if (!id.ok()) return error(s, resp, id.status());
  auto run = s->runs->get(*id);
  if (!run.ok()) return error(s, resp, run.status());
  const std::string status = run->value("status", "");
  if (status == "queued" || status == "running") {
    return error(s, resp, failed_precondition("run " + std::to_string(*id) + " is " + status + "; cancel its job first (llmopsctl jobs cancel " +
                                              std::to_string(run->value("job", uint64_t{0})) + ")"));
  }
  if (Status st = s->runs->remove(*id); !st.ok()) return error(s, resp, st);
  admin::respond(s->sdk(), resp, 200, {{"removed", *id}});
  return LLMOPS_OK;
}

llmops_code compare_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto a = parse_run_id(query(req, "a"));
  auto b = parse_run_id(query(req, "b"));
  if (!a.ok() || !b.ok()) return error(s, resp, invalid_argument("name two runs: ?a=RUN&b=RUN"));
  auto samples = query_number(req, "samples", 1000, 100000);
  auto show = query_number(req, "show", 5, 1000);
  if (!samples.ok() || !show.ok()) return error(s, resp, samples.ok() ? show.status() : samples.status());
  auto cmp = compare_runs(s, *a, *b, query(req, "metric"), static_cast<int>(*samples), *show);
  if (!cmp.ok()) return error(s, resp, cmp.status());
  admin::respond(s->sdk(), resp, 200, *cmp);
  return LLMOPS_OK;
}

llmops_code model_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  const std::string name = admin::segment(req, "eval", 1);
  auto runs = s->runs->list(SIZE_MAX);
  if (!runs.ok()) return error(s, resp, runs.status());
  // Newest first: the first finished run per (kind, data) is the one that counts.
  std::map<std::string, Json> latest;
  for (const auto& r : *runs) {
    if (!r.contains("model") || r.value("status", "") != "done") continue;
    if (r["model"].value("name", "") != name && r["model"].value("requested", "") != name) continue;
    const std::string key = r.value("kind", "") + " " + r["data"].value("ref", "");
    if (latest.count(key) == 0) latest[key] = r;
  }
  Json list = Json::array();
  for (const auto& [key, r] : latest) {
    Json scores = Json::object();
    for (const auto& [metric, res] : object_member(r, "results").items()) {
      scores[metric] = {{"score", res["score"]}, {"higher_is_better", res.value("higher_is_better", true)}};
    }
    list.push_back({{"run", r["id"]}, {"kind", r["kind"]}, {"data", r["data"].value("ref", "")}, {"finished_ms", r.value("finished_ms", uint64_t{0})},
                    {"results", scores}});
  }
  admin::respond(s->sdk(), resp, 200, {{"model", name}, {"evaluations", list}});
  return LLMOPS_OK;
}

}  // namespace

void add_routes(const std::function<void(const char* method, const char* path, llmops_route_fn fn)>& add) {
  add("POST", "/score", score_route);
  add("POST", "/runs", run_route);
  add("GET", "/runs", list_route);
  add("GET", "/runs/{id}", show_route);
  add("GET", "/runs/{id}/examples", examples_route);
  add("DELETE", "/runs/{id}", remove_route);
  add("GET", "/compare", compare_route);
  add("POST", "/probes", probe_route);
  add("GET", "/models/{name}", model_route);
}

}  // namespace llmops::eval
