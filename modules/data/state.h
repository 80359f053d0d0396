// The data module's state, shared by its lifecycle (data_module.cpp) and its admin routes
// (routes.cpp). Uploads: a file llmopsctl streams in, chunk by chunk, straight into a blob
// that an import job then reads and gives back.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "data/ops.h"
#include "data/store.h"
#include "llmops/module.hpp"

namespace llmops::data {

struct Upload {
  llmops_blob_writer* writer = nullptr;
  uint64_t bytes = 0;
  uint64_t touched_ms = 0;
  std::string caller;
  std::mutex mu;  // one chunk at a time
};

struct State {
  const llmops_host_api* host = nullptr;
  llmops_module_ctx* ctx = nullptr;
  std::unique_ptr<DatasetStore> store;
  OpLimits limits;
  uint64_t max_upload_bytes = 0;
  uint32_t m_versions = 0, m_upload_bytes = 0;

  std::mutex uploads_mu;
  uint64_t next_upload = 1;
  std::map<uint64_t, std::shared_ptr<Upload>> uploads;

  sdk::Host sdk() const { return {ctx, host}; }
  size_t open_uploads() {
    std::lock_guard lock(uploads_mu);
    return uploads.size();
  }
  // Aborts every open upload (stop, or ones idle for an hour).
  void drop_uploads(uint64_t idle_before_ms = UINT64_MAX);
};

// Registers the admin-plane routes (mounted under /v1/modules/data).
void add_routes(const std::function<void(const char* method, const char* path, llmops_route_fn fn)>& add);

}  // namespace llmops::data
