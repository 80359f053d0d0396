// The loader's checks, run through llmopsd's own ModuleHost on a directory of good, broken,
// corrupt and stray files.
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>

#include "module_host.h"
#include "unit/test_util.h"

namespace llmops {
namespace {

namespace fs = std::filesystem;

const Module* find(const ModuleHost& h, const std::string& name) {
  for (const auto& m : h.modules()) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

Config config_for(const std::string& dirs) {
  Config c;
  c.module_dir = dirs;
  return c;
}

void link_in(const std::string& from_dir, const std::string& file, const std::string& to_dir) {
  fs::copy_file(from_dir + "/" + file, to_dir + "/" + file);
}

TEST(Loader, RefusesEachDefectWithAReasonAndKeepsTheRest) {
  test::TempDir dir;
  for (const char* f : {"llmops_badmajor.so", "llmops_misnamed.so", "llmops_newminor.so", "llmops_noinit.so", "llmops_noentry.so"}) {
    link_in(LLMOPS_BROKEN_MODULE_DIR, f, dir.path());
  }
  link_in(LLMOPS_FIXTURE_MODULE_DIR, "llmops_testkit.so", dir.path());
  test::write_text(dir.file("llmops_corrupt.so"), std::string(4096, 'Z'));
  std::string elf_head = test::read_text(std::string(LLMOPS_FIXTURE_MODULE_DIR) + "/llmops_testkit.so").substr(0, 200);
  test::write_text(dir.file("llmops_truncated.so"), elf_head);
  test::write_text(dir.file("libstray.so"), "stray");
  test::write_text(dir.file("README"), "not a module");

  ModuleHost host(HostServices{});
  ASSERT_TRUE(host.load(config_for(dir.path())).ok());
  auto reason = [&](const std::string& n) {
    const Module* m = find(host, n);
    return m == nullptr ? std::string("(absent)") : m->state + ": " + m->reason;
  };
  EXPECT_EQ(find(host, "testkit")->state, "loaded");
  EXPECT_NE(reason("badmajor").find("major versions must match"), std::string::npos) << reason("badmajor");
  EXPECT_NE(reason("misnamed").find("calls itself 'other'"), std::string::npos) << reason("misnamed");
  EXPECT_NE(reason("newminor").find("newer than this llmopsd"), std::string::npos) << reason("newminor");
  EXPECT_NE(reason("noinit").find("no init entry point"), std::string::npos) << reason("noinit");
  EXPECT_NE(reason("noentry").find("does not export llmops_module_get_api"), std::string::npos) << reason("noentry");
  EXPECT_NE(reason("corrupt").find("not an ELF"), std::string::npos) << reason("corrupt");
  EXPECT_NE(reason("truncated").find("cannot be loaded"), std::string::npos) << reason("truncated");
  EXPECT_EQ(find(host, "stray"), nullptr);
  EXPECT_EQ(host.modules().size(), 8u);
}

TEST(Loader, DuplicateAcrossDirectoriesIsRefused) {
  test::TempDir a, b;
  link_in(LLMOPS_FIXTURE_MODULE_DIR, "llmops_testkit.so", a.path());
  link_in(LLMOPS_FIXTURE_MODULE_DIR, "llmops_testkit.so", b.path());
  ModuleHost host(HostServices{});
  ASSERT_TRUE(host.load(config_for(a.path() + "," + b.path())).ok());
  ASSERT_EQ(host.modules().size(), 2u);
  EXPECT_EQ(host.modules()[0].state, "loaded");
  EXPECT_EQ(host.modules()[1].state, "refused");
  EXPECT_NE(host.modules()[1].reason.find("duplicate"), std::string::npos);
}

TEST(Loader, RequiredModuleRefusedOrMissingStopsTheStart) {
  test::TempDir dir;
  link_in(LLMOPS_BROKEN_MODULE_DIR, "llmops_badmajor.so", dir.path());
  Config c = config_for(dir.path());
  c.required_modules = {"badmajor"};
  ModuleHost h1(HostServices{});
  Status st = h1.load(c);
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_NE(st.message().find("required module 'badmajor'"), std::string::npos);
  c.required_modules = {"serving"};
  ModuleHost h2(HostServices{});
  EXPECT_EQ(h2.load(c).code(), Code::kNotFound);
}

TEST(Loader, DisabledModulesAreNotLoaded) {
  test::TempDir dir;
  link_in(LLMOPS_FIXTURE_MODULE_DIR, "llmops_testkit.so", dir.path());
  Config c = config_for(dir.path());
  c.disabled_modules = {"testkit"};
  ModuleHost host(HostServices{});
  ASSERT_TRUE(host.load(c).ok());
  EXPECT_EQ(host.modules()[0].state, "disabled");
}

TEST(Loader, ConfigSectionsAreValidatedAgainstTheSchema) {
  test::TempDir dir;
  link_in(LLMOPS_FIXTURE_MODULE_DIR, "llmops_testkit.so", dir.path());
  auto check = [&](std::map<std::string, std::string> section) {
    Config c = config_for(dir.path());
    c.module_sections["testkit"] = std::move(section);
    ModuleHost host(HostServices{});
    EXPECT_TRUE(host.load(c).ok());
    Status st = host.validate_config(c);
    return std::make_pair(st, st.ok() ? host.modules()[0].config : std::map<std::string, std::string>{});
  };
  auto [ok, values] = check({{"greeting", "hey"}});
  ASSERT_TRUE(ok.ok()) << ok.to_string();
  EXPECT_EQ(values["greeting"], "hey");
  EXPECT_EQ(values["workers"], "2") << "default filled in";
  EXPECT_NE(check({{"colour", "red"}}).first.message().find("unknown key 'testkit.colour'"), std::string::npos);
  EXPECT_NE(check({{"workers", "lots"}}).first.message().find("'lots' is not an integer"), std::string::npos);
  EXPECT_NE(check({{"workers", "99"}}).first.message().find("outside 1..16"), std::string::npos);
  Config c = config_for(dir.path());
  c.module_sections["nosuchmodule"]["x"] = "1";
  ModuleHost host(HostServices{});
  ASSERT_TRUE(host.load(c).ok());
  EXPECT_NE(host.validate_config(c).message().find("no module 'nosuchmodule'"), std::string::npos);
}

TEST(Loader, InitFailureMarksTheModuleFailed) {
  test::TempDir dir, state;
  link_in(LLMOPS_BROKEN_MODULE_DIR, "llmops_failinit.so", dir.path());
  link_in(LLMOPS_FIXTURE_MODULE_DIR, "llmops_testkit.so", dir.path());
  auto store = std::move(Store::open(state.path(), StoreOptions{})).value();
  MetricsRegistry metrics;
  JobRunner jobs(store.get(), &metrics, 1);
  ASSERT_TRUE(jobs.open().ok());
  Router data, admin;
  ModuleHost host(HostServices{store.get(), nullptr, &metrics, &jobs, nullptr, &data, &admin});
  Config c = config_for(dir.path());
  ASSERT_TRUE(host.load(c).ok());
  ASSERT_TRUE(host.validate_config(c).ok());
  ASSERT_TRUE(host.init_all().ok());
  ASSERT_TRUE(host.start_all().ok());
  EXPECT_EQ(find(host, "failinit")->state, "failed");
  EXPECT_NE(find(host, "failinit")->reason.find("cannot find its model directory"), std::string::npos);
  EXPECT_EQ(find(host, "testkit")->state, "running");
  EXPECT_TRUE(admin.has("GET", "/v1/modules/testkit/echo"));
  EXPECT_TRUE(data.has("GET", "/testkit/slow"));
  auto kinds = jobs.kinds();
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "testkit.count"), kinds.end());
  c.required_modules = {"failinit"};
  ModuleHost strict(HostServices{store.get(), nullptr, &metrics, nullptr, nullptr, nullptr, nullptr});
  ASSERT_TRUE(strict.load(c).ok());
  EXPECT_FALSE(strict.init_all().ok()) << "a required module that fails init stops the start";
}

}  // namespace
}  // namespace llmops
