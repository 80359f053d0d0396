// Memory made present when it is handed out. A page touched for the first time costs a fault
// (~18 µs on the 2-vCPU VMs here, where a fault exits to the hypervisor); a buffer of a few MiB
// written at once, as the runner's activations on a prompt's first chunk or a new sequence's KV
// cache, would pay thousands of them inside the step that needs it. One mmap with MAP_POPULATE
// makes the pages present in a single call instead. Up to kPopulateLimit: past it pages fault as
// they are first written, so a huge context does not commit memory it may never fill.
// Mappings of 2 MiB or more ask for transparent huge pages (MADV_HUGEPAGE; the kernel's default
// here is to give them only where asked): a decode step streams every weight and a batch's KV
// caches, and with 4 KiB pages the reads stall at each page (a 116 MiB sweep on two threads read
// at 24.5-31.3 GB/s with 4 KiB pages, 33.1-33.9 with 2 MiB ones), and populating takes one fault
// per 2 MiB instead of per 4 KiB. Such mappings start on a 2 MiB boundary; a tail short of 2 MiB
// stays in 4 KiB pages.
// Under AddressSanitizer everything stays on the heap, where it sees reads and writes past it.
#pragma once

#include <cstddef>
#include <new>

namespace llmops::engine {

inline constexpr size_t kPopulateLimit = size_t{64} << 20;

// bytes (> 0) of memory, present up to kPopulateLimit; std::bad_alloc when it is not there. zeroed:
// all zero bytes; otherwise it may be a block another buffer gave back (KV caches, where nothing
// is read before it is written), which is present already.
void* map_present(size_t bytes, bool zeroed = true);
// bytes (> 0) of memory that the caller fills whole at once (weights): huge pages where it is
// large enough at any size, faulted in as it is written (so filling it while dropping what it
// replaces does not hold both at once). Give it back with unmap_whole.
void* map_whole(size_t bytes);
// Gives a map_present block back: kept for a later map_present(…, zeroed = false) while the
// recycler has room, else unmapped.
void unmap_present(void* p, size_t bytes);
// Gives a map_whole block back to the system at once: an unloaded model's weights are not kept
// for KV caches.
void unmap_whole(void* p, size_t bytes);

// For std::unique_ptr<uint8_t, PresentDeleter>: gives a map_present block (whole: a map_whole
// block) back.
struct PresentDeleter {
  size_t bytes = 0;
  bool whole = false;
  void operator()(void* p) const {
    if (whole) unmap_whole(p, bytes);
    else unmap_present(p, bytes);
  }
};

// For std::vector: blocks of at least kMinBytes come from map_present, smaller ones from new.
template <typename T>
struct PresentAllocator {
  using value_type = T;
  static constexpr size_t kMinBytes = size_t{128} << 10;
  PresentAllocator() = default;
  template <typename U>
  PresentAllocator(const PresentAllocator<U>&) {}  // NOLINT(google-explicit-constructor): rebinding
  T* allocate(size_t n) {
    const size_t bytes = n * sizeof(T);
    return static_cast<T*>(bytes >= kMinBytes ? map_present(bytes) : ::operator new(bytes));
  }
  void deallocate(T* p, size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes >= kMinBytes) unmap_present(p, bytes);
    else ::operator delete(p);
  }
  template <typename U>
  bool operator==(const PresentAllocator<U>&) const { return true; }
};

}  // namespace llmops::engine
