#include "kernels/thread_pool.h"

namespace llmops::engine {

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

namespace {
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
    const std::function<void(size_t, size_t)>* job;
    size_t n;
    {
      std::unique_lock lock(mu_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
      n = n_;
    }
    size_t b, e;
    range_of(n, size(), index, &b, &e);
    if (b < e) (*job)(b, e);
    std::lock_guard lock(mu_);
    if (--pending_ == 0) done_cv_.notify_one();
  }
}

void ThreadPool::parallel_for(size_t n, const std::function<void(size_t, size_t)>& fn) {
  if (workers_.empty() || n < 2) {
    if (n > 0) fn(0, n);
    return;
  }
  {
    std::lock_guard lock(mu_);
    job_ = &fn;
    n_ = n;
    pending_ = static_cast<int>(workers_.size());
    ++generation_;
  }
  start_cv_.notify_all();
  size_t b, e;
  range_of(n, size(), 0, &b, &e);
  if (b < e) fn(b, e);
  std::unique_lock lock(mu_);
  done_cv_.wait(lock, [&] { return pending_ == 0; });
}

}  // namespace llmops::engine
