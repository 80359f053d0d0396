// cuDNN's entry points, looked up with dlopen so the driver loads where cuDNN is missing.
#include <dlfcn.h>

#include "cudnn_backend.h"

namespace llmops::cuda::cudnn_backend {
namespace {

template <typename F>
bool bind(void* lib, const char* name, F* slot, std::string* missing) {
  *slot = reinterpret_cast<F>(dlsym(lib, name));
  if (*slot == nullptr && missing->empty()) *missing = name;
  return *slot != nullptr;
}

Api load_api() {
  Api a;
  void* lib = dlopen("libcudnn.so.9", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) lib = dlopen("libcudnn.so", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* e = dlerror();
    a.error = std::string("cuDNN not found (dlopen libcudnn.so.9: ") + (e ? e : "unknown") + ")";
    return a;
  }
  std::string missing;
  bind(lib, "cudnnGetVersion", &a.GetVersion, &missing);
  bind(lib, "cudnnGetErrorString", &a.GetErrorString, &missing);
  bind(lib, "cudnnCreate", &a.Create, &missing);
  bind(lib, "cudnnDestroy", &a.Destroy, &missing);
  bind(lib, "cudnnSetStream", &a.SetStream, &missing);
  bind(lib, "cudnnBackendCreateDescriptor", &a.CreateDescriptor, &missing);
  bind(lib, "cudnnBackendDestroyDescriptor", &a.DestroyDescriptor, &missing);
  bind(lib, "cudnnBackendSetAttribute", &a.SetAttribute, &missing);
  bind(lib, "cudnnBackendGetAttribute", &a.GetAttribute, &missing);
  bind(lib, "cudnnBackendFinalize", &a.Finalize, &missing);
  bind(lib, "cudnnBackendExecute", &a.Execute, &missing);
  std::string optional;
  bind(lib, "cudnnGetLastErrorString", &a.GetLastErrorString, &optional);
  if (a.GetVersion != nullptr) a.version = static_cast<int>(a.GetVersion());
  if (!missing.empty()) {
    a.error = "the cuDNN found lacks " + missing;
  } else if (a.version < 90000) {
    // 8.x numbers its versions major*1000+minor*100+patch, so any 8.x lands here too.
    a.error = "cuDNN " + std::to_string(a.version) + " is older than 9.0, which this driver needs";
  }
  return a;
}

}  // namespace

const Api& api() {
  static const Api a = load_api();
  return a;
}

std::string status_words(cudnnStatus_t st) {
  const Api& a = api();
  std::string s = a.GetErrorString != nullptr ? a.GetErrorString(st) : "status " + std::to_string(int(st));
  if (a.GetLastErrorString != nullptr) {
    char buf[512];
    buf[0] = '\0';
    a.GetLastErrorString(buf, sizeof buf);
    buf[sizeof buf - 1] = '\0';
    if (buf[0] != '\0') s += std::string(" (") + buf + ")";
  }
  return s;
}

}  // namespace llmops::cuda::cudnn_backend
