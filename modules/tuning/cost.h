// What a training run cost: the process's CPU-seconds over the run (getrusage; it includes
// anything else the daemon did meanwhile, so it is an upper bound on a busy server) and the
// energy: Intel RAPL's package counters under /sys/class/powercap when they are readable (all
// packages, wrap-around handled), else CPU-seconds × a configured watts per core; and, where
// NVIDIA's management library is installed (libnvidia-ml.so.1, opened at run time), the GPUs'
// energy over the run from nvmlDeviceGetTotalEnergyConsumption, summed over the devices.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace llmops::tuning {

struct Cost {
  double cpu_seconds = 0, joules = 0;
  std::string source;  // "rapl" | "estimate:<W> W per core-second"
  bool has_gpu = false;  // NVML answered for every GPU at the start and the end
  double gpu_joules = 0;
};

class CostMeter {
 public:
  CostMeter();  // starts measuring
  Cost read(double watts_per_core) const;

 private:
  double cpu0_ = 0;
  std::vector<std::string> zones_;
  std::vector<uint64_t> energy0_, range_;
  std::vector<uint64_t> gpu_mj0_;  // per GPU, millijoules since the driver loaded
};

}  // namespace llmops::tuning
