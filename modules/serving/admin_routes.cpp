// The admin plane for llmopsctl (mounted under /v1/modules/serving): loaded models, the
// catalogue of versions, aliases, priorities by API key and the request log.
#include <algorithm>
#include <string>

#include "serving/state.h"

namespace llmops::serving {
namespace {

// ---- admin: served models, the catalogue, aliases --------------------------------------------

// The last path segment: {name} in the admin routes.
std::string last_segment(const llmops_request* req) {
  std::string path = req->path;
  return path.substr(path.rfind('/') + 1);
}

llmops_code respond_status(State* s, llmops_response* resp, const llmops::Status& st) {
  int code = 500;
  switch (st.code()) {
    case llmops::Code::kInvalidArgument: code = 400; break;
    case llmops::Code::kNotFound: code = 404; break;
    case llmops::Code::kAlreadyExists:
    case llmops::Code::kFailedPrecondition: code = 409; break;
    case llmops::Code::kResourceExhausted: code = 507; break;
    default: code = http_status(st);
  }
  return respond_error(s, resp, code, st.message());
}

Json served_json(State* s, const Served& m) {
  SchedulerStats st = m.scheduler->stats();
  const std::string d = s->models->default_name();
  auto resolved = d.empty() ? llmops::Result<std::string>(std::string()) : s->registry->resolve(d);
  const bool is_default = !d.empty() && (m.name == d || (resolved.ok() && *resolved == m.name));
  return {{"name", m.name}, {"origin", m.origin}, {"path", m.path}, {"default", is_default},
          {"pinned", m.pinned}, {"context", m.scheduler->context()}, {"running", st.running}, {"waiting", st.waiting},
          {"kv_bytes_in_use", st.kv_bytes_in_use}, {"steps", st.steps}, {"tokens_generated", st.tokens_generated},
          {"prompt_tokens", st.prompt_tokens}, {"prefix_hit_tokens", st.prefix_hit_tokens}, {"cached_prefixes", st.cached_prefixes},
          {"prefix_cache_bytes", st.prefix_cache_bytes},
          {"weight_bytes", m.model->weight_bytes()}, {"packed_bytes", m.model->packed_bytes()}, {"budget_bytes", m.cost_bytes}, {"arch", m.model->config().arch_name},
          {"chat_template", m.chat_source}, {"idle_s", (unix_ms_now() - m.last_used_ms.load()) / 1000},
          {"device", m.scheduler->device()}, {"kv_cache_type", m.scheduler->kv_cache_type()}};
}

// GET /served: the loaded models with their schedulers' state and the memory budget.
llmops_code admin_served_route(void* user, const llmops_request*, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  if (!started(s, resp)) return LLMOPS_OK;
  Json list = Json::array();
  for (const auto& m : s->models->loaded()) list.push_back(served_json(s, *m));
  const auto& o = s->models->options();
  respond_json(s, resp, 200, {{"models", list}, {"memory_budget_bytes", o.memory_budget_bytes},
                              {"bytes_in_use", s->models->bytes_in_use()}, {"idle_unload_s", o.idle_unload_s}});
  return LLMOPS_OK;
}

// POST /served {"model"}: load now (llmopsctl serve load).
llmops_code admin_load_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto body = parse_body(s, req, resp);
  if (!body) return LLMOPS_OK;
  auto m = body->find("model");
  if (m == body->end() || !m->is_string()) return respond_error(s, resp, 400, "'model' (a model or alias name) is required", "model");
  if (!started(s, resp)) return LLMOPS_OK;
  auto served = s->models->load(m->get<std::string>());
  if (!served.ok()) return respond_status(s, resp, served.status());
  respond_json(s, resp, 200, served_json(s, **served));
  return LLMOPS_OK;
}

// DELETE /served/{name}: unload (in-flight requests finish first).
llmops_code admin_unload_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  if (!started(s, resp)) return LLMOPS_OK;
  llmops::Status st = s->models->unload(last_segment(req));
  if (!st.ok()) return respond_status(s, resp, st);
  respond_json(s, resp, 200, {{"unloaded", last_segment(req)}});
  return LLMOPS_OK;
}

Json record_json(State* s, const ModelRecord& r) {
  Json j = r.to_json();
  if (j["chat_template"].get<std::string>().size() > 64) j["chat_template"] = "(custom template text)";
  auto aliases = s->registry->aliases_of(r.name);
  j["aliases"] = aliases.ok() ? Json(*aliases) : Json::array();
  j["loaded"] = s->models != nullptr && s->models->find_loaded(r.name) != nullptr;
  return j;
}

// Whether name is the configured (pinned) model's: it answers to that name first, so a version
// or an alias of the same name could never be reached.
bool taken_by_configured_model(State* s, const std::string& name) {
  if (s->models == nullptr) return false;
  auto m = s->models->find_loaded(name);
  return m != nullptr && m->origin == "config";
}

// GET /models: the imported versions.
llmops_code admin_models_route(void* user, const llmops_request*, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto records = s->registry->models();
  if (!records.ok()) return respond_status(s, resp, records.status());
  Json list = Json::array();
  for (const auto& r : *records) list.push_back(record_json(s, r));
  respond_json(s, resp, 200, {{"models", list}});
  return LLMOPS_OK;
}

// GET /models/{name}: one version in full (an alias shows its target).
llmops_code admin_model_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto name = s->registry->resolve(last_segment(req));
  if (!name.ok()) return respond_status(s, resp, name.status());
  auto r = s->registry->model(*name);
  if (!r.ok()) return respond_status(s, resp, r.status());
  if (!r->has_value()) return respond_error(s, resp, 404, "no model '" + last_segment(req) + "' (llmopsctl model list shows them)");
  Json j = record_json(s, **r);
  if (auto loaded = s->models != nullptr ? s->models->find_loaded(*name) : nullptr) j["served"] = served_json(s, *loaded);
  respond_json(s, resp, 200, j);
  return LLMOPS_OK;
}

// POST /models {"path", "name", "tokenizer"?, "chat_template"?, "lineage"?}: import a version.
llmops_code admin_import_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto body = parse_body(s, req, resp);
  if (!body) return LLMOPS_OK;
  ImportRequest ir;
  for (auto [key, field] : {std::pair{"path", &ir.path}, {"name", &ir.name}, {"tokenizer", &ir.tokenizer}, {"chat_template", &ir.chat_template}}) {
    auto it = body->find(key);
    if (it == body->end() || it->is_null()) continue;
    if (!it->is_string()) return respond_error(s, resp, 400, std::string("'") + key + "' must be a string", key);
    *field = it->get<std::string>();
  }
  if (ir.path.empty() || ir.name.empty()) return respond_error(s, resp, 400, "'path' and 'name' are required");
  if (auto it = body->find("lineage"); it != body->end() && !it->is_null()) {
    if (!it->is_object()) return respond_error(s, resp, 400, "'lineage' must be a JSON object", "lineage");
    ir.lineage = *it;
  }
  ir.caller = req->caller;
  if (taken_by_configured_model(s, ir.name)) {
    return respond_error(s, resp, 409, "'" + ir.name + "' is the configured model's name (serving.model-name); choose another name");
  }
  auto rec = import_model(s->sdk(), *s->registry, ir);
  if (!rec.ok()) return respond_status(s, resp, rec.status());
  s->sdk().info("imported model '" + rec->name + "' (" + rec->format + ", " + std::to_string(rec->bytes() >> 20) + " MiB) from " + rec->source +
                " by " + ir.caller);
  respond_json(s, resp, 201, record_json(s, *rec));
  return LLMOPS_OK;
}

// DELETE /models/{name}: remove a version (refused while an alias points at it); unloads it
// and gives its blobs back (llmopsctl gc frees the space).
llmops_code admin_remove_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  const std::string name = last_segment(req);
  auto r = s->registry->model(name);
  if (!r.ok()) return respond_status(s, resp, r.status());
  if (!r->has_value()) return respond_error(s, resp, 404, "no model '" + name + "' (llmopsctl model list shows them)");
  llmops::Status st = s->registry->remove_model(name);
  if (!st.ok()) return respond_status(s, resp, st);
  if (s->models != nullptr) (void)s->models->unload(name);
  for (const auto& f : (*r)->files) {
    llmops_error err{};
    if (s->host->blob_ref(s->ctx, f.sha256.c_str(), -1, &err) != LLMOPS_OK) {
      s->sdk().warn("model '" + name + "' removed but its blob " + f.sha256 + " kept a reference: " + err.message);
    }
  }
  s->sdk().info("removed model '" + name + "' by " + req->caller);
  respond_json(s, resp, 200, {{"removed", name}, {"bytes", (*r)->bytes()}});
  return LLMOPS_OK;
}

// GET /aliases; PUT /aliases/{name} {"model"}: create or repoint atomically; DELETE /aliases/{name}.
llmops_code admin_aliases_route(void* user, const llmops_request*, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto all = s->registry->aliases();
  if (!all.ok()) return respond_status(s, resp, all.status());
  Json list = Json::array();
  for (const auto& a : *all) list.push_back(a.to_json());
  respond_json(s, resp, 200, {{"aliases", list}});
  return LLMOPS_OK;
}

llmops_code admin_set_alias_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto body = parse_body(s, req, resp);
  if (!body) return LLMOPS_OK;
  auto m = body->find("model");
  if (m == body->end() || !m->is_string()) return respond_error(s, resp, 400, "'model' (the version to point at) is required", "model");
  AliasRecord a;
  a.name = last_segment(req);
  a.target = m->get<std::string>();
  a.updated_ms = static_cast<uint64_t>(unix_ms_now());
  a.updated_by = req->caller;
  if (taken_by_configured_model(s, a.name)) {
    return respond_error(s, resp, 409, "'" + a.name + "' is the configured model's name (serving.model-name); choose another alias");
  }
  auto before = s->registry->alias(a.name);
  llmops::Status st = s->registry->set_alias(a);
  if (!st.ok()) return respond_status(s, resp, st);
  Json j = a.to_json();
  j["previous"] = before.ok() && before->has_value() ? Json((*before)->target) : Json(nullptr);
  s->sdk().info("alias '" + a.name + "' → '" + a.target + "'" +
                (j["previous"].is_null() ? std::string() : " (was '" + j["previous"].get<std::string>() + "')") + " by " + a.updated_by);
  respond_json(s, resp, 200, j);
  return LLMOPS_OK;
}

llmops_code admin_remove_alias_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  llmops::Status st = s->registry->remove_alias(last_segment(req));
  if (!st.ok()) return respond_status(s, resp, st);
  respond_json(s, resp, 200, {{"removed", last_segment(req)}});
  return LLMOPS_OK;
}

// GET /requests?limit=N&model=M: the request log, newest first.
llmops_code admin_requests_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  if (!started(s, resp)) return LLMOPS_OK;
  size_t limit = 50;
  std::string model;
  std::string_view q = req->query;
  while (!q.empty()) {
    std::string_view part = q.substr(0, q.find('&'));
    q.remove_prefix(std::min(q.size(), part.size() + 1));
    const auto eq = part.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view k = part.substr(0, eq), v = part.substr(eq + 1);
    if (k == "limit") {
      limit = 0;
      for (char c : v) {
        if (c < '0' || c > '9' || limit > 1000000) return respond_error(s, resp, 400, "limit must be a positive number", "limit");
        limit = limit * 10 + static_cast<size_t>(c - '0');
      }
    } else if (k == "model") {
      model = std::string(v);
    }
  }
  auto rows = s->log->newest(limit, model);
  if (!rows.ok()) return respond_status(s, resp, rows.status());
  respond_json(s, resp, 200, {{"requests", *rows}, {"capacity", s->log->capacity()}});
  return LLMOPS_OK;
}

// GET /priorities; PUT /priorities/{caller} {"priority": batch|normal|interactive, "name"};
// DELETE /priorities/{caller}. Callers are "key:<id>" (llmopsctl resolves key names) or "anonymous".
llmops_code admin_priorities_route(void* user, const llmops_request*, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto all = s->registry->priorities();
  if (!all.ok()) return respond_status(s, resp, all.status());
  respond_json(s, resp, 200, {{"priorities", *all}});
  return LLMOPS_OK;
}

llmops_code admin_set_priority_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto body = parse_body(s, req, resp);
  if (!body) return LLMOPS_OK;
  const std::string caller = last_segment(req);
  if (caller != "anonymous" && (caller.rfind("key:", 0) != 0 || caller.size() == 4 || caller.find_first_not_of("0123456789", 4) != std::string::npos)) {
    return respond_error(s, resp, 400, "the caller must be key:<id> or anonymous");
  }
  auto p = body->find("priority");
  int level = -1;
  for (int i = 0; i < 3; ++i) {
    if (p != body->end() && p->is_string() && p->get<std::string>() == kPriorityNames[i]) level = i;
  }
  if (level < 0) return respond_error(s, resp, 400, "'priority' must be batch, normal or interactive", "priority");
  Json entry = {{"caller", caller}, {"priority", kPriorityNames[level]}, {"name", body->value("name", "")},
                {"updated_ms", unix_ms_now()}, {"updated_by", req->caller}};
  llmops::Status st = level == 1 ? s->registry->remove_priority(caller) : s->registry->set_priority(caller, entry);
  if (!st.ok() && st.code() != llmops::Code::kNotFound) return respond_status(s, resp, st);
  {
    std::lock_guard lock(s->prio_mu);
    if (level == 1) s->priorities.erase(caller);
    else s->priorities[caller] = level;
  }
  s->sdk().info("priority of " + caller + " is " + kPriorityNames[level] + " (by " + std::string(req->caller) + ")");
  respond_json(s, resp, 200, entry);
  return LLMOPS_OK;
}

// PATCH /models/{name} {"log_bodies": bool}: per-version settings.
llmops_code admin_model_settings_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto body = parse_body(s, req, resp);
  if (!body) return LLMOPS_OK;
  auto r = s->registry->model(last_segment(req));
  if (!r.ok()) return respond_status(s, resp, r.status());
  if (!r->has_value()) return respond_error(s, resp, 404, "no model '" + last_segment(req) + "' (llmopsctl model list shows them)");
  ModelRecord rec = **r;
  for (const auto& [key, value] : body->items()) {
    if (key != "log_bodies") return respond_error(s, resp, 400, "unknown setting '" + key + "' (settable: log_bodies)", key);
    if (!value.is_boolean()) return respond_error(s, resp, 400, "'log_bodies' must be true or false", "log_bodies");
    rec.log_bodies = value.get<bool>();
  }
  llmops::Status st = s->registry->update_model(rec);
  if (!st.ok()) return respond_status(s, resp, st);
  if (auto loaded = s->models != nullptr ? s->models->find_loaded(rec.name) : nullptr) loaded->log_bodies = rec.log_bodies;
  s->sdk().info("model '" + rec.name + "': log_bodies " + (rec.log_bodies ? "on" : "off") + " by " + req->caller);
  respond_json(s, resp, 200, record_json(s, rec));
  return LLMOPS_OK;
}

}  // namespace

void add_admin_routes(const RouteAdder& add) {
  add(LLMOPS_PLANE_ADMIN, "GET", "/served", admin_served_route);
  add(LLMOPS_PLANE_ADMIN, "POST", "/served", admin_load_route);
  add(LLMOPS_PLANE_ADMIN, "DELETE", "/served/{name}", admin_unload_route);
  add(LLMOPS_PLANE_ADMIN, "GET", "/models", admin_models_route);
  add(LLMOPS_PLANE_ADMIN, "POST", "/models", admin_import_route);
  add(LLMOPS_PLANE_ADMIN, "GET", "/models/{name}", admin_model_route);
  add(LLMOPS_PLANE_ADMIN, "DELETE", "/models/{name}", admin_remove_route);
  add(LLMOPS_PLANE_ADMIN, "PATCH", "/models/{name}", admin_model_settings_route);
  add(LLMOPS_PLANE_ADMIN, "GET", "/requests", admin_requests_route);
  add(LLMOPS_PLANE_ADMIN, "GET", "/priorities", admin_priorities_route);
  add(LLMOPS_PLANE_ADMIN, "PUT", "/priorities/{caller}", admin_set_priority_route);
  add(LLMOPS_PLANE_ADMIN, "GET", "/aliases", admin_aliases_route);
  add(LLMOPS_PLANE_ADMIN, "PUT", "/aliases/{name}", admin_set_alias_route);
  add(LLMOPS_PLANE_ADMIN, "DELETE", "/aliases/{name}", admin_remove_alias_route);
}

}  // namespace llmops::serving
