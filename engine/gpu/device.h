// Accelerators for the engine: a compute driver (drivers/include/llmops/driver.h) loaded at run
// time, an opened device of it, and device buffers. The engine builds and runs without any
// driver; a machine without a GPU finds none (or one that scores 0) and the CPU path runs.
//
// Ownership: a GpuDriver keeps its shared object loaded for as long as anything holds it; a
// GpuDevice holds its driver and closes the device when destroyed; a DeviceBuffer frees its
// memory through its device, which must outlive it. A GpuDevice is used by one thread at a
// time (its driver queues everything on one stream).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "llmops/driver.h"
#include "status.h"

namespace llmops::engine {

class GpuDriver {
 public:
  ~GpuDriver();
  GpuDriver(const GpuDriver&) = delete;
  GpuDriver& operator=(const GpuDriver&) = delete;

  // Loads the shared object at path; kNotFound if it is absent, kFailedPrecondition if it is
  // not a driver of this ABI or cannot load (a missing CUDA library, say: the message says which).
  static Result<std::shared_ptr<GpuDriver>> load(const std::string& path);
  // The CUDA driver from the usual places: $LLMOPS_DRIVER_DIR, then lib/llmops/drivers beside
  // the running executable's bin/ (the build tree and the install tree), then the install prefix.
  static Result<std::shared_ptr<GpuDriver>> find_cuda();
  // find_cuda(), once NVIDIA's kernel driver is seen to be loaded (without it there is nothing
  // to find, and loading the CUDA driver would map cuBLAS for nothing); kUnavailable saying why.
  // $LLMOPS_COMPUTE_DRIVER, when set, names the driver's shared object instead (no search, no
  // NVIDIA check): the integration tests run the device paths on the CPU reference driver.
  static Result<std::shared_ptr<GpuDriver>> find_usable();
  // A driver linked into this process (its table, no shared object): the tests' CPU reference
  // of the driver interface, which runs the device code paths where no GPU is.
  static std::shared_ptr<GpuDriver> from_table(const llmops_driver_api* api);
  // Where find_cuda() looks, in order.
  static std::vector<std::string> cuda_search_paths();

  const llmops_driver_api& api() const { return *api_; }
  const std::string& path() const { return path_; }
  int score() const { return api_->score(); }
  // The PCI address of device `index` ("0000:41:00.0"), without opening it (to pin the thread
  // that will open it next to it). kUnavailable where the driver scores 0 or has no such device.
  Result<std::string> pci_bus_id(int index) const;

 private:
  GpuDriver() = default;
  void* handle_ = nullptr;
  const llmops_driver_api* api_ = nullptr;
  std::string path_;
};

class GpuDevice {
 public:
  ~GpuDevice();
  GpuDevice(const GpuDevice&) = delete;
  GpuDevice& operator=(const GpuDevice&) = delete;

  static Result<std::unique_ptr<GpuDevice>> open(std::shared_ptr<GpuDriver> driver, int index);
  // The first device of find_usable()'s driver, or kUnavailable saying why none is usable.
  static Result<std::unique_ptr<GpuDevice>> open_default();

  const llmops_driver_api& api() const { return driver_->api(); }
  llmops_drv* handle() const { return handle_; }
  const llmops_drv_device_info& info() const { return info_; }
  int index() const { return index_; }
  // A driver return code as a Status: what failed, and the driver's own words.
  Status check(int rc, const char* what) const;

 private:
  GpuDevice() = default;
  std::shared_ptr<GpuDriver> driver_;
  llmops_drv* handle_ = nullptr;
  llmops_drv_device_info info_{};
  int index_ = 0;
};

// Device memory with one owner.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : dev_(o.dev_), ptr_(o.ptr_), bytes_(o.bytes_) { o.dev_ = nullptr, o.ptr_ = nullptr, o.bytes_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // kResourceExhausted (with the driver's words) when the device has no room.
  static Result<DeviceBuffer> alloc(GpuDevice& dev, uint64_t bytes);
  // alloc + upload of host bytes.
  static Result<DeviceBuffer> from_host(GpuDevice& dev, const void* host, uint64_t bytes);
  void reset();

  void* get() const { return ptr_; }
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }
  uint64_t bytes() const { return bytes_; }

 private:
  GpuDevice* dev_ = nullptr;
  void* ptr_ = nullptr;
  uint64_t bytes_ = 0;
};

}  // namespace llmops::engine
