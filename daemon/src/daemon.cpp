#include "daemon.h"

#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "log.h"

namespace llmops {
Daemon::Daemon(Config config, std::vector<std::string> argv) : config_(std::move(config)), argv_(std::move(argv)) {}

Daemon::~Daemon() {
  if (server_) server_->stop();
  // Job workers may be inside module code: stop them before any module is unloaded.
  if (jobs_ && !jobs_->shutdown(5000)) {
    std::fflush(nullptr);
    ::_exit(1);
  }
  if (modules_) {
    modules_->stop_all();
    modules_->fini_all();
  }
}

Config Daemon::config() const {
  std::lock_guard lock(config_mu_);
  return config_;
}

std::string Daemon::http_endpoint() const {
  std::string host = config_.http.listen_host;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(http_port_);
}

Status Daemon::open_state() {
  LLMOPS_RETURN_IF_ERROR(make_dirs(config_.state_dir, 0750).with_context("key 'state-dir'"));
  LLMOPS_RETURN_IF_ERROR(make_dirs(config_.runtime_dir, 0750).with_context("key 'runtime-dir'"));
  std::string lock_path = join_path(config_.state_dir, "llmopsd.lock");
  lock_fd_ = UniqueFd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640));
  if (!lock_fd_.valid()) return errno_status("opening " + lock_path, errno);
  if (::flock(lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    auto other = read_file(lock_path, 64);
    return failed_precondition("another llmopsd (pid " + (other.ok() ? *other : std::string("?")) + ") is using the state directory " +
                               config_.state_dir + "; stop it or choose another state-dir");
  }
  std::string pid = std::to_string(::getpid());
  (void)::ftruncate(lock_fd_.get(), 0);
  (void)write_all(lock_fd_.get(), pid.data(), pid.size());

  StoreOptions so;
  so.initial_map_bytes = config_.store_map_size_mb << 20;
  so.max_map_bytes = config_.store_max_map_size_mb << 20;
  LLMOPS_ASSIGN_OR_RETURN(store_, Store::open(join_path(config_.state_dir, "store"), so));
  LLMOPS_ASSIGN_OR_RETURN(blobs_, BlobStore::open(store_.get(), join_path(config_.state_dir, "blobs")));
  LLMOPS_ASSIGN_OR_RETURN(keys_, KeyStore::open(store_.get()));
  LLMOPS_ASSIGN_OR_RETURN(audit_, AuditLog::open(store_.get()));
  return ok_status();
}

void Daemon::register_builtin_jobs() {
  // Re-hashes every blob and reports the ones whose file is missing or changed. Resumable:
  // the checkpoint is the last blob verified, in hash order.
  JobKind verify;
  verify.owner = "daemon";
  verify.resumable = true;
  verify.fn = [this](JobContext& job) -> Status {
    LLMOPS_ASSIGN_OR_RETURN(auto all, blobs_->list());
    std::string after;
    uint64_t bad_before = 0;
    if (auto cp = job.checkpoint()) {
      auto j = parse_json_bounded(*cp, 4);
      if (j.ok()) {
        after = j->value("after", "");
        bad_before = j->value("bad", uint64_t{0});
      }
    }
    uint64_t bad = bad_before;
    std::vector<std::string> problems;
    size_t done = 0;
    for (const auto& b : all) {
      ++done;
      if (!after.empty() && b.hex <= after) continue;
      if (job.cancelled()) return cancelled("cancelled");
      if (job.stopping()) return aborted("stopping");
      Status st = blobs_->verify(b.hex);
      if (!st.ok()) {
        ++bad;
        problems.push_back(st.message());
        log_error("blobs", st.message());
      }
      LLMOPS_RETURN_IF_ERROR(job.save_checkpoint(dump_json({{"after", b.hex}, {"bad", bad}})));
      job.progress(static_cast<double>(done), static_cast<double>(all.size()), "verified " + std::to_string(done) + " of " + std::to_string(all.size()) + " blobs");
    }
    if (bad > 0) {
      return data_loss(std::to_string(bad) + " blob(s) failed verification" + (problems.empty() ? "" : ", e.g. " + problems.front()));
    }
    job.progress(static_cast<double>(all.size()), static_cast<double>(all.size()), "all " + std::to_string(all.size()) + " blobs intact");
    return ok_status();
  };
  (void)jobs_->register_kind("blobs.verify", std::move(verify));
}

Status Daemon::start() {
  started_at_ = std::chrono::steady_clock::now();
  bool journald = config_.log_target == "journald" || (config_.log_target == "auto" && stderr_is_journal());
  log_init(config_.log_level, journald);
  log_info("daemon", std::string("llmopsd ") + LLMOPS_VERSION_STRING + " starting; config: " +
                         (config_.config_path.empty() ? "embedded defaults" : config_.config_path));
  LLMOPS_RETURN_IF_ERROR(open_state());
  LLMOPS_ASSIGN_OR_RETURN(placement_, Placement::create(config_));
  auto all_cpus = placement_->topology().resolve_cpus("");
  if (!all_cpus.ok()) return all_cpus.status();
  handler_pool_ = std::make_unique<WorkerPool>("handlers", placement_->topology(), std::move(all_cpus).value(),
                                               config_.http.handler_threads);

  jobs_ = std::make_unique<JobRunner>(store_.get(), &metrics_, config_.job_workers);
  LLMOPS_RETURN_IF_ERROR(jobs_->open());
  register_builtin_jobs();

  add_admin_routes(admin_router_, *this);
  HostServices services{store_.get(), blobs_.get(), &metrics_, jobs_.get(), placement_.get(), &data_router_, &admin_router_};
  modules_ = std::make_unique<ModuleHost>(services);
  LLMOPS_RETURN_IF_ERROR(modules_->load(config_));
  LLMOPS_RETURN_IF_ERROR(modules_->validate_config(config_));
  LLMOPS_RETURN_IF_ERROR(modules_->init_all());
  add_data_routes(data_router_, *this);

  LLMOPS_RETURN_IF_ERROR(jobs_->recover());
  jobs_->start();
  LLMOPS_RETURN_IF_ERROR(modules_->start_all());

  HttpLimits limits;
  limits.max_body_bytes = config_.http.max_body_bytes;
  limits.max_header_bytes = config_.http.max_header_bytes;
  limits.idle_timeout_s = config_.http.idle_timeout_s;
  limits.request_timeout_s = config_.http.request_timeout_s;
  limits.max_connections = config_.http.max_connections;
  // The planes take copies: the originals stay for peer calls between stages (ABI 1.5).
  data_plane_ = std::make_unique<HttpPlane>("data", data_router_, limits, data_policy(*this), &metrics_, handler_pool_.get());
  admin_plane_ = std::make_unique<HttpPlane>("admin", admin_router_, limits, admin_policy(*this), &metrics_, handler_pool_.get());

  server_ = std::make_unique<HttpServer>(config_.http.threads);
  LLMOPS_ASSIGN_OR_RETURN(http_port_, server_->listen_tcp(config_.http.listen_host, config_.http.listen_port, data_plane_.get()));
  LLMOPS_RETURN_IF_ERROR(server_->listen_unix(config_.admin_socket_path(), config_.admin.socket_group, admin_plane_.get()));

  metrics_.gauge("llmops_up", "1 while llmopsd runs").set(1);
  metrics_.add_collector([this] {
    for (const auto& m : modules_->describe()) {
      std::string h = m["health"]["state"];
      metrics_.gauge("llmops_module_health", "Module health: 2 ok, 1 degraded, 0 failing or not running",
                     {{"module", m["name"]}}).set(h == "ok" ? 2 : h == "degraded" ? 1 : 0);
    }
    auto st = store_->stats();
    metrics_.gauge("llmops_store_map_bytes", "LMDB map size").set(static_cast<double>(st.map_bytes));
    metrics_.gauge("llmops_store_used_bytes", "LMDB pages in use").set(static_cast<double>(st.used_bytes));
    for (HttpPlane* p : {data_plane_.get(), admin_plane_.get()}) {
      metrics_.gauge("llmops_http_in_flight", "Requests being answered", {{"plane", p->name()}}).set(p->in_flight());
      metrics_.gauge("llmops_http_connections", "Open connections", {{"plane", p->name()}}).set(p->connections().load());
    }
    metrics_.gauge("llmops_uptime_seconds", "Seconds since start")
        .set(std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at_).count());
  });

  server_->start();
  // Ready before the runtime file appears: clients (and the tests) take the file as the sign
  // that /readyz answers ready.
  ready_ = true;
  write_runtime_file();
  notifier_.ready("serving on " + http_endpoint() + ", admin socket " + config_.admin_socket_path());
  (void)audit_->append({0, 0, "daemon", "", ::getpid(), "start", 200, std::string("llmopsd ") + LLMOPS_VERSION_STRING + " ready"});
  log_info("daemon", "ready: HTTP " + http_endpoint() + ", admin socket " + config_.admin_socket_path());
  print_banner();
  return ok_status();
}

void Daemon::write_runtime_file() {
  Json j = {{"pid", ::getpid()},
            {"version", LLMOPS_VERSION_STRING},
            {"http", http_endpoint()},
            {"http_port", http_port_},
            {"admin_socket", config_.admin_socket_path()},
            {"state_dir", config_.state_dir}};
  Status st = write_file_atomic(join_path(config_.runtime_dir, "llmopsd.json"), dump_json(j, 2) + "\n", 0644);
  if (!st.ok()) log_warning("daemon", "could not write the runtime file: " + st.message());
}

void Daemon::print_banner() {
  if (notifier_.active() || stderr_is_journal()) return;
  std::string ctl = join_path(executable_dir(), "llmopsctl");
  std::printf(
      "\nllmopsd %s is ready.\n"
      "  HTTP (apps):    %s\n"
      "  admin socket:   %s\n"
      "  state:          %s\n"
      "Try:\n"
      "  curl -s %s/v1/models\n"
      "  curl -s %s/v1/chat/completions -d '{\"messages\": [{\"role\": \"user\", \"content\": \"Tell me a story\"}], \"max_tokens\": 60}'\n"
      "  %s --socket %s status\n"
      "  %s --socket %s chat\n"
      "Stop with Ctrl-C (SIGTERM drains in-flight requests and jobs first).\n\n",
      LLMOPS_VERSION_STRING, http_endpoint().c_str(), config_.admin_socket_path().c_str(), config_.state_dir.c_str(),
      http_endpoint().c_str(), http_endpoint().c_str(), ctl.c_str(), config_.admin_socket_path().c_str(), ctl.c_str(),
      config_.admin_socket_path().c_str());
  std::fflush(stdout);
}

Json Daemon::status_json() {
  Config c = config();
  auto st = store_->stats();
  Json jobs_by_state = Json::object();
  auto recent = jobs_->list(std::nullopt, 10000);
  if (recent.ok()) {
    for (const auto& j : *recent) jobs_by_state[job_state_name(j.state)] = jobs_by_state.value(job_state_name(j.state), 0) + 1;
  }
  Json mods = Json::object();
  for (const auto& m : modules_->describe()) mods[m["name"].get<std::string>()] = m["state"];
  auto keys = keys_->list();
  size_t active_keys = 0;
  if (keys.ok()) {
    for (const auto& k : *keys) active_keys += k.revoked_ms == 0 ? 1 : 0;
  }
  return {{"version", LLMOPS_VERSION_STRING},
          {"pid", ::getpid()},
          {"state", draining_ ? "draining" : ready_ ? "running" : "starting"},
          {"health", modules_->overall_health()},
          {"uptime_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at_).count()},
          {"http", http_endpoint()},
          {"admin_socket", c.admin_socket_path()},
          {"state_dir", c.state_dir},
          {"config_file", c.config_path.empty() ? Json(nullptr) : Json(c.config_path)},
          {"store", {{"map_bytes", st.map_bytes}, {"used_bytes", st.used_bytes}, {"readers", st.readers_used}, {"map_growths", st.map_growths}}},
          {"modules", mods},
          {"jobs", jobs_by_state},
          {"api_keys_active", active_keys},
          {"systemd", notifier_.active()},
          {"watchdog_usec", notifier_.watchdog_usec()}};
}

void Daemon::reload() {
  notifier_.reloading();
  log_info("daemon", "SIGHUP: reloading configuration");
  std::vector<const char*> args;
  for (const auto& a : argv_) args.push_back(a.c_str());
  ConfigRequest req;
  auto fresh = load_config(static_cast<int>(args.size()), args.data(), &req);
  Status st = fresh.ok() ? modules_->reload_all(*fresh) : fresh.status();
  if (!st.ok()) {
    log_error("daemon", "reload refused, the running configuration stays: " + st.message());
    notifier_.ready("running; the last reload failed: " + st.message());
    return;
  }
  const Config& n = *fresh;
  if (n.http.listen_host != config_.http.listen_host || n.http.listen_port != config_.http.listen_port ||
      n.state_dir != config_.state_dir || n.runtime_dir != config_.runtime_dir || n.admin_socket_path() != config_.admin_socket_path() ||
      n.module_dir != config_.module_dir || n.http.threads != config_.http.threads || n.http.handler_threads != config_.http.handler_threads || n.job_workers != config_.job_workers) {
    log_warning("daemon", "listen addresses, directories, modules and thread counts change only at restart");
  }
  log_set_level(n.log_level);
  {
    std::lock_guard lock(config_mu_);
    config_ = n;
  }
  (void)audit_->append({0, 0, "daemon", "", ::getpid(), "reload", 200, "configuration reloaded"});
  notifier_.ready("serving on " + http_endpoint());
  log_info("daemon", "configuration reloaded");
}

void Daemon::drain_and_stop() {
  draining_ = true;
  ready_ = false;
  int timeout_s = config().drain_timeout_s;
  notifier_.stopping("draining: finishing in-flight requests and jobs (up to " + std::to_string(timeout_s) + " s)");
  log_info("daemon", "stopping: new requests get 503; draining for up to " + std::to_string(timeout_s) + " s");
  data_plane_->set_draining();
  admin_plane_->set_draining();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while ((data_plane_->in_flight() > 0 || admin_plane_->in_flight() > 0) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (data_plane_->in_flight() > 0 || admin_plane_->in_flight() > 0) {
    log_warning("daemon", std::to_string(data_plane_->in_flight() + admin_plane_->in_flight()) +
                              " request(s) still in flight at the drain timeout; closing them");
  }
  int left_ms = static_cast<int>(std::max<int64_t>(
      0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count()));
  bool jobs_stopped = jobs_->shutdown(std::max(left_ms, 1000));
  modules_->stop_all();
  server_->stop();
  (void)audit_->append({0, 0, "daemon", "", ::getpid(), "stop", 200, jobs_stopped ? "clean stop" : "stopped with jobs still running"});
  ::unlink(join_path(config_.runtime_dir, "llmopsd.json").c_str());
  if (!jobs_stopped) {
    log_warning("daemon", "some jobs did not stop in time; they resume or show as interrupted at the next start");
    std::fflush(nullptr);
    ::_exit(0);  // their threads still use the store: skip destructors
  }
  modules_->fini_all();
  log_info("daemon", "stopped");
}

int Daemon::run() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  uint64_t wd = notifier_.watchdog_usec();
  uint64_t tick_us = wd > 0 ? std::min<uint64_t>(wd / 2, 1000000) : 1000000;
  uint64_t probe_sent = 0;
  for (;;) {
    timespec timeout{static_cast<time_t>(tick_us / 1000000), static_cast<long>((tick_us % 1000000) * 1000)};
    int sig = sigtimedwait(&set, nullptr, &timeout);
    if (sig == SIGTERM || sig == SIGINT) break;
    if (sig == SIGHUP) reload();
    if (wd > 0) {
      // Ping only when the network loop answered the previous probe: a wedged loop stops the
      // pings and systemd restarts us.
      if (loop_probe_.load() == probe_sent) notifier_.watchdog();
      uint64_t next = ++probe_sent;
      server_->post([this, next] { loop_probe_ = next; });
    }
  }
  drain_and_stop();
  return 0;
}

}  // namespace llmops
