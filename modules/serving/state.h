// The serving module's shared state and the helpers its route files share
// (api_routes.cpp: the OpenAI-compatible data plane and generation; admin_routes.cpp: models,
// aliases, priorities and the request log for llmopsctl; serving_module.cpp: the lifecycle).
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "json.h"
#include "llmops/module.hpp"
#include "serving/models.h"
#include "serving/registry.h"
#include "serving/request_log.h"
#include "status.h"

namespace llmops::serving {

struct State {
  const llmops_host_api* host = nullptr;
  llmops_module_ctx* ctx = nullptr;
  std::unique_ptr<Registry> registry;
  std::unique_ptr<ModelManager> models;  // from start() on
  std::unique_ptr<RequestLog> log;       // from start() on
  int request_timeout_s = 600;
  std::mutex prio_mu;
  std::map<std::string, int> priorities;  // caller → 0 batch, 2 interactive (absent: 1 normal)
  uint32_t m_requests = 0, m_rejected = 0, m_prompt_tokens = 0, m_completion_tokens = 0;
  // The idle reaper: unloads models idle past serving.idle-unload-s.
  std::mutex reaper_mu;
  std::condition_variable reaper_cv;
  bool reaper_stop = false;
  std::thread reaper;

  llmops::sdk::Host sdk() const { return {ctx, host}; }
  int priority_of(const std::string& caller) {
    std::lock_guard lock(prio_mu);
    auto it = priorities.find(caller);
    return it == priorities.end() ? 1 : it->second;
  }
};

inline const char* const kPriorityNames[] = {"batch", "normal", "interactive"};

// ---- answers (api_routes.cpp) ---------------------------------------------------------------

void respond_json(State* s, llmops_response* resp, int status, const Json& body);
// An error in OpenAI's shape; 429 adds Retry-After. Returns LLMOPS_OK (the answer is written).
llmops_code respond_error(State* s, llmops_response* resp, int status, const std::string& message, const std::string& param = "",
                          const std::string& code = "");
int http_status(const Status& st);
// False, with a 503 written, until start() has made the model manager and the request log.
bool started(State* s, llmops_response* resp);
// The body as a JSON object; on failure the 400 is written and nullopt returned.
std::optional<Json> parse_body(State* s, const llmops_request* req, llmops_response* resp);

// Registers routes through add(plane, method, path, handler); the handlers take the State.
using RouteAdder = std::function<void(llmops_plane, const char*, const char*, llmops_route_fn)>;
void add_api_routes(const RouteAdder& add);    // data plane, and generation on the admin plane
void add_admin_routes(const RouteAdder& add);  // admin plane: served models, catalogue, aliases...

}  // namespace llmops::serving
