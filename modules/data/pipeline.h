// Record-level operations as steps of one streaming pass, spread over worker threads.
//
// A step either transforms records on their own (clean, filter, pii: "stateless", any thread)
// or decides by what it has seen so far (dedup, near-dedup: "stateful", one thread, in record
// order). Workers run the steps up to the first stateless step that follows a stateful one, in
// batches, computing the stateful steps' keys and sketches too; the feeding thread then takes
// the batches back in order, lets the stateful steps decide, runs the remaining steps and
// writes what survives. The result is the same as running the steps one after another as
// separate operations, in one read and one write of the data.
//
// Threads: push/finish from one thread (the job's); steps' stateless methods from workers.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "data/minhash.h"
#include "data/ops_internal.h"

namespace llmops::data::ops_detail {

// A stateful step's key for one record, computed on a worker.
struct Prepared {
  uint64_t a = 0, b = 0;  // dedup: 128 bits of the dedup key's hash
  Sketch sketch;          // near-dedup
};

class Step {
 public:
  virtual ~Step() = default;
  virtual const char* name() const = 0;
  virtual bool stateful() const { return false; }
  // Stateless steps, any thread: keep (true) or drop the record; *rewritten receives a changed
  // line. rep is the calling batch's own report for this step.
  virtual Result<bool> transform(Record&, std::optional<std::string>* /*rewritten*/, OpReport&) { return true; }
  // Stateful steps, any thread: the record's key.
  virtual void prepare(Record&, Prepared&) const {}
  // Stateful steps, the feeding thread, in record order: keep (true) or drop.
  virtual bool decide(Prepared&, std::string_view /*line*/, OpReport&) { return true; }
  // After the last record.
  virtual void finish(OpReport&) {}
};

// One step of a kind ("clean", "filter", "dedup", "near-dedup", "pii") with its parameters
// (those of the operation of the same name).
Result<std::unique_ptr<Step>> make_step(const std::string& op, const Json& params);
bool is_step(const std::string& op);

class Pipeline {
 public:
  // threads: workers (at least 1); writes what survives to out.
  Pipeline(std::vector<std::unique_ptr<Step>> steps, ShardWriter* out, int threads);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  Status push(std::string line);  // one record (a valid JSON object line)
  Status finish();                // everything pushed is written; reports are complete
  // Per step, in order.
  const std::vector<OpReport>& reports() const { return reports_; }
  const std::vector<std::unique_ptr<Step>>& steps() const { return steps_; }

 private:
  struct Item {
    std::string line;
    int dropped_at = -1;  // a parallel stateless step dropped it
    std::vector<Prepared> prepared;
    ScannedObject scan;
    bool scanned = false;
  };
  struct Batch {
    std::vector<Item> items;
    std::vector<OpReport> reports;  // the parallel steps' counts for this batch
    Status status;
    bool done = false;
  };
  void work();
  void process(Batch& b);
  Status dispatch();
  Status consume_front();
  Status finish_item(Item& item);

  std::vector<std::unique_ptr<Step>> steps_;
  size_t parallel_end_ = 0;  // steps [0, parallel_end_) run (or prepare) on workers
  ShardWriter* out_;
  std::vector<OpReport> reports_;
  std::unique_ptr<Batch> filling_;
  size_t filling_bytes_ = 0;
  std::deque<std::unique_ptr<Batch>> in_flight_;  // in record order
  size_t max_in_flight_;
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<Batch*> queue_;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace llmops::data::ops_detail
