// Plain-text tables for llmopsctl: columns sized to their widest cell, two spaces apart.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace llmops::ctl {

class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void print(std::FILE* out) const;
  bool empty() const { return rows_.empty(); }

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// Helpers for cells.
std::string human_bytes(double bytes);       // "1.5 GiB"
std::string human_time_ms(uint64_t ms);      // "2026-11-28 09:41:02" (UTC); "-" for 0
std::string human_duration(double seconds);  // "1h02m", "42s"
std::string progress_bar(double done, double total, int width);

}  // namespace llmops::ctl
