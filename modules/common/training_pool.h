// The engine threads of a batch job (a training or evaluation run): the calling thread and a
// pool of workers, all bound to the placement's "training" CPUs, so serving keeps its cores.
// Matrix products run on these threads too (OpenBLAS is told to use the caller's thread only,
// kernels/gemm.h), not on OpenBLAS's own threads, which no placement pins.
#pragma once

#include <memory>

#include "kernels/thread_pool.h"
#include "llmops/module.hpp"

namespace llmops::runs {

// threads <= 0: the training pool's size, else every CPU. Binding failures are logged and the
// job goes on unpinned.
std::unique_ptr<engine::ThreadPool> training_pool(const sdk::Host& host, int threads);

// Binds the calling thread alone to the training CPUs (logged when it cannot; nothing when the
// daemon runs without placement).
void bind_training(const sdk::Host& host);

// What training_pool(host, threads) would start with.
int training_threads(const sdk::Host& host, int threads);

}  // namespace llmops::runs
