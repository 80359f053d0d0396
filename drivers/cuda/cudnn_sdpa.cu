// Causal flash attention through cuDNN's backend graph API (cudnnBackend* calls, no frontend
// library). The operation graphs are the ones cudnn-frontend's composite sdpa / sdpa_backward
// nodes lower to, op for op, so cuDNN's fused flash-attention engines recognise them.
//
// The graphs (cudnn_sdpa_graphs.cpp, which gives their layouts):
// Forward:
//   s  = matmul(Q, Kᵀ) * scale                      [B,H,S,S]   scale by value
//   s  = binary_select(s, -inf, gen_index(row) >= gen_index(col))   causal, INT32 / BOOLEAN
//   mx = reduce_max(s);  e = exp(s - mx);  z = reduce_add(e)        mx, z: [B,H,S,1]
//   Stats = mx + log(z)                              graph output
//   O  = matmul(e / z, V)                            e / z is BF16: bmm2 takes the I/O type
// Backward:
//   sum = reduce_add(dO * O) * 1                     [B,H,S,1], FLOAT in our workspace
//   p   = exp(causal(matmul(Q, Kᵀ) * scale - Stats))
//   dV  = matmul(pᵀ, dO)                             pᵀ a BF16 reshape (strides swapped)
//   ds  = (matmul(dO, Vᵀ) - sum) * p * scale
//   dK  = matmul(dsᵀ, Q)                             dsᵀ likewise
//   dQa = matmul(ds, K) -> dQ = identity(dQa)        dQa: FLOAT accumulator in our workspace
// With kv_heads < heads, dV and dK first come out per query head (BF16 virtual) and a sum
// reduction folds each group onto its kv head.
#include "cudnn_sdpa.h"

#include "cudnn_backend.h"
#include "cudnn_sdpa_graphs.h"
#include "kernels.cuh"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <new>
#include <initializer_list>
#include <string>
#include <tuple>
#include <vector>

namespace llmops::cuda {
namespace sdpa_detail {

using namespace cudnn_backend;

// Masked scores are set to -inf; cuDNN before 9.10 wants the lowest finite float instead
// (cudnn-frontend makes the same switch).
float masked_value(int version) {
  return version >= 91000 ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::lowest();
}

// Why cuDNN should not be asked for this shape, or "" when it may be. Limits are those
// cudnn-frontend and Transformer Engine check before offering cuDNN's flash attention.
std::string shape_refusal(const SdpaShape& s, bool backward, int version, int sm) {
  if (s.batch <= 0 || s.seq <= 0 || s.heads <= 0 || s.kv_heads <= 0 || s.head_dim <= 0)
    return "empty or negative dimension";
  if (s.heads % s.kv_heads != 0) return "heads is not a multiple of kv_heads";
  if (!std::isfinite(s.scale)) return "scale is not finite";
  if (s.head_dim % 8 != 0) return "head_dim is not a multiple of 8";
  if (sm < 80) return "flash attention in cuDNN needs SM 8.0 or newer (device is SM " + std::to_string(sm) + ")";
  // Head dims past 128 with stats (training) are only offered on Hopper from 9.5.
  if (s.head_dim > 128 && !(sm == 90 && version >= 90500 && s.head_dim <= 256))
    return "head_dim " + std::to_string(s.head_dim) + " is past what cuDNN " + std::to_string(version) +
           " offers on SM " + std::to_string(sm);
  if (!backward && (version == 91000 || version == 91001))
    return "cuDNN 9.10.0/9.10.1 have known flash-attention forward bugs";
  // Up to 9.15.0 the backward reads out of bounds when seq % 128 != 0 without a padding mask
  // (the frontend adds a padding mask to dodge it; we do not build that variant).
  if (backward && s.seq % 128 != 0 && version <= 91500)
    return "cuDNN " + std::to_string(version) + " backward needs seq % 128 == 0";
  return "";
}

struct Key {
  int b, s, h, hk, d;
  uint32_t scale_bits;
  bool operator<(const Key& o) const {
    if (b != o.b) return b < o.b;
    if (s != o.s) return s < o.s;
    if (h != o.h) return h < o.h;
    if (hk != o.hk) return hk < o.hk;
    if (d != o.d) return d < o.d;
    return scale_bits < o.scale_bits;
  }
};

Key key_of(const SdpaShape& s) {
  Key k{s.batch, s.seq, s.heads, s.kv_heads, s.head_dim, 0};
  std::memcpy(&k.scale_bits, &s.scale, sizeof k.scale_bits);
  return k;
}

// A built plan, or why this shape has none.
struct Entry {
  std::unique_ptr<Graph> graph;
  std::string refusal;
};

// Makes `device` current for a scope and puts the caller's device back.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {  // device < 0: nothing to switch to
    if (device < 0) return;
    if (cudaGetDevice(&previous_) != cudaSuccess) {
      cudaGetLastError();  // no GPU: our failed query must not linger as the thread's error
      return;
    }
    if (previous_ == device) return;
    switched_ = cudaSetDevice(device) == cudaSuccess;
    if (!switched_) cudaGetLastError();
  }
  ~DeviceScope() {
    if (switched_) cudaSetDevice(previous_);
  }

 private:
  int previous_ = 0;
  bool switched_ = false;
};

std::string describe(const SdpaShape& s, bool backward) {
  return std::string("cuDNN SDPA ") + (backward ? "backward" : "forward") + " (batch " + std::to_string(s.batch) +
         ", seq " + std::to_string(s.seq) + ", heads " + std::to_string(s.heads) + "/" + std::to_string(s.kv_heads) +
         ", head_dim " + std::to_string(s.head_dim) + ")";
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

}  // namespace sdpa_detail

using namespace sdpa_detail;

class CudnnSdpa {
 public:
  CudnnSdpa(int device, cudaStream_t stream) : device_(device), stream_(stream) {}
  CudnnSdpa(const CudnnSdpa&) = delete;
  CudnnSdpa& operator=(const CudnnSdpa&) = delete;

  ~CudnnSdpa() {
    DeviceScope scope(device_);
    forward_.clear();  // plans before the handle they were made with
    backward_.clear();
    if (handle_ != nullptr) api().Destroy(handle_);
    if (workspace_ != nullptr) cudaFree(workspace_);
    for (void* p : retired_) cudaFree(p);
  }

  // Loads cuDNN and makes the handle, once; false (with reason()) when cuDNN cannot be used.
  bool open() {
    if (opened_) return handle_ != nullptr;
    opened_ = true;
    const Api& a = api();
    if (!a.error.empty()) {
      reason_ = a.error;
      return false;
    }
    version_ = a.version;
    const std::string found = "cuDNN " + std::to_string(version_) + " found, but ";
    int major = 0, minor = 0;
    cudaError_t e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device_);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device_);
    if (e != cudaSuccess) {
      cudaGetLastError();
      reason_ = found + "CUDA device " + std::to_string(device_) + ": " + cudaGetErrorString(e);
      return false;
    }
    sm_ = major * 10 + minor;
    cudnnHandle_t h = nullptr;
    cudnnStatus_t st = a.Create(&h);
    if (st != CUDNN_STATUS_SUCCESS) {
      cudaGetLastError();
      reason_ = found + "cudnnCreate: " + status_words(st);
      return false;
    }
    st = a.SetStream(h, stream_);
    if (st != CUDNN_STATUS_SUCCESS) {
      reason_ = found + "cudnnSetStream: " + status_words(st);
      a.Destroy(h);
      return false;
    }
    handle_ = h;
    return true;
  }

  int version() const { return version_; }
  const std::string& reason() const { return reason_; }

  // The plan for this shape, built on first sight; nullptr (and why) when it has none.
  Graph* plan(const SdpaShape& s, bool backward, std::string* why) {
    std::map<Key, Entry>& cache = backward ? backward_ : forward_;
    const Key key = key_of(s);
    auto it = cache.find(key);
    if (it == cache.end()) {
      Entry entry;
      std::string refusal = shape_refusal(s, backward, version_, sm_);
      if (refusal.empty()) {
        std::unique_ptr<Graph> g(new (std::nothrow) Graph(handle_));
        if (g == nullptr) {
          say(why, describe(s, backward) + ": out of host memory");
          return nullptr;  // not remembered: says nothing about the shape
        }
        if (backward)
          build_backward(*g, s);
        else
          build_forward(*g, s);
        g->choose_plan();
        if (g->ok() && g->plan() != nullptr)
          entry.graph = std::move(g);
        else
          refusal = g->ok() ? "no execution plan" : g->error();
      }
      if (!refusal.empty()) entry.refusal = describe(s, backward) + ": " + refusal;
      it = cache.emplace(key, std::move(entry)).first;
    }
    if (it->second.graph == nullptr) say(why, it->second.refusal);
    return it->second.graph.get();
  }

  // At least `bytes` of device scratch. Outgrown areas are kept until destroy: a CUDA graph
  // captured from an earlier call may still point at them.
  int workspace(size_t bytes, void** out, std::string* why) {
    if (bytes > workspace_bytes_) {
      size_t want = std::max(bytes, workspace_bytes_ + workspace_bytes_ / 2);
      want = round_up(want, size_t(1) << 20);
      void* p = nullptr;
      const cudaError_t e = cudaMalloc(&p, want);
      if (e != cudaSuccess) {
        cudaGetLastError();
        say(why, "cuDNN SDPA workspace of " + std::to_string(want) + " bytes: " + cudaGetErrorString(e));
        return kSdpaError;
      }
      if (workspace_ != nullptr) retired_.push_back(workspace_);
      workspace_ = p;
      workspace_bytes_ = want;
    }
    *out = workspace_;
    return kSdpaOk;
  }

  int execute(Graph* g, int n, const int64_t* uids, void* const* pointers, void* workspace, const char* what,
              std::string* why) {
    const Api& a = api();
    cudnnBackendDescriptor_t pack = nullptr;
    cudnnStatus_t st = a.CreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &pack);
    if (st == CUDNN_STATUS_SUCCESS)
      st = a.SetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
    if (st == CUDNN_STATUS_SUCCESS)
      st = a.SetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, pointers);
    if (st == CUDNN_STATUS_SUCCESS)
      st = a.SetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
    if (st == CUDNN_STATUS_SUCCESS) st = a.Finalize(pack);
    const char* step = "variant pack";
    if (st == CUDNN_STATUS_SUCCESS) {
      step = "cudnnBackendExecute";
      st = a.Execute(handle_, g->plan(), pack);
    }
    if (pack != nullptr) a.DestroyDescriptor(pack);
    if (st != CUDNN_STATUS_SUCCESS) {
      say(why, std::string(what) + ": " + step + ": " + status_words(st));
      return kSdpaError;
    }
    return kSdpaOk;
  }

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }

 private:
  int device_;
  cudaStream_t stream_;
  bool opened_ = false;
  std::string reason_;
  int version_ = 0;
  int sm_ = 0;
  cudnnHandle_t handle_ = nullptr;
  std::map<Key, Entry> forward_, backward_;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::vector<void*> retired_;
};

CudnnSdpa* sdpa_create(int device, cudaStream_t stream) { return new (std::nothrow) CudnnSdpa(device, stream); }

void sdpa_destroy(CudnnSdpa* s) { delete s; }

namespace {

// The plan for this call, or nullptr (and why) when cuDNN cannot take it: no instance, cuDNN
// unusable here, a tensor not 16-byte aligned, or a shape without a plan.
Graph* ready(CudnnSdpa* s, const SdpaShape& shape, bool backward, std::initializer_list<const void*> tensors, std::string* why) {
  if (s == nullptr) {
    say(why, "cuDNN SDPA: no instance");
    return nullptr;
  }
  if (!s->open()) {
    say(why, s->reason());
    return nullptr;
  }
  for (const void* p : tensors) {
    if (!aligned16(p)) {
      say(why, describe(shape, backward) + ": a tensor is not 16-byte aligned");
      return nullptr;
    }
  }
  return s->plan(shape, backward, why);
}

}  // namespace

bool sdpa_takes(CudnnSdpa* s, const SdpaShape& shape, bool backward, std::string* why) {
  const DeviceScope scope(s != nullptr ? s->device() : -1);
  return ready(s, shape, backward, {}, why) != nullptr;
}

int sdpa_forward(CudnnSdpa* s, const SdpaShape& shape, const void* q, const void* k, const void* v, void* o,
                 float* stats, std::string* why) {
  const DeviceScope scope(s != nullptr ? s->device() : -1);
  Graph* g = ready(s, shape, false, {q, k, v, o, stats}, why);
  if (g == nullptr) return kSdpaUnsupported;
  void* ws = nullptr;
  if (int rc = s->workspace(static_cast<size_t>(g->workspace()), &ws, why); rc != kSdpaOk) return rc;

  // By-value scalars are read from host memory during execute.
  float scale = shape.scale, masked = masked_value(s->version());
  const int64_t uids[] = {kQ, kK, kV, kO, kStats, kScale, kNegInf};
  void* const pointers[] = {const_cast<void*>(q), const_cast<void*>(k), const_cast<void*>(v), o, stats, &scale,
                            &masked};
  return s->execute(g, 7, uids, pointers, ws, describe(shape, false).c_str(), why);
}

int sdpa_backward(CudnnSdpa* s, const SdpaShape& shape, const void* q, const void* k, const void* v, const void* o,
                  const void* dO, const float* stats, void* dq, void* dk, void* dv, std::string* why) {
  const DeviceScope scope(s != nullptr ? s->device() : -1);
  Graph* g = ready(s, shape, true, {q, k, v, o, dO, stats, dq, dk, dv}, why);
  if (g == nullptr) return kSdpaUnsupported;

  // Our scratch after cuDNN's: the per-row dot(dO, O) and the FLOAT dQ accumulator.
  const size_t rows = size_t(shape.batch) * size_t(shape.heads) * size_t(shape.seq);
  const size_t plan_bytes = round_up(static_cast<size_t>(g->workspace()), 256);
  const size_t sum_bytes = round_up(rows * sizeof(float), 256);
  const size_t accum_bytes = rows * size_t(shape.head_dim) * sizeof(float);
  void* ws = nullptr;
  if (int rc = s->workspace(plan_bytes + sum_bytes + accum_bytes, &ws, why); rc != kSdpaOk) return rc;
  char* base = static_cast<char*>(ws);
  void* softmax_sum = base + plan_bytes;
  void* dq_accum = base + plan_bytes + sum_bytes;
  // cuDNN before 9.6 wanted the accumulator zeroed by the caller (the frontend memsets it);
  // later ones clear it themselves. Zeroing always costs one pass over it and is never wrong.
  const cudaError_t e = cudaMemsetAsync(dq_accum, 0, accum_bytes, s->stream());
  if (e != cudaSuccess) {
    cudaGetLastError();
    say(why, describe(shape, true) + ": clearing the dQ accumulator: " + cudaGetErrorString(e));
    return kSdpaError;
  }

  float scale = shape.scale, masked = masked_value(s->version()), one = 1.0f;
  const int64_t uids[] = {kQ, kK, kV, kO, kStats, kDO, kDQ, kDK, kDV, kScale, kNegInf, kOne, kSoftmaxSum, kDQAccum};
  void* const pointers[] = {const_cast<void*>(q),  const_cast<void*>(k),     const_cast<void*>(v),
                            const_cast<void*>(o),  const_cast<float*>(stats), const_cast<void*>(dO),
                            dq,                    dk,                        dv,
                            &scale,                &masked,                   &one,
                            softmax_sum,           dq_accum};
  return s->execute(g, 14, uids, pointers, ws, describe(shape, true).c_str(), why);
}

int sdpa_cudnn_version(CudnnSdpa* s) {
  if (s == nullptr) return 0;
  DeviceScope scope(s->device());
  return s->open() ? s->version() : 0;
}

std::string sdpa_unavailable_reason(CudnnSdpa* s) {
  if (s == nullptr) return "cuDNN SDPA: no instance";
  DeviceScope scope(s->device());
  s->open();
  return s->reason();
}

// ---- the driver's F32 tensors through the BF16 graphs ----

namespace {

uint64_t aligned_256(uint64_t n) { return (n + 255) & ~uint64_t{255}; }

struct Sizes {
  uint64_t q, kv, rows;  // elements of q (and o, dO, dq), of k (v, dk, dv), and of lse
};
Sizes sizes(const SdpaShape& s) {
  const uint64_t tokens = static_cast<uint64_t>(s.batch) * static_cast<uint64_t>(s.seq);
  return {tokens * static_cast<uint64_t>(s.heads) * static_cast<uint64_t>(s.head_dim),
          tokens * static_cast<uint64_t>(s.kv_heads) * static_cast<uint64_t>(s.head_dim), tokens * static_cast<uint64_t>(s.heads)};
}

// Carves BF16 copies out of scratch, each 256-byte aligned.
struct Carver {
  uint8_t* next;
  void* take(uint64_t elements) {
    void* p = next;
    next += aligned_256(elements * 2);
    return p;
  }
};

int converted(cudaError_t e, const char* what, std::string* why) {
  if (e == cudaSuccess) return kSdpaOk;
  say(why, std::string(what) + ": " + cudaGetErrorString(e));
  return kSdpaError;
}

}  // namespace

uint64_t sdpa_f32_scratch_bytes(const SdpaShape& s, bool backward) {
  const Sizes n = sizes(s);
  // forward: q k v o; backward: q k v o dO, then dq dk dv
  return backward ? 3 * aligned_256(2 * n.q) + 2 * aligned_256(2 * n.kv) + aligned_256(2 * n.q) + 2 * aligned_256(2 * n.kv)
                  : 2 * aligned_256(2 * n.q) + 2 * aligned_256(2 * n.kv);
}

int sdpa_forward_f32(CudnnSdpa* s, const SdpaShape& shape, const float* q, const float* k, const float* v, float* out, float* lse,
                     void* scratch, std::string* why) {
  if (s == nullptr) return sdpa_forward(s, shape, q, k, v, out, lse, why);  // says there is no instance
  const Sizes n = sizes(shape);
  const cudaStream_t st = s->stream();
  Carver c{static_cast<uint8_t*>(scratch)};
  void *bq = c.take(n.q), *bk = c.take(n.kv), *bv = c.take(n.kv), *bo = c.take(n.q);
  for (auto [from, to, count] : {std::tuple{q, bq, n.q}, std::tuple{k, bk, n.kv}, std::tuple{v, bv, n.kv}}) {
    if (int rc = converted(to_half(from, count, to, true, st), "rounding attention inputs to BF16", why); rc != kSdpaOk) return rc;
  }
  if (int rc = sdpa_forward(s, shape, bq, bk, bv, bo, lse, why); rc != kSdpaOk) return rc;
  return converted(from_bf16(bo, n.q, out, st), "widening the attention output", why);
}

int sdpa_backward_f32(CudnnSdpa* s, const SdpaShape& shape, const float* q, const float* k, const float* v, const float* out,
                      const float* lse, const float* dout, float* dq, float* dk, float* dv, void* scratch, std::string* why) {
  if (s == nullptr) return sdpa_backward(s, shape, q, k, v, out, dout, lse, dq, dk, dv, why);
  const Sizes n = sizes(shape);
  const cudaStream_t st = s->stream();
  Carver c{static_cast<uint8_t*>(scratch)};
  void *bq = c.take(n.q), *bk = c.take(n.kv), *bv = c.take(n.kv), *bo = c.take(n.q), *bdo = c.take(n.q);
  void *bdq = c.take(n.q), *bdk = c.take(n.kv), *bdv = c.take(n.kv);
  for (auto [from, to, count] : {std::tuple{q, bq, n.q}, std::tuple{k, bk, n.kv}, std::tuple{v, bv, n.kv}, std::tuple{out, bo, n.q},
                                 std::tuple{dout, bdo, n.q}}) {
    if (int rc = converted(to_half(from, count, to, true, st), "rounding attention inputs to BF16", why); rc != kSdpaOk) return rc;
  }
  if (int rc = sdpa_backward(s, shape, bq, bk, bv, bo, bdo, lse, bdq, bdk, bdv, why); rc != kSdpaOk) return rc;
  for (auto [from, to, count] : {std::tuple{bdq, dq, n.q}, std::tuple{bdk, dk, n.kv}, std::tuple{bdv, dv, n.kv}}) {
    if (int rc = converted(from_bf16(from, count, to, st), "widening the attention gradients", why); rc != kSdpaOk) return rc;
  }
  return kSdpaOk;
}

}  // namespace llmops::cuda
