// The counter hash the drivers and the CPU trainer share (driver.h states it): dropout masks
// and sampling draws are functions of a key and an index, the same on every device.
#pragma once

#include <stdint.h>

namespace llmops::cuda {

__device__ inline uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A float in [0, 1) from the top 24 bits of a hash.
__device__ inline float unit_float(uint64_t h) { return static_cast<float>(h >> 40) * (1.0f / 16777216.0f); }

}  // namespace llmops::cuda
