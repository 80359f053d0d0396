// Small helpers the GPU benchmarks share: comma lists and medians.
#pragma once

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

namespace llmops::bench {

inline std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace llmops::bench
