// Fault injection for the tests of failure paths nothing outside can provoke on demand (a loss
// that turns NaN at a chosen step). LLMOPS_FAILPOINTS="name=N[,name=N...]" arms named points;
// the code asks failpoint(name) and acts when the value matches where it is. Unset — as in
// every deployment — nothing is armed and each check is one cached lookup.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace llmops {

inline std::optional<int64_t> failpoint(std::string_view name) {
  static const std::map<std::string, int64_t, std::less<>> armed = [] {
    std::map<std::string, int64_t, std::less<>> m;
    const char* env = std::getenv("LLMOPS_FAILPOINTS");
    std::string_view s = env != nullptr ? env : "";
    while (!s.empty()) {
      const size_t comma = s.find(',');
      const std::string_view part = s.substr(0, comma);
      if (const size_t eq = part.find('='); eq != std::string_view::npos) {
        m[std::string(part.substr(0, eq))] = std::strtoll(std::string(part.substr(eq + 1)).c_str(), nullptr, 10);
      }
      s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
    }
    return m;
  }();
  auto it = armed.find(name);
  if (it == armed.end()) return std::nullopt;
  return it->second;
}

}  // namespace llmops
