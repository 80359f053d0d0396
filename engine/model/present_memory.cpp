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

  // A block given back (bytes as its owner asked for it): kept when there is room, else returned
  // with its real size (as mapped: a take may have handed out more) for the caller to unmap.
  size_t give_back(void* p, size_t bytes) {
    std::lock_guard lock(mu_);
    size_t size = bytes;
    if (auto it = larger_.find(p); it != larger_.end()) size = it->second, larger_.erase(it);
    if (size < kMinBytes || held_ + size > kMaxHeld) return size;
    free_.emplace(size, p);
    held_ += size;
    return 0;
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
  if (const size_t size = recycler().give_back(p, bytes); size > 0) munmap(p, size);
#endif
}

}  // namespace llmops::engine
