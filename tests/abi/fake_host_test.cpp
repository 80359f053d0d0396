// ABI test: a module loaded with dlopen and driven through its C API by a fake host written
// here, independent of llmopsd's own host. It checks what a module relies on: the struct layout
// and version fields, registration calls during init, route handlers, health.
#include <dlfcn.h>

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "llmops/module.h"

namespace {

struct FakeHost {
  std::vector<std::string> logs;
  std::map<std::string, std::pair<llmops_route_fn, void*>> routes;
  std::map<std::string, int> job_kinds;  // kind → resumable
  std::vector<std::string> metrics;
  std::map<std::string, std::string> config = {{"greeting", "hi from the fake host"}};
  void* state = nullptr;
};

struct llmops_module_ctx_fake {
  FakeHost* host;
};

FakeHost* host_of(llmops_module_ctx* ctx) { return reinterpret_cast<llmops_module_ctx_fake*>(ctx)->host; }

struct FakeResponse {
  int status = 200;
  std::string body;
  std::map<std::string, std::string> headers;
};

llmops_host_api make_fake_api() {
  llmops_host_api api{};
  api.struct_size = sizeof api;
  api.abi_major = LLMOPS_ABI_MAJOR;
  api.abi_minor = LLMOPS_ABI_MINOR;
  api.log = [](llmops_module_ctx* c, llmops_log_level, const char* m) { host_of(c)->logs.push_back(m); };
  api.config_get = [](llmops_module_ctx* c, const char* k) -> const char* {
    auto it = host_of(c)->config.find(k);
    return it == host_of(c)->config.end() ? nullptr : it->second.c_str();
  };
  api.set_state = [](llmops_module_ctx* c, void* s) { host_of(c)->state = s; };
  api.get_state = [](llmops_module_ctx* c) { return host_of(c)->state; };
  api.metric_register = [](llmops_module_ctx* c, const char* name, const char*, int) -> uint32_t {
    host_of(c)->metrics.push_back(name);
    return static_cast<uint32_t>(host_of(c)->metrics.size() - 1);
  };
  api.metric_add = [](llmops_module_ctx*, uint32_t, double) {};
  api.metric_set = [](llmops_module_ctx*, uint32_t, double) {};
  api.route_register = [](llmops_module_ctx* c, llmops_plane plane, const char* method, const char* path, llmops_route_fn fn,
                          void* user, llmops_error*) {
    host_of(c)->routes[std::string(plane == LLMOPS_PLANE_ADMIN ? "admin " : "data ") + method + " " + path] = {fn, user};
    return LLMOPS_OK;
  };
  api.response_set_status = [](llmops_response* r, int s) { reinterpret_cast<FakeResponse*>(r)->status = s; };
  api.response_set_header = [](llmops_response* r, const char* n, const char* v) { reinterpret_cast<FakeResponse*>(r)->headers[n] = v; };
  api.response_append_body = [](llmops_response* r, const char* d, size_t n) { reinterpret_cast<FakeResponse*>(r)->body.append(d, n); };
  api.job_kind_register = [](llmops_module_ctx* c, const char* kind, int resumable, llmops_job_fn, void*, llmops_error*) {
    host_of(c)->job_kinds[kind] = resumable;
    return LLMOPS_OK;
  };
  return api;
}

struct Loaded {
  void* handle = nullptr;
  const llmops_module_api* api = nullptr;
  ~Loaded() {
    if (handle != nullptr) dlclose(handle);
  }
};

void load(const std::string& path, Loaded* out) {
  out->handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(out->handle, nullptr) << dlerror();
  auto get = reinterpret_cast<llmops_module_get_api_fn>(dlsym(out->handle, LLMOPS_MODULE_ENTRY));
  ASSERT_NE(get, nullptr);
  out->api = get();
  ASSERT_NE(out->api, nullptr);
}

TEST(Abi, TestkitRegistersThroughTheCApi) {
  Loaded m;
  ASSERT_NO_FATAL_FAILURE(load(std::string(LLMOPS_FIXTURE_MODULE_DIR) + "/llmops_testkit.so", &m));
  EXPECT_GE(m.api->struct_size, sizeof(llmops_module_api));
  EXPECT_EQ(m.api->abi_major, LLMOPS_ABI_MAJOR);
  EXPECT_LE(m.api->abi_minor, LLMOPS_ABI_MINOR);
  EXPECT_STREQ(m.api->name, "testkit");
  ASSERT_EQ(m.api->config_schema_size, 2u);
  EXPECT_STREQ(m.api->config_schema[1].key, "workers");

  FakeHost fake;
  llmops_module_ctx_fake ctx{&fake};
  llmops_host_api api = make_fake_api();
  llmops_error err{};
  auto* c = reinterpret_cast<llmops_module_ctx*>(&ctx);
  ASSERT_EQ(m.api->init(c, &api, &err), LLMOPS_OK) << err.message;
  EXPECT_EQ(fake.job_kinds.at("count"), 1);
  EXPECT_EQ(fake.job_kinds.at("sleep"), 0);
  EXPECT_EQ(fake.metrics, std::vector<std::string>{"count_steps_total"});
  ASSERT_TRUE(fake.routes.count("admin GET /echo"));
  ASSERT_TRUE(fake.routes.count("data GET /testkit/slow"));

  auto [fn, user] = fake.routes["admin GET /echo"];
  llmops_request req{sizeof(llmops_request), "GET", "/echo", "", "", 0, "uid:0"};
  FakeResponse resp;
  ASSERT_EQ(fn(user, &req, reinterpret_cast<llmops_response*>(&resp)), LLMOPS_OK);
  EXPECT_EQ(resp.status, 200);
  EXPECT_EQ(resp.body, R"({"caller":"uid:0","greeting":"hi from the fake host"})");

  llmops_health h{sizeof h, LLMOPS_HEALTH_FAILING, {}};
  ASSERT_EQ(m.api->health(c, fake.state, &h), LLMOPS_OK);
  EXPECT_EQ(h.state, LLMOPS_HEALTH_OK);
  ASSERT_NE(fake.state, nullptr) << "the module keeps its state on the handle";
  if (m.api->fini) m.api->fini(c, fake.state);
}

TEST(Abi, EveryStageModuleLoadsAndReportsHealth) {
  for (const char* stage : {"data", "prompts", "tuning", "eval", "registry", "serving", "monitor", "pipelines"}) {
    Loaded m;
    ASSERT_NO_FATAL_FAILURE(load(std::string(LLMOPS_MODULE_DIR) + "/llmops_" + stage + ".so", &m));
    EXPECT_STREQ(m.api->name, stage);
    EXPECT_STREQ(m.api->stage, stage);
    EXPECT_NE(m.api->version, nullptr);
    FakeHost fake;
    llmops_module_ctx_fake ctx{&fake};
    llmops_host_api api = make_fake_api();
    llmops_error err{};
    auto* c = reinterpret_cast<llmops_module_ctx*>(&ctx);
    ASSERT_EQ(m.api->init(c, &api, &err), LLMOPS_OK) << stage;
    llmops_health h{sizeof h, LLMOPS_HEALTH_FAILING, {}};
    ASSERT_NE(m.api->health, nullptr);
    ASSERT_EQ(m.api->health(c, fake.state, &h), LLMOPS_OK);
    EXPECT_EQ(h.state, LLMOPS_HEALTH_OK);
    if (!m.api->implemented) {
      EXPECT_NE(std::string(h.message).find("not built yet"), std::string::npos) << stage << ": a placeholder says so";
    }
    if (m.api->fini) m.api->fini(c, fake.state);  // built stages free their state
  }
}

TEST(Abi, ModulesExportOnlyTheEntryPoint) {
  Loaded m;
  ASSERT_NO_FATAL_FAILURE(load(std::string(LLMOPS_FIXTURE_MODULE_DIR) + "/llmops_testkit.so", &m));
  EXPECT_EQ(dlsym(m.handle, "_ZN12_GLOBAL__N_14initEP17llmops_module_ctxPK15llmops_host_apiP12llmops_error"), nullptr);
  void* noentry = dlopen((std::string(LLMOPS_BROKEN_MODULE_DIR) + "/llmops_noentry.so").c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(noentry, nullptr);
  EXPECT_EQ(dlsym(noentry, "llmops_something_else"), nullptr) << "the version script hides everything else";
  dlclose(noentry);
}

}  // namespace
