// The pool's start hook: the daemon pins engine workers through it.
#include <gtest/gtest.h>
#include <sched.h>

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
  std::set<std::thread::id> ran;
  bool pinned = true;
  pool.parallel_for(3, [&](size_t, size_t) {
    cpu_set_t set;
    CPU_ZERO(&set);
    sched_getaffinity(0, sizeof set, &set);
    std::lock_guard lock(mu);
    ran.insert(std::this_thread::get_id());
    if (started.count(std::this_thread::get_id()) != 0) pinned = pinned && CPU_COUNT(&set) == 1 && CPU_ISSET(first_cpu, &set);
  });
  EXPECT_EQ(indices, (std::set<int>{1, 2}));
  EXPECT_EQ(ran.size(), 3u);  // the caller and both workers
  for (const auto& id : ran) EXPECT_TRUE(id == std::this_thread::get_id() || started.count(id) == 1);
  EXPECT_TRUE(pinned);
}

}  // namespace
}  // namespace llmops::engine
