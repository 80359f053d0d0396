#include "jobs.h"
#include "clock.h"

#include <chrono>

#include "keys.h"
#include "log.h"

namespace llmops {
namespace {

constexpr const char* kStateNames[] = {"queued", "running", "succeeded", "failed", "cancelled", "interrupted"};
constexpr uint64_t kProgressPersistMs = 1000;

}  // namespace

const char* job_state_name(JobState s) { return kStateNames[static_cast<int>(s)]; }

std::optional<JobState> job_state_from_name(std::string_view name) {
  for (int i = 0; i < 6; ++i) {
    if (name == kStateNames[i]) return static_cast<JobState>(i);
  }
  return std::nullopt;
}

bool job_state_final(JobState s) { return s != JobState::kQueued && s != JobState::kRunning; }

Json JobRecord::to_json() const {
  return {{"id", id},
          {"kind", kind},
          {"owner", owner},
          {"state", job_state_name(state)},
          {"params", params},
          {"progress", {{"done", done}, {"total", total}}},
          {"message", message},
          {"submitted_by", submitted_by},
          {"created_ms", created_ms},
          {"started_ms", started_ms},
          {"finished_ms", finished_ms},
          {"updated_ms", updated_ms},
          {"attempts", attempts},
          {"cancel_requested", cancel_requested}};
}

Result<JobRecord> JobRecord::from_json(const Json& j) {
  try {
    JobRecord r;
    r.id = j.at("id").get<uint64_t>();
    r.kind = j.at("kind").get<std::string>();
    r.owner = j.value("owner", "");
    auto st = job_state_from_name(j.at("state").get<std::string>());
    if (!st) return data_loss("job record has an unknown state");
    r.state = *st;
    r.params = j.value("params", Json::object());
    r.done = j.at("progress").value("done", 0.0);
    r.total = j.at("progress").value("total", 0.0);
    r.message = j.value("message", "");
    r.submitted_by = j.value("submitted_by", "");
    r.created_ms = j.value("created_ms", uint64_t{0});
    r.started_ms = j.value("started_ms", uint64_t{0});
    r.finished_ms = j.value("finished_ms", uint64_t{0});
    r.updated_ms = j.value("updated_ms", uint64_t{0});
    r.attempts = j.value("attempts", 0u);
    r.cancel_requested = j.value("cancel_requested", false);
    return r;
  } catch (const Json::exception& e) {
    return data_loss(std::string("job record is malformed: ") + e.what());
  }
}

Status JobContext::save_checkpoint(const std::string& json) { return runner_->store_checkpoint(record_.id, json); }

void JobContext::progress(double done, double total, const std::string& message) {
  runner_->on_progress(record_.id, done, total, message);
}

bool JobContext::cancelled() const { return runner_->is_cancelled(record_.id); }
bool JobContext::stopping() const { return runner_->stopping_.load(); }

void JobContext::sleep_ms(int ms) const {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < until && !cancelled() && !stopping()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(ms, 10)));
  }
}

JobRunner::JobRunner(Store* store, MetricsRegistry* metrics, int workers)
    : store_(store), metrics_(metrics), worker_count_(workers) {}

JobRunner::~JobRunner() {
  {
    // Set under the lock: a worker between its predicate check and its wait would otherwise miss the wakeup and
    // the join below would hang.
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
}

Status JobRunner::open() {
  LLMOPS_ASSIGN_OR_RETURN(jobs_dbi_, store_->database("jobs"));
  LLMOPS_ASSIGN_OR_RETURN(checkpoints_dbi_, store_->database("job_checkpoints"));
  return ok_status();
}

Status JobRunner::register_kind(const std::string& kind, JobKind def) {
  if (kind.empty() || kind.size() > 64 || kind.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789._-") != std::string::npos) {
    return invalid_argument("job kind '" + kind + "' must be 1-64 characters of a-z 0-9 . _ -");
  }
  std::lock_guard lock(mu_);
  if (!workers_.empty()) return failed_precondition("job kinds must be registered before the runner starts");
  if (kinds_.count(kind)) return already_exists("job kind '" + kind + "' is already registered by " + kinds_[kind].owner);
  kinds_[kind] = std::move(def);
  return ok_status();
}

std::vector<std::string> JobRunner::kinds() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [k, _] : kinds_) out.push_back(k);
  return out;
}

Result<JobRecord> JobRunner::load(Txn& t, uint64_t id) {
  LLMOPS_ASSIGN_OR_RETURN(auto raw, t.get(jobs_dbi_, u64_key(id)));
  if (!raw) return not_found("no job " + std::to_string(id) + " (llmopsctl jobs list shows the jobs)");
  auto j = parse_json_bounded(*raw, 64);
  if (!j.ok()) return data_loss("job " + std::to_string(id) + " record is not valid JSON");
  return JobRecord::from_json(*j);
}

Status JobRunner::put_record(const JobRecord& r) {
  return store_->write([&](Txn& t) { return t.put(jobs_dbi_, u64_key(r.id), dump_json(r.to_json())); });
}

Status JobRunner::update(uint64_t id, const std::function<void(JobRecord&)>& change) {
  return store_->write([&](Txn& t) -> Status {
    LLMOPS_ASSIGN_OR_RETURN(JobRecord r, load(t, id));
    change(r);
    r.updated_ms = unix_ms();
    return t.put(jobs_dbi_, u64_key(id), dump_json(r.to_json()));
  });
}

Status JobRunner::recover() {
  std::vector<uint64_t> requeue;
  LLMOPS_RETURN_IF_ERROR(store_->write([&](Txn& t) -> Status {
    requeue.clear();
    std::vector<JobRecord> changed;
    Status inner;
    LLMOPS_RETURN_IF_ERROR(t.scan(jobs_dbi_, {}, [&](std::string_view, std::string_view v) {
      auto j = parse_json_bounded(v, 64);
      if (!j.ok()) return true;
      auto r = JobRecord::from_json(*j);
      if (!r.ok() || job_state_final(r->state)) return true;
      auto kind = kinds_.find(r->kind);
      if (kind == kinds_.end()) {
        r->state = JobState::kInterrupted;
        r->message = "no loaded module provides job kind '" + r->kind + "'; load its module and resubmit";
        r->finished_ms = unix_ms();
        changed.push_back(*r);
      } else if (r->state == JobState::kRunning) {
        if (kind->second.resumable && !r->cancel_requested) {
          r->state = JobState::kQueued;
          r->message = "the daemon stopped while this job ran; it resumes from its last checkpoint";
          changed.push_back(*r);
          requeue.push_back(r->id);
        } else {
          r->state = r->cancel_requested ? JobState::kCancelled : JobState::kInterrupted;
          r->message = r->cancel_requested ? "cancelled" : "the daemon stopped while this job ran and its kind cannot resume; submit it again";
          r->finished_ms = unix_ms();
          changed.push_back(*r);
        }
      } else {
        requeue.push_back(r->id);
      }
      return true;
    }));
    for (auto& r : changed) {
      r.updated_ms = unix_ms();
      LLMOPS_RETURN_IF_ERROR(t.put(jobs_dbi_, u64_key(r.id), dump_json(r.to_json())));
    }
    return ok_status();
  }));
  std::lock_guard lock(mu_);
  for (uint64_t id : requeue) queue_.push_back(id);
  if (!requeue.empty()) log_info("jobs", std::to_string(requeue.size()) + " job(s) queued again after restart");
  return ok_status();
}

void JobRunner::start() {
  std::lock_guard lock(mu_);
  for (int i = 0; i < worker_count_; ++i) workers_.emplace_back([this] { worker(); });
}

Result<uint64_t> JobRunner::submit(const std::string& kind, Json params, const std::string& submitted_by) {
  if (stopping_) return unavailable("the daemon is shutting down; submit the job after it restarts");
  JobKind def;
  {
    std::lock_guard lock(mu_);
    auto it = kinds_.find(kind);
    if (it == kinds_.end()) {
      std::string known;
      for (const auto& [k, _] : kinds_) known += (known.empty() ? "" : ", ") + k;
      return not_found("unknown job kind '" + kind + "' (known: " + (known.empty() ? "none" : known) + ")");
    }
    def = it->second;
  }
  JobRecord r;
  r.kind = kind;
  r.owner = def.owner;
  r.params = params.is_null() ? Json::object() : std::move(params);
  r.submitted_by = submitted_by;
  r.created_ms = r.updated_ms = unix_ms();
  r.message = "queued";
  LLMOPS_RETURN_IF_ERROR(store_->write([&](Txn& t) -> Status {
    LLMOPS_ASSIGN_OR_RETURN(auto last, t.last_key(jobs_dbi_, {}));
    uint64_t next = 1;
    if (last) next = KeyReader(*last).u64().value_or(0) + 1;
    r.id = next;
    return t.insert(jobs_dbi_, u64_key(r.id), dump_json(r.to_json()));
  }));
  metrics_->counter("llmops_jobs_submitted_total", "Jobs submitted", {{"kind", kind}}).add();
  {
    std::lock_guard lock(mu_);
    queue_.push_back(r.id);
  }
  cv_.notify_one();
  return r.id;
}

Result<JobRecord> JobRunner::get(uint64_t id) {
  JobRecord r;
  LLMOPS_RETURN_IF_ERROR(store_->read([&](Txn& t) -> Status {
    LLMOPS_ASSIGN_OR_RETURN(r, load(t, id));
    return ok_status();
  }));
  std::lock_guard lock(mu_);
  auto it = live_.find(id);
  if (it != live_.end() && r.state == JobState::kRunning) {
    r.done = it->second->done;
    r.total = it->second->total;
    r.message = it->second->message;
  }
  return r;
}

Result<std::vector<JobRecord>> JobRunner::list(std::optional<JobState> state, size_t limit) {
  std::vector<JobRecord> out;
  LLMOPS_RETURN_IF_ERROR(store_->read([&](Txn& t) {
    return t.scan_reverse(jobs_dbi_, {}, [&](std::string_view, std::string_view v) {
      auto j = parse_json_bounded(v, 64);
      if (!j.ok()) return true;
      auto r = JobRecord::from_json(*j);
      if (r.ok() && (!state || r->state == *state)) out.push_back(std::move(r).value());
      return out.size() < limit;
    });
  }));
  std::lock_guard lock(mu_);
  for (auto& r : out) {
    auto it = live_.find(r.id);
    if (it != live_.end() && r.state == JobState::kRunning) {
      r.done = it->second->done;
      r.total = it->second->total;
      r.message = it->second->message;
    }
  }
  return out;
}

Status JobRunner::cancel(uint64_t id) {
  JobState before = JobState::kQueued;
  LLMOPS_RETURN_IF_ERROR(store_->write([&](Txn& t) -> Status {
    LLMOPS_ASSIGN_OR_RETURN(JobRecord r, load(t, id));
    before = r.state;
    if (job_state_final(r.state)) {
      return failed_precondition("job " + std::to_string(id) + " is already " + job_state_name(r.state));
    }
    r.cancel_requested = true;
    if (r.state == JobState::kQueued) {
      r.state = JobState::kCancelled;
      r.message = "cancelled before it started";
      r.finished_ms = unix_ms();
    }
    r.updated_ms = unix_ms();
    return t.put(jobs_dbi_, u64_key(id), dump_json(r.to_json()));
  }));
  std::lock_guard lock(mu_);
  auto it = live_.find(id);
  if (it != live_.end()) it->second->cancel = true;
  return ok_status();
}

bool JobRunner::is_cancelled(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = live_.find(id);
  return it != live_.end() && it->second->cancel.load();
}

void JobRunner::on_progress(uint64_t id, double done, double total, const std::string& message) {
  bool persist = false;
  {
    std::lock_guard lock(mu_);
    auto it = live_.find(id);
    if (it == live_.end()) return;
    it->second->done = done;
    it->second->total = total;
    it->second->message = message;
    uint64_t now = unix_ms();
    if (now - it->second->persisted_ms >= kProgressPersistMs) {
      it->second->persisted_ms = now;
      persist = true;
    }
  }
  if (persist) {
    (void)update(id, [&](JobRecord& r) {
      r.done = done;
      r.total = total;
      r.message = message;
    });
  }
}

Status JobRunner::store_checkpoint(uint64_t id, const std::string& json) {
  return store_->write([&](Txn& t) { return t.put(checkpoints_dbi_, u64_key(id), json); });
}

void JobRunner::worker() {
  for (;;) {
    uint64_t id = 0;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      id = queue_.front();
      queue_.pop_front();
      ++running_;
    }
    run_one(id);
    {
      std::lock_guard lock(mu_);
      --running_;
    }
    idle_cv_.notify_all();
  }
}

void JobRunner::run_one(uint64_t id) {
  JobRecord rec;
  JobKind kind;
  std::optional<std::string> checkpoint;
  auto live = std::make_shared<Live>();
  Status st = store_->write([&](Txn& t) -> Status {
    LLMOPS_ASSIGN_OR_RETURN(rec, load(t, id));
    if (rec.state != JobState::kQueued) return aborted("not queued");  // cancelled meanwhile
    rec.state = JobState::kRunning;
    rec.attempts += 1;
    rec.started_ms = rec.started_ms == 0 ? unix_ms() : rec.started_ms;
    rec.updated_ms = unix_ms();
    rec.message = rec.attempts > 1 ? "resumed (attempt " + std::to_string(rec.attempts) + ")" : "running";
    LLMOPS_ASSIGN_OR_RETURN(auto cp, t.get(checkpoints_dbi_, u64_key(id)));
    if (cp) checkpoint = std::string(*cp);
    return t.put(jobs_dbi_, u64_key(id), dump_json(rec.to_json()));
  });
  if (!st.ok()) {
    if (st.code() != Code::kAborted) log_error("jobs", "job " + std::to_string(id) + " could not start: " + st.message());
    return;
  }
  {
    std::lock_guard lock(mu_);
    kind = kinds_.at(rec.kind);
    live->done = rec.done;
    live->total = rec.total;
    live->message = rec.message;
    live_[id] = live;
  }
  log_info("jobs", "job " + std::to_string(id) + " (" + rec.kind + ") " + rec.message);
  JobContext ctx(this, rec, checkpoint);
  Status result;
  try {
    result = kind.fn(ctx);
  } catch (const std::exception& e) {
    result = internal_error(std::string("job threw: ") + e.what());
  }
  bool user_cancel = live->cancel.load();
  JobState final_state;
  std::string message;
  if (result.ok()) {
    final_state = JobState::kSucceeded;
    message = live->message.empty() || live->message == "running" ? "done" : live->message;
  } else if (result.code() == Code::kCancelled && user_cancel) {
    final_state = JobState::kCancelled;
    message = "cancelled" + (kind.resumable ? std::string(" (its last checkpoint is kept)") : "");
  } else if (result.code() == Code::kAborted && stopping_) {
    final_state = kind.resumable ? JobState::kQueued : JobState::kInterrupted;
    message = kind.resumable ? "paused by daemon shutdown; resumes from its checkpoint at the next start"
                             : "interrupted by daemon shutdown; submit it again";
  } else {
    final_state = JobState::kFailed;
    message = result.message();
  }
  Status saved = update(id, [&](JobRecord& r) {
    r.state = final_state;
    r.message = message;
    r.done = live->done;
    r.total = live->total;
    if (final_state == JobState::kSucceeded && r.total > 0) r.done = r.total;
    if (job_state_final(final_state)) r.finished_ms = unix_ms();
  });
  if (!saved.ok()) log_error("jobs", "job " + std::to_string(id) + ": could not record its end: " + saved.message());
  metrics_->counter("llmops_jobs_finished_total", "Jobs that reached a final state",
                    {{"kind", rec.kind}, {"state", job_state_name(final_state)}}).add();
  log_info("jobs", "job " + std::to_string(id) + " (" + rec.kind + ") " + job_state_name(final_state) + ": " + message);
  std::lock_guard lock(mu_);
  live_.erase(id);
}

bool JobRunner::shutdown(int timeout_ms) {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  std::unique_lock lock(mu_);
  bool idle = idle_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return running_ == 0; });
  if (idle) {
    lock.unlock();
    for (auto& t : workers_) t.join();
    workers_.clear();
    return true;
  }
  // Jobs still running past the deadline: settle them now as a crash would be settled.
  std::vector<uint64_t> stuck;
  for (const auto& [id, _] : live_) stuck.push_back(id);
  lock.unlock();
  for (uint64_t id : stuck) {
    (void)update(id, [&](JobRecord& r) {
      bool resumable = kinds_.count(r.kind) && kinds_.at(r.kind).resumable;
      if (!resumable) {
        r.state = JobState::kInterrupted;
        r.message = "did not stop within the drain timeout; interrupted";
        r.finished_ms = unix_ms();
      }
    });
  }
  for (auto& t : workers_) t.detach();
  workers_.clear();
  return false;
}

}  // namespace llmops
