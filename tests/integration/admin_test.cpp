// The admin plane through the real llmopsctl: verbs, JSON output, exit codes, peer
// credentials and the audit log.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "integration/harness.h"

namespace llmops::test {
namespace {

TEST(Admin, VerbsPrintTablesAndJson) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  auto st = d.ctl({"status"});
  ASSERT_EQ(st.exit_code, 0) << st.err;
  EXPECT_NE(st.out.find("running"), std::string::npos);
  EXPECT_NE(st.out.find("http://127.0.0.1:" + std::to_string(d.port())), std::string::npos);
  auto js = d.ctl({"status", "--json"});
  EXPECT_EQ(Json::parse(js.out)["state"], "running");
  auto mods = d.ctl({"modules"});
  EXPECT_NE(mods.out.find("placeholder: stage 'monitor' is not built yet"), std::string::npos) << mods.out;
  EXPECT_NE(mods.out.find("testkit"), std::string::npos);
  auto mods_json = Json::parse(d.ctl({"--json", "modules"}).out);
  EXPECT_EQ(mods_json["modules"].size(), 9u);
  auto topo = d.ctl({"topology"});
  EXPECT_NE(topo.out.find("NUMA NODE"), std::string::npos);
  EXPECT_NE(topo.out.find("inference"), std::string::npos);
  EXPECT_NE(topo.out.find("training"), std::string::npos);
  EXPECT_NE(topo.out.find("work: no model loaded and no training run running"), std::string::npos) << topo.out;
  auto cfg = Json::parse(d.ctl({"config", "show"}).out);
  EXPECT_EQ(cfg["http"]["listen"], "127.0.0.1:0");
  EXPECT_EQ(cfg["log-level"], "debug");
  EXPECT_EQ(d.ctl({"gc"}).exit_code, 0);
  EXPECT_EQ(d.ctl({"blobs", "list"}).out, "no blobs\n");
}

TEST(Admin, HelpOnEveryVerbAndMeaningfulExitCodes) {
  for (std::vector<std::string> verb : {std::vector<std::string>{"status"}, {"modules"}, {"topology"}, {"config", "show"}, {"audit"},
                                        {"keys", "list"}, {"keys", "create"}, {"keys", "revoke"}, {"jobs", "list"}, {"jobs", "show"},
                                        {"jobs", "watch"}, {"jobs", "cancel"}, {"jobs", "submit"}, {"gc"}, {"blobs", "list"},
                                        {"blobs", "verify"}}) {
    verb.push_back("--help");
    auto r = run_ctl("/nonexistent.sock", verb);
    EXPECT_EQ(r.exit_code, 0) << verb[0];
    EXPECT_NE(r.out.find("Usage: llmopsctl " + verb[0]), std::string::npos) << r.out;
  }
  EXPECT_EQ(run_ctl("/nonexistent.sock", {"frobnicate"}).exit_code, 2);
  EXPECT_EQ(run_ctl("/nonexistent.sock", {"jobs"}).exit_code, 2);
  auto down = run_ctl("/nonexistent.sock", {"status"});
  EXPECT_EQ(down.exit_code, 5);
  EXPECT_NE(down.err.find("cannot reach llmopsd"), std::string::npos);
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  auto missing = d.ctl({"jobs", "show", "999"});
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_NE(missing.err.find("no job 999"), std::string::npos);
  EXPECT_EQ(d.ctl({"jobs", "show", "abc"}).exit_code, 2);
  EXPECT_EQ(d.ctl({"keys", "create"}).exit_code, 2);
  EXPECT_EQ(d.ctl({"jobs", "submit", "no.such.kind"}).exit_code, 3);
}

TEST(Admin, EveryCallIsAudited) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  d.ctl({"status"});
  d.ctl({"keys", "create", "audited"});
  d.ctl({"jobs", "show", "12345"});
  auto audit = Json::parse(d.ctl({"--json", "audit", "--limit", "10"}).out);
  std::vector<std::string> actions;
  for (const auto& e : audit["entries"]) actions.push_back(e["action"].get<std::string>() + " " + std::to_string(e["status"].get<int>()));
  ASSERT_GE(actions.size(), 4u);
  EXPECT_EQ(actions[0], "GET /v1/jobs/12345 404");
  EXPECT_EQ(actions[1], "POST /v1/keys 201");
  EXPECT_EQ(actions[2], "GET /v1/status 200");
  EXPECT_EQ(audit["entries"][0]["who"], "uid:0");
  EXPECT_NE(audit["entries"][0]["detail"].get<std::string>().find("no job 12345"), std::string::npos);
}

TEST(Admin, PeerNotAllowedIsRefusedAndAudited) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to act as another uid";
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  // Open the path so that the kernel lets uid 65534 connect: the daemon itself must refuse it.
  ::chmod(d.dir().path().c_str(), 0755);
  ::chmod(d.dir().file("run").c_str(), 0755);
  ::chmod(d.socket_path().c_str(), 0666);
  auto r = d.ctl({"status"}, 65534);
  EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
  EXPECT_NE(r.err.find("may not use the admin socket"), std::string::npos) << r.err;
  auto audit = Json::parse(d.ctl({"--json", "audit", "--limit", "5"}).out);
  bool found = false;
  for (const auto& e : audit["entries"]) found |= e["who"] == "uid:65534" && e["status"] == 403;
  EXPECT_TRUE(found) << audit.dump(2);
  // Allowed once listed.
  DaemonProcess allowed({"--admin.allow-users=65534"});
  ASSERT_TRUE(allowed.start()) << allowed.log();
  ::chmod(allowed.dir().path().c_str(), 0755);
  ::chmod(allowed.dir().file("run").c_str(), 0755);
  ::chmod(allowed.socket_path().c_str(), 0666);
  EXPECT_EQ(allowed.ctl({"status"}, 65534).exit_code, 0);
}

TEST(Admin, SocketIsGroupOnly) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  struct stat st{};
  ASSERT_EQ(::stat(d.socket_path().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

TEST(Admin, ModuleAdminRoutesAreMountedUnderTheirName) {
  DaemonProcess d({}, "[testkit]\ngreeting = bonjour\n");
  ASSERT_TRUE(d.start()) << d.log();
  auto r = d.admin("GET", "/v1/modules/testkit/echo");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json()["greeting"], "bonjour");
  EXPECT_EQ(r.json()["caller"], "uid:0");
}

TEST(Admin, Abi12LabelledSeriesAndBatchedKvWrites) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  auto r = d.admin("POST", "/v1/modules/testkit/abi12");
  ASSERT_EQ(r.status, 200) << r.body;
  Json j = r.json();
  EXPECT_NE(j["hist"], -1);
  EXPECT_EQ(j["again"], j["hist"]) << "the same name and labels give the same series";
  EXPECT_EQ(j["wrong_kind"], -1);
  EXPECT_EQ(j["bad_name"], -1);
  EXPECT_EQ(j["bad_bounds"], -1);
  EXPECT_EQ(j["batch"], 0);
  EXPECT_EQ(j["bad_batch"], 1) << "LLMOPS_INVALID_ARGUMENT";
  EXPECT_EQ(j["kv"], "k1=one;k2=two;") << "the batch's puts and its delete landed together";
  const std::string m = d.get("/metrics").body;
  EXPECT_NE(m.find("llmops_testkit_sizes_bucket{kind=\"a\\\"b\",le=\"10\"} 1"), std::string::npos) << m;
  EXPECT_NE(m.find("llmops_testkit_sizes_count{kind=\"a\\\"b\"} 2"), std::string::npos);
  EXPECT_NE(m.find("llmops_testkit_level{kind=\"a\\\"b\"} 7"), std::string::npos);
  EXPECT_NE(m.find("# TYPE llmops_testkit_sizes histogram"), std::string::npos);
}

}  // namespace
}  // namespace llmops::test
