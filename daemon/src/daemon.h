// llmopsd: owns every service and drives the process lifecycle on the main thread —
// start (store, placement, jobs, modules, both HTTP planes, READY), the main loop (signals,
// watchdog), reload on SIGHUP and the graceful drain on SIGTERM.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "audit.h"
#include "auth.h"
#include "blob_store.h"
#include "config.h"
#include "fs.h"
#include "http_server.h"
#include "jobs.h"
#include "metrics.h"
#include "module_host.h"
#include "notify.h"
#include "placement.h"
#include "store.h"

namespace llmops {

class Daemon {
 public:
  Daemon(Config config, std::vector<std::string> argv);
  ~Daemon();

  Status start();
  // Runs until SIGTERM/SIGINT; returns the process exit code.
  int run();

  // Read by route handlers (any thread).
  Config config() const;
  Store& store() { return *store_; }
  BlobStore& blobs() { return *blobs_; }
  KeyStore& keys() { return *keys_; }
  AuditLog& audit() { return *audit_; }
  JobRunner& jobs() { return *jobs_; }
  Placement& placement() { return *placement_; }
  ModuleHost& modules() { return *modules_; }
  MetricsRegistry& metrics() { return metrics_; }
  bool ready() const { return ready_; }
  bool draining() const { return draining_; }
  Json status_json();
  std::string http_endpoint() const;

 private:
  Status open_state();
  void register_builtin_jobs();
  void reload();
  void drain_and_stop();
  void write_runtime_file();
  void print_banner();

  mutable std::mutex config_mu_;
  Config config_;
  std::vector<std::string> argv_;
  Notifier notifier_;
  MetricsRegistry metrics_;
  UniqueFd lock_fd_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<KeyStore> keys_;
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<Placement> placement_;
  std::unique_ptr<WorkerPool> handler_pool_;
  std::unique_ptr<JobRunner> jobs_;
  Router data_router_, admin_router_;
  std::unique_ptr<ModuleHost> modules_;
  std::unique_ptr<HttpPlane> data_plane_, admin_plane_;
  std::unique_ptr<HttpServer> server_;
  uint16_t http_port_ = 0;
  std::atomic<bool> ready_{false};
  std::atomic<bool> draining_{false};
  std::atomic<uint64_t> loop_probe_{0};
  std::chrono::steady_clock::time_point started_at_;
};

// Route tables (admin_routes.cpp, data_routes.cpp).
void add_admin_routes(Router& router, Daemon& daemon);
void add_data_routes(Router& router, Daemon& daemon);
PlanePolicy admin_policy(Daemon& daemon);
PlanePolicy data_policy(Daemon& daemon);

}  // namespace llmops
