// The pool's start hook: the daemon pins engine workers through it.
#include <gtest/gtest.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "kernels/thread_pool.h"

namespace llmops::engine {
namespace {

TEST(ThreadPool, StartHookRunsOnEachWorkerBeforeItsFirstJob) {
  std::mutex mu;
  std::set<std::thread::id> started;
  std::set<int> indices;
  cpu_set_t one;
  CPU_ZERO(&one);
  ASSERT_EQ(sched_getaffinity(0, sizeof one, &one), 0);
  int first_cpu = 0;
  while (!CPU_ISSET(first_cpu, &one)) ++first_cpu;
  ThreadPool pool(3, [&](int index) {
    // Pin as the daemon would: to one CPU.
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(first_cpu, &set);
    EXPECT_EQ(sched_setaffinity(0, sizeof set, &set), 0);
    std::lock_guard lock(mu);
    started.insert(std::this_thread::get_id());
    indices.insert(index);
  });
  // Chunks go to whoever claims them first, so run jobs until a worker has taken some.
  std::set<std::thread::id> ran;
  bool pinned = true;
  for (int round = 0; round < 200 && ran.size() < 2; ++round) {
    pool.parallel_for(12, [&](size_t, size_t) {
      std::this_thread::sleep_for(std::chrono::microseconds(500));
      cpu_set_t set;
      CPU_ZERO(&set);
      sched_getaffinity(0, sizeof set, &set);
      std::lock_guard lock(mu);
      ran.insert(std::this_thread::get_id());
      if (started.count(std::this_thread::get_id()) != 0) pinned = pinned && CPU_COUNT(&set) == 1 && CPU_ISSET(first_cpu, &set);
    });
  }
  // Workers start at their own pace (slowly under sanitizers): wait for both hooks.
  for (int i = 0; i < 500; ++i) {
    {
      std::lock_guard lock(mu);
      if (indices.size() == 2) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(indices, (std::set<int>{1, 2}));
  }
  EXPECT_GE(ran.size(), 2u);  // the caller and at least one worker
  for (const auto& id : ran) EXPECT_TRUE(id == std::this_thread::get_id() || started.count(id) == 1);
  EXPECT_TRUE(pinned);
}

// A worker that cannot run (its core taken) must not stall the caller: the caller claims the
// chunks itself. Here the workers are held in their start hook while the caller runs a job.
TEST(ThreadPool, TheCallerFinishesAloneWhenWorkersAreBusy) {
  std::atomic<bool> release{false};
  ThreadPool pool(3, [&](int) {
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  std::vector<int> hits(1000, 0);
  pool.parallel_for(hits.size(), [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) ++hits[i];
  });
  EXPECT_EQ(std::count(hits.begin(), hits.end(), 1), 1000);
  release.store(true);
  // Once free, the workers join later jobs, and every index is still covered exactly once.
  std::vector<std::atomic<int>> again(5000);
  for (int round = 0; round < 50; ++round) {
    pool.parallel_for(again.size(), [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) again[i].fetch_add(1);
    });
  }
  for (const auto& a : again) ASSERT_EQ(a.load(), 50);
}

}  // namespace
}  // namespace llmops::engine
