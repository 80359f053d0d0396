// llmopsd entry point: parse the configuration, block the signals the main loop waits for
// (before any thread starts, so every thread inherits the mask), start, run.
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "daemon.h"
#include "log.h"

int main(int argc, char** argv) {
  using namespace llmops;
  ConfigRequest request;
  auto config = load_config(argc, argv, &request);
  if (request.help) {
    std::fputs(request.help_text.c_str(), stdout);
    return 0;
  }
  if (request.version) {
    std::printf("llmopsd %s (module ABI %d.%d)\n", LLMOPS_VERSION_STRING, LLMOPS_ABI_MAJOR, LLMOPS_ABI_MINOR);
    return 0;
  }
  if (!config.ok()) {
    std::fprintf(stderr, "llmopsd: configuration error: %s\n", config.status().message().c_str());
    return 2;
  }
  if (request.check_config) {
    log_init(LogLevel::kWarning, false);
    HostServices none;
    ModuleHost host(none);
    Status st = host.load(*config);
    if (st.ok()) st = host.validate_config(*config);
    if (st.ok()) {
      auto placement = Placement::create(*config);
      if (!placement.ok()) st = placement.status();
    }
    if (!st.ok()) {
      std::fprintf(stderr, "llmopsd: configuration error: %s\n", st.message().c_str());
      return 2;
    }
    size_t loaded = 0, refused = 0;
    for (const auto& m : host.modules()) (m.state == "loaded" ? loaded : refused) += 1;
    std::printf("configuration OK (%s): %zu module(s) load, %zu refused or disabled\n",
                config->config_path.empty() ? "embedded defaults" : config->config_path.c_str(), loaded, refused);
    return 0;
  }

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::vector<std::string> args(argv, argv + argc);
  Daemon daemon(std::move(config).value(), args);
  Status st = daemon.start();
  if (!st.ok()) {
    log_error("daemon", "cannot start: " + st.message());
    return 1;
  }
  return daemon.run();
}
