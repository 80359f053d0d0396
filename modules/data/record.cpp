#include "data/record.h"

namespace llmops::data {

std::optional<std::string> record_text(const Json& record, const std::string& field) {
  auto it = record.find(field);
  if (it == record.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    std::string joined;
    bool any = false;
    for (const auto& m : *it) {
      if (m.is_object() && m.contains("content") && m["content"].is_string()) {
        if (any) joined.push_back('\n');
        joined += m["content"].get<std::string>();
        any = true;
      }
    }
    if (any) return joined;
  }
  return std::nullopt;
}

Result<std::string> fill_template(const std::string& tmpl, const Json& record) {
  std::string out;
  for (size_t i = 0; i < tmpl.size(); ++i) {
    char c = tmpl[i];
    if ((c == '{' || c == '}') && i + 1 < tmpl.size() && tmpl[i + 1] == c) {
      out.push_back(c);
      ++i;
      continue;
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    size_t close = tmpl.find('}', i);
    if (close == std::string::npos) return invalid_argument("template has a '{' without '}' (write {{ for a brace)");
    std::string field = tmpl.substr(i + 1, close - i - 1);
    auto it = record.find(field);
    if (it == record.end() || it->is_null()) return not_found(field);
    out += it->is_string() ? it->get<std::string>() : dump_json(*it);
    i = close;
  }
  return out;
}

}  // namespace llmops::data
