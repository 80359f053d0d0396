// A stage whose module is not built yet: it loads, reports its version and health, and says
// plainly that it does nothing else. Each stage's file replaces this when the stage is built.
#pragma once

#include "llmops/module.hpp"

#define LLMOPS_PLACEHOLDER_MODULE(NAME, DESCRIPTION)                                             \
  namespace {                                                                                   \
  llmops_code placeholder_init(llmops_module_ctx* ctx, const llmops_host_api* host,             \
                               llmops_error*) {                                                 \
    llmops::sdk::Host(ctx, host).info("stage '" NAME "' is a placeholder in this build: it "   \
                                      "reports version and health only");                      \
    return LLMOPS_OK;                                                                           \
  }                                                                                             \
  llmops_code placeholder_health(llmops_module_ctx*, void*, llmops_health* out) {               \
    llmops::sdk::set_health(out, LLMOPS_HEALTH_OK,                                              \
                            "placeholder: stage '" NAME "' is not built yet");                  \
    return LLMOPS_OK;                                                                           \
  }                                                                                             \
  const llmops_module_api kApi = {                                                              \
      sizeof(llmops_module_api), LLMOPS_ABI_MAJOR, LLMOPS_ABI_MINOR, NAME, LLMOPS_VERSION,      \
      NAME, DESCRIPTION, 0, nullptr, 0, placeholder_init, nullptr, nullptr, nullptr, nullptr,   \
      placeholder_health};                                                                      \
  }                                                                                             \
  extern "C" LLMOPS_EXPORT const llmops_module_api* llmops_module_get_api(void) { return &kApi; }
