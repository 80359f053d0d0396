#include "tuning/cost.h"

#include <dlfcn.h>
#include <sys/resource.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace llmops::tuning {
namespace {

double process_cpu_seconds() {
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

bool read_u64(const std::string& path, uint64_t* out) {
  std::ifstream f(path);
  return static_cast<bool>(f >> *out);
}

// NVIDIA's management library, opened once if it is installed; its C API by hand so the build
// needs no CUDA headers. Every call returns 0 (NVML_SUCCESS) on success.
struct Nvml {
  using Device = void*;
  int (*init)() = nullptr;
  int (*count)(unsigned*) = nullptr;
  int (*handle)(unsigned, Device*) = nullptr;
  int (*energy)(Device, unsigned long long*) = nullptr;
  bool ok = false;

  static const Nvml& get() {
    static const Nvml n = [] {
      Nvml v;
      void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
      if (lib == nullptr) return v;
      v.init = reinterpret_cast<int (*)()>(dlsym(lib, "nvmlInit_v2"));
      v.count = reinterpret_cast<int (*)(unsigned*)>(dlsym(lib, "nvmlDeviceGetCount_v2"));
      v.handle = reinterpret_cast<int (*)(unsigned, Device*)>(dlsym(lib, "nvmlDeviceGetHandleByIndex_v2"));
      v.energy = reinterpret_cast<int (*)(Device, unsigned long long*)>(dlsym(lib, "nvmlDeviceGetTotalEnergyConsumption"));
      v.ok = v.init != nullptr && v.count != nullptr && v.handle != nullptr && v.energy != nullptr && v.init() == 0;
      return v;
    }();
    return n;
  }
  // Millijoules per GPU; empty when NVML is absent or any device does not answer.
  std::vector<uint64_t> read() const {
    std::vector<uint64_t> out;
    unsigned n = 0;
    if (!ok || count(&n) != 0) return out;
    for (unsigned i = 0; i < n; ++i) {
      Device d = nullptr;
      unsigned long long mj = 0;
      if (handle(i, &d) != 0 || energy(d, &mj) != 0) return {};
      out.push_back(mj);
    }
    return out;
  }
};

}  // namespace

CostMeter::CostMeter() : cpu0_(process_cpu_seconds()), gpu_mj0_(Nvml::get().read()) {
  // The package zones (intel-rapl:0, intel-rapl:1, ...), not their sub-zones.
  std::error_code ec;
  const std::filesystem::path root = "/sys/class/powercap";
  for (auto it = std::filesystem::directory_iterator(root, ec); !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("intel-rapl:", 0) != 0 || name.find(':', 11) != std::string::npos) continue;
    uint64_t e = 0, range = 0;
    if (read_u64(it->path() / "energy_uj", &e) && read_u64(it->path() / "max_energy_range_uj", &range)) {
      zones_.push_back(it->path().string());
      energy0_.push_back(e);
      range_.push_back(range);
    }
  }
}

Cost CostMeter::read(double watts_per_core) const {
  Cost c;
  c.cpu_seconds = process_cpu_seconds() - cpu0_;
  if (!gpu_mj0_.empty()) {
    const std::vector<uint64_t> now = Nvml::get().read();
    if (now.size() == gpu_mj0_.size()) {
      c.has_gpu = true;
      for (size_t i = 0; i < now.size(); ++i) c.gpu_joules += static_cast<double>(now[i] >= gpu_mj0_[i] ? now[i] - gpu_mj0_[i] : 0) / 1e3;
    }
  }
  if (!zones_.empty()) {
    double uj = 0;
    bool ok = true;
    for (size_t i = 0; i < zones_.size(); ++i) {
      uint64_t e = 0;
      if (!read_u64(zones_[i] + "/energy_uj", &e)) {
        ok = false;
        break;
      }
      uj += static_cast<double>(e >= energy0_[i] ? e - energy0_[i] : e + range_[i] - energy0_[i]);
    }
    if (ok) {
      c.joules = uj / 1e6;
      c.source = "rapl";
      return c;
    }
  }
  c.joules = c.cpu_seconds * watts_per_core;
  char b[64];
  std::snprintf(b, sizeof b, "estimate:%g W per core-second", watts_per_core);
  c.source = b;
  return c;
}

}  // namespace llmops::tuning
