// Placement: the hwloc topology, read once at start and immutable after, and the pinned worker
// pools (inference, training) whose threads are bound to configured cores and whose memory is
// bound to those cores' NUMA node. The daemon's main thread builds it; afterwards any thread
// may read it and submit work to a pool.
#pragma once

#include <hwloc.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config.h"
#include "json.h"
#include "status.h"

namespace llmops {

// Owns an hwloc bitmap.
struct BitmapDeleter {
  void operator()(hwloc_bitmap_t b) const { hwloc_bitmap_free(b); }
};
using Bitmap = std::unique_ptr<hwloc_bitmap_s, BitmapDeleter>;

std::string bitmap_list(hwloc_const_bitmap_t b);  // "0-3,6"

class Topology {
 public:
  ~Topology();
  static Result<std::unique_ptr<Topology>> load();

  // "" → every allowed PU; "0-3,6" → those PUs (OS indexes); "numa:N" → PUs of node N.
  Result<Bitmap> resolve_cpus(const std::string& spec) const;
  // Binds the calling thread to cpus and its memory to their NUMA node(s). Memory binding is
  // best-effort where the kernel refuses it (a warning is returned in *note).
  Status bind_current_thread(hwloc_const_bitmap_t cpus, std::string* note) const;
  Json describe() const;  // numa nodes, cores, PUs, GPUs
  // The allowed CPUs nearest a PCI device ("0000:41:00.0", as CUDA and describe() print it):
  // those of its closest non-I/O ancestor (package or NUMA node). kNotFound for a device hwloc
  // does not list, kInvalidArgument for a malformed address.
  Result<Bitmap> near_cpus(const std::string& pci_bus_id) const;
  int pu_count() const;
  std::string numa_nodes_of(hwloc_const_bitmap_t cpus) const;  // "0" or "0-1"

 private:
  Topology() = default;
  hwloc_topology_t topo_ = nullptr;
};

// A fixed set of threads pinned to one CPU set. run() is fork-join over n indexes.
class WorkerPool {
 public:
  WorkerPool(std::string name, const Topology& topo, Bitmap cpus, int threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Runs fn(i, thread_index) for i in [0, n) on the pool's threads and returns when all are done.
  void run(size_t n, const std::function<void(size_t index, int thread)>& fn);
  // Queues one task; returns at once.
  void submit(std::function<void()> task);
  const std::string& name() const { return name_; }
  // Binds the calling thread (one the pool does not own) to the pool's CPUs.
  Status bind_caller() const;
  int size() const { return static_cast<int>(threads_.size()); }
  std::vector<pid_t> thread_ids() const;  // kernel tids, for affinity checks
  Json describe() const;

 private:
  void worker(int index);

  std::string name_;
  const Topology& topo_;
  Bitmap cpus_;
  std::vector<std::thread> threads_;
  std::vector<pid_t> tids_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable started_cv_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::string> notes_;
  bool stop_ = false;
};

class Placement {
 public:
  static Result<std::unique_ptr<Placement>> create(const Config& config);
  const Topology& topology() const { return *topology_; }
  WorkerPool* pool(const std::string& name);  // "inference" | "training"; null otherwise
  Json describe() const;

 private:
  std::unique_ptr<Topology> topology_;
  std::map<std::string, std::unique_ptr<WorkerPool>> pools_;
};

}  // namespace llmops
