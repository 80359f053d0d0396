// Data parallelism across the GPUs of one process: NCCL communicators and all-reduce, for
// driver.h's comm_* calls. NCCL is opened at run time (libnccl.so.2), so the driver loads, and
// single-GPU work runs, where it is not installed; comm_create then says what to install.
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <string>
#include <vector>

#include "comm.h"

#ifdef LLMOPS_NO_NCCL
namespace llmops::cuda {
struct Comm {};
int comm_create(const int*, const cudaStream_t*, int, Comm** out, std::string* error) {
  *out = nullptr;
  *error = "this llmops-cuda was built without NCCL's header: it trains on one GPU at a time";
  return LLMOPS_DRV_EUNSUPPORTED;
}
int comm_all_reduce(Comm*, float* const*, uint64_t, std::string*) { return LLMOPS_DRV_EUNSUPPORTED; }
void comm_destroy(Comm* c) { delete c; }
}  // namespace llmops::cuda
#else
#include <nccl.h>

namespace llmops::cuda {
namespace {

struct Nccl {
  void* lib = nullptr;
  ncclResult_t (*init_all)(ncclComm_t*, int, const int*) = nullptr;
  ncclResult_t (*destroy)(ncclComm_t) = nullptr;
  ncclResult_t (*all_reduce)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t) = nullptr;
  ncclResult_t (*group_start)() = nullptr;
  ncclResult_t (*group_end)() = nullptr;
  const char* (*error_string)(ncclResult_t) = nullptr;
  std::string why;  // empty when loaded
};

const Nccl& nccl() {
  static const Nccl n = [] {
    Nccl x;
    x.lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (x.lib == nullptr) {
      const char* e = dlerror();
      x.why = std::string("NCCL is not installed (") + (e != nullptr ? e : "libnccl.so.2 not found") + "); install NVIDIA's libnccl2 to train on several GPUs";
      return x;
    }
    auto sym = [&](const char* name) { return dlsym(x.lib, name); };
    x.init_all = reinterpret_cast<decltype(x.init_all)>(sym("ncclCommInitAll"));
    x.destroy = reinterpret_cast<decltype(x.destroy)>(sym("ncclCommDestroy"));
    x.all_reduce = reinterpret_cast<decltype(x.all_reduce)>(sym("ncclAllReduce"));
    x.group_start = reinterpret_cast<decltype(x.group_start)>(sym("ncclGroupStart"));
    x.group_end = reinterpret_cast<decltype(x.group_end)>(sym("ncclGroupEnd"));
    x.error_string = reinterpret_cast<decltype(x.error_string)>(sym("ncclGetErrorString"));
    if (!x.init_all || !x.destroy || !x.all_reduce || !x.group_start || !x.group_end || !x.error_string) x.why = "libnccl.so.2 lacks the calls this driver uses";
    return x;
  }();
  return n;
}

}  // namespace

struct Comm {
  std::vector<ncclComm_t> comms;
  std::vector<int> devices;
  std::vector<cudaStream_t> streams;
};

int comm_create(const int* devices, const cudaStream_t* streams, int n, Comm** out, std::string* error) {
  *out = nullptr;
  const Nccl& x = nccl();
  if (!x.why.empty()) return *error = x.why, LLMOPS_DRV_EUNSUPPORTED;
  auto c = new Comm;
  c->comms.resize(static_cast<size_t>(n));
  c->devices.assign(devices, devices + n);
  c->streams.assign(streams, streams + n);
  if (ncclResult_t r = x.init_all(c->comms.data(), n, devices); r != ncclSuccess) {
    *error = std::string("NCCL could not join the GPUs: ") + x.error_string(r);
    delete c;
    return LLMOPS_DRV_EDEVICE;
  }
  *out = c;
  return LLMOPS_DRV_OK;
}

int comm_all_reduce(Comm* c, float* const* bufs, uint64_t count, std::string* error) {
  const Nccl& x = nccl();
  int current = 0;
  cudaGetDevice(&current);  // the caller's device comes back as it was
  if (ncclResult_t r = x.group_start(); r != ncclSuccess) return *error = std::string("NCCL group start: ") + x.error_string(r), LLMOPS_DRV_EDEVICE;
  ncclResult_t first = ncclSuccess;
  for (size_t i = 0; i < c->comms.size(); ++i) {
    cudaSetDevice(c->devices[i]);
    ncclResult_t r = x.all_reduce(bufs[i], bufs[i], count, ncclFloat32, ncclSum, c->comms[i], c->streams[i]);
    if (first == ncclSuccess) first = r;
  }
  ncclResult_t end = x.group_end();
  cudaSetDevice(current);
  if (first == ncclSuccess) first = end;
  if (first != ncclSuccess) return *error = std::string("NCCL all-reduce: ") + x.error_string(first), LLMOPS_DRV_EDEVICE;
  return LLMOPS_DRV_OK;
}

void comm_destroy(Comm* c) {
  if (c == nullptr) return;
  for (ncclComm_t m : c->comms) nccl().destroy(m);
  delete c;
}

}  // namespace llmops::cuda
#endif  // LLMOPS_NO_NCCL
