// llama2.c checkpoint headers: any bytes give a header whose implied size equals the input's
// or a typed error.
#include <cstdint>

#include "formats/llama2c.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto h = llmops::engine::parse_llama2c_header(data, size);
  if (h.ok() && h->weights_offset > size) __builtin_trap();
  return 0;
}
