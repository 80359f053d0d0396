// The admin plane: routes behind the Unix socket that llmopsctl drives, the peer-credential
// check and the audit of every call.
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "daemon.h"
#include "log.h"

namespace llmops {
namespace {

Result<Json> body_json(const HttpRequest& req, Daemon& d) {
  if (req.body.empty()) return Json::object();
  LLMOPS_ASSIGN_OR_RETURN(Json j, parse_json_bounded(req.body, d.config().http.max_json_depth));
  if (!j.is_object()) return invalid_argument("the request body must be a JSON object");
  return j;
}

Result<uint64_t> id_param(const HttpRequest& req, const char* name = "id") {
  auto it = req.params.find(name);
  if (it == req.params.end() || it->second.empty() || it->second.size() > 19 ||
      it->second.find_first_not_of("0123456789") != std::string::npos) {
    return invalid_argument("'" + (it == req.params.end() ? std::string() : it->second) + "' is not a numeric id");
  }
  return std::stoull(it->second);
}

Result<size_t> limit_param(const HttpRequest& req, size_t fallback, size_t max) {
  auto v = req.query_param("limit");
  if (!v) return fallback;
  if (v->empty() || v->size() > 9 || v->find_first_not_of("0123456789") != std::string::npos) {
    return invalid_argument("limit must be a number");
  }
  size_t n = std::stoul(*v);
  if (n == 0 || n > max) return invalid_argument("limit must be between 1 and " + std::to_string(max));
  return n;
}

#define TRY_JSON(expr)                                        \
  ({                                                          \
    auto llmops_r_ = (expr);                                  \
    if (!llmops_r_.ok()) return error_response(llmops_r_.status()); \
    std::move(llmops_r_).value();                             \
  })

std::optional<gid_t> gid_of(const std::string& group) {
  if (!group.empty() && group.find_first_not_of("0123456789") == std::string::npos) return static_cast<gid_t>(std::stoul(group));
  struct group g{};
  struct group* found = nullptr;
  char buf[4096];
  if (::getgrnam_r(group.c_str(), &g, buf, sizeof buf, &found) == 0 && found != nullptr) return found->gr_gid;
  return std::nullopt;
}

bool peer_allowed(const Caller& c, const Config& config) {
  if (!c.has_creds) return false;
  if (c.uid == 0 || c.uid == ::geteuid()) return true;
  for (const auto& u : config.admin.allow_users) {
    if (u == c.user || u == std::to_string(c.uid)) return true;
  }
  std::vector<gid_t> allowed;
  for (const auto& g : config.admin.allow_groups) {
    if (auto gid = gid_of(g)) allowed.push_back(*gid);
  }
  if (std::find(allowed.begin(), allowed.end(), c.gid) != allowed.end()) return true;
  if (!c.user.empty()) {
    int n = 64;
    std::vector<gid_t> groups(static_cast<size_t>(n));
    if (::getgrouplist(c.user.c_str(), c.gid, groups.data(), &n) < 0) {
      groups.resize(static_cast<size_t>(n));
      ::getgrouplist(c.user.c_str(), c.gid, groups.data(), &n);
    }
    groups.resize(static_cast<size_t>(std::max(n, 0)));
    for (gid_t g : groups) {
      if (std::find(allowed.begin(), allowed.end(), g) != allowed.end()) return true;
    }
  }
  return false;
}

}  // namespace

PlanePolicy admin_policy(Daemon& d) {
  PlanePolicy p;
  p.admit = [&d](HttpRequest& req, const Router::Match&) -> std::optional<HttpResponse> {
    if (peer_allowed(req.caller, d.config())) return std::nullopt;
    std::string who = req.caller.has_creds ? "uid " + std::to_string(req.caller.uid) + (req.caller.user.empty() ? "" : " (" + req.caller.user + ")")
                                           : "a peer without credentials";
    Config c = d.config();
    return error_response(permission_denied(who + " may not use the admin socket; add the user to group '" + c.admin.socket_group +
                                            "' or to admin.allow-users"));
  };
  p.finished = [&d](const HttpRequest& req, const HttpResponse& resp) {
    AuditEntry e;
    e.who = req.caller.id;
    e.user = req.caller.user;
    e.pid = req.caller.pid;
    e.action = req.method + " " + req.target;
    e.status = resp.status;
    if (resp.status >= 400) {
      auto j = parse_json_bounded(resp.body, 8);
      if (j.ok() && j->contains("error")) e.detail = (*j)["error"].value("message", "");
    }
    Status st = d.audit().append(std::move(e));
    if (!st.ok()) log_error("audit", "could not append to the audit log: " + st.message());
  };
  return p;
}

void add_admin_routes(Router& r, Daemon& d) {
  r.add("GET", "/v1/status", [&d](HttpRequest&) { return json_response(d.status_json()); });

  r.add("GET", "/v1/modules", [&d](HttpRequest&) { return json_response({{"modules", d.modules().describe()}}); });

  r.add("GET", "/v1/topology", [&d](HttpRequest&) {
    Json t = d.placement().describe();
    t["gpu_assignments"] = Json::array();  // filled by the CUDA driver once it serves models or jobs
    return json_response(t);
  });

  r.add("GET", "/v1/config", [&d](HttpRequest&) {
    auto j = parse_json_bounded(config_to_json(d.config()), 16);
    return j.ok() ? json_response(*j) : error_response(j.status());
  });

  // ---- jobs
  r.add("GET", "/v1/jobs", [&d](HttpRequest& req) {
    std::optional<JobState> state;
    if (auto s = req.query_param("state")) {
      state = job_state_from_name(*s);
      if (!state) return error_response(invalid_argument("unknown state '" + *s + "' (queued running succeeded failed cancelled interrupted)"));
    }
    size_t limit = TRY_JSON(limit_param(req, 50, 10000));
    auto jobs = TRY_JSON(d.jobs().list(state, limit));
    Json out = Json::array();
    for (const auto& j : jobs) out.push_back(j.to_json());
    return json_response({{"jobs", out}});
  });
  r.add("POST", "/v1/jobs", [&d](HttpRequest& req) {
    Json body = TRY_JSON(body_json(req, d));
    std::string kind = TRY_JSON(json_string(body, "kind"));
    Json params = body.value("params", Json::object());
    if (!params.is_object()) return error_response(invalid_argument("params must be a JSON object"));
    uint64_t id = TRY_JSON(d.jobs().submit(kind, params, req.caller.id));
    auto rec = TRY_JSON(d.jobs().get(id));
    return json_response(rec.to_json(), 201);
  }, {.blocking = true});
  r.add("GET", "/v1/jobs/{id}", [&d](HttpRequest& req) {
    uint64_t id = TRY_JSON(id_param(req));
    auto rec = TRY_JSON(d.jobs().get(id));
    return json_response(rec.to_json());
  });
  r.add("POST", "/v1/jobs/{id}/cancel", [&d](HttpRequest& req) {
    uint64_t id = TRY_JSON(id_param(req));
    Status st = d.jobs().cancel(id);
    if (!st.ok()) return error_response(st);
    auto rec = TRY_JSON(d.jobs().get(id));
    return json_response(rec.to_json());
  }, {.blocking = true});
  // A stream of the job as NDJSON, one line per change, ending when the job reaches a final
  // state (or the daemon drains). One audited call for a whole `llmopsctl jobs watch`.
  r.add("GET", "/v1/jobs/{id}/watch", [&d](HttpRequest& req) {
    uint64_t id = TRY_JSON(id_param(req));
    auto first = TRY_JSON(d.jobs().get(id));
    HttpResponse resp;
    resp.content_type = "application/x-ndjson";
    resp.stream = [&d, id, first](StreamWriter& out) {
      std::string last = dump_json(first.to_json());
      if (!out.write(last + "\n") || job_state_final(first.state)) return;
      auto heartbeat = std::chrono::steady_clock::now();
      while (!out.client_gone() && !d.draining()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        auto rec = d.jobs().get(id);
        if (!rec.ok()) return;
        std::string now = dump_json(rec->to_json());
        bool beat = std::chrono::steady_clock::now() - heartbeat > std::chrono::seconds(5);
        if (now != last || beat) {
          if (!out.write(now + "\n")) return;
          last = now;
          heartbeat = std::chrono::steady_clock::now();
        }
        if (job_state_final(rec->state)) return;
      }
      if (d.draining()) out.write(dump_json({{"event", "daemon_stopping"}}) + "\n");
    };
    return resp;
  });

  // ---- audit
  r.add("GET", "/v1/audit", [&d](HttpRequest& req) {
    size_t limit = TRY_JSON(limit_param(req, 50, 10000));
    uint64_t before = 0;
    if (auto b = req.query_param("before")) {
      if (b->empty() || b->size() > 19 || b->find_first_not_of("0123456789") != std::string::npos) {
        return error_response(invalid_argument("before must be a sequence number"));
      }
      before = std::stoull(*b);
    }
    auto entries = TRY_JSON(d.audit().recent(limit, before));
    Json out = Json::array();
    for (const auto& e : entries) out.push_back(e.to_json());
    return json_response({{"entries", out}});
  }, {.blocking = true});

  // ---- API keys
  r.add("GET", "/v1/keys", [&d](HttpRequest&) {
    auto keys = TRY_JSON(d.keys().list());
    Json out = Json::array();
    for (const auto& k : keys) out.push_back(k.to_json());
    return json_response({{"keys", out}});
  });
  r.add("POST", "/v1/keys", [&d](HttpRequest& req) {
    Json body = TRY_JSON(body_json(req, d));
    std::string name = TRY_JSON(json_string(body, "name"));
    auto [key, secret] = TRY_JSON(d.keys().create(name, req.caller.user.empty() ? req.caller.id : req.caller.user));
    Json j = key.to_json();
    j["key"] = secret;
    j["note"] = "store this key now: llmopsd keeps only its hash";
    return json_response(j, 201);
  }, {.blocking = true});
  auto revoke = [&d](HttpRequest& req) {
    auto key = TRY_JSON(d.keys().revoke(req.params["id"]));
    return json_response(key.to_json());
  };
  r.add("DELETE", "/v1/keys/{id}", revoke, {.blocking = true});
  r.add("POST", "/v1/keys/{id}/revoke", revoke, {.blocking = true});

  // ---- blobs
  r.add("GET", "/v1/blobs", [&d](HttpRequest&) {
    auto blobs = TRY_JSON(d.blobs().list());
    Json out = Json::array();
    for (const auto& b : blobs) out.push_back({{"sha256", b.hex}, {"size", b.size}, {"refs", b.refs}, {"created_ms", b.created_ms}});
    return json_response({{"blobs", out}});
  }, {.blocking = true});
  r.add("POST", "/v1/gc", [&d](HttpRequest&) {
    auto rep = TRY_JSON(d.blobs().gc());
    return json_response({{"blobs_removed", rep.blobs_removed},
                          {"orphan_files_removed", rep.orphan_files_removed},
                          {"temp_files_removed", rep.temp_files_removed},
                          {"bytes_freed", rep.bytes_freed},
                          {"blobs_kept", rep.blobs_kept}});
  }, {.blocking = true});
  r.add("POST", "/v1/blobs/verify", [&d](HttpRequest& req) {
    uint64_t id = TRY_JSON(d.jobs().submit("blobs.verify", Json::object(), req.caller.id));
    auto rec = TRY_JSON(d.jobs().get(id));
    return json_response(rec.to_json(), 201);
  }, {.blocking = true});
}

}  // namespace llmops
