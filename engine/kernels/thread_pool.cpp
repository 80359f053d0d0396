#include "kernels/thread_pool.h"

#include <algorithm>

namespace llmops::engine {

namespace {
// Rounds of one chunk per thread: each round takes half of what is left, the last all of it.
constexpr int kRounds = 6;
}  // namespace

ThreadPool::ThreadPool(int threads, std::function<void(int index)> on_start) {
  bounds_.resize(static_cast<size_t>(std::max(1, threads)) * kRounds + 1);
  for (int i = 1; i < threads; ++i) {
    workers_.emplace_back([this, i, on_start] {
      if (on_start) on_start(i);
      worker(i);
    });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

namespace {
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

// Runs chunks of the open job until none are left. Returns at once when the job it saw is no
// longer open (the caller finished it alone); job_ is read only while the job is open and this
// thread is counted in inside_, which the caller waits on before the job's state goes away.
void ThreadPool::claim_chunks(uint64_t gen) {
  // Sequentially consistent on both sides (this increment then the load of open_; the caller's
  // store of open_ then its load of inside_): with weaker orders the two could pass each other
  // in the store buffers and a worker could read a finished job.
  inside_.fetch_add(1);
  if (open_.load() && generation_.load() == gen) {
    const auto& fn = *job_;
    const size_t chunks = chunks_;
    const size_t* bounds = bounds_.data();
    for (;;) {
      const size_t c = next_chunk_.fetch_add(1, std::memory_order_acq_rel);
      if (c >= chunks) break;
      if (bounds[c] < bounds[c + 1]) fn(bounds[c], bounds[c + 1]);
      done_chunks_.fetch_add(1, std::memory_order_acq_rel);
    }
  }
  inside_.fetch_sub(1);
}

void ThreadPool::worker(int index) {
  (void)index;
  uint64_t seen = 0;
  for (;;) {
    // Spin for a while (about 50 µs of polling), then sleep until the next job.
    uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int spin = 0; gen == seen && spin < 20000; ++spin) {
      cpu_relax();
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      std::unique_lock lock(mu_);
      sleeping_.fetch_add(1);
      start_cv_.wait(lock, [&] { return generation_.load() != seen; });
      sleeping_.fetch_sub(1);
      gen = generation_.load();
    }
    if (stop_.load()) return;
    seen = gen;
    claim_chunks(gen);
  }
}

namespace {

// Waits for cond: spinning briefly, then yielding the core, so a waiter never holds a CPU that
// the thread it waits for needs (cores shared with other processes).
template <typename Cond>
void wait_until(Cond cond) {
  for (int spin = 0; !cond(); ++spin) {
    if (spin < 4000) cpu_relax();
    else std::this_thread::yield();
  }
}

}  // namespace

// The work is cut into a few chunks per thread that whoever is running claims next: when a
// worker is slow to wake (its core busy with another process), the others, the caller included,
// take its share instead of waiting for it.
void ThreadPool::parallel_for(size_t n, const std::function<void(size_t, size_t)>& fn) {
  if (workers_.empty() || n < 2) {
    if (n > 0) fn(0, n);
    return;
  }
  job_ = &fn;
  const size_t threads = static_cast<size_t>(size());
  bounds_[0] = 0;
  if (n < threads * kRounds) {  // one item a chunk
    chunks_ = n;
    for (size_t c = 1; c <= n; ++c) bounds_[c] = c;
  } else {
    chunks_ = threads * kRounds;
    size_t c = 0;
    for (int round = 0; round < kRounds; ++round) {
      const size_t left = n - bounds_[c], take = round + 1 == kRounds ? left : left / 2;
      for (size_t i = 0; i < threads; ++i, ++c) bounds_[c + 1] = bounds_[c] + take / threads + (i < take % threads ? 1 : 0);
    }
  }
  next_chunk_.store(0, std::memory_order_relaxed);
  done_chunks_.store(0, std::memory_order_relaxed);
  uint64_t gen;
  {
    std::lock_guard lock(mu_);  // pairs with a worker about to sleep: it sees the new generation
    open_.store(true);
    gen = generation_.fetch_add(1, std::memory_order_acq_rel) + 1;
  }
  if (sleeping_.load() > 0) start_cv_.notify_all();
  claim_chunks(gen);
  wait_until([&] { return done_chunks_.load(std::memory_order_acquire) == chunks_; });
  // Close the job, then wait for any worker still between its check and its exit.
  open_.store(false);
  wait_until([&] { return inside_.load() == 0; });
}

}  // namespace llmops::engine
