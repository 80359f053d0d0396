// Stage module 'serving': OpenAI-compatible inference over HTTP. Serves the configured model
// and imported versions (one continuous-batching scheduler per loaded model); the routes are in
// api_routes.cpp (apps) and admin_routes.cpp (llmopsctl); this file is the module's lifecycle:
// config, metric series, the idle reaper, health.
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <filesystem>

#include "chat/chat_template.h"
#include "gpu/device.h"
#include "kernels/gemm.h"
#include "fs.h"
#include "serving/state.h"

namespace {

using llmops::Json;
using namespace llmops::serving;
namespace engine = llmops::engine;

// ---- lifecycle ------------------------------------------------------------------------------

llmops_code init(llmops_module_ctx* ctx, const llmops_host_api* host, llmops_error* err) {
  auto* s = new State();
  s->host = host;
  s->ctx = ctx;
  host->set_state(ctx, s);
  s->registry = std::make_unique<Registry>(s->sdk());
  s->m_requests = host->metric_register(ctx, "requests_total", "Generation requests accepted", 0);
  s->m_rejected = host->metric_register(ctx, "rejected_total", "Requests refused with 429 (queue full)", 0);
  s->m_prompt_tokens = host->metric_register(ctx, "prompt_tokens_total", "Prompt tokens of accepted requests", 0);
  s->m_completion_tokens = host->metric_register(ctx, "completion_tokens_total", "Tokens generated", 0);
  llmops_code c = LLMOPS_OK;
  const RouteAdder add = [&](llmops_plane plane, const char* method, const char* path, llmops_route_fn fn) {
    if (c == LLMOPS_OK) c = host->route_register(ctx, plane, method, path, fn, s, err);
  };
  add_api_routes(add);
  add_admin_routes(add);  // llmopsctl: served models, the catalogue of versions, aliases
  return c;
}

// A loaded model's metric series, labelled model=<name>: latency and token histograms and the
// scheduler gauges. The same name gives the same series when a model loads again.
void make_series(State* s, Served& m) {
  const char* names[] = {"model"};
  const char* values[] = {m.name.c_str()};
  auto series = [&](const char* name, const char* help, llmops_metric_kind kind, const double* bounds = nullptr, size_t n = 0) {
    return s->host->metric_series(s->ctx, name, help, kind, names, values, 1, bounds, n);
  };
  static const double kTokens[] = {1, 4, 16, 64, 256, 1024, 4096, 16384, 65536};
  auto& r = m.series;
  r.queue_s = series("queue_seconds", "Time a request waited before its prompt started", LLMOPS_METRIC_HISTOGRAM);
  r.ttft_s = series("time_to_first_token_seconds", "Time from arrival to the first generated token", LLMOPS_METRIC_HISTOGRAM);
  r.itl_s = series("inter_token_latency_seconds", "Time between consecutive generated tokens", LLMOPS_METRIC_HISTOGRAM);
  r.e2e_s = series("request_duration_seconds", "Time from arrival to the last byte of the answer", LLMOPS_METRIC_HISTOGRAM);
  r.prompt_tokens = series("request_prompt_tokens", "Prompt tokens per request", LLMOPS_METRIC_HISTOGRAM, kTokens, std::size(kTokens));
  r.completion_tokens =
      series("request_completion_tokens", "Generated tokens per request (all choices)", LLMOPS_METRIC_HISTOGRAM, kTokens, std::size(kTokens));
  r.running = series("running_sequences", "Sequences in the running batch", LLMOPS_METRIC_GAUGE);
  r.waiting = series("waiting_requests", "Requests in the wait queue", LLMOPS_METRIC_GAUGE);
  r.kv_bytes = series("kv_cache_bytes", "KV-cache bytes held by running sequences", LLMOPS_METRIC_GAUGE);
}

// Scheduler gauges of the loaded models, refreshed about once a second (an unloaded model's drop to 0).
void update_gauges(State* s) {
  static thread_local std::map<std::string, Served::Series> seen;
  std::map<std::string, Served::Series> now;
  for (const auto& m : s->models->loaded()) {
    SchedulerStats st = m->scheduler->stats();
    s->host->metric_set(s->ctx, m->series.running, st.running);
    s->host->metric_set(s->ctx, m->series.waiting, st.waiting);
    s->host->metric_set(s->ctx, m->series.kv_bytes, static_cast<double>(st.kv_bytes_in_use));
    now[m->name] = m->series;
  }
  for (const auto& [name, series] : seen) {
    if (now.count(name)) continue;
    s->host->metric_set(s->ctx, series.running, 0);
    s->host->metric_set(s->ctx, series.waiting, 0);
    s->host->metric_set(s->ctx, series.kv_bytes, 0);
  }
  seen.swap(now);
}

// Memory the loaded models may hold when serving.memory-budget-mb is 0: 80% of the machine's.
uint64_t default_memory_budget() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) / 5 * 4 : 0;
}

llmops_code start(llmops_module_ctx* ctx, void* state, llmops_error* err) {
  auto* s = static_cast<State*>(state);
  llmops::sdk::Host sdk(ctx, s->host);
  s->request_timeout_s = std::stoi(sdk.config("request-timeout", "600"));
  ManagerOptions mo;
  SchedulerOptions& opt = mo.scheduler;
  opt.max_sequences = std::stoi(sdk.config("max-sequences", "16"));
  opt.max_queue = std::stoi(sdk.config("max-queue", "64"));
  opt.kv_budget_bytes = static_cast<uint64_t>(std::stoll(sdk.config("kv-budget-mb", "1024"))) << 20;
  opt.context = std::stoi(sdk.config("context", "0"));
  opt.prefill_chunk = std::stoi(sdk.config("prefill-chunk", "128"));
  opt.threads = std::stoi(sdk.config("threads", "0"));
  opt.prefix_cache = sdk.config_bool("prefix-cache", true);
  auto kv_type = llmops::engine::parse_kv_type(sdk.config("kv-cache-type", "f16"));
  if (!kv_type.ok()) return llmops::sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "serving.kv-cache-type: " + kv_type.status().message());
  opt.kv_type = *kv_type;
  const int pinned = s->host->placement_threads(s->ctx, "inference");
  // Prefill's float products run on these threads (kernels/gemm.h), not OpenBLAS's unpinned ones.
  llmops::engine::blas_on_calling_threads();
  if (opt.threads == 0) opt.threads = pinned > 0 ? pinned : 1;
  if (pinned > 0) {
    // Engine threads run on the placement's inference CPUs.
    opt.on_thread_start = [s](int) {
      llmops_error e{};
      if (s->host->placement_bind(s->ctx, "inference", &e) != LLMOPS_OK) {
        s->host->log(s->ctx, LLMOPS_LOG_WARNING, (std::string("could not pin an inference thread: ") + e.message).c_str());
      }
    };
  }
  // The thread that drives a GPU (and its pinned buffers) sits next to it (ABI 1.3 hosts).
  opt.on_gpu_thread_start = [s](const std::string& pci) {
    if (s->host->struct_size < offsetof(llmops_host_api, placement_bind_device) + sizeof(void*)) return;
    llmops_error e{};
    if (s->host->placement_bind_device(s->ctx, pci.c_str(), &e) != LLMOPS_OK) {
      s->host->log(s->ctx, LLMOPS_LOG_WARNING, ("could not pin the thread of GPU " + pci + ": " + e.message).c_str());
    }
  };
  mo.memory_budget_bytes = static_cast<uint64_t>(std::stoll(sdk.config("memory-budget-mb", "0"))) << 20;
  if (mo.memory_budget_bytes == 0) mo.memory_budget_bytes = default_memory_budget();
  mo.idle_unload_s = std::stoi(sdk.config("idle-unload-s", "300"));
  mo.pack_for_batches = sdk.config_bool("pack-weights", true);
  mo.device = sdk.config("device", "auto");
  mo.gpu = std::stoi(sdk.config("gpu", "0"));
  mo.gpu_memory_bytes = static_cast<uint64_t>(std::stoll(sdk.config("gpu-memory-mb", "0"))) << 20;
  if (mo.device != "auto" && mo.device != "cpu" && mo.device != "cuda") {
    return llmops::sdk::fail(err, LLMOPS_INVALID_ARGUMENT, "serving.device is '" + mo.device + "': use auto, cpu or cuda");
  }
  if (mo.device != "cpu" && mo.pack_for_batches) {
    // Models on a GPU do not read the CPU's repacked panels: do not pay their memory. (Asking
    // the driver's score opens no device context.)
    if (auto driver = llmops::engine::GpuDriver::find_usable(); driver.ok() && (*driver)->score() > 0) mo.pack_for_batches = false;
  }
  mo.on_load = [s](Served& m) { make_series(s, m); };
  if (auto prios = s->registry->priorities(); prios.ok()) {
    std::lock_guard lock(s->prio_mu);
    for (const Json& p : *prios) {
      for (int i = 0; i < 3; ++i) {
        if (p.value("priority", "") == kPriorityNames[i]) s->priorities[p.value("caller", "")] = i;
      }
    }
  } else {
    return llmops::sdk::fail(err, static_cast<llmops_code>(prios.status().code()), prios.status().message());
  }
  s->models = std::make_unique<ModelManager>(sdk, s->registry.get(), mo);
  s->log = std::make_unique<RequestLog>(sdk, static_cast<uint64_t>(std::stoll(sdk.config("request-log-size", "10000"))));
  if (llmops::Status st = s->log->start(); !st.ok()) return llmops::sdk::fail(err, static_cast<llmops_code>(st.code()), st.message());

  const std::string path = sdk.config("model");
  if (!path.empty()) {
    ModelSource src;
    src.weights = path;
    src.tokenizer = sdk.config("tokenizer");
    src.name = sdk.config("model-name");
    if (src.name.empty()) src.name = std::filesystem::path(path).stem().string();
    const std::string tmpl = sdk.config("chat-template");
    auto names = engine::ChatTemplate::builtin_names();
    if (!tmpl.empty() && std::find(names.begin(), names.end(), tmpl) == names.end()) {
      auto text = llmops::read_file(tmpl, 1u << 20);
      if (!text.ok()) {
        llmops::Status st = text.status().with_context("serving.chat-template (a built-in name or a template file)");
        return llmops::sdk::fail(err, static_cast<llmops_code>(st.code()), st.message());
      }
      src.chat_template = std::move(text).value();
      src.chat_source = "config:" + tmpl;
    } else {
      src.chat_template = tmpl;
    }
    llmops::Status st = s->models->load_pinned(src, path);
    if (!st.ok()) {
      st = st.with_context("serving.model " + path);
      return llmops::sdk::fail(err, static_cast<llmops_code>(st.code()), st.message());
    }
  }
  if (const std::string d = sdk.config("default-model"); !d.empty()) s->models->set_default(d);
  if (path.empty() && sdk.config("default-model").empty()) {
    sdk.info("no default model: requests name one (llmopsctl model import, then alias or name it), or set serving.model");
  }
  s->reaper = std::thread([s] {
    std::unique_lock lock(s->reaper_mu);
    while (!s->reaper_cv.wait_for(lock, std::chrono::seconds(1), [s] { return s->reaper_stop; })) {
      lock.unlock();
      s->models->reap_idle();
      update_gauges(s);
      lock.lock();
    }
  });
  return LLMOPS_OK;
}

void stop(llmops_module_ctx*, void* state) {
  auto* s = static_cast<State*>(state);
  {
    std::lock_guard lock(s->reaper_mu);
    s->reaper_stop = true;
  }
  s->reaper_cv.notify_all();
  if (s->reaper.joinable()) s->reaper.join();
  // Unloading the schedulers ends every sequence; streams see their requests finish.
  if (s->models != nullptr) s->models->unload_all();
  if (s->log != nullptr) s->log->stop();
}

llmops_code health(llmops_module_ctx*, void* state, llmops_health* out) {
  auto* s = static_cast<State*>(state);
  auto loaded = s->models != nullptr ? s->models->loaded() : std::vector<std::shared_ptr<Served>>{};
  if (loaded.empty()) {
    // Not a fault: a daemon may run without serving (training box, data preparation), and
    // imported models load on their first request.
    llmops::sdk::set_health(out, LLMOPS_HEALTH_OK, "no model loaded");
  } else {
    std::string names;
    for (const auto& m : loaded) names += (names.empty() ? "" : ", ") + m->name;
    llmops::sdk::set_health(out, LLMOPS_HEALTH_OK, "serving " + names);
  }
  return LLMOPS_OK;
}

void fini(llmops_module_ctx*, void* state) { delete static_cast<State*>(state); }

const llmops_config_item kSchema[] = {
    {"model", LLMOPS_CONFIG_STRING, "", 0, -1, "model to serve: a GGUF file, a Hugging Face directory or a llama2.c checkpoint"},
    {"model-name", LLMOPS_CONFIG_STRING, "", 0, -1, "the name clients use (default: the file name without extension)"},
    {"tokenizer", LLMOPS_CONFIG_STRING, "", 0, -1, "llama2.c tokenizer.bin or a Hugging Face tokenizer directory, when the model carries none"},
    {"default-model", LLMOPS_CONFIG_STRING, "", 0, -1, "the model or alias a request without 'model' gets (default: serving.model)"},
    {"threads", LLMOPS_CONFIG_INT, "0", 0, 1024, "engine threads (0: the placement's inference pool size)"},
    {"max-sequences", LLMOPS_CONFIG_INT, "16", 1, 1024, "sequences decoded together per model"},
    {"max-queue", LLMOPS_CONFIG_INT, "64", 0, 100000, "requests waiting per model before 429"},
    {"kv-budget-mb", LLMOPS_CONFIG_INT, "1024", 1, 1 << 24, "KV-cache memory per model, MiB"},
    {"memory-budget-mb", LLMOPS_CONFIG_INT, "0", 0, 1 << 30,
     "memory all loaded models may hold (weights + KV budget), MiB; past it idle models unload (0: 80% of RAM)"},
    {"idle-unload-s", LLMOPS_CONFIG_INT, "300", 0, 1 << 30, "seconds an imported model stays loaded with no requests (0: until unloaded)"},
    {"context", LLMOPS_CONFIG_INT, "0", 0, 1 << 24, "positions per sequence at most (0: the model's context)"},
    {"pack-weights", LLMOPS_CONFIG_BOOL, "true", 0, -1,
     "repack Q8_0/Q4_0/Q4_K/Q6_K weights once into the integer kernels' panels, read in place of the rows by single sequences and batches (at most 3% more memory)"},
    {"prefix-cache", LLMOPS_CONFIG_BOOL, "true", 0, -1,
     "keep finished sequences' KV cache (within kv-budget-mb) so prompts sharing a prefix skip computing it"},
    {"kv-cache-type", LLMOPS_CONFIG_STRING, "f16", 0, -1,
     "how CPU sequences cache keys and values: f16 (half the memory and of what decode reads per step, as llama.cpp) or f32 (exact)"},
    {"prefill-chunk", LLMOPS_CONFIG_INT, "128", 1, 65536, "prompt tokens per scheduler step"},
    {"device", LLMOPS_CONFIG_STRING, "auto", 0, -1,
     "where models run: auto (the GPU when the llmops-cuda driver finds one and the model fits, else the CPU), cpu, or cuda (fail rather than fall back)"},
    {"gpu", LLMOPS_CONFIG_INT, "0", 0, 63, "which GPU serves, by index (llmopsctl topology lists them; training's are tuning.gpus)"},
    {"gpu-memory-mb", LLMOPS_CONFIG_INT, "0", 0, 1 << 24,
     "device memory a served model may take, weights and KV budget together, MiB (0: what is free, less a reserve); layers past it stream from host memory"},
    {"request-timeout", LLMOPS_CONFIG_INT, "600", 1, 86400, "seconds a generation may run"},
    {"request-log-size", LLMOPS_CONFIG_INT, "10000", 0, 10000000, "requests kept in the request log (LMDB), newest; 0: none"},
    {"chat-template", LLMOPS_CONFIG_STRING, "", 0, -1,
     "chat template of serving.model: a built-in (chatml, llama2, llama3, zephyr) or a Jinja file; default: the model's own, else a built-in by vocabulary"},
};

const llmops_module_api kApi = {
    sizeof(llmops_module_api), LLMOPS_ABI_MAJOR, LLMOPS_ABI_MINOR, "serving", LLMOPS_VERSION, "serving",
    "OpenAI-compatible inference over HTTP", 1, kSchema, sizeof kSchema / sizeof kSchema[0], init, start, nullptr, stop, fini, health};

}  // namespace

extern "C" LLMOPS_EXPORT const llmops_module_api* llmops_module_get_api(void) { return &kApi; }

