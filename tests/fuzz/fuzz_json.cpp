// parse_json_bounded: any bytes give a value or an error, never a crash or deep recursion.
#include <cstdint>
#include <string_view>

#include "json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = llmops::parse_json_bounded(text, 64);
  if (r.ok()) {
    (void)llmops::dump_json(*r);
    if (r->is_object()) {
      (void)llmops::json_string(*r, "name");
      (void)llmops::json_int(*r, "n", -5, 5);
    }
  }
  (void)llmops::json_nesting_depth(text, 10);
  return 0;
}
