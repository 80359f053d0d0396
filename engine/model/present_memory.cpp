#include "model/present_memory.h"

#include <sys/mman.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>

#if defined(__SANITIZE_ADDRESS__)
#define LLMOPS_PRESENT_ON_HEAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LLMOPS_PRESENT_ON_HEAP 1
#endif
#endif

namespace llmops::engine {

namespace {

#ifndef LLMOPS_PRESENT_ON_HEAP
// Blocks given back by a sequence that finished, kept for the next one that needs no zeroing (a
// KV cache): mapping and populating anew costs the hypervisor a fault per page the first time
// each is written (a 16-stream decode step spent ~6% of its time there with a cache per request).
// Bounded; a block serves a request of up to 25% less.
class Recycler {
 public:
  static constexpr size_t kMinBytes = size_t{1} << 20, kMaxHeld = size_t{128} << 20;

  void* take(size_t bytes) {
    std::lock_guard lock(mu_);
    auto it = free_.lower_bound(bytes);
    if (it == free_.end() || it->first > bytes + bytes / 4) return nullptr;
    void* p = it->second;
    held_ -= it->first;
    if (it->first != bytes) larger_[p] = it->first;
    free_.erase(it);
    return p;
  }

  // The block's real size (as mapped) after a take of fewer bytes.
  size_t real_size(void* p, size_t bytes) {
    std::lock_guard lock(mu_);
    auto it = larger_.find(p);
    if (it == larger_.end()) return bytes;
    const size_t size = it->second;
    larger_.erase(it);
    return size;
  }

  bool keep(void* p, size_t size) {
    if (size < kMinBytes) return false;
    std::lock_guard lock(mu_);
    if (held_ + size > kMaxHeld) return false;
    free_.emplace(size, p);
    held_ += size;
    return true;
  }

 private:
  std::mutex mu_;
  std::multimap<size_t, void*> free_;
  std::unordered_map<void*, size_t> larger_;
  size_t held_ = 0;
};

Recycler& recycler() {
  static Recycler* r = new Recycler();  // never destroyed: blocks may come back during exit
  return *r;
}
#endif

}  // namespace

void* map_present(size_t bytes, bool zeroed) {
#ifdef LLMOPS_PRESENT_ON_HEAP
  void* p = zeroed ? std::calloc(1, bytes) : std::malloc(bytes);
  if (p == nullptr) throw std::bad_alloc();
  return p;
#else
  if (!zeroed && bytes >= Recycler::kMinBytes) {
    if (void* p = recycler().take(bytes)) return p;
  }
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
  const size_t size = recycler().real_size(p, bytes);
  if (!recycler().keep(p, size)) munmap(p, size);
#endif
}

}  // namespace llmops::engine
