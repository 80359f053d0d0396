#include "config.h"

#include <boost/program_options.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "fs.h"
#include "json.h"

namespace po = boost::program_options;

namespace llmops {
namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? std::string(v) : fallback;
}

// systemd's StateDirectory= and RuntimeDirectory= may list several paths separated by ':'.
std::string first_path(const std::string& list) { return list.substr(0, list.find(':')); }

std::vector<std::string> split_list(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  for (const auto& v : values) {
    std::stringstream ss(v);
    std::string item;
    while (std::getline(ss, item, ',')) {
      auto b = item.find_first_not_of(" \t");
      auto e = item.find_last_not_of(" \t");
      if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
    }
  }
  return out;
}

Status range_check(const char* key, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) {
    return invalid_argument("key '" + std::string(key) + "': " + std::to_string(v) + " is outside " +
                            std::to_string(lo) + ".." + std::to_string(hi));
  }
  return ok_status();
}

}  // namespace

std::string Config::admin_socket_path() const {
  return admin.socket.empty() ? join_path(runtime_dir, "admin.sock") : admin.socket;
}

Status parse_listen_address(const std::string& text, std::string* host, uint16_t* port) {
  std::string h, p;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return invalid_argument("'" + text + "' is not [IPV6]:PORT");
    }
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) return invalid_argument("'" + text + "' is not HOST:PORT");
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
  }
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos) {
    return invalid_argument("'" + p + "' in '" + text + "' is not a port number");
  }
  unsigned long n = std::stoul(p);
  if (n > 65535) return invalid_argument("port " + p + " is above 65535");
  *host = h;
  *port = static_cast<uint16_t>(n);
  return ok_status();
}

Result<Config> load_config(int argc, const char* const* argv, ConfigRequest* request) {
  Config c;
  std::string config_path, listen, log_level, state_dir, runtime_dir, module_dir;
  std::vector<std::string> required, disabled, allowed_hosts, allow_users, allow_groups;
  int64_t max_body = 0, max_header = 0, max_depth = 0, map_mb = 0, max_map_mb = 0;

  po::options_description generic("Actions");
  generic.add_options()
      ("help,h", "print this help and exit")
      ("version", "print the version and exit")
      ("check-config", "validate the configuration (and module sections) and exit: 0 when valid")
      ("config,c", po::value(&config_path),
       "configuration file (default /etc/llmops/llmopsd.conf; when absent and not given, the "
       "embedded defaults apply)");

  po::options_description keys("Configuration keys (the same names in the file; [http] listen = ... is http.listen)");
  keys.add_options()
      ("state-dir", po::value(&state_dir)->default_value(first_path(env_or("STATE_DIRECTORY", "./llmops-data/state"))),
       "LMDB store and blob files")
      ("runtime-dir", po::value(&runtime_dir)->default_value(first_path(env_or("RUNTIME_DIRECTORY", "./llmops-data/run"))),
       "admin socket and runtime files")
      ("module-dir", po::value(&module_dir)->default_value(join_path(executable_dir(), "../lib/llmops/modules")),
       "directory of stage modules (llmops_<name>.so)")
      ("required-modules", po::value(&required)->multitoken(),
       "modules without which the daemon must not start (comma-separated)")
      ("disabled-modules", po::value(&disabled)->multitoken(), "modules not to load (comma-separated)")
      ("log-level", po::value(&log_level)->default_value("info"), "debug | info | warning | error")
      ("log-target", po::value(&c.log_target)->default_value("auto"),
       "auto (journald under systemd, else stderr) | stderr | journald")
      ("job-workers", po::value(&c.job_workers)->default_value(2), "job runner threads (1..64)")
      ("http.handler-threads", po::value(&c.http.handler_threads)->default_value(64),
       "threads for module handlers and streamed responses; each open stream holds one (1..4096)")
      ("drain-timeout", po::value(&c.drain_timeout_s)->default_value(30),
       "seconds in-flight requests and jobs get to finish on SIGTERM (0..3600)")
      ("store.map-size-mb", po::value(&map_mb)->default_value(256), "initial LMDB map size")
      ("store.max-map-size-mb", po::value(&max_map_mb)->default_value(1 << 20),
       "the LMDB map grows on demand up to this")
      ("http.listen", po::value(&listen)->default_value("127.0.0.1:8642"), "data-plane HOST:PORT (port 0: any free port)")
      ("http.threads", po::value(&c.http.threads)->default_value(2), "network threads (1..64)")
      ("http.max-body-bytes", po::value(&max_body)->default_value(8 << 20), "largest request body")
      ("http.max-header-bytes", po::value(&max_header)->default_value(16 << 10), "largest request header block")
      ("http.max-json-depth", po::value(&max_depth)->default_value(64), "deepest JSON nesting accepted")
      ("http.idle-timeout", po::value(&c.http.idle_timeout_s)->default_value(60), "seconds a keep-alive connection may idle")
      ("http.request-timeout", po::value(&c.http.request_timeout_s)->default_value(30),
       "seconds to receive one whole request (408 after)")
      ("http.max-connections", po::value(&c.http.max_connections)->default_value(1024), "open connections at once")
      ("http.allowed-hosts", po::value(&allowed_hosts)->multitoken(),
       "extra Host header names accepted when bound to loopback (DNS-rebinding guard)")
      ("admin.socket", po::value(&c.admin.socket), "admin socket path (default <runtime-dir>/admin.sock)")
      ("admin.socket-group", po::value(&c.admin.socket_group)->default_value("llmops"),
       "group that owns the admin socket (mode 0660)")
      ("admin.allow-users", po::value(&allow_users)->multitoken(),
       "users (names or uids) allowed on the admin socket besides root and the daemon's user")
      ("admin.allow-groups", po::value(&allow_groups)->multitoken(),
       "groups whose members are allowed (default: the socket group)")
      ("placement.inference-cpus", po::value(&c.inference_pool.cpus)->default_value(""),
       "cores of the inference pool: \"\" all, \"0-3,6\", or \"numa:N\"")
      ("placement.inference-threads", po::value(&c.inference_pool.threads)->default_value(0), "0: one per core")
      ("placement.training-cpus", po::value(&c.training_pool.cpus)->default_value(""), "cores of the training pool")
      ("placement.training-threads", po::value(&c.training_pool.threads)->default_value(0), "0: one per core");

  po::options_description all;
  all.add(generic).add(keys);
  std::ostringstream help;
  help << "llmopsd " << LLMOPS_VERSION_STRING
       << " - the llmops daemon: one process from data to serving.\n\n"
          "Usage: llmopsd [--config FILE] [--KEY=VALUE ...]\n"
          "       llmopsd --check-config [--config FILE]\n\n"
          "Stage modules take keys as <module>.<key> (for example serving.max-batch), validated\n"
          "against each module's schema.\n\n"
       << all;
  request->help_text = help.str();

  po::variables_map vm;
  std::vector<std::string> unregistered;
  try {
    auto cmd = po::command_line_parser(argc, argv).options(all).allow_unregistered().run();
    for (const auto& opt : cmd.options) {
      if (opt.unregistered) {
        if (opt.string_key.empty() || opt.string_key.find('.') == std::string::npos) {
          std::string name = opt.original_tokens.empty() ? opt.string_key : opt.original_tokens.front();
          return invalid_argument("unknown command-line option '" + name + "' (see llmopsd --help)");
        }
        if (opt.value.empty()) {
          return invalid_argument("module key '--" + opt.string_key + "' needs its value after '=': --" + opt.string_key + "=VALUE");
        }
        c.module_sections[opt.string_key.substr(0, opt.string_key.find('.'))]
                         [opt.string_key.substr(opt.string_key.find('.') + 1)] =
            opt.value.empty() ? "" : opt.value.front();
      }
    }
    po::store(cmd, vm);
    request->help = vm.count("help") > 0;
    request->version = vm.count("version") > 0;
    request->check_config = vm.count("check-config") > 0;
    if (vm.count("config")) config_path = vm["config"].as<std::string>();

    bool explicit_config = !config_path.empty();
    if (!explicit_config) config_path = kDefaultConfigPath;
    std::ifstream in(config_path);
    if (in) {
      auto file = po::parse_config_file(in, all, /*allow_unregistered=*/true);
      for (const auto& opt : file.options) {
        if (!opt.unregistered) continue;
        auto dot = opt.string_key.find('.');
        if (dot == std::string::npos) {
          return invalid_argument("unknown key '" + opt.string_key + "' in " + config_path);
        }
        std::string mod = opt.string_key.substr(0, dot);
        std::string key = opt.string_key.substr(dot + 1);
        auto& section = c.module_sections[mod];
        if (!section.count(key)) section[key] = opt.value.empty() ? "" : opt.value.front();
      }
      po::store(file, vm);
      c.config_path = config_path;
    } else if (explicit_config) {
      return not_found("cannot read config file " + config_path + " (give an existing file, or omit --config to run on the embedded defaults)");
    }
    po::notify(vm);
  } catch (const po::error& e) {
    std::string where = config_path.empty() ? "the command line" : config_path + " or the command line";
    return invalid_argument(std::string(e.what()) + " (in " + where + ")");
  }

  auto ctx = [&](Status s) {
    return s.with_context(c.config_path.empty() ? std::string("command line") : c.config_path);
  };
  if (!parse_log_level(log_level, &c.log_level)) {
    return ctx(invalid_argument("key 'log-level': '" + log_level + "' is not one of debug, info, warning, error"));
  }
  if (c.log_target != "auto" && c.log_target != "stderr" && c.log_target != "journald") {
    return ctx(invalid_argument("key 'log-target': '" + c.log_target + "' is not one of auto, stderr, journald"));
  }
  if (Status s = parse_listen_address(listen, &c.http.listen_host, &c.http.listen_port); !s.ok()) {
    return ctx(s.with_context("key 'http.listen'"));
  }
  LLMOPS_RETURN_IF_ERROR(ctx(range_check("http.threads", c.http.threads, 1, 64)));
  LLMOPS_RETURN_IF_ERROR(ctx(range_check("http.max-body-bytes", max_body, 1024, int64_t{1} << 32)));
  LLMOPS_RETURN_IF_ERROR(ctx(range_check("http.max-header-bytes", max_header, 1024, 1 << 20)));
  LLMOPS_RETURN_IF_ERROR(ctx(range_check("http.max-json-depth", max_depth, 2, 10000)));
  LLMOPS_RETURN_IF_ERROR(ctx(range_check("http.idle-timeout", c.http.idle_timeout_s, 1, 86400)));
  LLMOPS_RETURN_IF_ERROR(ctx(range_check("http.request-timeout", c.http.request_timeout_s, 1, 86400)));
  LLMOPS_RETURN_IF_ERROR(ctx(range_check("http.max-connections", c.http.max_connections, 1, 1000000)));
  LLMOPS_RETURN_IF_ERROR(ctx(range_check("job-workers", c.job_workers, 1, 64)));
  LLMOPS_RETURN_IF_ERROR(ctx(range_check("http.handler-threads", c.http.handler_threads, 1, 4096)));
  LLMOPS_RETURN_IF_ERROR(ctx(range_check("drain-timeout", c.drain_timeout_s, 0, 3600)));
  LLMOPS_RETURN_IF_ERROR(ctx(range_check("store.map-size-mb", map_mb, 1, int64_t{1} << 24)));
  LLMOPS_RETURN_IF_ERROR(ctx(range_check("store.max-map-size-mb", max_map_mb, map_mb, int64_t{1} << 24)));
  LLMOPS_RETURN_IF_ERROR(ctx(range_check("placement.inference-threads", c.inference_pool.threads, 0, 1024)));
  LLMOPS_RETURN_IF_ERROR(ctx(range_check("placement.training-threads", c.training_pool.threads, 0, 1024)));
  if (state_dir.empty()) return ctx(invalid_argument("key 'state-dir' must not be empty"));
  if (runtime_dir.empty()) return ctx(invalid_argument("key 'runtime-dir' must not be empty"));
  if (!c.admin.socket.empty() && c.admin.socket.size() >= 100) {
    return ctx(invalid_argument("key 'admin.socket': path longer than a Unix socket address allows (107 bytes)"));
  }
  c.http.max_body_bytes = static_cast<uint64_t>(max_body);
  c.http.max_header_bytes = static_cast<uint64_t>(max_header);
  c.http.max_json_depth = static_cast<uint64_t>(max_depth);
  c.store_map_size_mb = static_cast<uint64_t>(map_mb);
  c.store_max_map_size_mb = static_cast<uint64_t>(max_map_mb);
  c.state_dir = absolute_path(state_dir);
  c.runtime_dir = absolute_path(runtime_dir);
  c.module_dir = absolute_path(module_dir);
  c.required_modules = split_list(required);
  c.disabled_modules = split_list(disabled);
  c.http.allowed_hosts = split_list(allowed_hosts);
  c.admin.allow_users = split_list(allow_users);
  c.admin.allow_groups = split_list(allow_groups);
  if (c.admin.allow_groups.empty() && !c.admin.socket_group.empty()) c.admin.allow_groups.push_back(c.admin.socket_group);
  static const std::set<std::string> kBuiltinSections = {"http", "admin", "store", "placement"};
  for (const auto& [section, kv] : c.module_sections) {
    if (kBuiltinSections.count(section)) {
      return ctx(invalid_argument("unknown key '" + section + "." + kv.begin()->first + "' (see llmopsd --help)"));
    }
  }
  return c;
}

std::string config_to_json(const Config& c) {
  Json j = {
      {"config_file", c.config_path.empty() ? Json(nullptr) : Json(c.config_path)},
      {"state-dir", c.state_dir},
      {"runtime-dir", c.runtime_dir},
      {"module-dir", c.module_dir},
      {"required-modules", c.required_modules},
      {"disabled-modules", c.disabled_modules},
      {"log-target", c.log_target},
      {"job-workers", c.job_workers},
      {"drain-timeout", c.drain_timeout_s},
      {"store", {{"map-size-mb", c.store_map_size_mb}, {"max-map-size-mb", c.store_max_map_size_mb}}},
      {"http",
       {{"listen", c.http.listen_host + ":" + std::to_string(c.http.listen_port)},
        {"threads", c.http.threads},
        {"handler-threads", c.http.handler_threads},
        {"max-body-bytes", c.http.max_body_bytes},
        {"max-header-bytes", c.http.max_header_bytes},
        {"max-json-depth", c.http.max_json_depth},
        {"idle-timeout", c.http.idle_timeout_s},
        {"request-timeout", c.http.request_timeout_s},
        {"max-connections", c.http.max_connections},
        {"allowed-hosts", c.http.allowed_hosts}}},
      {"admin",
       {{"socket", c.admin_socket_path()},
        {"socket-group", c.admin.socket_group},
        {"allow-users", c.admin.allow_users},
        {"allow-groups", c.admin.allow_groups}}},
      {"placement",
       {{"inference-cpus", c.inference_pool.cpus},
        {"inference-threads", c.inference_pool.threads},
        {"training-cpus", c.training_pool.cpus},
        {"training-threads", c.training_pool.threads}}},
  };
  Json mods = Json::object();
  for (const auto& [m, kv] : c.module_sections) mods[m] = kv;
  j["modules"] = mods;
  static const char* kLevels[] = {"debug", "info", "warning", "error"};
  j["log-level"] = kLevels[static_cast<int>(c.log_level)];
  return dump_json(j, 2);
}

}  // namespace llmops
