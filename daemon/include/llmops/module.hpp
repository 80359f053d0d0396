// C++ helpers compiled into each module: they wrap the C calls of module.h so module code can
// use std::string and Status-like returns without letting exceptions cross the boundary.
// Header-only; include after module.h. Thread rules are those of the wrapped calls.
#pragma once

#include <cstdio>
#include <cstring>
#include <cstddef>
#include <exception>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "llmops/module.h"

namespace llmops::sdk {

inline llmops_code fail(llmops_error* err, llmops_code code, std::string_view message) {
  if (err != nullptr) {
    err->code = code;
    size_t n = message.size() < sizeof err->message - 1 ? message.size() : sizeof err->message - 1;
    std::memcpy(err->message, message.data(), n);
    err->message[n] = '\0';
  }
  return code;
}

// Runs fn, turning any escaping C++ exception into LLMOPS_INTERNAL.
template <typename Fn>
llmops_code guarded(llmops_error* err, Fn&& fn) noexcept {
  try {
    return fn();
  } catch (const std::exception& e) {
    return fail(err, LLMOPS_INTERNAL, std::string("unexpected exception: ") + e.what());
  } catch (...) {
    return fail(err, LLMOPS_INTERNAL, "unexpected non-standard exception");
  }
}

inline void set_health(llmops_health* out, llmops_health_state state, std::string_view message) {
  out->state = state;
  size_t n = message.size() < sizeof out->message - 1 ? message.size() : sizeof out->message - 1;
  std::memcpy(out->message, message.data(), n);
  out->message[n] = '\0';
}

// The module's view of its host: the ctx handle plus the host's function table.
class Host {
 public:
  Host(llmops_module_ctx* ctx, const llmops_host_api* api) : ctx_(ctx), api_(api) {}
  llmops_module_ctx* ctx() const { return ctx_; }
  const llmops_host_api* api() const { return api_; }

  void log(llmops_log_level level, const std::string& message) const { api_->log(ctx_, level, message.c_str()); }
  void info(const std::string& m) const { log(LLMOPS_LOG_INFO, m); }
  void warn(const std::string& m) const { log(LLMOPS_LOG_WARNING, m); }
  std::string config(const char* key, std::string fallback = {}) const {
    const char* v = api_->config_get(ctx_, key);
    return v != nullptr ? std::string(v) : fallback;
  }
  // A BOOL key's value; the host has already checked it is one of 1 true yes on 0 false no off.
  bool config_bool(const char* key, bool fallback) const {
    const std::string v = config(key);
    if (v.empty()) return fallback;
    return v == "1" || v == "true" || v == "yes" || v == "on";
  }
  // The values of the module's keys under prefix, in key order (kv_scan collected).
  llmops_code kv_values(std::string_view prefix, std::vector<std::string>* out, llmops_error* err) const {
    auto visit = [](void* user, const void*, size_t, const void* v, size_t n) -> int {
      static_cast<std::vector<std::string>*>(user)->emplace_back(static_cast<const char*>(v), n);
      return 0;
    };
    return api_->kv_scan(ctx_, prefix.data(), prefix.size(), visit, out, err);
  }
  // One value of the module's database copied out (kv_get with the callback written once).
  llmops_code kv_get_string(std::string_view key, std::string* out, llmops_error* err) const {
    auto copy = [](void* user, const void* v, size_t n) { static_cast<std::string*>(user)->assign(static_cast<const char*>(v), n); };
    return api_->kv_get(ctx_, key.data(), key.size(), copy, out, err);
  }
  // ABI 1.5: whether the host can call other stages' routes (peer_call).
  bool has_peer_call() const { return api_->struct_size >= offsetof(llmops_host_api, peer_call) + sizeof api_->peer_call; }
  // Another stage's route with its whole body collected.
  llmops_code peer(llmops_plane plane, const char* method, const std::string& path, std::string_view body, int* status,
                   std::string* out, llmops_error* err) const {
    auto append = [](void* user, const char* d, size_t n) -> int {
      static_cast<std::string*>(user)->append(d, n);
      return 0;
    };
    return api_->peer_call(ctx_, plane, method, path.c_str(), body.data(), body.size(), status, append, out, err);
  }
  // The same, the body handed over chunk by chunk; chunk returns false to stop.
  llmops_code peer_stream(llmops_plane plane, const char* method, const std::string& path, std::string_view body, int* status,
                          const std::function<bool(std::string_view)>& chunk, llmops_error* err) const {
    auto forward = [](void* user, const char* d, size_t n) -> int {
      return (*static_cast<const std::function<bool(std::string_view)>*>(user))(std::string_view(d, n)) ? 0 : 1;
    };
    return api_->peer_call(ctx_, plane, method, path.c_str(), body.data(), body.size(), status, forward,
                           const_cast<std::function<bool(std::string_view)>*>(&chunk), err);
  }
  void respond(llmops_response* resp, int status, std::string_view json_body) const {
    api_->response_set_status(resp, status);
    api_->response_set_header(resp, "Content-Type", "application/json");
    api_->response_append_body(resp, json_body.data(), json_body.size());
  }

 private:
  llmops_module_ctx* ctx_;
  const llmops_host_api* api_;
};

}  // namespace llmops::sdk
