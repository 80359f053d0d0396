// Which GPUs a stage uses, as its configuration names them: "all" (or empty) for every GPU the
// driver sees, else their indices, "0,2,3".
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "status.h"

namespace llmops {

// An empty list means all. kInvalidArgument (naming the bad item) for anything else.
inline Result<std::vector<int>> parse_gpu_list(std::string_view text) {
  std::vector<int> out;
  if (text.empty() || text == "all") return out;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t comma = std::min(text.find(',', at), text.size());
    const std::string item(text.substr(at, comma - at));
    if (item.empty() || item.size() > 3 || item.find_first_not_of("0123456789") != std::string::npos) {
      return invalid_argument("'" + std::string(text) + "' is not a list of GPU indices: use all, or their numbers (0,2,3)");
    }
    const int id = std::stoi(item);
    for (int seen : out) {
      if (seen == id) return invalid_argument("GPU " + item + " is named twice in '" + std::string(text) + "'");
    }
    out.push_back(id);
    at = comma + 1;
  }
  return out;
}

}  // namespace llmops
