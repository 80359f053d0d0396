// The module host: finds stage modules (llmops_<name>.so) in the module directories, checks
// each before running any of its code beyond the loader's own (ABI major/minor, name matches the
// file, no duplicate, required entry points), validates its config section against its schema,
// and drives init → start → (reload)* → stop → fini on the main thread. Refused modules are
// logged once with the reason and listed by `llmopsctl modules`; the daemon runs on without
// them unless they are required. health() may be called from any thread.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "auth.h"
#include "blob_store.h"
#include "config.h"
#include "jobs.h"
#include "json.h"
#include "llmops/module.h"
#include "metrics.h"
#include "placement.h"
#include "router.h"
#include "store.h"

struct llmops_module_ctx;

namespace llmops {

// Closes a dlopen handle.
struct DlCloser {
  void operator()(void* handle) const;
};
using DlHandle = std::unique_ptr<void, DlCloser>;

// What the host lends to modules. Pointers are owned by the daemon and outlive the host.
struct HostServices {
  Store* store = nullptr;
  BlobStore* blobs = nullptr;
  MetricsRegistry* metrics = nullptr;
  JobRunner* jobs = nullptr;
  Placement* placement = nullptr;
  Router* data_router = nullptr;   // null when only checking config
  Router* admin_router = nullptr;
};

struct Module {
  std::string name;
  std::string path;
  std::string state;   // loaded | running | refused | failed | disabled | stopped
  std::string reason;  // why refused or failed
  DlHandle handle;
  const llmops_module_api* api = nullptr;
  std::unique_ptr<llmops_module_ctx> ctx;
  std::map<std::string, std::string> config;  // validated, defaults filled
  std::vector<std::string> routes;            // "data GET /v1/..." for listings
  std::vector<std::string> job_kinds;

  Module();
  ~Module();
  Module(Module&&) noexcept;
  Module& operator=(Module&&) noexcept;
};

class ModuleHost {
 public:
  explicit ModuleHost(HostServices services);
  ~ModuleHost();

  // Scans the directories (comma-separated in config.module_dir), loads and checks every
  // module. Fails only when a required module is missing or refused.
  Status load(const Config& config);
  // Checks every loaded module's section against its schema and fills defaults; fails on an
  // unknown key, a bad value or a missing required key, naming it. Sections naming no module
  // are errors too.
  Status validate_config(const Config& config);
  Status init_all();
  Status start_all();
  // New config: re-validates, then calls reload on each running module.
  Status reload_all(const Config& config);
  void stop_all();
  void fini_all();

  Json describe() const;  // every module, refused ones included, with health
  // Worst health of running modules ("ok", "degraded", "failing") and the per-module messages.
  std::string overall_health() const;
  const std::deque<Module>& modules() const { return modules_; }
  const HostServices& services() const { return services_; }
  bool is_required(const std::string& name) const;

 private:
  Status load_one(const std::string& path, const std::string& name);
  void refuse(const std::string& path, const std::string& name, const std::string& reason);
  Status validate_module(Module& m, const Config& config) const;
  Json health_of(const Module& m) const;

  HostServices services_;
  std::deque<Module> modules_;  // deque: contexts point at their Module
  std::vector<std::string> required_;
  std::vector<std::string> disabled_;
};

}  // namespace llmops
