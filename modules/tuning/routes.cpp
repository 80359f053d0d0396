// The tuning stage's admin plane for llmopsctl (mounted under /v1/modules/tuning):
//
//   POST   /runs               start a training run (a job) → {run, job}
//   GET    /runs               ?limit= runs, newest first
//   GET    /runs/{id}          one run: base, data, hyperparameters, plan, status, results
//   GET    /runs/{id}/curve    ?offset=&limit= the loss curve, one point per step
//   POST   /searches           start a hyperparameter search (a job) → {run, job}
#include "common/admin_request.h"
#include "tuning/state.h"

namespace llmops::tuning {
namespace {

using admin::query_number;

llmops_code error(State* s, llmops_response* resp, const Status& st) { return admin::respond_error(s->sdk(), resp, st); }

// A run prepared from the request body and queued as a job of `verb`; 202 with the run, the job
// and what `extra` adds from the run.
template <typename Prepare, typename Extra>
llmops_code queue_route(State* s, const llmops_request* req, llmops_response* resp, Prepare prepare, const std::string& verb, Extra extra) {
  auto body = parse_json_bounded(std::string_view(req->body, req->body_size), 32);
  if (!body.ok()) return error(s, resp, body.status().with_context("the request body"));
  auto run = prepare(s, *body, req->caller);
  if (!run.ok()) return error(s, resp, run.status());
  auto job = runs::queue_run_job(s->sdk(), *s->runs, *run, verb.c_str());
  if (!job.ok()) return error(s, resp, job.status());
  Json out = {{"run", (*run)["id"]}, {"job", *job}, {"kind", "tuning." + verb}};
  extra(*run, out);
  admin::respond(s->sdk(), resp, 202, out);
  return LLMOPS_OK;
}

llmops_code start_route(void* user, const llmops_request* req, llmops_response* resp) {
  return queue_route(static_cast<State*>(user), req, resp, prepare_training, "train", [](const Json& run, Json& out) { out["output"] = run["output"]; });
}

llmops_code search_route(void* user, const llmops_request* req, llmops_response* resp) {
  return queue_route(static_cast<State*>(user), req, resp, prepare_search, "search",
                     [](const Json& run, Json& out) { out["trials"] = run["configs"].size(); });
}

llmops_code list_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto limit = query_number(req, "limit", 50, 10000);
  if (!limit.ok()) return error(s, resp, limit.status());
  auto runs = s->runs->list(*limit);
  if (!runs.ok()) return error(s, resp, runs.status());
  Json list = Json::array();
  for (const auto& r : *runs) {
    list.push_back({{"id", r["id"]}, {"kind", r.value("kind", "train")}, {"status", r.value("status", "")}, {"base", r["base"].value("name", "")},
                    {"data", r["data"].value("ref", "")}, {"method", object_member(r, "hyperparameters").value("method", r.value("strategy", ""))},
                    {"output", r.value("output", "")}, {"device", r.value("device", Json())},
                    {"created_ms", r.value("created_ms", uint64_t{0})}, {"results", r.value("results", Json::object())}});
  }
  admin::respond(s->sdk(), resp, 200, {{"runs", list}});
  return LLMOPS_OK;
}

llmops_code show_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto id = runs::parse_run_id(admin::segment(req, "tuning", 1), "tune");
  if (!id.ok()) return error(s, resp, id.status());
  auto run = s->runs->get(*id);
  if (!run.ok()) return error(s, resp, run.status());
  admin::respond(s->sdk(), resp, 200, *run);
  return LLMOPS_OK;
}

llmops_code curve_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto id = runs::parse_run_id(admin::segment(req, "tuning", 1), "tune");
  if (!id.ok()) return error(s, resp, id.status());
  auto offset = query_number(req, "offset", 0, UINT64_MAX >> 12);
  auto limit = query_number(req, "limit", 100000, 1000000);
  if (!offset.ok() || !limit.ok()) return error(s, resp, offset.ok() ? limit.status() : offset.status());
  if (auto run = s->runs->get(*id); !run.ok()) return error(s, resp, run.status());
  auto points = s->runs->examples(*id, *offset, *limit);
  if (!points.ok()) return error(s, resp, points.status());
  for (auto& p : *points) p.erase("i");
  admin::respond(s->sdk(), resp, 200, {{"run", *id}, {"points", *points}});
  return LLMOPS_OK;
}

}  // namespace

void add_routes(const std::function<void(const char* method, const char* path, llmops_route_fn fn)>& add) {
  add("POST", "/runs", start_route);
  add("GET", "/runs", list_route);
  add("GET", "/runs/{id}", show_route);
  add("GET", "/runs/{id}/curve", curve_route);
  add("POST", "/searches", search_route);
}

}  // namespace llmops::tuning
