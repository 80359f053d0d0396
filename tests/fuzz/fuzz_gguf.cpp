// The GGUF reader: any bytes give a file or a typed error; for a file that parses, every
// metadata accessor and the first row of every tensor must read within the buffer.
#include <cstdint>
#include <vector>

#include "formats/gguf.h"

using namespace llmops::engine;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  GgufLimits limits;
  limits.max_array = 1u << 16;
  auto g = GgufFile::parse(data, size, limits);
  if (!g.ok()) return 0;
  for (const auto& [key, value] : (*g)->metadata()) {
    (void)(*g)->get_string(key);
    (void)(*g)->get_uint(key);
    (void)(*g)->get_float(key);
    (void)(*g)->get_strings(key);
    (void)(*g)->get_floats(key);
    (void)(*g)->get_ints(key);
  }
  std::vector<float> row;
  for (const auto& t : (*g)->tensors()) {
    auto info = ggml_type_info(static_cast<uint32_t>(t.type));
    if (!info->can_dequantize || t.ne[0] > (1u << 16)) continue;
    row.resize(t.ne[0]);
    dequantize_row(t.type, t.data, row.data(), t.ne[0]);
  }
  return 0;
}
