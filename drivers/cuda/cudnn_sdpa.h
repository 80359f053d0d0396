// Causal flash attention, forward and backward, through cuDNN's backend graph API. cuDNN is opened
// with dlopen on first use, so a driver built with this file still loads where cuDNN is missing;
// every call then answers kSdpaUnsupported and the caller runs its own kernel.
// One CudnnSdpa per driver (device + stream), used by one thread at a time.
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>

#include <string>

namespace llmops::cuda {

struct SdpaShape { int batch, seq, heads, kv_heads, head_dim; float scale; };

// One per driver (per device+stream). Opens libcudnn.so.9 with dlopen on first use (so the
// driver loads and works on machines without cuDNN: every call then returns kSdpaUnsupported),
// creates a cudnnHandle_t bound to the stream, caches finalized execution plans per SdpaShape
// (forward and backward separately), owns its workspace (cudaMalloc, grown as needed).
class CudnnSdpa;
CudnnSdpa* sdpa_create(int device, cudaStream_t stream);   // never fails; nullptr only on OOM
void sdpa_destroy(CudnnSdpa*);

constexpr int kSdpaOk = 0, kSdpaUnsupported = 1, kSdpaError = 2;

// Tensors in the training layout, all BF16 (__nv_bfloat16 storage), row-major:
//   q, o, dq, do: [batch][seq][heads][head_dim]
//   k, v, dk, dv: [batch][seq][kv_heads][head_dim]
//   stats (float): [batch][heads][seq]  = each query row's log-sum-exp (natural log) of the
//                  scaled, causally masked scores: m + log(sum exp(s - m)).
// Causal: query i attends keys 0..i (top-left aligned, same seq for q and kv).
// kSdpaUnsupported: cuDNN absent, too old (< 9.0), or no engine takes this shape (graph or
// plan finalize failed with NOT_SUPPORTED etc.) — the caller then runs its own kernel, and the
// shape is remembered as unsupported so it is not retried. kSdpaError: an execution failure;
// *why gets words (what failed and the cudnnGetErrorString text).
// All pointers must be 16-byte aligned (else kSdpaUnsupported for that call). Work is queued on
// the stream given to sdpa_create; nothing is synchronised.
int sdpa_forward(CudnnSdpa*, const SdpaShape&, const void* q, const void* k, const void* v, void* o, float* stats,
                 std::string* why);
// dq, dk, dv are overwritten; with kv_heads < heads, dk and dv hold the sums over each group.
int sdpa_backward(CudnnSdpa*, const SdpaShape&, const void* q, const void* k, const void* v, const void* o,
                  const void* dO, const float* stats, void* dq, void* dk, void* dv, std::string* why);

// Whether cuDNN is here and has a plan for the shape (built now if not yet), so the caller can
// set up the call only when it will run; false with why.
bool sdpa_takes(CudnnSdpa*, const SdpaShape&, bool backward, std::string* why);

// The driver's F32 training tensors (attention_train's layout, lse for stats) through the
// graphs above: rounded to BF16 in scratch (sdpa_f32_scratch_bytes), the results widened back.
// The same kSdpa* answers; on kSdpaUnsupported nothing was written to the outputs.
uint64_t sdpa_f32_scratch_bytes(const SdpaShape& s, bool backward);
int sdpa_forward_f32(CudnnSdpa*, const SdpaShape&, const float* q, const float* k, const float* v, float* out, float* lse, void* scratch,
                     std::string* why);
int sdpa_backward_f32(CudnnSdpa*, const SdpaShape&, const float* q, const float* k, const float* v, const float* out, const float* lse,
                      const float* dout, float* dq, float* dk, float* dv, void* scratch, std::string* why);

// cuDNN's version (e.g. 90800) once opened, 0 when it is not there; and why not, in words.
// Both open cuDNN if no call has yet; the version is 0 whenever cuDNN cannot be used here.
int sdpa_cudnn_version(CudnnSdpa*);
std::string sdpa_unavailable_reason(CudnnSdpa*);

}  // namespace llmops::cuda
