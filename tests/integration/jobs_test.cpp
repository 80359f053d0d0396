// Durable jobs through the daemon: watch, cancel, failure, and what a crash or a stop does to a
// running job.
#include <signal.h>

#include <gtest/gtest.h>

#include "integration/harness.h"

namespace llmops::test {
namespace {

Json job(DaemonProcess& d, int id) { return Json::parse(d.ctl({"--json", "jobs", "show", std::to_string(id)}).out); }

int submit(DaemonProcess& d, const std::string& kind, const std::string& params) {
  auto r = d.ctl({"--json", "jobs", "submit", kind, "--params", params});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return Json::parse(r.out)["id"].get<int>();
}

bool wait_state(DaemonProcess& d, int id, const std::string& state, int timeout_ms = 10000) {
  return eventually([&] { return job(d, id)["state"] == state; }, timeout_ms);
}

TEST(Jobs, WatchShowsProgressUntilTheEnd) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  int id = submit(d, "testkit.count", R"({"n":20,"step_ms":25})");
  auto w = d.ctl({"jobs", "watch", std::to_string(id)});
  EXPECT_EQ(w.exit_code, 0) << w.err;
  EXPECT_NE(w.out.find("counted"), std::string::npos) << w.out;
  EXPECT_NE(w.out.find("[##############################] 100%"), std::string::npos) << w.out;
  EXPECT_NE(w.out.find("job " + std::to_string(id) + " succeeded"), std::string::npos) << w.out;
  auto list = d.ctl({"jobs", "list"});
  EXPECT_NE(list.out.find("testkit.count"), std::string::npos);
  auto j = job(d, id);
  EXPECT_EQ(j["progress"]["done"], 20);
  EXPECT_EQ(j["attempts"], 1);
}

TEST(Jobs, CancelAndFailureHaveExitCodesAndReasons) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  int long_job = submit(d, "testkit.count", R"({"n":100000,"step_ms":10})");
  ASSERT_TRUE(wait_state(d, long_job, "running"));
  EXPECT_EQ(d.ctl({"jobs", "cancel", std::to_string(long_job)}).exit_code, 0);
  auto w = d.ctl({"jobs", "watch", std::to_string(long_job)});
  EXPECT_EQ(w.exit_code, 8);
  EXPECT_EQ(job(d, long_job)["state"], "cancelled");
  int failing = submit(d, "testkit.count", R"({"n":10,"step_ms":1,"fail_at":3})");
  auto f = d.ctl({"jobs", "watch", std::to_string(failing)});
  EXPECT_EQ(f.exit_code, 1);
  EXPECT_NE(job(d, failing)["message"].get<std::string>().find("reached fail_at=3"), std::string::npos);
  EXPECT_EQ(d.ctl({"jobs", "cancel", std::to_string(failing)}).exit_code, 6) << "already final";
}

TEST(Jobs, KillNineResumesResumableJobsAndInterruptsOthers) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  // Long enough (6 s) that a loaded machine (sanitizers, parallel tests) cannot finish it before the kill.
  int resumable = submit(d, "testkit.count", R"({"n":300,"step_ms":20})");
  int oneshot = submit(d, "testkit.sleep", R"({"ms":60000})");
  ASSERT_TRUE(wait_state(d, resumable, "running"));
  ASSERT_TRUE(wait_state(d, oneshot, "running"));
  ASSERT_TRUE(eventually([&] { return job(d, resumable)["progress"]["done"].get<double>() >= 10; }, 5000));
  d.kill9();
  ASSERT_TRUE(d.start()) << d.log();
  auto o = job(d, oneshot);
  EXPECT_EQ(o["state"], "interrupted");
  EXPECT_NE(o["message"].get<std::string>().find("cannot resume"), std::string::npos);
  ASSERT_TRUE(wait_state(d, resumable, "succeeded", 30000)) << job(d, resumable).dump();
  auto r = job(d, resumable);
  EXPECT_EQ(r["attempts"], 2);
  EXPECT_EQ(r["progress"]["done"], 300);
  // The second run counted only what was left after its checkpoint.
  auto metrics = d.get("/metrics").body;
  const std::string series = "\nllmops_testkit_count_steps_total ";
  auto pos = metrics.find(series);
  ASSERT_NE(pos, std::string::npos);
  double steps = std::stod(metrics.substr(pos + series.size()));
  EXPECT_LT(steps, 295) << "resumed from a checkpoint, not from zero";
  EXPECT_GT(steps, 0);
}

TEST(Jobs, SigtermPausesResumableJobsUntilTheNextStart) {
  DaemonProcess d({"--drain-timeout=5"});
  ASSERT_TRUE(d.start()) << d.log();
  // 5 s of counting: still running when SIGTERM comes, however loaded the machine is.
  int resumable = submit(d, "testkit.count", R"({"n":200,"step_ms":25})");
  int oneshot = submit(d, "testkit.sleep", R"({"ms":60000})");
  ASSERT_TRUE(wait_state(d, resumable, "running"));
  ASSERT_TRUE(wait_state(d, oneshot, "running"));
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait_exit(10000), 0);
  ASSERT_TRUE(d.start()) << d.log();
  EXPECT_EQ(job(d, oneshot)["state"], "interrupted");
  ASSERT_TRUE(wait_state(d, resumable, "succeeded", 30000));
  EXPECT_EQ(job(d, resumable)["attempts"], 2);
}

TEST(Jobs, BlobVerifyIsABuiltInJob) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  auto r = d.ctl({"--json", "blobs", "verify"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int id = Json::parse(r.out)["id"];
  EXPECT_EQ(d.ctl({"jobs", "watch", std::to_string(id)}).exit_code, 0);
  EXPECT_EQ(job(d, id)["owner"], "daemon");
}

}  // namespace
}  // namespace llmops::test
