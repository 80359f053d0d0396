// A fixed set of worker threads for the engine's fork-join loops (the rows of a matrix-vector
// product). parallel_for cuts [0, n) into contiguous chunks, a few per thread, which the caller
// and the workers claim in order until none are left, and returns when all are done: a worker
// whose core is busy elsewhere delays only the chunk it holds. The chunks shrink as they go
// (each round of one per thread half the size of the round before), so the threads finish
// close together: whoever is ahead takes the small pieces at the end. fn must not depend on
// which thread runs a chunk or on the chunks' sizes. One caller at a time.
// Workers spin briefly between jobs before sleeping: a decode step runs ~100 short loops, and a
// condition-variable wake-up per loop would cost more than the loop itself.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace llmops::engine {

class ThreadPool {
 public:
  // threads: total including the caller; >= 1. on_start (may be empty) runs first thing on
  // each worker thread with its index 1..threads-1: the daemon pins workers there (placement
  // binds them to the CPUs it chose), keeping hwloc out of the engine.
  explicit ThreadPool(int threads, std::function<void(int index)> on_start = {});
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  void parallel_for(size_t n, const std::function<void(size_t begin, size_t end)>& fn);

 private:
  void worker(int index);
  void claim_chunks(uint64_t gen);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable start_cv_;
  const std::function<void(size_t, size_t)>* job_ = nullptr;
  size_t chunks_ = 0;
  std::vector<size_t> bounds_;  // chunk c is [bounds_[c], bounds_[c + 1])
  std::atomic<size_t> next_chunk_{0};
  std::atomic<size_t> done_chunks_{0};
  std::atomic<int> inside_{0};
  std::atomic<bool> open_{false};
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> sleeping_{0};
  std::atomic<bool> stop_{false};
};

// pool->parallel_for, or fn(0, n) on the calling thread when there is no pool.
inline void parallel_for(ThreadPool* pool, size_t n, const std::function<void(size_t begin, size_t end)>& fn) {
  if (pool != nullptr) {
    pool->parallel_for(n, fn);
  } else if (n > 0) {
    fn(0, n);
  }
}

}  // namespace llmops::engine
