// Helpers of the GPU tests: one opened device per test binary (or the reason there is none),
// random data, host/device copies and the normalised mean squared error the bounds are in.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gpu/gpu_model.h"
#include "gpu/reference_driver.h"

namespace llmops::engine::gpu_test {

// One device for the whole binary (opening one costs a CUDA context), or why there is none.
// LLMOPS_GPU_TESTS_DRIVER=reference runs every device test on the CPU reference driver instead
// (tests/gpu/reference_driver.h): the engine's device code (GpuModel, GpuRunner, the serving
// scheduler's device path) checked in every build; the CUDA kernels' own bounds need a GPU.
struct DeviceHolder {
  std::unique_ptr<GpuDevice> dev;
  std::string why;
  bool reference = false;
};
inline DeviceHolder& holder() {
  static DeviceHolder h = [] {
    DeviceHolder d;
    const char* which = std::getenv("LLMOPS_GPU_TESTS_DRIVER");
    d.reference = which != nullptr && std::string(which) == "reference";
    auto dev = d.reference ? GpuDevice::open(GpuDriver::from_table(reference_driver_api()), 0) : GpuDevice::open_default();
    if (dev.ok()) {
      d.dev = std::move(*dev);
    } else {
      d.why = dev.status().message();
    }
    return d;
  }();
  return h;
}

// Another device of the same kind as holder()'s (tests that hand a device over to an owner).
inline Result<std::unique_ptr<GpuDevice>> open_test_device() {
  if (holder().reference) return GpuDevice::open(GpuDriver::from_table(reference_driver_api()), 0);
  return GpuDevice::open_default();
}

#define REQUIRE_GPU()                                                              \
  if (holder().dev == nullptr) {                                                   \
    GTEST_SKIP() << "no usable GPU, so the CUDA parity checks do not run here: " << holder().why; \
  }                                                                                \
  GpuDevice& dev = *holder().dev;                                                  \
  const llmops_driver_api& api = dev.api();                                        \
  llmops_drv* h = dev.handle();                                                    \
  (void)api, (void)h

inline std::string shared_dir() {
  const char* env = std::getenv("LLMOPS_SHARED_DIR");
  return env != nullptr ? env : LLMOPS_SHARED_DIR;
}

inline double nmse(const float* got, const double* want, size_t n) {
  double err = 0, ref = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    err += (got[i] - want[i]) * (got[i] - want[i]);
    ref += want[i] * want[i];
  }
  return ref == 0 ? err : err / ref;
}
inline double nmse(const std::vector<float>& got, const std::vector<float>& want) {
  std::vector<double> w(want.begin(), want.end());
  return nmse(got.data(), w.data(), std::min(got.size(), w.size()));
}

inline std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

template <typename T>
DeviceBuffer up(GpuDevice& dev, const std::vector<T>& v) {
  auto b = DeviceBuffer::from_host(dev, v.data(), v.size() * sizeof(T));
  EXPECT_TRUE(b.ok()) << b.status().message();
  return b.ok() ? std::move(*b) : DeviceBuffer();
}
inline std::vector<float> down(GpuDevice& dev, const DeviceBuffer& b, size_t n) {
  std::vector<float> out(n, NAN);
  EXPECT_EQ(dev.api().download(dev.handle(), out.data(), b.get(), n * sizeof(float)), 0) << dev.api().last_error(dev.handle());
  return out;
}
// A buffer of n floats poisoned with NaN, so a value the kernel does not write fails the check.
inline DeviceBuffer poisoned(GpuDevice& dev, size_t n) { return up(dev, std::vector<float>(n, NAN)); }

}  // namespace llmops::engine::gpu_test
