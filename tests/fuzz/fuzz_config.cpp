// The config file parser: any file contents give a Config or an error naming a key.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::string path = [] {
    char tmpl[] = "/tmp/llmops-fuzz-config-XXXXXX";
    int fd = ::mkstemp(tmpl);
    ::close(fd);
    return std::string(tmpl);
  }();
  FILE* f = std::fopen(path.c_str(), "wb");
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  const char* argv[] = {"llmopsd", "--config", path.c_str(), "--state-dir", "/tmp/llmops-fuzz-state"};
  llmops::ConfigRequest req;
  auto c = llmops::load_config(5, argv, &req);
  if (c.ok()) (void)llmops::config_to_json(*c);
  else if (c.status().message().empty()) __builtin_trap();
  return 0;
}
