// What a training run cost: the process's CPU-seconds over the run (getrusage; it includes
// anything else the daemon did meanwhile, so it is an upper bound on a busy server) and the
// energy: Intel RAPL's package counters under /sys/class/powercap when they are readable (all
// packages, wrap-around handled), else CPU-seconds × a configured watts per core.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace llmops::tuning {

struct Cost {
  double cpu_seconds = 0, joules = 0;
  std::string source;  // "rapl" | "estimate:<W> W per core-second"
};

class CostMeter {
 public:
  CostMeter();  // starts measuring
  Cost read(double watts_per_core) const;

 private:
  double cpu0_ = 0;
  std::vector<std::string> zones_;
  std::vector<uint64_t> energy0_, range_;
};

}  // namespace llmops::tuning
