// KeyReader over arbitrary bytes: every read stays within the key.
#include <cstdint>
#include <string_view>

#include "keys.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  llmops::KeyReader r(std::string_view(reinterpret_cast<const char*>(data), size));
  for (int i = 0; i < 64 && !r.empty(); ++i) {
    switch (data[i % size] % 3) {
      case 0: (void)r.u64(); break;
      case 1: (void)r.u32(); break;
      default:
        if (!r.str()) return 0;
    }
  }
  return 0;
}
