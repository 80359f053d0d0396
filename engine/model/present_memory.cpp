#include "model/present_memory.h"

#include <sys/mman.h>

#include <cstdint>
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

constexpr size_t kHugePage = size_t{2} << 20;

// Blocks of 2 MiB or more start on a huge-page boundary, so every whole 2 MiB of them can be a
// huge page; the tail past the last whole one stays in 4 KiB pages (rounding the block up would
// commit up to 2 MiB that nothing asked for).
bool wants_huge(size_t bytes) { return bytes >= kHugePage; }

// An anonymous mapping of bytes (aligned as above: the unaligned head and tail of a larger
// reservation cut off). huge: advised to take huge pages. populate: made present now, in as few
// faults as the pages allow.
void* map_anonymous(size_t bytes, bool huge, bool populate) {
  const size_t length = (bytes + 4095) / 4096 * 4096;
  const bool aligned_block = wants_huge(bytes);
  huge = huge && aligned_block;
  const size_t reserve = aligned_block ? length + kHugePage : length;
  const int flags = MAP_PRIVATE | MAP_ANONYMOUS | (populate && !huge ? MAP_POPULATE : 0);
  void* raw = mmap(nullptr, reserve, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  if (!aligned_block) return raw;
  const auto start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > start) munmap(raw, aligned - start);
  if (const uintptr_t end = aligned + length, raw_end = start + reserve; raw_end > end) munmap(reinterpret_cast<void*>(end), raw_end - end);
  void* p = reinterpret_cast<void*>(aligned);
  if (!huge) return p;
  madvise(p, length, MADV_HUGEPAGE);  // advice only: without it the pages are 4 KiB ones
  if (populate) {
#ifdef MADV_POPULATE_WRITE
    if (madvise(p, length, MADV_POPULATE_WRITE) == 0) return p;
#endif
    for (size_t at = 0; at < length; at += 4096) static_cast<volatile uint8_t*>(p)[at] = 0;
  }
  return p;
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
  // Past the populate limit pages stay 4 KiB: a huge page faulted in by one write would commit
  // 2 MiB of a cache that may never fill.
  const bool populate = bytes <= kPopulateLimit;
  return map_anonymous(bytes, populate, populate);
#endif
}

void* map_whole(size_t bytes) {
#ifdef LLMOPS_PRESENT_ON_HEAP
  return map_present(bytes, false);
#else
  return map_anonymous(bytes, true, false);
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

void unmap_whole(void* p, size_t bytes) {
#ifdef LLMOPS_PRESENT_ON_HEAP
  (void)bytes;
  std::free(p);
#else
  munmap(p, bytes);
#endif
}

}  // namespace llmops::engine
