// The eval stage's state, shared by its lifecycle (eval_module.cpp), its jobs (jobs.cpp) and
// its admin routes (routes.cpp).
#pragma once

#include <memory>
#include <string>

#include "common/open_model.h"
#include "common/runs.h"
#include "common/peers.h"
#include "kernels/thread_pool.h"
#include "json.h"
#include "llmops/module.hpp"

namespace llmops::eval {

using peers::BlobHold;
using runs::parse_run_id;
using runs::RunStore;
using peers::DatasetRef;
using peers::field_list;
using peers::ModelRef;
using peers::read_records;
using peers::resolve_dataset;
using peers::resolve_model;

struct State {
  const llmops_host_api* host = nullptr;
  llmops_module_ctx* ctx = nullptr;
  std::unique_ptr<RunStore> runs;
  int threads = 0;        // engine threads of a run (0: the training pool's size)
  int max_examples = 0;   // largest run, in examples (0: no limit)
  uint32_t m_runs = 0, m_examples = 0;

  sdk::Host sdk() const { return {ctx, host}; }
};

// The job kinds "eval.score" and "eval.run": params {"run": id}; everything else is in the run.
llmops_code run_eval_job(void* user, llmops_job* job, llmops_error* err);

// Checks a new run's request against its dataset (and model) and stores it as "queued".
// Returns the stored run. Any thread (a route handler).
Result<Json> prepare_run(State* s, const std::string& kind, const Json& request, const std::string& caller);

// A run's model opened from its blobs (held for as long as this lives) with a thread pool on
// the training pool's CPUs. Job thread.
struct RunModel {
  std::unique_ptr<BlobHold> hold;
  models::OpenedModel opened;
  std::unique_ptr<engine::ThreadPool> pool;
};
Result<RunModel> open_run_model(State* s, const Json& run);

// A probe run (kind "probe"): its results into run["results"], its examples stored. Job thread;
// stop() says when to stop (cancel or shutdown).
Status run_probes(State* s, uint64_t id, Json& run, const std::function<bool()>& stop,
                  const std::function<void(double, double, const std::string&)>& progress);

// The comparison of two finished runs on the same data (see compare.cpp).
Result<Json> compare_runs(State* s, uint64_t a, uint64_t b, const std::string& focus_metric, int samples, size_t show);

// Registers the admin-plane routes (mounted under /v1/modules/eval).
void add_routes(const std::function<void(const char* method, const char* path, llmops_route_fn fn)>& add);

}  // namespace llmops::eval
