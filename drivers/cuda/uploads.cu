// ABI 1.2's overlapped uploads: a copy stream of the driver's own, made at first use (most
// drivers never stream a layer), two pinned halves that host copies and DMA take in turn, and
// per slot the compute stream's release and the copy's landing as events.
#include <algorithm>
#include <cstring>
#include <string>

#include "drv.h"

namespace llmops::cuda {
namespace {

constexpr uint64_t kRingHalfBytes = 32ull << 20;

int ensure_copy_queue(llmops_drv* d) {
  if (d->copy_stream != nullptr) return LLMOPS_DRV_OK;
  if (d->ring == nullptr) DRV_CUDA(d, cudaMallocHost(&d->ring, 2 * kRingHalfBytes), "allocating pinned buffers for streamed uploads");
  auto make = [d](cudaEvent_t& e) { return e != nullptr ? cudaSuccess : cudaEventCreateWithFlags(&e, cudaEventDisableTiming); };
  for (cudaEvent_t& e : d->ring_free) DRV_CUDA(d, make(e), "creating an event");
  for (int i = 0; i < LLMOPS_DRV_UPLOAD_SLOTS; ++i) {
    DRV_CUDA(d, make(d->released[i]), "creating an event");
    DRV_CUDA(d, make(d->landed[i]), "creating an event");
  }
  DRV_CUDA(d, make(d->copies_done), "creating an event");
  // Made last: its presence says the queue is whole.
  DRV_CUDA(d, cudaStreamCreateWithFlags(&d->copy_stream, cudaStreamNonBlocking), "creating the copy stream");
  return LLMOPS_DRV_OK;
}

int check_slot(llmops_drv* d, int slot) {
  if (slot < 0 || slot >= LLMOPS_DRV_UPLOAD_SLOTS) return fail(d, LLMOPS_DRV_EINVAL, "upload slot " + std::to_string(slot) + " is out of range");
  return LLMOPS_DRV_OK;
}

}  // namespace

// The copy waits for the slot's last release. A slot never released waits for the work queued
// so far instead: dst may be memory the compute stream has just allocated from its pool.
int drv_upload_async(llmops_drv* d, void* dst, const void* src, uint64_t bytes, int slot) {
  if (int rc = check_slot(d, slot); rc != LLMOPS_DRV_OK) return rc;
  DRV_CUDA(d, cudaSetDevice(d->device), "selecting the device");
  if (int rc = ensure_copy_queue(d); rc != LLMOPS_DRV_OK) return rc;
  if (!d->ever_released[slot]) DRV_CUDA(d, cudaEventRecord(d->released[slot], d->stream), "recording an event");
  DRV_CUDA(d, cudaStreamWaitEvent(d->copy_stream, d->released[slot], 0), "ordering the upload after the slot's readers");
  for (uint64_t done = 0; done < bytes; d->ring_next ^= 1) {
    const int half = d->ring_next;
    const uint64_t n = std::min(kRingHalfBytes, bytes - done);
    uint8_t* buf = static_cast<uint8_t*>(d->ring) + half * kRingHalfBytes;
    DRV_CUDA(d, cudaEventSynchronize(d->ring_free[half]), "waiting for a pinned buffer");  // its last copy has left
    std::memcpy(buf, static_cast<const uint8_t*>(src) + done, n);
    DRV_CUDA(d, cudaMemcpyAsync(static_cast<uint8_t*>(dst) + done, buf, n, cudaMemcpyHostToDevice, d->copy_stream), "copying to the device");
    DRV_CUDA(d, cudaEventRecord(d->ring_free[half], d->copy_stream), "recording an event");
    done += n;
  }
  DRV_CUDA(d, cudaEventRecord(d->landed[slot], d->copy_stream), "recording an event");
  return LLMOPS_DRV_OK;
}

int drv_upload_release(llmops_drv* d, int slot) {
  if (int rc = check_slot(d, slot); rc != LLMOPS_DRV_OK) return rc;
  DRV_CUDA(d, cudaSetDevice(d->device), "selecting the device");
  if (int rc = ensure_copy_queue(d); rc != LLMOPS_DRV_OK) return rc;
  DRV_CUDA(d, cudaEventRecord(d->released[slot], d->stream), "recording an event");
  d->ever_released[slot] = true;
  return LLMOPS_DRV_OK;
}

int drv_upload_wait(llmops_drv* d, int slot) {
  if (int rc = check_slot(d, slot); rc != LLMOPS_DRV_OK) return rc;
  if (d->copy_stream == nullptr) return LLMOPS_DRV_OK;  // nothing was ever uploaded this way
  DRV_CUDA(d, cudaStreamWaitEvent(d->stream, d->landed[slot], 0), "waiting for an upload");
  return LLMOPS_DRV_OK;
}

void after_copies(llmops_drv* d) {
  if (d->copy_stream != nullptr && cudaEventRecord(d->copies_done, d->copy_stream) == cudaSuccess) {
    cudaStreamWaitEvent(d->stream, d->copies_done, 0);
  }
}

void close_copy_queue(llmops_drv* d) {
  if (d->copy_stream != nullptr) {
    cudaStreamSynchronize(d->copy_stream);
    cudaStreamDestroy(d->copy_stream);
  }
  for (cudaEvent_t e : d->ring_free) {
    if (e != nullptr) cudaEventDestroy(e);
  }
  if (d->copies_done != nullptr) cudaEventDestroy(d->copies_done);
  for (int i = 0; i < LLMOPS_DRV_UPLOAD_SLOTS; ++i) {
    if (d->released[i] != nullptr) cudaEventDestroy(d->released[i]);
    if (d->landed[i] != nullptr) cudaEventDestroy(d->landed[i]);
  }
  if (d->ring != nullptr) cudaFreeHost(d->ring);
}

}  // namespace llmops::cuda
