// The config file parser: any file contents give a Config or an error naming a key.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "config.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = fuzz_input_file(data, size);
  const char* argv[] = {"llmopsd", "--config", path.c_str(), "--state-dir", "/tmp/llmops-fuzz-state"};
  llmops::ConfigRequest req;
  auto c = llmops::load_config(5, argv, &req);
  if (c.ok()) (void)llmops::config_to_json(*c);
  else if (c.status().message().empty()) __builtin_trap();
  return 0;
}
