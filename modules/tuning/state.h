// The tuning stage's state, shared by its lifecycle (tuning_module.cpp), its job (job.cpp) and
// its admin routes (routes.cpp).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/peers.h"
#include "common/runs.h"
#include "json.h"
#include "llmops/module.hpp"

namespace llmops::tuning {

struct State {
  const llmops_host_api* host = nullptr;
  llmops_module_ctx* ctx = nullptr;
  std::unique_ptr<runs::RunStore> runs;  // training runs; their items are the loss curve by step
  std::string work_dir;                  // where a finished model's GGUF waits for the serving stage's import
  double watts_per_core = 10.0;          // the energy estimate where RAPL is not readable
  int threads = 0;                       // engine threads of a run (0: the training pool's size)
  std::string device = "auto";           // where runs train: auto, cpu or cuda (tuning.device)
  std::string gpu_precision = "fp32";    // a GPU's products: fp32, tf32 or bf16 (tuning.gpu-precision)
  std::vector<int> gpus;                 // the GPUs a run trains on, data-parallel (empty: all; tuning.gpus)
  uint32_t m_runs = 0, m_steps = 0, m_tokens = 0;

  sdk::Host sdk() const { return {ctx, host}; }
};

// The job kind "tuning.train": params {"run": id}; the run holds the rest.
llmops_code run_training_job(void* user, llmops_job* job, llmops_error* err);

// Checks a request's hyperparameters alone (kInvalidArgument naming the setting).
Status check_hyperparameters(const Json& request);
// Checks a request (base model, data, method, hyperparameters) and stores the run as "queued".
Result<Json> prepare_training(State* s, const Json& request, const std::string& caller);

// Hyperparameter search (search.cpp): the job kind "tuning.search" runs trials as child
// training jobs (grid, random, or successive halving) and ranks them by validation loss.
llmops_code run_search_job(void* user, llmops_job* job, llmops_error* err);
Result<Json> prepare_search(State* s, const Json& request, const std::string& caller);

// Registers the admin-plane routes (mounted under /v1/modules/tuning).
void add_routes(const std::function<void(const char* method, const char* path, llmops_route_fn fn)>& add);

}  // namespace llmops::tuning
