/* The counter hash every device draws its randomness from (driver.h's dropout() and sample()
 * state it): a value is a function of a key and an index, so the CPU trainer, the CUDA driver
 * and the reference driver draw the same bits. Compiles as C, C++ and CUDA (host and device). */
#ifndef LLMOPS_COUNTER_HASH_H
#define LLMOPS_COUNTER_HASH_H

#include <stdint.h>

#ifdef __CUDACC__
#define LLMOPS_HASH_FN __host__ __device__ static inline
#else
#define LLMOPS_HASH_FN static inline
#endif

#define LLMOPS_HASH_GAMMA 0x9E3779B97F4A7C15ull

LLMOPS_HASH_FN uint64_t llmops_splitmix64(uint64_t z) {
  z += LLMOPS_HASH_GAMMA;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* A float in [0, 1): the top 24 bits of a hash over 2^24. */
LLMOPS_HASH_FN float llmops_unit_float(uint64_t h) { return (float)(h >> 40) * (1.0f / 16777216.0f); }

/* Element i of key's stream (dropout's mask): u(key, i). */
LLMOPS_HASH_FN float llmops_hash_unit(uint64_t key, uint64_t i) { return llmops_unit_float(llmops_splitmix64(key + i * LLMOPS_HASH_GAMMA)); }

/* A sampling draw: u(seed, counter). */
LLMOPS_HASH_FN float llmops_draw_unit(uint64_t seed, uint64_t counter) {
  return llmops_unit_float(llmops_splitmix64(seed ^ (counter * LLMOPS_HASH_GAMMA)));
}

#endif /* LLMOPS_COUNTER_HASH_H */
