// The safetensors reader: any bytes give a typed error or a file whose every tensor lies within
// the input and reads fully; the first F32/F16/BF16 tensor converts to fp32.
#include <cstdint>
#include <vector>

#include "formats/safetensors.h"

using namespace llmops::engine;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  SafetensorsLimits limits;
  limits.max_tensors = 1u << 12;
  auto f = SafetensorsFile::parse(data, size, limits);
  if (!f.ok()) {
    if (f.status().code() != llmops::Code::kInvalidArgument) __builtin_trap();
    return 0;
  }
  uint64_t covered = 0;
  uint8_t sum = 0;
  const SafetensorsTensor* first_float = nullptr;
  for (const auto& t : (*f)->tensors()) {
    if (t.data < data || t.bytes > size || t.data > data + size - t.bytes) __builtin_trap();
    if (t.bytes != t.elements() * safetensors_dtype_bytes(t.dtype)) __builtin_trap();
    if ((*f)->tensor(t.name) != &t) __builtin_trap();
    for (uint64_t k = 0; k < t.bytes; ++k) sum ^= t.data[k];
    covered += t.bytes;
    if (first_float == nullptr && safetensors_dtype_converts_to_f32(t.dtype)) first_float = &t;
  }
  // The tensors cover the data section exactly.
  if (covered != size - (*f)->data_start()) __builtin_trap();
  if (first_float != nullptr) {
    std::vector<float> out(first_float->elements());
    if (!safetensors_to_f32(*first_float, out.data()).ok()) __builtin_trap();
  }
  volatile uint8_t sink = sum;
  (void)sink;
  return 0;
}
