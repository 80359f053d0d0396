#include "gpu/device.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace llmops::engine {

namespace fs = std::filesystem;

#ifndef LLMOPS_INSTALL_DRIVER_DIR
#define LLMOPS_INSTALL_DRIVER_DIR "/usr/lib/llmops/drivers"
#endif

GpuDriver::~GpuDriver() {
  if (handle_ != nullptr) dlclose(handle_);
}

Result<std::shared_ptr<GpuDriver>> GpuDriver::load(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return not_found("no compute driver at " + path);
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* why = dlerror();
    return failed_precondition("the compute driver " + path + " does not load (" + (why ? why : "unknown") +
                               "); is its runtime (the CUDA libraries of the llmops-cuda package's dependencies) installed?");
  }
  auto get = reinterpret_cast<llmops_driver_get_api_fn>(dlsym(h, "llmops_driver_get_api"));
  const llmops_driver_api* api = get != nullptr ? get() : nullptr;
  if (api == nullptr || api->struct_size < sizeof(llmops_driver_api) || api->abi_major != LLMOPS_DRIVER_ABI_MAJOR) {
    dlclose(h);
    return failed_precondition(path + " is not a compute driver of ABI " + std::to_string(LLMOPS_DRIVER_ABI_MAJOR) +
                               ".x; install the llmops-cuda package of the same version as llmops");
  }
  std::shared_ptr<GpuDriver> d(new GpuDriver);
  d->handle_ = h, d->api_ = api, d->path_ = path;
  return d;
}

std::shared_ptr<GpuDriver> GpuDriver::from_table(const llmops_driver_api* api) {
  std::shared_ptr<GpuDriver> d(new GpuDriver);
  d->api_ = api;
  d->path_ = "built in: ";
  d->path_ += api->name;
  return d;
}

std::vector<std::string> GpuDriver::cuda_search_paths() {
  const std::string file = "libllmops_cuda.so";
  std::vector<std::string> out;
  if (const char* dir = std::getenv("LLMOPS_DRIVER_DIR"); dir != nullptr && *dir != '\0') out.push_back(std::string(dir) + "/" + file);
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) out.push_back((exe.parent_path().parent_path() / "lib/llmops/drivers" / file).string());
  out.push_back(std::string(LLMOPS_INSTALL_DRIVER_DIR) + "/" + file);
  return out;
}

Result<std::shared_ptr<GpuDriver>> GpuDriver::find_cuda() {
  std::string tried;
  for (const std::string& p : cuda_search_paths()) {
    auto d = load(p);
    if (d.ok() || d.status().code() != Code::kNotFound) return d;
    tried += (tried.empty() ? "" : ", ") + p;
  }
  return not_found("no CUDA driver found (looked at " + tried + "); install the llmops-cuda package to use a GPU");
}

GpuDevice::~GpuDevice() {
  if (handle_ != nullptr) driver_->api().close(handle_);
}

Result<std::unique_ptr<GpuDevice>> GpuDevice::open(std::shared_ptr<GpuDriver> driver, int index) {
  const llmops_driver_api& api = driver->api();
  if (api.score() <= 0) {
    return unavailable("the " + std::string(api.name) + " driver finds no usable device here (no GPU, or its kernel driver is missing or too old)");
  }
  std::unique_ptr<GpuDevice> d(new GpuDevice);
  d->driver_ = std::move(driver);
  d->index_ = index;
  if (int rc = api.device_info(index, &d->info_); rc != LLMOPS_DRV_OK) {
    return unavailable("device " + std::to_string(index) + ": " + api.last_error(nullptr));
  }
  if (int rc = api.open(index, &d->handle_); rc != LLMOPS_DRV_OK) {
    return unavailable("opening device " + std::to_string(index) + " (" + d->info_.name + "): " + api.last_error(nullptr));
  }
  return d;
}

Result<std::shared_ptr<GpuDriver>> GpuDriver::find_usable() {
  if (const char* path = std::getenv("LLMOPS_COMPUTE_DRIVER"); path != nullptr && *path != '\0') {
    auto driver = load(path);
    if (!driver.ok()) return unavailable("LLMOPS_COMPUTE_DRIVER: " + driver.status().message());
    return driver;
  }
  std::error_code ec;
  if (!fs::exists("/proc/driver/nvidia/version", ec) && !fs::exists("/dev/nvidiactl", ec)) {
    return unavailable("no usable device here: no NVIDIA kernel driver is loaded (/proc/driver/nvidia/version is absent)");
  }
  auto driver = find_cuda();
  if (!driver.ok()) return unavailable(driver.status().message());
  return driver;
}

Result<std::string> GpuDriver::pci_bus_id(int index) const {
  if (score() <= 0) return unavailable("the " + std::string(api_->name) + " driver finds no usable device here");
  llmops_drv_device_info info{};
  if (api_->device_info(index, &info) != LLMOPS_DRV_OK) return unavailable(api_->last_error(nullptr));
  return std::string(info.pci_bus_id);
}

Result<std::unique_ptr<GpuDevice>> GpuDevice::open_default() {
  LLMOPS_ASSIGN_OR_RETURN(auto driver, GpuDriver::find_usable());
  return open(std::move(driver), 0);
}

Status GpuDevice::check(int rc, const char* what) const {
  if (rc == LLMOPS_DRV_OK) return ok_status();
  std::string msg = std::string(what) + " on " + info_.name + ": " + api().last_error(handle_);
  switch (rc) {
    case LLMOPS_DRV_EINVAL: return invalid_argument(msg);
    case LLMOPS_DRV_ENOMEM: return resource_exhausted(msg + " (the GPU's memory is full: unload a model or lower the KV budget)");
    case LLMOPS_DRV_EUNSUPPORTED: return unimplemented(msg);
    default: return internal_error(msg);
  }
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    reset();
    dev_ = o.dev_, ptr_ = o.ptr_, bytes_ = o.bytes_;
    o.dev_ = nullptr, o.ptr_ = nullptr, o.bytes_ = 0;
  }
  return *this;
}

Result<DeviceBuffer> DeviceBuffer::alloc(GpuDevice& dev, uint64_t bytes) {
  void* p = dev.api().alloc(dev.handle(), bytes);
  if (p == nullptr) return dev.check(LLMOPS_DRV_ENOMEM, "allocating device memory");
  DeviceBuffer b;
  b.dev_ = &dev, b.ptr_ = p, b.bytes_ = bytes;
  return b;
}

Result<DeviceBuffer> DeviceBuffer::from_host(GpuDevice& dev, const void* host, uint64_t bytes) {
  LLMOPS_ASSIGN_OR_RETURN(DeviceBuffer b, alloc(dev, bytes));
  LLMOPS_RETURN_IF_ERROR(dev.check(dev.api().upload(dev.handle(), b.get(), host, bytes), "uploading"));
  return b;
}

void DeviceBuffer::reset() {
  if (ptr_ != nullptr) dev_->api().free(dev_->handle(), ptr_);
  dev_ = nullptr, ptr_ = nullptr, bytes_ = 0;
}

}  // namespace llmops::engine
