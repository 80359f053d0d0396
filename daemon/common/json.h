// JSON with the limits of house rule 5. nlohmann::json is the document type; parse_json_bounded
// refuses input deeper than max_depth before the recursive parser sees it.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

#include "status.h"

namespace llmops {

using Json = nlohmann::json;

// Depth of nested arrays/objects, scanning strings correctly; stops early past limit.
size_t json_nesting_depth(std::string_view text, size_t limit);
// Parses text; invalid JSON, depth past max_depth or invalid UTF-8 → kInvalidArgument with
// the position where it went wrong.
Result<Json> parse_json_bounded(std::string_view text, size_t max_depth);
// Serialises without throwing on invalid UTF-8 in strings (replaced by U+FFFD).
std::string dump_json(const Json& j, int indent = -1);

// The object member `key`, or an empty object when it is absent or not an object. A reference
// that outlives the expression: loop over its items() safely, which a temporary from
// value(key, Json::object()) does not allow.
inline const Json& object_member(const Json& obj, const char* key) {
  static const Json kEmpty = Json::object();
  if (!obj.is_object()) return kEmpty;
  auto it = obj.find(key);
  return it != obj.end() && it->is_object() ? *it : kEmpty;
}

// Typed accessors that turn a wrong type into a clear error naming the field.
Result<std::string> json_string(const Json& obj, std::string_view field);
Result<int64_t> json_int(const Json& obj, std::string_view field, int64_t min, int64_t max);

}  // namespace llmops
