#include "model/present_memory.h"

#include <sys/mman.h>

#include <cstdlib>

#if defined(__SANITIZE_ADDRESS__)
#define LLMOPS_PRESENT_ON_HEAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LLMOPS_PRESENT_ON_HEAP 1
#endif
#endif

namespace llmops::engine {

void* map_present(size_t bytes) {
#ifdef LLMOPS_PRESENT_ON_HEAP
  void* p = std::calloc(1, bytes);
  if (p == nullptr) throw std::bad_alloc();
  return p;
#else
  const int populate = bytes <= kPopulateLimit ? MAP_POPULATE : 0;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | populate, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return p;
#endif
}

void unmap_present(void* p, size_t bytes) {
#ifdef LLMOPS_PRESENT_ON_HEAP
  (void)bytes;
  std::free(p);
#else
  munmap(p, bytes);
#endif
}

}  // namespace llmops::engine
