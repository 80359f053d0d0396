// llmopsd configuration: /etc/llmops/llmopsd.conf (INI, sections become "section.key") and the
// same keys as command-line flags (--http.listen=...), command line winning. Loaded on the main
// thread at start and on SIGHUP; a Config is an immutable value once loaded.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "log.h"
#include "status.h"

namespace llmops {

inline constexpr const char* kDefaultConfigPath = "/etc/llmops/llmopsd.conf";

struct HttpConfig {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 8642;
  int threads = 2;
  int handler_threads = 64;  // blocking handlers and streamed responses (each stream holds one)
  uint64_t max_body_bytes = 8u << 20;
  uint64_t max_header_bytes = 16u << 10;
  uint64_t max_json_depth = 64;
  int idle_timeout_s = 60;
  int request_timeout_s = 30;  // to receive one whole request (slowloris bound)
  int max_connections = 1024;
  std::vector<std::string> allowed_hosts;  // extra Host names accepted on loopback
};

struct AdminConfig {
  std::string socket;  // empty: <runtime-dir>/admin.sock
  std::string socket_group = "llmops";
  std::vector<std::string> allow_users;   // names or numeric uids; root and the daemon's own user always
  std::vector<std::string> allow_groups;  // names or numeric gids
};

struct PoolConfig {
  std::string cpus;  // "" = all allowed cores; "0-3,6" = those PUs; "numa:0" = that node
  int threads = 0;   // 0 = one per core of the set
};

struct Config {
  std::string config_path;       // the file read, or "" when running on embedded defaults
  std::string state_dir;
  std::string runtime_dir;
  std::string module_dir;
  std::vector<std::string> required_modules;
  std::vector<std::string> disabled_modules;
  LogLevel log_level = LogLevel::kInfo;
  std::string log_target = "auto";  // auto | stderr | journald
  HttpConfig http;
  AdminConfig admin;
  PoolConfig inference_pool;
  PoolConfig training_pool;
  int job_workers = 2;
  int drain_timeout_s = 30;
  uint64_t store_map_size_mb = 256;
  uint64_t store_max_map_size_mb = 1u << 20;  // 1 TiB of address space; disk is checked first
  // Keys that belong to modules: module name → key → raw value. Checked against each module's
  // schema once modules are loaded.
  std::map<std::string, std::map<std::string, std::string>> module_sections;

  std::string admin_socket_path() const;
};

struct ConfigRequest {
  bool help = false;
  bool version = false;
  bool check_config = false;
  std::string help_text;
};

// Parses argv and the config file. On a bad key or value, the Status names the key, the file
// and why. `request` receives --help/--version/--check-config.
Result<Config> load_config(int argc, const char* const* argv, ConfigRequest* request);

// The effective configuration as JSON text (for `llmopsctl config show`).
std::string config_to_json(const Config& config);

// "127.0.0.1:8642", "[::1]:80", "localhost:0" → host and port.
Status parse_listen_address(const std::string& text, std::string* host, uint16_t* port);

}  // namespace llmops
