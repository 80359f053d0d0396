// Loaded models: opening a model with its tokenizer and chat template, one scheduler per loaded
// model, loading on first use, unloading by hand, when idle past a TTL, or to make room under
// the memory budget (least recently used idle model first).
//
// A request holds a shared_ptr to the Served it resolved, so an unload or an alias repoint
// never cuts it short: it finishes on the version it started on, and the old version's memory
// goes when its last request ends. Threads: any; one mutex guards the loaded set, loads run
// outside it (one per model at a time; concurrent requests for a model being loaded wait for
// that load).
#pragma once

#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "common/open_model.h"
#include "llmops/module.hpp"
#include "serving/registry.h"
#include "serving/scheduler.h"

namespace llmops::serving {

using models::ModelSource;
using models::OpenedModel;
using models::open_model;

struct Served {
  std::string name;      // the model's name (a registry version, or the configured model's name)
  std::string origin;    // "config" | "registry"
  std::string path;      // where it was loaded from
  int64_t created = 0;   // unix seconds: imported (registry) or loaded (config)
  bool pinned = false;   // never unloaded when idle or for room (the configured model)
  std::atomic<bool> log_bodies{false};  // model set --log-bodies flips it while requests run
  uint64_t cost_bytes = 0;  // weights + KV budget: what it holds against the memory budget
  std::shared_ptr<const engine::Model> model;
  std::shared_ptr<const engine::Tokenizer> tok;
  std::shared_ptr<const engine::ChatTemplate> chat;
  std::string chat_source;
  std::unique_ptr<Scheduler> scheduler;
  std::atomic<int64_t> last_used_ms{0};
  std::atomic<int> in_flight{0};  // requests holding it (streams included)
  // Its metric series (host ids, labelled model=<name>), made when it loads.
  struct Series {
    uint32_t queue_s = UINT32_MAX, ttft_s = UINT32_MAX, itl_s = UINT32_MAX, e2e_s = UINT32_MAX;
    uint32_t prompt_tokens = UINT32_MAX, completion_tokens = UINT32_MAX;
    uint32_t running = UINT32_MAX, waiting = UINT32_MAX, kv_bytes = UINT32_MAX;
  } series;

  bool idle() const;
};

struct ManagerOptions {
  SchedulerOptions scheduler;
  uint64_t memory_budget_bytes = 0;  // 0: no limit
  int idle_unload_s = 300;           // 0: never
  std::function<void(Served&)> on_load;  // before it takes requests (metric series)
  bool pack_for_batches = true;          // serving.pack-weights
  // serving.device: "cpu"; "cuda" (a model that cannot go on the GPU fails to load); "auto"
  // (the GPU when the CUDA driver finds one and the model fits, else the CPU, saying why).
  std::string device = "auto";
  int gpu = 0;  // which GPU serves (serving.gpu), by the driver's index
  uint64_t gpu_memory_bytes = 0;  // the device memory models may take (serving.gpu-memory-mb; 0: what is free, less a reserve)
};

class ModelManager {
 public:
  ModelManager(sdk::Host host, Registry* registry, ManagerOptions options) : host_(host), registry_(registry), opt_(std::move(options)) {}
  ~ModelManager() { unload_all(); }

  // Serves a model from a source outside the registry (serving.model); pinned.
  Status load_pinned(const ModelSource& src, const std::string& path);
  // The served model a request's "model" names ("" → the default): an alias is resolved, a
  // registry model not loaded yet is loaded. kNotFound for an unknown name; kResourceExhausted
  // when the memory budget has no room even after unloading idle models.
  Result<std::shared_ptr<Served>> acquire(const std::string& name);
  // Explicit load and unload (llmopsctl serve load|unload). Unloading an in-use model lets its
  // requests finish first; a later request for it loads it again.
  Result<std::shared_ptr<Served>> load(const std::string& name) { return acquire(name); }
  Status unload(const std::string& name);
  void unload_all();
  // Unloads models idle longer than the TTL; called about once a second.
  void reap_idle();

  std::vector<std::shared_ptr<Served>> loaded() const;
  std::shared_ptr<Served> find_loaded(const std::string& model_name) const;
  void set_default(std::string name) {
    std::lock_guard lock(mu_);
    default_ = std::move(name);
  }
  std::string default_name() const {
    std::lock_guard lock(mu_);
    return default_;
  }
  uint64_t bytes_in_use() const;
  const ManagerOptions& options() const { return opt_; }

 private:
  Result<std::shared_ptr<Served>> load_from_registry(const ModelRecord& rec);
  Result<std::shared_ptr<Served>> make_served(OpenedModel opened, const std::string& name, const std::string& origin, const std::string& path);
  // The model's GPU copy and context per serving.device, null for the CPU (or an error for "cuda").
  Result<std::unique_ptr<GpuExecution>> place_on_gpu(const engine::Model& model, const std::string& name);
  // Unloads least recently used idle models until `need` more bytes fit. mu_ held.
  Status make_room(uint64_t need, const std::string& for_name);

  sdk::Host host_;
  Registry* registry_;
  ManagerOptions opt_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Served>> loaded_;
  std::map<std::string, std::shared_future<Result<std::shared_ptr<Served>>>> loading_;
  std::string default_;
};

struct ImportRequest {
  std::string name;
  std::string path;           // absolute: a GGUF file, a llama2.c checkpoint, or a Hugging Face directory
  std::string tokenizer;      // llama2.c only: its tokenizer.bin
  std::string chat_template;  // "" (the model's own), a built-in name, or template text
  std::string caller;
  Json lineage;               // an object kept with the version (see ModelRecord), or null
};

// Checks the model loads (weights, tokenizer, chat template), copies its files into the blob
// store and records the version. All or nothing: on any failure no record is left and every
// blob reference taken is given back.
Result<ModelRecord> import_model(sdk::Host host, Registry& registry, const ImportRequest& req);

// Milliseconds since the Unix epoch.
int64_t unix_ms_now();

}  // namespace llmops::serving
