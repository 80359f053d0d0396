#include "kernels/thread_pool.h"

namespace llmops::engine {

ThreadPool::ThreadPool(int threads, std::function<void(int index)> on_start) {
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

void range_of(size_t n, int parts, int index, size_t* begin, size_t* end) {
  size_t chunk = n / static_cast<size_t>(parts), extra = n % static_cast<size_t>(parts);
  size_t i = static_cast<size_t>(index);
  *begin = i * chunk + std::min(i, extra);
  *end = *begin + chunk + (i < extra ? 1 : 0);
}
}  // namespace

void ThreadPool::worker(int index) {
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
    size_t b, e;
    range_of(n_, size(), index, &b, &e);
    if (b < e) (*job_)(b, e);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::parallel_for(size_t n, const std::function<void(size_t, size_t)>& fn) {
  if (workers_.empty() || n < 2) {
    if (n > 0) fn(0, n);
    return;
  }
  job_ = &fn;
  n_ = n;
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  {
    std::lock_guard lock(mu_);  // pairs with a worker about to sleep: it sees the new generation
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  if (sleeping_.load() > 0) start_cv_.notify_all();
  size_t b, e;
  range_of(n, size(), 0, &b, &e);
  if (b < e) fn(b, e);
  while (pending_.load(std::memory_order_acquire) != 0) cpu_relax();
}

}  // namespace llmops::engine
