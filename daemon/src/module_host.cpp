// The host side of the module ABI: the llmops_host_api table and the module lifecycle.
#include "module_host.h"

#include <climits>
#include <cstring>
#include <map>
#include <shared_mutex>

#include "llmops/module.hpp"
#include "log.h"

struct llmops_module_ctx {
  llmops::ModuleHost* host = nullptr;
  llmops::Module* module = nullptr;
  void* state = nullptr;
  llmops::Dbi dbi = 0;
  bool dbi_open = false;
  bool initialising = false;
  // Series by id: a counter or gauge, or a histogram. Read lock-free in spirit: the lock is
  // shared on every update and exclusive only while a series is added (ABI 1.2 adds them late).
  struct Series {
    llmops::Counter* scalar = nullptr;
    llmops::Histogram* histogram = nullptr;
  };
  std::shared_mutex metrics_mu;
  std::vector<Series> metrics;
  std::map<std::string, uint32_t> series_ids;     // name + labels → id
  std::map<std::string, llmops_metric_kind> kinds;  // name → kind
};

struct llmops_response {
  llmops::HttpResponse* resp;
};

struct llmops_stream {
  llmops::StreamWriter* writer;
};

struct llmops_job {
  llmops::JobContext* ctx;
  std::string params;
  std::string checkpoint;
  bool has_checkpoint = false;
};

namespace llmops {

static_assert(static_cast<int>(Code::kInternal) == LLMOPS_INTERNAL, "llmops_code and llmops::Code must agree");
static_assert(static_cast<int>(Code::kUnavailable) == LLMOPS_UNAVAILABLE, "llmops_code and llmops::Code must agree");

Module::Module() = default;
Module::~Module() = default;
Module::Module(Module&&) noexcept = default;
Module& Module::operator=(Module&&) noexcept = default;

namespace {

llmops_code to_c(const Status& st, llmops_error* err) {
  if (st.ok()) return LLMOPS_OK;
  return sdk::fail(err, static_cast<llmops_code>(st.code()), st.message());
}

Status from_c(llmops_code code, const llmops_error& err, const std::string& what) {
  if (code == LLMOPS_OK) return ok_status();
  int c = static_cast<int>(code);
  Code mapped = (c > 0 && c <= static_cast<int>(Code::kInternal)) ? static_cast<Code>(c) : Code::kInternal;
  std::string msg(err.message, strnlen(err.message, sizeof err.message));
  return Status(mapped, what + ": " + (msg.empty() ? "no message" : msg));
}

Status module_db(llmops_module_ctx* ctx) {
  if (ctx->dbi_open) return ok_status();
  auto dbi = ctx->host->services().store->database("mod." + ctx->module->name);
  if (!dbi.ok()) return dbi.status();
  ctx->dbi = *dbi;
  ctx->dbi_open = true;
  return ok_status();
}

// ---- the host API table ----------------------------------------------------------------------

void host_log(llmops_module_ctx* ctx, llmops_log_level level, const char* message) {
  static const LogLevel kMap[] = {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarning, LogLevel::kError};
  int i = static_cast<int>(level);
  log_message(i >= 0 && i < 4 ? kMap[i] : LogLevel::kInfo, ctx->module->name, message != nullptr ? message : "");
}

const char* host_config_get(llmops_module_ctx* ctx, const char* key) {
  if (key == nullptr) return nullptr;
  auto it = ctx->module->config.find(key);
  return it == ctx->module->config.end() ? nullptr : it->second.c_str();
}

void host_set_state(llmops_module_ctx* ctx, void* state) { ctx->state = state; }
void* host_get_state(llmops_module_ctx* ctx) { return ctx->state; }

llmops_code host_kv_put(llmops_module_ctx* ctx, const void* key, size_t key_size, const void* value, size_t value_size,
                        llmops_error* err) {
  if (key == nullptr || key_size == 0 || key_size > 511) return sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "key must be 1..511 bytes");
  if (value == nullptr && value_size > 0) return sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "value is NULL");
  if (Status st = module_db(ctx); !st.ok()) return to_c(st, err);
  return to_c(ctx->host->services().store->write([&](Txn& t) {
    return t.put(ctx->dbi, {static_cast<const char*>(key), key_size}, {static_cast<const char*>(value), value_size});
  }), err);
}

llmops_code host_kv_write_batch(llmops_module_ctx* ctx, size_t n, const void* const* keys, const size_t* key_sizes,
                                const void* const* values, const size_t* value_sizes, llmops_error* err) {
  if (n > 0 && (keys == nullptr || key_sizes == nullptr || values == nullptr || value_sizes == nullptr)) {
    return sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "keys, key_sizes, values and value_sizes are required");
  }
  for (size_t i = 0; i < n; ++i) {
    if (keys[i] == nullptr || key_sizes[i] == 0 || key_sizes[i] > 511) {
      return sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "key " + std::to_string(i) + " must be 1..511 bytes");
    }
  }
  if (Status st = module_db(ctx); !st.ok()) return to_c(st, err);
  return to_c(ctx->host->services().store->write([&](Txn& t) -> Status {
    for (size_t i = 0; i < n; ++i) {
      std::string_view key(static_cast<const char*>(keys[i]), key_sizes[i]);
      if (values[i] == nullptr) {
        Status st = t.del(ctx->dbi, key);
        if (!st.ok() && st.code() != Code::kNotFound) return st;
      } else {
        LLMOPS_RETURN_IF_ERROR(t.put(ctx->dbi, key, {static_cast<const char*>(values[i]), value_sizes[i]}));
      }
    }
    return ok_status();
  }), err);
}

llmops_code host_kv_get(llmops_module_ctx* ctx, const void* key, size_t key_size,
                        void (*found)(void*, const void*, size_t), void* user, llmops_error* err) {
  if (key == nullptr || key_size == 0 || key_size > 511 || found == nullptr) {
    return sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "key must be 1..511 bytes and found non-NULL");
  }
  if (Status st = module_db(ctx); !st.ok()) return to_c(st, err);
  return to_c(ctx->host->services().store->read([&](Txn& t) -> Status {
    LLMOPS_ASSIGN_OR_RETURN(auto v, t.get(ctx->dbi, {static_cast<const char*>(key), key_size}));
    if (!v) return not_found("no such key");
    found(user, v->data(), v->size());
    return ok_status();
  }), err);
}

llmops_code host_kv_del(llmops_module_ctx* ctx, const void* key, size_t key_size, llmops_error* err) {
  if (key == nullptr || key_size == 0 || key_size > 511) return sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "key must be 1..511 bytes");
  if (Status st = module_db(ctx); !st.ok()) return to_c(st, err);
  return to_c(ctx->host->services().store->write([&](Txn& t) { return t.del(ctx->dbi, {static_cast<const char*>(key), key_size}); }), err);
}

llmops_code host_kv_scan(llmops_module_ctx* ctx, const void* prefix, size_t prefix_size,
                         int (*visit)(void*, const void*, size_t, const void*, size_t), void* user, llmops_error* err) {
  if (visit == nullptr || (prefix == nullptr && prefix_size > 0)) return sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "bad scan arguments");
  if (Status st = module_db(ctx); !st.ok()) return to_c(st, err);
  return to_c(ctx->host->services().store->read([&](Txn& t) {
    return t.scan(ctx->dbi, {static_cast<const char*>(prefix), prefix_size}, [&](std::string_view k, std::string_view v) {
      return visit(user, k.data(), k.size(), v.data(), v.size()) == 0;
    });
  }), err);
}

llmops_code host_blob_put_file(llmops_module_ctx* ctx, const char* path, char* hex_out, llmops_error* err) {
  if (path == nullptr || hex_out == nullptr) return sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "path and hex_out are required");
  auto info = ctx->host->services().blobs->put_file(path, 1);
  if (!info.ok()) return to_c(info.status(), err);
  std::memcpy(hex_out, info->hex.c_str(), 65);
  return LLMOPS_OK;
}

llmops_code host_blob_path(llmops_module_ctx* ctx, const char* hex, char* path_out, size_t path_size, llmops_error* err) {
  if (hex == nullptr || path_out == nullptr) return sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "hex and path_out are required");
  auto info = ctx->host->services().blobs->stat(hex);
  if (!info.ok()) return to_c(info.status(), err);
  std::string p = ctx->host->services().blobs->path_of(hex);
  if (p.size() + 1 > path_size) return sdk::fail(err, LLMOPS_RESOURCE_EXHAUSTED, "path buffer too small");
  std::memcpy(path_out, p.c_str(), p.size() + 1);
  return LLMOPS_OK;
}

llmops_code host_blob_ref(llmops_module_ctx* ctx, const char* hex, int delta, llmops_error* err) {
  if (hex == nullptr) return sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "hex is required");
  auto info = ctx->host->services().blobs->ref(hex, delta);
  return to_c(info.ok() ? ok_status() : info.status(), err);
}

}  // namespace
}  // namespace llmops

struct llmops_blob_writer {
  llmops::BlobWriter writer;
};

namespace llmops {
namespace {

llmops_code host_blob_begin(llmops_module_ctx* ctx, llmops_blob_writer** out, llmops_error* err) {
  if (out == nullptr) return sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "out is required");
  auto w = ctx->host->services().blobs->begin();
  if (!w.ok()) return to_c(w.status(), err);
  *out = new llmops_blob_writer{std::move(*w)};
  return LLMOPS_OK;
}

llmops_code host_blob_write(llmops_blob_writer* w, const void* data, size_t size, llmops_error* err) {
  if (w == nullptr) return sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "writer is NULL");
  return to_c(w->writer.write(data, size), err);
}

llmops_code host_blob_commit(llmops_blob_writer* w, char* hex_out, uint64_t* size_out, llmops_error* err) {
  if (w == nullptr || hex_out == nullptr) return sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "writer and hex_out are required");
  std::unique_ptr<llmops_blob_writer> owned(w);
  auto info = owned->writer.commit(1);
  if (!info.ok()) return to_c(info.status(), err);
  std::memcpy(hex_out, info->hex.c_str(), 65);
  if (size_out != nullptr) *size_out = info->size;
  return LLMOPS_OK;
}

void host_blob_abort(llmops_blob_writer* w) { delete w; }

uint32_t host_metric_register(llmops_module_ctx* ctx, const char* name, const char* help, int is_gauge) {
  if (name == nullptr || !ctx->initialising) return UINT32_MAX;
  std::string full = "llmops_" + ctx->module->name + "_" + name;
  auto* reg = ctx->host->services().metrics;
  Counter& c = is_gauge ? reg->gauge(full, help != nullptr ? help : name) : reg->counter(full, help != nullptr ? help : name);
  std::unique_lock lock(ctx->metrics_mu);
  ctx->kinds[name] = is_gauge ? LLMOPS_METRIC_GAUGE : LLMOPS_METRIC_COUNTER;
  ctx->metrics.push_back({&c, nullptr});
  return static_cast<uint32_t>(ctx->metrics.size() - 1);
}

bool metric_name_ok(const char* name) {
  if (name == nullptr || *name == '\0') return false;
  for (const char* p = name; *p != '\0'; ++p) {
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) return false;
  }
  return true;
}

uint32_t host_metric_series(llmops_module_ctx* ctx, const char* name, const char* help, llmops_metric_kind kind,
                            const char* const* label_names, const char* const* label_values, size_t n_labels, const double* bounds,
                            size_t n_bounds) {
  if (!metric_name_ok(name) || kind < LLMOPS_METRIC_COUNTER || kind > LLMOPS_METRIC_HISTOGRAM || n_labels > 16) return UINT32_MAX;
  if (n_labels > 0 && (label_names == nullptr || label_values == nullptr)) return UINT32_MAX;
  Labels labels;
  for (size_t i = 0; i < n_labels; ++i) {
    if (!metric_name_ok(label_names[i]) || label_values[i] == nullptr) return UINT32_MAX;
    labels.emplace_back(label_names[i], label_values[i]);
  }
  std::vector<double> b = bounds != nullptr ? std::vector<double>(bounds, bounds + n_bounds) : latency_buckets();
  for (size_t i = 1; i < b.size(); ++i) {
    if (!(b[i] > b[i - 1])) return UINT32_MAX;
  }
  const std::string full = "llmops_" + ctx->module->name + "_" + name;
  const std::string key = full + format_labels(labels);
  std::unique_lock lock(ctx->metrics_mu);
  if (auto k = ctx->kinds.find(name); k != ctx->kinds.end() && k->second != kind) return UINT32_MAX;
  if (auto it = ctx->series_ids.find(key); it != ctx->series_ids.end()) return it->second;
  auto* reg = ctx->host->services().metrics;
  const std::string h = help != nullptr ? help : name;
  llmops_module_ctx::Series series;
  if (kind == LLMOPS_METRIC_HISTOGRAM) series.histogram = &reg->histogram(full, h, labels, b);
  else series.scalar = kind == LLMOPS_METRIC_GAUGE ? &reg->gauge(full, h, labels) : &reg->counter(full, h, labels);
  ctx->kinds[name] = kind;
  ctx->metrics.push_back(series);
  const auto id = static_cast<uint32_t>(ctx->metrics.size() - 1);
  ctx->series_ids[key] = id;
  return id;
}

void host_metric_add(llmops_module_ctx* ctx, uint32_t metric, double delta) {
  std::shared_lock lock(ctx->metrics_mu);
  if (metric < ctx->metrics.size() && ctx->metrics[metric].scalar != nullptr) ctx->metrics[metric].scalar->add(delta);
}

void host_metric_set(llmops_module_ctx* ctx, uint32_t metric, double value) {
  std::shared_lock lock(ctx->metrics_mu);
  if (metric < ctx->metrics.size() && ctx->metrics[metric].scalar != nullptr) ctx->metrics[metric].scalar->set(value);
}

void host_metric_observe(llmops_module_ctx* ctx, uint32_t metric, double value) {
  std::shared_lock lock(ctx->metrics_mu);
  if (metric < ctx->metrics.size() && ctx->metrics[metric].histogram != nullptr) ctx->metrics[metric].histogram->observe(value);
}

bool is_serving_stage(const Module& m) { return m.api != nullptr && m.api->stage != nullptr && std::strcmp(m.api->stage, "serving") == 0; }

llmops_code host_route_register(llmops_module_ctx* ctx, llmops_plane plane, const char* method, const char* path,
                                llmops_route_fn fn, void* user, llmops_error* err) {
  if (!ctx->initialising) return sdk::fail(err, LLMOPS_FAILED_PRECONDITION, "routes are registered during init only");
  if (method == nullptr || path == nullptr || fn == nullptr || path[0] != '/') {
    return sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "method, an absolute path and fn are required");
  }
  const auto& svc = ctx->host->services();
  std::string m = method, p = path, name = ctx->module->name;
  Router* router = plane == LLMOPS_PLANE_ADMIN ? svc.admin_router : svc.data_router;
  if (router == nullptr) return LLMOPS_OK;  // config check: nothing is served
  if (plane == LLMOPS_PLANE_ADMIN) {
    p = "/v1/modules/" + name + p;
  } else if (p.rfind("/v1/", 0) != 0 && p.rfind("/" + name + "/", 0) != 0 && !(is_serving_stage(*ctx->module) && (p == "/tokenize" || p == "/detokenize"))) {
    // vLLM's /tokenize and /detokenize are the serving stage's, for clients written against vLLM.
    return sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "data-plane paths start with /v1/ or /" + name + "/");
  }
  if (router->has(m, p)) return sdk::fail(err, LLMOPS_ALREADY_EXISTS, m + " " + p + " is already registered");
  std::string label = (plane == LLMOPS_PLANE_ADMIN ? "admin " : "data ") + m + " " + p;
  router->add(m, p, [fn, user, label](HttpRequest& req) {
    HttpResponse resp;
    llmops_response cresp{&resp};
    llmops_request creq{sizeof(llmops_request), req.method.c_str(), req.path.c_str(), req.query.c_str(),
                        req.body.data(), req.body.size(), req.caller.id.c_str()};
    llmops_code code = fn(user, &creq, &cresp);
    if (code != LLMOPS_OK && resp.body.empty() && !resp.stream) {
      return error_response(Status(static_cast<Code>(code <= LLMOPS_INTERNAL ? code : LLMOPS_INTERNAL), "the module could not answer " + label));
    }
    return resp;
  }, RouteOptions{/*blocking=*/true, /*public_route=*/false});
  ctx->module->routes.push_back(label);
  return LLMOPS_OK;
}

void host_response_set_status(llmops_response* r, int status) {
  if (status >= 100 && status <= 599) r->resp->status = status;
}

void host_response_set_header(llmops_response* r, const char* name, const char* value) {
  if (name == nullptr || value == nullptr) return;
  if (std::strpbrk(name, "\r\n:") != nullptr || std::strpbrk(value, "\r\n") != nullptr) return;  // no header injection
  if (strcasecmp(name, "content-type") == 0) {
    r->resp->content_type = value;
    return;
  }
  r->resp->headers.emplace_back(name, value);
}

void host_response_append_body(llmops_response* r, const char* data, size_t size) {
  if (data != nullptr) r->resp->body.append(data, size);
}

void host_response_stream(llmops_response* r, llmops_stream_fn fn, void* user) {
  if (fn == nullptr) return;
  r->resp->stream = [fn, user](StreamWriter& w) {
    llmops_stream s{&w};
    fn(user, &s);
  };
}

int host_stream_write(llmops_stream* s, const char* data, size_t size) {
  if (s == nullptr || data == nullptr) return 0;
  if (size == 0) return s->writer->client_gone() ? 0 : 1;
  return s->writer->write(std::string(data, size)) ? 1 : 0;
}

int host_stream_client_gone(llmops_stream* s) { return s == nullptr || s->writer->client_gone() ? 1 : 0; }

int host_placement_threads(llmops_module_ctx* ctx, const char* pool) {
  Placement* p = ctx->host->services().placement;
  WorkerPool* w = p != nullptr && pool != nullptr ? p->pool(pool) : nullptr;
  return w != nullptr ? w->size() : 0;
}

llmops_code host_placement_bind(llmops_module_ctx* ctx, const char* pool, llmops_error* err) {
  Placement* p = ctx->host->services().placement;
  WorkerPool* w = p != nullptr && pool != nullptr ? p->pool(pool) : nullptr;
  if (w == nullptr) return sdk::fail(err, LLMOPS_NOT_FOUND, std::string("no placement pool '") + (pool ? pool : "") + "'");
  Status st = w->bind_caller();
  if (!st.ok()) return sdk::fail(err, static_cast<llmops_code>(st.code()), st.message());
  return LLMOPS_OK;
}

llmops_code host_placement_bind_device(llmops_module_ctx* ctx, const char* pci_bus_id, llmops_error* err) {
  Placement* p = ctx->host->services().placement;
  if (p == nullptr) return sdk::fail(err, LLMOPS_FAILED_PRECONDITION, "placement is not running");
  auto cpus = p->topology().near_cpus(pci_bus_id != nullptr ? pci_bus_id : "");
  if (!cpus.ok()) return sdk::fail(err, static_cast<llmops_code>(cpus.status().code()), cpus.status().message());
  std::string note;
  Status st = p->topology().bind_current_thread(cpus->get(), &note);
  if (!st.ok()) return sdk::fail(err, static_cast<llmops_code>(st.code()), st.message());
  if (!note.empty()) log_warning(ctx->module->name, note);
  return LLMOPS_OK;
}

llmops_code host_job_kind_register(llmops_module_ctx* ctx, const char* kind, int resumable, llmops_job_fn fn, void* user,
                                   llmops_error* err) {
  if (!ctx->initialising) return sdk::fail(err, LLMOPS_FAILED_PRECONDITION, "job kinds are registered during init only");
  if (kind == nullptr || fn == nullptr) return sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "kind and fn are required");
  auto* jobs = ctx->host->services().jobs;
  if (jobs == nullptr) return LLMOPS_OK;
  std::string full = ctx->module->name + "." + kind;
  JobKind def;
  def.owner = ctx->module->name;
  def.resumable = resumable != 0;
  def.fn = [fn, user, full](JobContext& jc) -> Status {
    llmops_job job{&jc, dump_json(jc.params()), {}, false};
    if (auto cp = jc.checkpoint()) {
      job.checkpoint = *cp;
      job.has_checkpoint = true;
    }
    llmops_error err{};
    llmops_code code = fn(user, &job, &err);
    return from_c(code, err, "job " + full);
  };
  Status st = jobs->register_kind(full, std::move(def));
  if (st.ok()) ctx->module->job_kinds.push_back(full);
  return to_c(st, err);
}

llmops_code host_job_submit(llmops_module_ctx* ctx, const char* kind, const char* params_json, uint64_t* job_id_out,
                            llmops_error* err) {
  if (kind == nullptr) return sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "kind is required");
  Json params = Json::object();
  if (params_json != nullptr && *params_json != '\0') {
    auto parsed = parse_json_bounded(params_json, 64);
    if (!parsed.ok()) return to_c(parsed.status(), err);
    params = std::move(parsed).value();
  }
  std::string full = std::strchr(kind, '.') != nullptr ? std::string(kind) : ctx->module->name + "." + kind;
  auto id = ctx->host->services().jobs->submit(full, std::move(params), "module:" + ctx->module->name);
  if (!id.ok()) return to_c(id.status(), err);
  if (job_id_out != nullptr) *job_id_out = *id;
  return LLMOPS_OK;
}

const char* host_job_params(llmops_job* job) { return job->params.c_str(); }
const char* host_job_checkpoint(llmops_job* job) { return job->has_checkpoint ? job->checkpoint.c_str() : nullptr; }
llmops_code host_job_save_checkpoint(llmops_job* job, const char* json, llmops_error* err) {
  if (json == nullptr) return sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "checkpoint is NULL");
  return to_c(job->ctx->save_checkpoint(json), err);
}
void host_job_progress(llmops_job* job, double done, double total, const char* message) {
  job->ctx->progress(done, total, message != nullptr ? message : "");
}
int host_job_cancelled(llmops_job* job) { return job->ctx->cancelled() ? 1 : 0; }
int host_job_stopping(llmops_job* job) { return job->ctx->stopping() ? 1 : 0; }
uint64_t host_job_id(llmops_job* job) { return job->ctx->id(); }

// A peer's streamed body, handed chunk by chunk to the calling stage.
class PeerStreamWriter : public StreamWriter {
 public:
  PeerStreamWriter(int (*on_body)(void*, const char*, size_t), void* user) : on_body_(on_body), user_(user) {}
  bool write(std::string chunk) override {
    if (stopped_) return false;
    if (on_body_ != nullptr && !chunk.empty() && on_body_(user_, chunk.data(), chunk.size()) != 0) stopped_ = true;
    return !stopped_;
  }
  bool client_gone() const override { return stopped_; }

 private:
  int (*on_body_)(void*, const char*, size_t);
  void* user_;
  bool stopped_ = false;
};

llmops_code host_peer_call(llmops_module_ctx* ctx, llmops_plane plane, const char* method, const char* path, const void* body,
                           size_t body_size, int* http_status_out, int (*on_body)(void*, const char*, size_t), void* user,
                           llmops_error* err) {
  if (method == nullptr || path == nullptr || path[0] != '/') return sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "peer_call needs a method and an absolute path");
  if (ctx->initialising) return sdk::fail(err, LLMOPS_FAILED_PRECONDITION, "peer_call is not available during init: other stages may not be ready");
  const auto& svc = ctx->host->services();
  Router* router = plane == LLMOPS_PLANE_ADMIN ? svc.admin_router : svc.data_router;
  if (router == nullptr) return sdk::fail(err, LLMOPS_UNAVAILABLE, "no routes are served (config check)");
  HttpRequest req;
  req.method = method;
  req.target = path;
  std::string raw = req.target.substr(0, req.target.find('?'));
  if (req.target.find('?') != std::string::npos) req.query = req.target.substr(req.target.find('?') + 1);
  auto decoded = decode_path(raw);
  if (!decoded.ok()) return to_c(decoded.status(), err);
  req.path = std::move(decoded).value();
  if (body != nullptr) req.body.assign(static_cast<const char*>(body), body_size);
  req.caller.id = "module:" + ctx->module->name;
  Router::Match match = router->match(req.method, req.path);
  if (match.handler == nullptr) return sdk::fail(err, LLMOPS_NOT_FOUND, "no route " + req.method + " " + req.path);
  req.params = std::move(match.params);
  HttpResponse resp = (*match.handler)(req);
  if (http_status_out != nullptr) *http_status_out = resp.status;
  if (resp.stream) {
    PeerStreamWriter w(on_body, user);
    resp.stream(w);
  } else if (on_body != nullptr && !resp.body.empty()) {
    on_body(user, resp.body.data(), resp.body.size());
  }
  return LLMOPS_OK;
}

const llmops_host_api kHostApi = {
    sizeof(llmops_host_api),  LLMOPS_ABI_MAJOR,        LLMOPS_ABI_MINOR,        host_log,
    host_config_get,          host_set_state,          host_get_state,          host_kv_put,
    host_kv_get,              host_kv_del,             host_kv_scan,            host_blob_put_file,
    host_blob_path,           host_blob_ref,           host_metric_register,    host_metric_add,
    host_metric_set,          host_route_register,     host_response_set_status, host_response_set_header,
    host_response_append_body, host_job_kind_register, host_job_submit,         host_job_params,
    host_job_checkpoint,      host_job_save_checkpoint, host_job_progress,      host_job_cancelled,
    host_job_stopping,        host_job_id,             host_response_stream,    host_stream_write,
    host_stream_client_gone,  host_placement_threads,  host_placement_bind,     host_metric_series,
    host_metric_observe,      host_kv_write_batch,     host_placement_bind_device, host_blob_begin,
    host_blob_write,          host_blob_commit,        host_blob_abort,         host_peer_call,
};

}  // namespace

ModuleHost::ModuleHost(HostServices services) : services_(services) {}

ModuleHost::~ModuleHost() {
  stop_all();
  fini_all();
}

Status ModuleHost::init_all() {
  for (auto& m : modules_) {
    if (m.state != "loaded") continue;
    m.ctx = std::make_unique<llmops_module_ctx>();
    m.ctx->host = this;
    m.ctx->module = &m;
    m.ctx->initialising = true;
    llmops_error err{};
    llmops_code code = sdk::guarded(&err, [&] { return m.api->init(m.ctx.get(), &kHostApi, &err); });
    m.ctx->initialising = false;
    Status st = from_c(code, err, "init");
    if (!st.ok()) {
      m.state = "failed";
      m.reason = st.message();
      log_error("modules", m.name + " failed to initialise: " + st.message());
      if (is_required(m.name)) return st.with_context("required module " + m.name);
      continue;
    }
    m.state = "initialised";
  }
  return ok_status();
}

Status ModuleHost::start_all() {
  for (auto& m : modules_) {
    if (m.state != "initialised") continue;
    if (m.api->start != nullptr) {
      llmops_error err{};
      llmops_code code = sdk::guarded(&err, [&] { return m.api->start(m.ctx.get(), m.ctx->state, &err); });
      Status st = from_c(code, err, "start");
      if (!st.ok()) {
        m.state = "failed";
        m.reason = st.message();
        log_error("modules", m.name + " failed to start: " + st.message());
        if (is_required(m.name)) return st.with_context("required module " + m.name);
        continue;
      }
    }
    m.state = "running";
  }
  return ok_status();
}

Status ModuleHost::reload_all(const Config& config) {
  // Validate every section first so a bad key changes nothing.
  std::vector<std::map<std::string, std::string>> before;
  for (auto& m : modules_) before.push_back(m.config);
  if (Status st = validate_config(config); !st.ok()) {
    for (size_t i = 0; i < modules_.size(); ++i) modules_[i].config = before[i];
    return st;
  }
  for (auto& m : modules_) {
    if (m.state != "running" || m.api->reload == nullptr) continue;
    llmops_error err{};
    llmops_code code = sdk::guarded(&err, [&] { return m.api->reload(m.ctx.get(), m.ctx->state, &err); });
    Status st = from_c(code, err, "reload");
    if (!st.ok()) log_error("modules", m.name + " reload failed: " + st.message() + "; it keeps its previous settings");
  }
  return ok_status();
}

void ModuleHost::stop_all() {
  for (auto it = modules_.rbegin(); it != modules_.rend(); ++it) {
    if (it->state != "running") continue;
    if (it->api->stop != nullptr) it->api->stop(it->ctx.get(), it->ctx->state);
    it->state = "stopped";
  }
}

void ModuleHost::fini_all() {
  for (auto it = modules_.rbegin(); it != modules_.rend(); ++it) {
    if (!it->ctx) continue;
    if (it->api->fini != nullptr) it->api->fini(it->ctx.get(), it->ctx->state);
    it->ctx.reset();
  }
}

Json ModuleHost::health_of(const Module& m) const {
  if (m.state != "running") return {{"state", m.state == "refused" || m.state == "failed" ? "failing" : "n/a"}, {"message", m.reason}};
  if (m.api->health == nullptr) return {{"state", "ok"}, {"message", ""}};
  llmops_health h{};
  h.struct_size = sizeof h;
  h.state = LLMOPS_HEALTH_FAILING;
  llmops_code code = m.api->health(m.ctx.get(), m.ctx->state, &h);
  static const char* kStates[] = {"ok", "degraded", "failing"};
  int s = static_cast<int>(h.state);
  std::string msg(h.message, strnlen(h.message, sizeof h.message));
  if (code != LLMOPS_OK) return {{"state", "failing"}, {"message", "health check returned an error: " + msg}};
  return {{"state", s >= 0 && s < 3 ? kStates[s] : "failing"}, {"message", msg}};
}

Json ModuleHost::describe() const {
  Json out = Json::array();
  for (const auto& m : modules_) {
    Json j = {{"name", m.name}, {"path", m.path}, {"state", m.state}, {"reason", m.reason}, {"required", is_required(m.name)}};
    if (m.api != nullptr) {
      j["version"] = m.api->version;
      j["stage"] = m.api->stage;
      j["description"] = m.api->description != nullptr ? m.api->description : "";
      j["implemented"] = m.api->implemented != 0;
      j["abi"] = std::to_string(m.api->abi_major) + "." + std::to_string(m.api->abi_minor);
    }
    j["health"] = health_of(m);
    j["config"] = m.config;
    j["routes"] = m.routes;
    j["job_kinds"] = m.job_kinds;
    out.push_back(j);
  }
  return out;
}

std::string ModuleHost::overall_health() const {
  int worst = 0;
  for (const auto& m : modules_) {
    if (m.state != "running") continue;
    std::string s = health_of(m)["state"];
    worst = std::max(worst, s == "ok" ? 0 : s == "degraded" ? 1 : 2);
  }
  static const char* kNames[] = {"ok", "degraded", "failing"};
  return kNames[worst];
}

}  // namespace llmops
