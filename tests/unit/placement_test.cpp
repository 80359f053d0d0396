#include "placement.h"

#include <sched.h>

#include <gtest/gtest.h>

#include <thread>

namespace llmops {
namespace {

cpu_set_t affinity_of(pid_t tid) {
  cpu_set_t set;
  CPU_ZERO(&set);
  EXPECT_EQ(sched_getaffinity(tid, sizeof set, &set), 0);
  return set;
}

TEST(Placement, TopologyIsReadAndDescribed) {
  auto topo = Topology::load();
  ASSERT_TRUE(topo.ok());
  Json d = (*topo)->describe();
  EXPECT_GE(d["pus"].get<int>(), 1);
  EXPECT_GE(d["numa_nodes"].size(), 1u);
  EXPECT_TRUE(d["gpus"].is_array());
}

TEST(Placement, PoolThreadsArePinnedToTheirCpus) {
  auto topo = std::move(Topology::load()).value();
  // Pin to the last allowed CPU: on a 2-core machine, core 1.
  auto all = topo->resolve_cpus("");
  int last = hwloc_bitmap_last(all->get());
  auto cpus = topo->resolve_cpus(std::to_string(last));
  ASSERT_TRUE(cpus.ok()) << cpus.status().to_string();
  WorkerPool pool("inference", *topo, std::move(cpus).value(), 3);
  ASSERT_EQ(pool.size(), 3);
  for (pid_t tid : pool.thread_ids()) {
    cpu_set_t set = affinity_of(tid);
    EXPECT_EQ(CPU_COUNT(&set), 1) << "thread " << tid;
    EXPECT_TRUE(CPU_ISSET(last, &set)) << "thread " << tid;
  }
  // And the work really runs there.
  std::atomic<int> wrong{0};
  pool.run(64, [&](size_t, int) {
    if (sched_getcpu() != last) ++wrong;
  });
  EXPECT_EQ(wrong.load(), 0);
}

TEST(Placement, NumaSpecCoversTheNode) {
  auto topo = std::move(Topology::load()).value();
  auto cpus = topo->resolve_cpus("numa:0");
  ASSERT_TRUE(cpus.ok());
  WorkerPool pool("training", *topo, std::move(cpus).value(), 0);
  EXPECT_EQ(pool.size(), topo->pu_count()) << "one thread per core of node 0 on a one-node machine";
  for (pid_t tid : pool.thread_ids()) {
    cpu_set_t set = affinity_of(tid);
    EXPECT_EQ(CPU_COUNT(&set), topo->pu_count());
  }
  EXPECT_EQ(pool.describe()["numa"], "0");
}

TEST(Placement, BadSpecsAreRefusedWithReasons) {
  auto topo = std::move(Topology::load()).value();
  EXPECT_NE(topo->resolve_cpus("numa:99").status().message().find("no NUMA node 99"), std::string::npos);
  EXPECT_FALSE(topo->resolve_cpus("0-").ok());
  EXPECT_FALSE(topo->resolve_cpus("banana").ok());
  EXPECT_NE(topo->resolve_cpus("4096").status().message().find("not all available"), std::string::npos);
}

// A GPU's driving thread is pinned by the GPU's PCI address; addresses that are malformed or
// absent are refused with the reason, and every PCI device hwloc lists resolves to CPUs we may use.
TEST(Placement, DevicesResolveToTheirNearCpus) {
  auto topo = Topology::load();
  ASSERT_TRUE(topo.ok()) << topo.status().message();
  EXPECT_EQ((*topo)->near_cpus("gpu0").status().code(), Code::kInvalidArgument);
  EXPECT_EQ((*topo)->near_cpus("0000:41:00.0 ").status().code(), Code::kInvalidArgument);
  auto absent = (*topo)->near_cpus("ffff:fe:1f.7");
  EXPECT_EQ(absent.status().code(), Code::kNotFound);
  EXPECT_NE(absent.status().message().find("llmopsctl topology"), std::string::npos);
  const Json described = (*topo)->describe();  // kept: a range over a temporary's member would dangle
  for (const auto& gpu : described["gpus"]) {
    auto cpus = (*topo)->near_cpus(gpu["pci"].get<std::string>());
    ASSERT_TRUE(cpus.ok()) << cpus.status().message();
    EXPECT_FALSE(hwloc_bitmap_iszero(cpus->get()));
    std::string note;
    EXPECT_TRUE((*topo)->bind_current_thread(cpus->get(), &note).ok());
  }
}

TEST(Placement, ForkJoinRunsEveryIndexOnce) {
  auto topo = std::move(Topology::load()).value();
  WorkerPool pool("p", *topo, std::move(topo->resolve_cpus("")).value(), 4);
  std::vector<std::atomic<int>> hits(1000);
  pool.run(hits.size(), [&](size_t i, int) { ++hits[i]; });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
}

}  // namespace
}  // namespace llmops
