#include "jobs.h"
#include "keys.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "unit/test_util.h"

namespace llmops {
namespace {

using namespace std::chrono_literals;

struct Env {
  test::TempDir dir;
  std::unique_ptr<Store> store;
  MetricsRegistry metrics;
  Env() { store = std::move(Store::open(dir.path(), StoreOptions{})).value(); }
  std::unique_ptr<JobRunner> runner(const std::map<std::string, JobKind>& kinds) {
    auto r = std::make_unique<JobRunner>(store.get(), &metrics, 2);
    EXPECT_TRUE(r->open().ok());
    for (const auto& [k, def] : kinds) EXPECT_TRUE(r->register_kind(k, def).ok());
    EXPECT_TRUE(r->recover().ok());
    r->start();
    return r;
  }
};

JobRecord wait_final(JobRunner& r, uint64_t id) {
  for (int i = 0; i < 1000; ++i) {
    auto rec = r.get(id);
    if (rec.ok() && job_state_final(rec->state)) return *rec;
    std::this_thread::sleep_for(5ms);
  }
  ADD_FAILURE() << "job " << id << " did not finish";
  return *r.get(id);
}

JobKind counting(bool resumable, std::atomic<int>* steps = nullptr) {
  JobKind k;
  k.owner = "test";
  k.resumable = resumable;
  k.fn = [steps](JobContext& job) -> Status {
    int n = job.params().value("n", 5);
    int start = 0;
    if (auto cp = job.checkpoint()) start = std::stoi(*cp);
    for (int i = start; i < n; ++i) {
      if (job.cancelled()) return cancelled("cancelled");
      if (job.stopping()) return aborted("stopping");
      job.sleep_ms(job.params().value("step_ms", 1));
      LLMOPS_RETURN_IF_ERROR(job.save_checkpoint(std::to_string(i + 1)));
      if (steps) ++*steps;
      job.progress(i + 1, n, "step " + std::to_string(i + 1));
    }
    return ok_status();
  };
  return k;
}

TEST(Jobs, RunsToSuccessWithProgress) {
  Env env;
  auto r = env.runner({{"count", counting(false)}});
  uint64_t id = *r->submit("count", {{"n", 5}}, "tester");
  auto rec = wait_final(*r, id);
  EXPECT_EQ(rec.state, JobState::kSucceeded);
  EXPECT_EQ(rec.done, 5);
  EXPECT_EQ(rec.total, 5);
  EXPECT_EQ(rec.attempts, 1u);
  EXPECT_EQ(rec.submitted_by, "tester");
}

TEST(Jobs, FailureKeepsTheReason) {
  Env env;
  JobKind k;
  k.owner = "test";
  k.fn = [](JobContext&) -> Status { return failed_precondition("the dataset is empty"); };
  auto r = env.runner({{"bad", k}});
  auto rec = wait_final(*r, *r->submit("bad", {}, "t"));
  EXPECT_EQ(rec.state, JobState::kFailed);
  EXPECT_EQ(rec.message, "the dataset is empty");
}

TEST(Jobs, UnknownKindAndBadNamesAreRefused) {
  Env env;
  auto r = env.runner({{"count", counting(false)}});
  auto s = r->submit("nope", {}, "t");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kNotFound);
  EXPECT_NE(s.status().message().find("count"), std::string::npos) << "lists the known kinds";
  JobRunner fresh(env.store.get(), &env.metrics, 1);
  ASSERT_TRUE(fresh.open().ok());
  EXPECT_FALSE(fresh.register_kind("Bad Name", counting(false)).ok());
}

TEST(Jobs, CancelQueuedAndRunning) {
  Env env;
  auto r = env.runner({{"count", counting(true)}});
  uint64_t running = *r->submit("count", {{"n", 100000}, {"step_ms", 5}}, "t");
  for (int i = 0; i < 200 && r->get(running)->state != JobState::kRunning; ++i) std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(r->cancel(running).ok());
  auto rec = wait_final(*r, running);
  EXPECT_EQ(rec.state, JobState::kCancelled);
  EXPECT_NE(rec.message.find("checkpoint is kept"), std::string::npos);
  EXPECT_EQ(r->cancel(running).code(), Code::kFailedPrecondition);
  EXPECT_EQ(r->cancel(999).code(), Code::kNotFound);
}

TEST(Jobs, CrashRecoveryResumesResumableAndInterruptsTheRest) {
  Env env;
  Dbi jobs_db = *env.store->database("jobs");
  Dbi cp_db = *env.store->database("job_checkpoints");
  // Records as a crashed daemon leaves them: two running jobs, one queued, one whose kind is gone.
  auto put = [&](uint64_t id, const std::string& kind, JobState st) {
    JobRecord rec;
    rec.id = id;
    rec.kind = kind;
    rec.state = st;
    rec.params = {{"n", 10}};
    rec.attempts = st == JobState::kRunning ? 1 : 0;
    ASSERT_TRUE(env.store->write([&](Txn& t) { return t.put(jobs_db, u64_key(id), dump_json(rec.to_json())); }).ok());
  };
  put(1, "resumable", JobState::kRunning);
  put(2, "oneshot", JobState::kRunning);
  put(3, "resumable", JobState::kQueued);
  put(4, "vanished", JobState::kRunning);
  ASSERT_TRUE(env.store->write([&](Txn& t) { return t.put(cp_db, u64_key(1), "7"); }).ok());
  std::atomic<int> steps{0};
  auto r = env.runner({{"resumable", counting(true, &steps)}, {"oneshot", counting(false)}});
  auto one = wait_final(*r, 1);
  EXPECT_EQ(one.state, JobState::kSucceeded);
  EXPECT_EQ(one.attempts, 2u);
  auto two = *r->get(2);
  EXPECT_EQ(two.state, JobState::kInterrupted);
  EXPECT_NE(two.message.find("cannot resume"), std::string::npos);
  EXPECT_EQ(wait_final(*r, 3).state, JobState::kSucceeded);
  auto four = *r->get(4);
  EXPECT_EQ(four.state, JobState::kInterrupted);
  EXPECT_NE(four.message.find("vanished"), std::string::npos);
  EXPECT_EQ(steps.load(), 3 + 10) << "job 1 resumed from checkpoint 7 (3 steps), job 3 ran all 10";
}

TEST(Jobs, ShutdownPausesResumableAndInterruptsOthers) {
  Env env;
  uint64_t a = 0, b = 0;
  {
    auto r = env.runner({{"resumable", counting(true)}, {"oneshot", counting(false)}});
    a = *r->submit("resumable", {{"n", 100000}, {"step_ms", 2}}, "t");
    b = *r->submit("oneshot", {{"n", 100000}, {"step_ms", 2}}, "t");
    for (int i = 0; i < 400; ++i) {
      if (r->get(a)->state == JobState::kRunning && r->get(b)->state == JobState::kRunning) break;
      std::this_thread::sleep_for(5ms);
    }
    EXPECT_TRUE(r->shutdown(5000));
    EXPECT_EQ(r->get(a)->state, JobState::kQueued);
    EXPECT_EQ(r->get(b)->state, JobState::kInterrupted);
    EXPECT_EQ(r->submit("resumable", {}, "t").status().code(), Code::kUnavailable);
  }
}

TEST(Jobs, ListNewestFirstWithFilter) {
  Env env;
  auto r = env.runner({{"count", counting(false)}});
  for (int i = 0; i < 5; ++i) wait_final(*r, *r->submit("count", {{"n", 1}}, "t"));
  auto all = *r->list(std::nullopt, 3);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].id, 5u);
  EXPECT_TRUE(r->list(JobState::kFailed, 10)->empty());
}

}  // namespace
}  // namespace llmops
