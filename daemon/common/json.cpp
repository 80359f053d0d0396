#include "json.h"

#include <string>

namespace llmops {

size_t json_nesting_depth(std::string_view text, size_t limit) {
  size_t depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    switch (c) {
      case '"': in_string = true; break;
      case '[':
      case '{':
        if (++depth > max_depth) {
          max_depth = depth;
          if (max_depth > limit) return max_depth;
        }
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default: break;
    }
  }
  return max_depth;
}

Result<Json> parse_json_bounded(std::string_view text, size_t max_depth) {
  if (json_nesting_depth(text, max_depth) > max_depth) {
    return invalid_argument("JSON nested deeper than " + std::to_string(max_depth) + " levels");
  }
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    // Re-run with exceptions only to extract the position and reason for the message.
    try {
      const Json thrown_before_this = Json::parse(text.begin(), text.end());
      (void)thrown_before_this;
    } catch (const Json::exception& e) {
      std::string what = e.what();
      auto pos = what.find("] ");
      return invalid_argument("invalid JSON: " + (pos == std::string::npos ? what : what.substr(pos + 2)));
    }
    return invalid_argument("invalid JSON");
  }
  return j;
}

std::string dump_json(const Json& j, int indent) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

Result<std::string> json_string(const Json& obj, std::string_view field) {
  auto it = obj.find(std::string(field));
  if (it == obj.end()) return invalid_argument("missing field '" + std::string(field) + "'");
  if (!it->is_string()) return invalid_argument("field '" + std::string(field) + "' must be a string");
  return it->get<std::string>();
}

Result<int64_t> json_int(const Json& obj, std::string_view field, int64_t min, int64_t max) {
  auto it = obj.find(std::string(field));
  if (it == obj.end()) return invalid_argument("missing field '" + std::string(field) + "'");
  if (!it->is_number_integer()) return invalid_argument("field '" + std::string(field) + "' must be an integer");
  int64_t v = it->get<int64_t>();
  if (v < min || v > max) {
    return invalid_argument("field '" + std::string(field) + "' must be between " + std::to_string(min) +
                            " and " + std::to_string(max));
  }
  return v;
}

}  // namespace llmops
