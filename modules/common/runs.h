// Runs of a stage's jobs in the stage's own LMDB database (through the host's kv calls): eval
// runs with their examples, training runs with their loss curves.
//
//   n                 → the last run id given out
//   r/<id:be64>       → the run (JSON): what ran on what, its status and its results
//   e/<id:be64><i:be64> → one item of the run (JSON): an eval example (prediction, references,
//                       scores, the statistics comparisons resample) or a point of a loss curve
//
// A run is stored before its job is queued, so a crash never loses one; examples are written in
// batches as they finish, so a cancelled or interrupted run keeps what it did and a resumed one
// skips it. Threads: any; ids are given out under a mutex.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "json.h"
#include "llmops/module.hpp"
#include "status.h"

namespace llmops::runs {

class RunStore {
 public:
  // verb: llmopsctl's verb group that lists these runs ("eval", "tune"), for messages.
  RunStore(sdk::Host host, std::string verb) : host_(host), verb_(std::move(verb)) {}

  // Stores a new run (its "id" is set here) and returns the id.
  Result<uint64_t> create(Json run);
  Result<Json> get(uint64_t id) const;  // kNotFound naming the id
  Status put(const Json& run);           // by run["id"]
  // Newest first, at most limit.
  Result<std::vector<Json>> list(size_t limit) const;
  // Removes a run and its examples.
  Status remove(uint64_t id);

  // Items ("examples") are keyed by their index: a dataset record's, or a training step's.
  Status put_examples(uint64_t id, const std::vector<Json>& examples);
  // In index order; visit returns false to stop.
  Status for_each_example(uint64_t id, const std::function<bool(Json&)>& visit) const;
  Result<std::vector<Json>> examples(uint64_t id, uint64_t offset, uint64_t limit) const;

 private:
  sdk::Host host_;
  std::string verb_;
  std::mutex id_mu_;
};

// The run a job's params name ({"run": id}): its id and its record.
Result<std::pair<uint64_t, Json>> run_of_job(const RunStore& store, const char* params_json);
// How a job ends: the run records its status, when it finished and any error; the job returns
// the matching code (the message in err).
llmops_code finish_run(RunStore& store, Json& run, const std::string& status, const Status& st, llmops_error* err);

// Runs a job over the run its params name: body gets the run's id and record. An exception
// escaping body fails the run (it says so rather than stay "running") and the job.
llmops_code run_job(RunStore& store, const char* params_json, llmops_error* err,
                    const std::function<llmops_code(uint64_t id, Json& run)>& body);

// Queues the job of a stored run (params {"run": id}) and records the job id in the run; when
// the host refuses the job the run is marked failed. Returns the job id.
Result<uint64_t> queue_run_job(sdk::Host host, RunStore& store, Json& run, const char* kind);

// A run id from text ("12"); kInvalidArgument otherwise (hint names the listing verb).
Result<uint64_t> parse_run_id(const std::string& text, const std::string& verb = "eval");

}  // namespace llmops::runs
