#include "common/training_pool.h"

#include <algorithm>
#include <string>
#include <thread>

#include "kernels/gemm.h"

namespace llmops::runs {

void bind_training(const sdk::Host& host) {
  if (host.api()->placement_threads(host.ctx(), "training") <= 0) return;  // no placement: nothing to bind to
  llmops_error e{};
  if (host.api()->placement_bind(host.ctx(), "training", &e) != LLMOPS_OK) {
    host.warn(std::string("could not pin a training thread: ") + e.message);
  }
}

int training_threads(const sdk::Host& host, int threads) {
  if (threads > 0) return threads;
  threads = host.api()->placement_threads(host.ctx(), "training");
  return threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

std::unique_ptr<engine::ThreadPool> training_pool(const sdk::Host& host, int threads) {
  engine::blas_on_calling_threads();
  bind_training(host);
  return std::make_unique<engine::ThreadPool>(training_threads(host, threads), [host](int) { bind_training(host); });
}

}  // namespace llmops::runs
