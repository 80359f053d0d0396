// Durable jobs. A job's record is in LMDB (database "jobs", key = big-endian id) before it
// runs; its checkpoint is in "job_checkpoints". States: queued → running → succeeded | failed |
// cancelled | interrupted. After a crash or restart, recover() requeues running jobs whose kind
// can resume (from the last checkpoint) and marks the rest `interrupted`; nothing is lost or
// silently marked done. Kinds are registered before start(); then any thread may submit, list,
// get and cancel. Job functions run on the runner's own threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "json.h"
#include "metrics.h"
#include "store.h"

namespace llmops {

enum class JobState { kQueued, kRunning, kSucceeded, kFailed, kCancelled, kInterrupted };
const char* job_state_name(JobState s);
std::optional<JobState> job_state_from_name(std::string_view name);
bool job_state_final(JobState s);

struct JobRecord {
  uint64_t id = 0;
  std::string kind;
  std::string owner;  // module or "daemon"
  JobState state = JobState::kQueued;
  Json params = Json::object();
  double done = 0, total = 0;
  std::string message;  // progress text, or why it failed / was interrupted
  std::string submitted_by;
  uint64_t created_ms = 0, started_ms = 0, finished_ms = 0, updated_ms = 0;
  uint32_t attempts = 0;  // times it has started running (resumes count)
  bool cancel_requested = false;

  Json to_json() const;
  static Result<JobRecord> from_json(const Json& j);
};

class JobRunner;

// What a running job sees. Only the job's own thread calls it.
class JobContext {
 public:
  const Json& params() const { return record_.params; }
  uint64_t id() const { return record_.id; }
  uint32_t attempt() const { return record_.attempts; }
  std::optional<std::string> checkpoint() const { return checkpoint_; }
  Status save_checkpoint(const std::string& json);
  void progress(double done, double total, const std::string& message);
  bool cancelled() const;  // a user asked to cancel
  bool stopping() const;   // the daemon is shutting down
  // Sleeps up to ms, waking early on cancel or shutdown.
  void sleep_ms(int ms) const;

 private:
  friend class JobRunner;
  JobContext(JobRunner* runner, JobRecord record, std::optional<std::string> checkpoint)
      : runner_(runner), record_(std::move(record)), checkpoint_(std::move(checkpoint)) {}
  JobRunner* runner_;
  JobRecord record_;
  std::optional<std::string> checkpoint_;
};

// Returns OK when done; kCancelled after seeing cancelled(); kAborted after seeing stopping()
// (having saved a checkpoint when the kind is resumable); any other Status fails the job.
using JobFn = std::function<Status(JobContext&)>;

struct JobKind {
  std::string owner;
  bool resumable = false;
  JobFn fn;
};

class JobRunner {
 public:
  JobRunner(Store* store, MetricsRegistry* metrics, int workers);
  ~JobRunner();

  Status open();  // opens the databases
  Status register_kind(const std::string& kind, JobKind def);
  // Settles jobs left by an earlier process (see the file comment). Call once before start().
  Status recover();
  void start();
  // Asks running jobs to stop and waits up to timeout_ms. Returns false when some job did not
  // return in time (its record is settled as if the process had crashed).
  bool shutdown(int timeout_ms);

  Result<uint64_t> submit(const std::string& kind, Json params, const std::string& submitted_by);
  Result<JobRecord> get(uint64_t id);  // with live progress of running jobs
  // Newest first; state filter optional; at most limit.
  Result<std::vector<JobRecord>> list(std::optional<JobState> state, size_t limit);
  Status cancel(uint64_t id);
  std::vector<std::string> kinds() const;

 private:
  friend class JobContext;
  struct Live {
    double done = 0, total = 0;
    std::string message;
    uint64_t persisted_ms = 0;
    std::atomic<bool> cancel{false};
  };
  void worker();
  void run_one(uint64_t id);
  Status put_record(const JobRecord& r);
  Result<JobRecord> load(Txn& t, uint64_t id);
  Status update(uint64_t id, const std::function<void(JobRecord&)>& change);
  void on_progress(uint64_t id, double done, double total, const std::string& message);
  bool is_cancelled(uint64_t id);
  Status store_checkpoint(uint64_t id, const std::string& json);

  Store* store_;
  MetricsRegistry* metrics_;
  int worker_count_;
  Dbi jobs_dbi_ = 0;
  Dbi checkpoints_dbi_ = 0;
  std::map<std::string, JobKind> kinds_;
  std::vector<std::thread> workers_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<uint64_t> queue_;
  std::map<uint64_t, std::shared_ptr<Live>> live_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> running_{0};
  std::condition_variable idle_cv_;
};

}  // namespace llmops
