// The CUDA driver's state (one llmops_drv per opened device) and the helpers its files share:
// errors as LLMOPS_DRV_E* codes with words, and the growable scratch area.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "cudnn_sdpa.h"
#include "llmops/driver.h"

struct llmops_drv {
  int device = 0;
  int multiprocessors = 1;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  cudaEvent_t marks[2] = {nullptr, nullptr};
  void* pinned = nullptr;
  uint64_t pinned_bytes = 0;
  void* scratch = nullptr;
  uint64_t scratch_bytes = 0;
  std::vector<void*> retired;  // outgrown scratch areas: recorded graphs may still point at them
  void* blas_workspace = nullptr;  // given to cuBLAS so that captured products allocate nothing
  int math = LLMOPS_MATH_F32;      // how the training gemm multiplies (set_math)
  bool pooled = false;             // allocations from the device's memory pool, in stream order
  // upload_async's copy queue, made at its first use (most drivers never stream a layer): two
  // pinned halves that host copies and DMA take in turn, and per slot the compute stream's
  // release and the copy's landing.
  cudaStream_t copy_stream = nullptr;
  void* ring = nullptr;
  int ring_next = 0;  // the half the next chunk takes: kept across calls, so a call starts on the half freed longest ago
  cudaEvent_t ring_free[2] = {nullptr, nullptr};
  cudaEvent_t released[LLMOPS_DRV_UPLOAD_SLOTS] = {};
  cudaEvent_t landed[LLMOPS_DRV_UPLOAD_SLOTS] = {};
  bool ever_released[LLMOPS_DRV_UPLOAD_SLOTS] = {};
  cudaEvent_t copies_done = nullptr;  // recorded on the copy stream before a free
  llmops::cuda::CudnnSdpa* sdpa = nullptr;       // cuDNN's flash attention for BF16 training, opened at first use
  bool cudnn_attention = true;     // LLMOPS_CUDNN_ATTENTION=0 keeps training attention on our kernels
  bool sdpa_told = false;          // which attention path BF16 training takes has been said once
  bool int8_mma = false;           // int8 mma.sync (sm_80 and newer): quantised weights × many tokens without widening
  std::string error;
};

namespace llmops::cuda {

// Sets the error words (d's, or the thread's for a failed open) and returns code.
int fail(llmops_drv* d, int code, const std::string& what);
int cuda_fail(llmops_drv* d, cudaError_t e, const char* what);
int blas_fail(llmops_drv* d, cublasStatus_t st, const char* what);
#define DRV_CUDA(d, call, what)                  \
  do {                                           \
    cudaError_t e_ = (call);                     \
    if (e_ != cudaSuccess) return cuda_fail(d, e_, what); \
  } while (0)

// d->scratch of at least bytes (outgrown areas are kept until close: graphs may point at them).
int ensure_scratch(llmops_drv* d, uint64_t bytes);

// uploads.cu: the copy queue of ABI 1.2's overlapped uploads.
int drv_upload_async(llmops_drv* d, void* dst, const void* src, uint64_t bytes, int slot);
int drv_upload_release(llmops_drv* d, int slot);
int drv_upload_wait(llmops_drv* d, int slot);
// Orders work queued on the compute stream from now on after every copy queued so far.
void after_copies(llmops_drv* d);
// Waits for the copies and releases the queue (close).
void close_copy_queue(llmops_drv* d);

}  // namespace llmops::cuda
