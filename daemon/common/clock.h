// Wall-clock time for records (jobs, keys, blobs, audit). Any thread.
#pragma once

#include <chrono>
#include <cstdint>

namespace llmops {

// Milliseconds since the Unix epoch.
inline uint64_t unix_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

}  // namespace llmops
