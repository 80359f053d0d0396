// The bounded request log for the monitor stage: one JSON record per finished request (model
// version, caller, status, token counts, queue time, time to first token, inter-token latency;
// prompt and completion only for models whose admin turned log_bodies on), kept in the
// module's LMDB database under "r/<16 hex digits>" and trimmed to the newest `capacity`.
//
// Requests append to a buffer; a writer thread stores it every half second (or at 256
// records) as one transaction, so a busy server does not pay a disk sync per request.
// Threads: any; stop() flushes what is buffered.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "json.h"
#include "llmops/module.hpp"
#include "status.h"

namespace llmops::serving {

class RequestLog {
 public:
  RequestLog(sdk::Host host, uint64_t capacity) : host_(host), capacity_(capacity) {}
  ~RequestLog() { stop(); }

  // Finds where the stored log ends and starts the writer.
  Status start();
  void stop();
  void append(Json record);
  // The newest records first, at most limit, optionally of one model (version or requested name).
  Result<std::vector<Json>> newest(size_t limit, const std::string& model) const;
  uint64_t capacity() const { return capacity_; }

 private:
  void writer();
  Status flush(std::vector<std::string>* batch);

  sdk::Host host_;
  uint64_t capacity_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> pending_;  // dumped records, in order
  bool stop_ = false;
  std::thread thread_;
  // Writer thread only (and start()).
  uint64_t next_seq_ = 1;    // the key of the next record
  uint64_t oldest_seq_ = 1;  // the oldest stored record
};

}  // namespace llmops::serving
