// Stage module 'data': datasets with immutable versions and lineage; import, cleaning,
// exploration and preparation (see ops.h for the operations, store.h for how versions are
// kept). This file is the lifecycle and the job kinds; the admin routes are in routes.cpp.
#include <algorithm>
#include <thread>

#include "data/state.h"

namespace {

using llmops::Json;
using namespace llmops::data;

llmops_code run_job(void* user, llmops_job* job, llmops_error* err) {
  auto* s = static_cast<State*>(user);
  const llmops_host_api* h = s->host;
  return llmops::sdk::guarded(err, [&]() -> llmops_code {
    auto params = llmops::parse_json_bounded(h->job_params(job), 64);
    if (!params.ok() || !params->is_object() || !params->contains("op")) {
      return llmops::sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "a data job's params must name its 'op'");
    }
    const std::string op = (*params)["op"].get<std::string>();
    JobHooks hooks;
    hooks.job_id = h->job_id(job);
    hooks.caller = params->value("_by", "");
    params->erase("op");
    params->erase("_by");
    hooks.progress = [&](double done, double total, const std::string& m) { h->job_progress(job, done, total, m.c_str()); };
    hooks.cancelled = [&] { return h->job_cancelled(job) != 0; };
    hooks.stopping = [&] { return h->job_stopping(job) != 0; };
    hooks.release_upload = [s](const std::string& hex) { s->store->unref(hex); };
    auto made = run_op(*s->store, op, *params, s->limits, hooks);
    if (!made.ok()) return llmops::sdk::fail(err, static_cast<llmops_code>(made.status().code()), made.status().message());
    std::string refs;
    uint64_t records = 0;
    for (const auto& v : *made) {
      refs += (refs.empty() ? "" : ", ") + v.ref();
      records += v.records;
    }
    h->job_progress(job, 1, 1, ("made " + refs + " (" + std::to_string(records) + " records)").c_str());
    h->metric_add(s->ctx, s->m_versions, static_cast<double>(made->size()));
    return LLMOPS_OK;
  });
}

llmops_code init(llmops_module_ctx* ctx, const llmops_host_api* host, llmops_error* err) {
  if (host->struct_size < offsetof(llmops_host_api, blob_abort) + sizeof host->blob_abort) {
    return llmops::sdk::fail(err, LLMOPS_FAILED_PRECONDITION, "the data stage needs a host with ABI 1.4 (streamed blobs)");
  }
  auto* s = new State();
  s->host = host;
  s->ctx = ctx;
  host->set_state(ctx, s);
  s->store = std::make_unique<DatasetStore>(s->sdk());
  const llmops::sdk::Host sdk = s->sdk();
  s->limits.shard_bytes = std::stoull(sdk.config("shard-mb", "64")) << 20;
  s->limits.max_record_bytes = std::stoull(sdk.config("max-record-mb", "16")) << 20;
  s->max_upload_bytes = std::stoull(sdk.config("max-upload-mb", "65536")) << 20;
  s->limits.threads = std::stoi(sdk.config("threads", "0"));  // 0: decided at start
  s->m_versions = host->metric_register(ctx, "versions_created_total", "Dataset versions made by imports and operations", 0);
  s->m_upload_bytes = host->metric_register(ctx, "upload_bytes_total", "Bytes streamed in through the admin socket for imports", 0);
  for (const auto& op : op_names()) {
    // The host names the kind "data.<op>".
    if (host->job_kind_register(ctx, op.c_str(), 0, run_job, s, err) != LLMOPS_OK) return err->code;
  }
  llmops_code c = LLMOPS_OK;
  add_routes([&](const char* method, const char* path, llmops_route_fn fn) {
    if (c == LLMOPS_OK) c = host->route_register(ctx, LLMOPS_PLANE_ADMIN, method, path, fn, s, err);
  });
  return c;
}

llmops_code start(llmops_module_ctx* ctx, void* state, llmops_error* err) {
  auto* s = static_cast<State*>(state);
  // Workers for record-level steps: data.threads, else the training pool's size (data work
  // is batch work), else the machine's CPUs.
  if (s->limits.threads <= 0) s->limits.threads = s->host->placement_threads(ctx, "training");
  if (s->limits.threads <= 0) s->limits.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  llmops::Status st = s->store->release_pending();
  if (!st.ok()) return llmops::sdk::fail(err, static_cast<llmops_code>(st.code()), st.message());
  return LLMOPS_OK;
}

void stop(llmops_module_ctx*, void* state) { static_cast<State*>(state)->drop_uploads(); }

void fini(llmops_module_ctx*, void* state) { delete static_cast<State*>(state); }

llmops_code health(llmops_module_ctx*, void* state, llmops_health* out) {
  auto* s = static_cast<State*>(state);
  llmops::sdk::set_health(out, LLMOPS_HEALTH_OK, std::to_string(s->open_uploads()) + " upload(s) open");
  return LLMOPS_OK;
}

const llmops_config_item kSchema[] = {
    {"shard-mb", LLMOPS_CONFIG_INT, "64", 1, 4096, "largest dataset shard (a blob of JSONL records), MiB"},
    {"max-record-mb", LLMOPS_CONFIG_INT, "16", 1, 1024, "largest record an import accepts, MiB; longer ones are skipped and reported"},
    {"max-upload-mb", LLMOPS_CONFIG_INT, "65536", 1, 1 << 24, "largest file llmopsctl may stream in for an import, MiB"},
    {"threads", LLMOPS_CONFIG_INT, "0", 0, 1024, "worker threads for clean/filter/pii/dedup/near-dedup (0: the training pool's size, else all CPUs)"},
};

const llmops_module_api kApi = {
    sizeof(llmops_module_api), LLMOPS_ABI_MAJOR, LLMOPS_ABI_MINOR, "data", LLMOPS_VERSION, "data",
    "datasets: import, cleaning, exploration, splits, versions with lineage", 1, kSchema, sizeof kSchema / sizeof kSchema[0],
    init, start, nullptr, stop, fini, health};

}  // namespace

extern "C" LLMOPS_EXPORT const llmops_module_api* llmops_module_get_api(void) { return &kApi; }
