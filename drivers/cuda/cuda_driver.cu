// The CUDA driver: llmops_driver_get_api() hands the engine the table of drivers/include/llmops/driver.h.
// One llmops_drv is one device with one stream, one cuBLAS handle, pinned staging for uploads
// and a scratch area (quantised activations, dequantised tiles); each is released by close().
// Device memory comes from the device's own memory pool in stream order (cudaMallocAsync, never
// managed memory) where the device has pools: a KV cache made and dropped per request costs no
// device-wide synchronisation, and freed memory is kept for the next allocation.
// Runtime errors become LLMOPS_DRV_E* codes with words in last_error(), never exceptions or aborts.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "comm.h"
#include "cudnn_sdpa.h"
#include "drv.h"
#include "kernels.cuh"
#include "llmops/driver.h"
#include "quant.cuh"

using namespace llmops::cuda;

namespace llmops::cuda {

thread_local std::string g_open_error;

int fail(llmops_drv* d, int code, const std::string& what) {
  (d != nullptr ? d->error : g_open_error) = what;
  return code;
}
int cuda_fail(llmops_drv* d, cudaError_t e, const char* what) {
  cudaGetLastError();  // clear a non-sticky error (a failed allocation) so later launches do not report it
  const int code = e == cudaErrorMemoryAllocation ? LLMOPS_DRV_ENOMEM : LLMOPS_DRV_EDEVICE;
  return fail(d, code, std::string(what) + ": " + cudaGetErrorString(e));
}
int blas_fail(llmops_drv* d, cublasStatus_t st, const char* what) {
  return fail(d, st == CUBLAS_STATUS_ALLOC_FAILED ? LLMOPS_DRV_ENOMEM : LLMOPS_DRV_EDEVICE,
              std::string(what) + ": " + cublasGetStatusString(st));
}

int ensure_scratch(llmops_drv* d, uint64_t bytes) {
  if (d->scratch_bytes >= bytes) return LLMOPS_DRV_OK;
  if (d->scratch != nullptr) d->retired.push_back(d->scratch);
  d->scratch = nullptr, d->scratch_bytes = 0;
  DRV_CUDA(d, cudaMalloc(&d->scratch, bytes), "allocating the matmul scratch");
  d->scratch_bytes = bytes;
  return LLMOPS_DRV_OK;
}

}  // namespace llmops::cuda

namespace {

constexpr uint64_t kPinnedBytes = 64ull << 20;
constexpr uint64_t kBlasWorkspaceBytes = 32ull << 20;
constexpr uint64_t kTileElements = 32ull << 20;  // weights one dequantised tile holds (64 MiB of half)
// Up to this many tokens our float kernels dequantise in registers (measured on an H200: at 16
// tokens they took twice the dequantise + cuBLAS time). Past it Q8_0, Q4_0 and Q4_K go to the
// int8 tensor-core kernel (mmq.cuh), the other types to cuBLAS (Q6_K through dequantised half
// tiles).
constexpr int kQuantMatvecTokens = 4;
constexpr int kFloatMatvecTokens = 4;

int check_shape(llmops_drv* d, int type, uint64_t rows, uint64_t cols) {
  if (!type_known(type)) return fail(d, LLMOPS_DRV_EUNSUPPORTED, "weight type " + std::to_string(type) + " is not read by the CUDA driver");
  if (rows == 0 || cols == 0 || cols > (1u << 30)) return fail(d, LLMOPS_DRV_EINVAL, "a matrix of " + std::to_string(rows) + " x " + std::to_string(cols));
  if (cols % static_cast<uint64_t>(block_weights(type)) != 0) {
    return fail(d, LLMOPS_DRV_EINVAL, std::to_string(cols) + " columns are not whole blocks of " + std::to_string(block_weights(type)));
  }
  return LLMOPS_DRV_OK;
}


int drv_score() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) return 0;
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, 0) != cudaSuccess || p.major < 8) return 0;  // kernels are built for sm_80 and up
  return 100;
}

int drv_device_count() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

int drv_device_info(int device, llmops_drv_device_info* out) {
  if (out == nullptr) return fail(nullptr, LLMOPS_DRV_EINVAL, "no output");
  std::memset(out, 0, sizeof(*out));
  cudaDeviceProp p{};
  DRV_CUDA(nullptr, cudaGetDeviceProperties(&p, device), "reading the device's properties");
  std::snprintf(out->name, sizeof(out->name), "%.127s", p.name);
  cudaDeviceGetPCIBusId(out->pci_bus_id, sizeof(out->pci_bus_id), device);
  out->compute_major = p.major, out->compute_minor = p.minor, out->multiprocessors = p.multiProcessorCount;
  size_t free_b = 0, total_b = 0;
  DRV_CUDA(nullptr, cudaSetDevice(device), "selecting the device");
  // Memory the pool keeps for reuse is free for what asks next: give it back before counting.
  int pools = 0;
  if (cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device) == cudaSuccess && pools != 0) {
    cudaMemPool_t pool = nullptr;
    if (cudaDeviceGetDefaultMemPool(&pool, device) == cudaSuccess) {
      cudaDeviceSynchronize();
      cudaMemPoolTrimTo(pool, 0);
    }
  }
  DRV_CUDA(nullptr, cudaMemGetInfo(&free_b, &total_b), "reading the device's memory");
  out->total_bytes = total_b, out->free_bytes = free_b;
  return LLMOPS_DRV_OK;
}

void drv_close(llmops_drv* d) {
  if (d == nullptr) return;
  cudaSetDevice(d->device);
  if (d->stream != nullptr) cudaStreamSynchronize(d->stream);
  close_copy_queue(d);
  sdpa_destroy(d->sdpa);
  if (d->blas != nullptr) cublasDestroy(d->blas);
  for (cudaEvent_t e : d->marks) {
    if (e != nullptr) cudaEventDestroy(e);
  }
  if (d->pinned != nullptr) cudaFreeHost(d->pinned);
  if (d->scratch != nullptr) cudaFree(d->scratch);
  for (void* p : d->retired) cudaFree(p);
  if (d->blas_workspace != nullptr) cudaFree(d->blas_workspace);
  if (d->stream != nullptr) cudaStreamDestroy(d->stream);
  delete d;
}

int drv_open(int device, llmops_drv** out) {
  if (out == nullptr) return fail(nullptr, LLMOPS_DRV_EINVAL, "no output");
  *out = nullptr;
  if (device < 0 || device >= drv_device_count()) return fail(nullptr, LLMOPS_DRV_EINVAL, "there is no CUDA device " + std::to_string(device));
  auto* d = new llmops_drv;
  d->device = device;
  auto bail = [&](int code) {
    g_open_error = d->error;
    drv_close(d);
    return code;
  };
  if (cudaError_t e = cudaSetDevice(device); e != cudaSuccess) return bail(cuda_fail(d, e, "selecting the device"));
  if (cudaError_t e = cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking); e != cudaSuccess) return bail(cuda_fail(d, e, "creating a stream"));
  cudaDeviceGetAttribute(&d->multiprocessors, cudaDevAttrMultiProcessorCount, device);
  int major = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  d->int8_mma = major >= 8;
  for (cudaEvent_t& e : d->marks) {
    if (cudaError_t err = cudaEventCreate(&e); err != cudaSuccess) return bail(cuda_fail(d, err, "creating an event"));
  }
  if (cudaError_t e = cudaMallocHost(&d->pinned, kPinnedBytes); e != cudaSuccess) return bail(cuda_fail(d, e, "allocating pinned staging"));
  d->pinned_bytes = kPinnedBytes;
  if (cublasStatus_t st = cublasCreate(&d->blas); st != CUBLAS_STATUS_SUCCESS) return bail(blas_fail(d, st, "creating a cuBLAS handle"));
  if (cublasStatus_t st = cublasSetStream(d->blas, d->stream); st != CUBLAS_STATUS_SUCCESS) return bail(blas_fail(d, st, "binding cuBLAS to the stream"));
  if (cudaError_t e = cudaMalloc(&d->blas_workspace, kBlasWorkspaceBytes); e != cudaSuccess) return bail(cuda_fail(d, e, "allocating the cuBLAS workspace"));
  int pools = 0;
  if (cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device) == cudaSuccess && pools != 0) {
    cudaMemPool_t pool = nullptr;
    uint64_t keep = UINT64_MAX;  // freed memory stays in the pool for the next allocation
    d->pooled = cudaDeviceGetDefaultMemPool(&pool, device) == cudaSuccess &&
                cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep) == cudaSuccess;
  }
  if (cublasStatus_t st = cublasSetWorkspace(d->blas, d->blas_workspace, kBlasWorkspaceBytes); st != CUBLAS_STATUS_SUCCESS) {
    return bail(blas_fail(d, st, "giving cuBLAS its workspace"));
  }
  d->sdpa = sdpa_create(device, d->stream);
  const char* cudnn = std::getenv("LLMOPS_CUDNN_ATTENTION");
  d->cudnn_attention = cudnn == nullptr || std::strcmp(cudnn, "0") != 0;
  *out = d;
  return LLMOPS_DRV_OK;
}

const char* drv_last_error(llmops_drv* d) { return d != nullptr ? d->error.c_str() : g_open_error.c_str(); }

void* drv_alloc(llmops_drv* d, uint64_t bytes) {
  if (cudaSetDevice(d->device) != cudaSuccess) return nullptr;
  void* p = nullptr;
  cudaError_t e = d->pooled ? cudaMallocAsync(&p, std::max<uint64_t>(bytes, 1), d->stream) : cudaMalloc(&p, std::max<uint64_t>(bytes, 1));
  if (e != cudaSuccess) {
    cuda_fail(d, e, ("allocating " + std::to_string(bytes >> 20) + " MiB of device memory").c_str());
    return nullptr;
  }
  return p;
}

void drv_free(llmops_drv* d, void* p) {
  if (p == nullptr) return;
  cudaSetDevice(d->device);
  after_copies(d);  // no streamed upload may still write it
  if (d->pooled) {
    cudaFreeAsync(p, d->stream);  // after the kernels queued before it, which may still read it
    return;
  }
  cudaStreamSynchronize(d->stream);  // no kernel still reads it
  cudaFree(p);
}

int drv_upload(llmops_drv* d, void* dst, const void* src, uint64_t bytes) {
  DRV_CUDA(d, cudaSetDevice(d->device), "selecting the device");
  // The staging buffer is reused: wait for the stream before each refill.
  for (uint64_t done = 0; done < bytes;) {
    const uint64_t n = std::min(d->pinned_bytes, bytes - done);
    DRV_CUDA(d, cudaStreamSynchronize(d->stream), "waiting for the stream");
    std::memcpy(d->pinned, static_cast<const uint8_t*>(src) + done, n);
    DRV_CUDA(d, cudaMemcpyAsync(static_cast<uint8_t*>(dst) + done, d->pinned, n, cudaMemcpyHostToDevice, d->stream), "copying to the device");
    done += n;
  }
  DRV_CUDA(d, cudaStreamSynchronize(d->stream), "waiting for the upload");
  return LLMOPS_DRV_OK;
}

int drv_download(llmops_drv* d, void* dst, const void* src, uint64_t bytes) {
  DRV_CUDA(d, cudaSetDevice(d->device), "selecting the device");
  for (uint64_t done = 0; done < bytes;) {
    const uint64_t n = std::min(d->pinned_bytes, bytes - done);
    DRV_CUDA(d, cudaMemcpyAsync(d->pinned, static_cast<const uint8_t*>(src) + done, n, cudaMemcpyDeviceToHost, d->stream), "copying from the device");
    DRV_CUDA(d, cudaStreamSynchronize(d->stream), "waiting for the download");
    std::memcpy(static_cast<uint8_t*>(dst) + done, d->pinned, n);
    done += n;
  }
  return LLMOPS_DRV_OK;
}

int drv_copy(llmops_drv* d, void* dst, const void* src, uint64_t bytes) {
  DRV_CUDA(d, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, d->stream), "copying on the device");
  return LLMOPS_DRV_OK;
}

int drv_synchronize(llmops_drv* d) {
  DRV_CUDA(d, cudaStreamSynchronize(d->stream), "running the queued work");
  return LLMOPS_DRV_OK;
}

int drv_mark(llmops_drv* d, int slot) {
  if (slot != 0 && slot != 1) return fail(d, LLMOPS_DRV_EINVAL, "mark slot must be 0 or 1");
  DRV_CUDA(d, cudaEventRecord(d->marks[slot], d->stream), "recording an event");
  return LLMOPS_DRV_OK;
}

int drv_elapsed_ms(llmops_drv* d, float* ms) {
  DRV_CUDA(d, cudaEventSynchronize(d->marks[1]), "waiting for the mark");
  DRV_CUDA(d, cudaEventElapsedTime(ms, d->marks[0], d->marks[1]), "timing between marks");
  return LLMOPS_DRV_OK;
}

// Many tokens: y (rows × t, column-major for cuBLAS) = W (cols × rows column-major, transposed) · x.
int gemm_many(llmops_drv* d, int type, const void* w, uint64_t rows, uint64_t cols, const float* x, int t, float* y, bool accumulate) {
  const int m = static_cast<int>(rows), n = t, k = static_cast<int>(cols);
  const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  if (type == LLMOPS_DT_F32) {
    cublasStatus_t st = cublasSgemm(d->blas, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, static_cast<const float*>(w), k, x, k, &beta, y, m);
    return st == CUBLAS_STATUS_SUCCESS ? LLMOPS_DRV_OK : blas_fail(d, st, "cublasSgemm");
  }
  const bool bf16 = type == LLMOPS_DT_BF16;
  const cudaDataType_t ab = bf16 ? CUDA_R_16BF : CUDA_R_16F;
  const uint64_t x_bytes = (static_cast<uint64_t>(t) * cols * 2 + 255) & ~255ull;
  const bool quantised = type != LLMOPS_DT_F16 && !bf16;
  const uint64_t chunk_rows = quantised ? std::max<uint64_t>(1, std::min<uint64_t>(rows, kTileElements / cols)) : 0;
  if (int rc = ensure_scratch(d, x_bytes + chunk_rows * cols * 2); rc != LLMOPS_DRV_OK) return rc;
  void* xh = d->scratch;
  DRV_CUDA(d, to_half(x, static_cast<uint64_t>(t) * cols, xh, bf16, d->stream), "converting activations");
  if (!quantised) {
    cublasStatus_t st = cublasGemmEx(d->blas, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, w, ab, k, xh, ab, k, &beta, y, CUDA_R_32F, m,
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    return st == CUBLAS_STATUS_SUCCESS ? LLMOPS_DRV_OK : blas_fail(d, st, "cublasGemmEx");
  }
  void* tile = static_cast<uint8_t*>(d->scratch) + x_bytes;
  for (uint64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
    const uint64_t nr = std::min(chunk_rows, rows - r0);
    DRV_CUDA(d, dequantize_half(type, w, cols, r0, nr, tile, d->stream), "dequantising a tile");
    cublasStatus_t st = cublasGemmEx(d->blas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(nr), n, k, &one, tile, CUDA_R_16F, k, xh, CUDA_R_16F,
                                     k, &beta, y + r0, CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS) return blas_fail(d, st, "cublasGemmEx over a dequantised tile");
  }
  return LLMOPS_DRV_OK;
}

int matmul_into(llmops_drv* d, int type, const void* w, uint64_t rows, uint64_t cols, const float* x, int t, float* y, const float* bias,
                bool accumulate) {
  if (int rc = check_shape(d, type, rows, cols); rc != LLMOPS_DRV_OK) return rc;
  if (t < 1 || w == nullptr || x == nullptr || y == nullptr) return fail(d, LLMOPS_DRV_EINVAL, "matmul needs weights, input, output and t >= 1");
  DRV_CUDA(d, cudaSetDevice(d->device), "selecting the device");
  const bool quantised = block_weights(type) > 1;
  if (type == LLMOPS_DT_Q4_K && t <= 2) {
    if (int rc = ensure_scratch(d, q8_scratch_bytes(t, cols)); rc != LLMOPS_DRV_OK) return rc;
    DRV_CUDA(d, matvec_q4k_q8(w, rows, cols, x, t, y, bias, accumulate, d->scratch, d->stream), "the Q4_K matrix-vector kernel");
    return LLMOPS_DRV_OK;
  }
  if (t <= (quantised ? kQuantMatvecTokens : kFloatMatvecTokens)) {
    DRV_CUDA(d, matvec(type, w, rows, cols, x, t, y, bias, accumulate, d->stream), "the matrix-vector kernel");
    return LLMOPS_DRV_OK;
  }
  if (mmq_takes(type) && d->int8_mma) {
    if (int rc = ensure_scratch(d, q8_scratch_bytes(t, cols)); rc != LLMOPS_DRV_OK) return rc;
    DRV_CUDA(d, matmul_mmq(type, w, rows, cols, x, t, y, bias, accumulate, d->scratch, d->stream), "the int8 tensor-core matrix kernel");
    return LLMOPS_DRV_OK;
  }
  if (int rc = gemm_many(d, type, w, rows, cols, x, t, y, accumulate); rc != LLMOPS_DRV_OK) return rc;
  if (bias != nullptr) DRV_CUDA(d, add_bias(y, bias, t, rows, d->stream), "adding the bias");
  return LLMOPS_DRV_OK;
}

int drv_matmul(llmops_drv* d, int type, const void* w, uint64_t rows, uint64_t cols, const float* x, int t, float* y, const float* bias) {
  return matmul_into(d, type, w, rows, cols, x, t, y, bias, false);
}

int drv_matmul_add(llmops_drv* d, int type, const void* w, uint64_t rows, uint64_t cols, const float* x, int t, float* y, const float* bias) {
  return matmul_into(d, type, w, rows, cols, x, t, y, bias, true);
}

int drv_get_rows(llmops_drv* d, int type, const void* table, uint64_t cols, const int32_t* ids, int t, float* out) {
  if (int rc = check_shape(d, type, 1, cols); rc != LLMOPS_DRV_OK) return rc;
  if (t < 1) return fail(d, LLMOPS_DRV_EINVAL, "get_rows needs t >= 1");
  DRV_CUDA(d, get_rows(type, table, cols, ids, t, out, d->stream), "the embedding kernel");
  return LLMOPS_DRV_OK;
}

int drv_rms_norm(llmops_drv* d, const float* x, const float* w, float* y, int t, int n, float eps) {
  DRV_CUDA(d, rms_norm(x, w, nullptr, y, t, n, eps, false, d->stream), "the RMSNorm kernel");
  return LLMOPS_DRV_OK;
}

int drv_layer_norm(llmops_drv* d, const float* x, const float* w, const float* b, float* y, int t, int n, float eps) {
  DRV_CUDA(d, rms_norm(x, w, b, y, t, n, eps, true, d->stream), "the LayerNorm kernel");
  return LLMOPS_DRV_OK;
}

int drv_rope(llmops_drv* d, float* x, int t, int n_heads, int head_dim, int rope_dims, const int32_t* positions, const float* inv_freq,
             int neox) {
  if (rope_dims <= 0 || rope_dims > head_dim || rope_dims % 2 != 0) return fail(d, LLMOPS_DRV_EINVAL, "rope_dims must be even and within head_dim");
  DRV_CUDA(d, rope(x, t, n_heads, head_dim, rope_dims, positions, inv_freq, neox != 0, false, d->stream), "the RoPE kernel");
  return LLMOPS_DRV_OK;
}

int drv_swiglu(llmops_drv* d, const float* gate, const float* up, float* out, uint64_t n) {
  DRV_CUDA(d, swiglu(gate, up, out, n, d->stream), "the SwiGLU kernel");
  return LLMOPS_DRV_OK;
}

int drv_gelu(llmops_drv* d, float* x, uint64_t n) {
  DRV_CUDA(d, gelu(x, n, d->stream), "the GELU kernel");
  return LLMOPS_DRV_OK;
}

int drv_add(llmops_drv* d, float* acc, const float* x, uint64_t n) {
  DRV_CUDA(d, add(acc, x, n, d->stream), "the add kernel");
  return LLMOPS_DRV_OK;
}

int check_attn(llmops_drv* d, int t, const llmops_drv_attn_shape* s) {
  if (s == nullptr || t < 1 || s->n_heads < 1 || s->n_kv_heads < 1 || s->n_heads % s->n_kv_heads != 0 || s->head_dim < 1 || s->layer < 0) {
    return fail(d, LLMOPS_DRV_EINVAL, "attention needs t >= 1 and heads that group evenly");
  }
  if (s->head_dim > 256) return fail(d, LLMOPS_DRV_EUNSUPPORTED, "head_dim " + std::to_string(s->head_dim) + " is past the kernel's 256");
  if (s->max_positions < 1) return fail(d, LLMOPS_DRV_EINVAL, "attention needs max_positions, a bound on every token's position + 1");
  return LLMOPS_DRV_OK;
}

int drv_kv_store(llmops_drv* d, const float* k, const float* v, int t, const llmops_drv_kv_ref* refs, const llmops_drv_attn_shape* shape) {
  if (int rc = check_attn(d, t, shape); rc != LLMOPS_DRV_OK) return rc;
  DRV_CUDA(d, kv_store(k, v, t, refs, *shape, d->stream), "the KV store kernel");
  return LLMOPS_DRV_OK;
}

int drv_attention(llmops_drv* d, const float* q, float* out, int t, const llmops_drv_kv_ref* refs, const llmops_drv_attn_shape* shape) {
  if (int rc = check_attn(d, t, shape); rc != LLMOPS_DRV_OK) return rc;
  const int splits = attention_splits(t, *shape, d->multiprocessors);
  if (const uint64_t bytes = attention_scratch_bytes(t, *shape, splits); bytes > 0) {
    if (int rc = ensure_scratch(d, bytes); rc != LLMOPS_DRV_OK) return rc;
  }
  DRV_CUDA(d, attention(q, out, t, refs, *shape, splits, static_cast<float*>(d->scratch), d->stream), "the attention kernel");
  return LLMOPS_DRV_OK;
}

int drv_argmax(llmops_drv* d, const float* logits, int t, int n, int32_t* ids) {
  if (t < 1 || n < 1) return fail(d, LLMOPS_DRV_EINVAL, "argmax needs t >= 1 and n >= 1");
  DRV_CUDA(d, argmax(logits, t, n, ids, d->stream), "the argmax kernel");
  return LLMOPS_DRV_OK;
}

int drv_fill_random(llmops_drv* d, int type, void* w, uint64_t rows, uint64_t cols, uint64_t seed, float scale) {
  if (int rc = check_shape(d, type, rows, cols); rc != LLMOPS_DRV_OK) return rc;
  DRV_CUDA(d, fill_random(type, w, rows, cols, seed, scale, d->stream), "the random fill kernel");
  return LLMOPS_DRV_OK;
}

int drv_capture_begin(llmops_drv* d) {
  DRV_CUDA(d, cudaStreamBeginCapture(d->stream, cudaStreamCaptureModeThreadLocal), "starting a graph capture");
  return LLMOPS_DRV_OK;
}

int drv_capture_end(llmops_drv* d, void** graph) {
  *graph = nullptr;
  cudaGraph_t g = nullptr;
  DRV_CUDA(d, cudaStreamEndCapture(d->stream, &g), "ending a graph capture");
  cudaGraphExec_t exec = nullptr;
  cudaError_t e = cudaGraphInstantiate(&exec, g, 0);
  cudaGraphDestroy(g);
  if (e != cudaSuccess) return cuda_fail(d, e, "instantiating a graph");
  *graph = exec;
  return LLMOPS_DRV_OK;
}

int drv_graph_launch(llmops_drv* d, void* graph) {
  DRV_CUDA(d, cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph), d->stream), "launching a graph");
  return LLMOPS_DRV_OK;
}

void drv_graph_destroy(llmops_drv* d, void* graph) {
  if (graph != nullptr) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph));
}

// ---- training (ABI 1.1) ----

int drv_gemm(llmops_drv* d, int ta, int tb, int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb, float beta,
             float* c, int ldc) {
  if (m < 1 || n < 1 || k < 1 || a == nullptr || b == nullptr || c == nullptr) return fail(d, LLMOPS_DRV_EINVAL, "gemm needs m, n, k >= 1 and three matrices");
  if (lda < (ta ? m : k) || ldb < (tb ? k : n) || ldc < n) return fail(d, LLMOPS_DRV_EINVAL, "gemm: a row stride is shorter than its row");
  DRV_CUDA(d, cudaSetDevice(d->device), "selecting the device");
  // Row-major C is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: the operands swap and keep their own flags.
  const cublasOperation_t opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (d->math == LLMOPS_MATH_F32) {
    cublasStatus_t st = cublasSgemm(d->blas, opb, opa, n, m, k, &alpha, b, ldb, a, lda, &beta, c, ldc);
    return st == CUBLAS_STATUS_SUCCESS ? LLMOPS_DRV_OK : blas_fail(d, st, "cublasSgemm");
  }
  // F32 operands, tensor-core products: cuBLAS rounds the inputs to TF32 or BF16 itself.
  const cublasComputeType_t compute = d->math == LLMOPS_MATH_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F_FAST_16BF;
  cublasStatus_t st = cublasGemmEx(d->blas, opb, opa, n, m, k, &alpha, b, CUDA_R_32F, ldb, a, CUDA_R_32F, lda, &beta, c, CUDA_R_32F, ldc, compute,
                                   CUBLAS_GEMM_DEFAULT);
  return st == CUBLAS_STATUS_SUCCESS ? LLMOPS_DRV_OK : blas_fail(d, st, "cublasGemmEx (tensor-core F32)");
}

int drv_rope_inverse(llmops_drv* d, float* x, int t, int n_heads, int head_dim, int rope_dims, const int32_t* positions,
                     const float* inv_freq, int neox) {
  if (rope_dims <= 0 || rope_dims > head_dim || rope_dims % 2 != 0) return fail(d, LLMOPS_DRV_EINVAL, "rope_dims must be even and within head_dim");
  DRV_CUDA(d, rope(x, t, n_heads, head_dim, rope_dims, positions, inv_freq, neox != 0, true, d->stream), "the inverse RoPE kernel");
  return LLMOPS_DRV_OK;
}

int drv_rms_norm_backward(llmops_drv* d, const float* x, const float* w, const float* dy, float* dx, float* dw, float* scratch, int t, int n,
                          float eps) {
  if (t < 1 || n < 1) return fail(d, LLMOPS_DRV_EINVAL, "RMSNorm backward needs t >= 1 and n >= 1");
  DRV_CUDA(d, rms_norm_backward(x, w, dy, dx, dw, scratch, t, n, eps, d->stream), "the RMSNorm backward kernels");
  return LLMOPS_DRV_OK;
}

int drv_swiglu_backward(llmops_drv* d, const float* gate, const float* up, const float* dh, float* dgate, float* dup, uint64_t n) {
  if (n == 0) return LLMOPS_DRV_OK;
  DRV_CUDA(d, swiglu_backward(gate, up, dh, dgate, dup, n, d->stream), "the SwiGLU backward kernel");
  return LLMOPS_DRV_OK;
}

int check_train_attn(llmops_drv* d, const llmops_drv_train_attn* a) {
  if (a == nullptr || a->batch < 1 || a->seq < 1 || a->n_heads < 1 || a->n_kv_heads < 1 || a->n_heads % a->n_kv_heads != 0 || a->head_dim < 1) {
    return fail(d, LLMOPS_DRV_EINVAL, "training attention needs batch, seq >= 1 and heads that group evenly");
  }
  return LLMOPS_DRV_OK;
}

// Where our kernels take the shape (cuDNN may take longer sequences).
int check_own_attn(llmops_drv* d, const llmops_drv_train_attn* a) {
  if (a->head_dim > 256) return fail(d, LLMOPS_DRV_EUNSUPPORTED, "head_dim " + std::to_string(a->head_dim) + " is past the kernel's 256");
  if (a->seq > train_attention_max_seq()) {
    return fail(d, LLMOPS_DRV_EUNSUPPORTED, "training sequences of " + std::to_string(a->seq) + " tokens are past the attention kernel's " +
                                                std::to_string(train_attention_max_seq()));
  }
  return LLMOPS_DRV_OK;
}

// Under BF16 math, training attention goes to cuDNN's fused flash attention where cuDNN takes
// the shape. Answers kSdpaOk (done), kSdpaUnsupported (our kernels run instead; the first time,
// stderr — the daemon's journal — says which path training attention takes and why) or
// LLMOPS_DRV_EDEVICE.
int cudnn_attention(llmops_drv* d, const SdpaShape& shape, bool backward, const std::function<int(void*, std::string*)>& run) {
  if (d->math != LLMOPS_MATH_BF16 || d->sdpa == nullptr || !d->cudnn_attention) return kSdpaUnsupported;
  std::string why;
  int rc = kSdpaUnsupported;
  // Scratch for the BF16 copies only when cuDNN will run; a device too full for them keeps our kernels.
  if (sdpa_takes(d->sdpa, shape, backward, &why)) {
    if (ensure_scratch(d, sdpa_f32_scratch_bytes(shape, backward)) == LLMOPS_DRV_OK) {
      rc = run(d->scratch, &why);
    } else {
      why = "no device memory for the BF16 copies (" + d->error + ")";
    }
  }
  if (rc == kSdpaError) return fail(d, LLMOPS_DRV_EDEVICE, why);
  if (!d->sdpa_told) {
    d->sdpa_told = true;
    if (rc == kSdpaOk) {
      std::fprintf(stderr, "llmops cuda: device %d: BF16 training attention on cuDNN %d's fused flash attention\n", d->device,
                   sdpa_cudnn_version(d->sdpa));
    } else {
      std::fprintf(stderr, "llmops cuda: device %d: BF16 training attention on our kernels: %s\n", d->device, why.c_str());
    }
  }
  return rc;
}

int drv_attention_train(llmops_drv* d, const float* q, const float* k, const float* v, float* out, float* lse, const llmops_drv_train_attn* a) {
  if (int rc = check_train_attn(d, a); rc != LLMOPS_DRV_OK) return rc;
  const SdpaShape shape{a->batch, a->seq, a->n_heads, a->n_kv_heads, a->head_dim, a->scale};
  const int via = cudnn_attention(d, shape, false, [&](void* scratch, std::string* why) {
    return sdpa_forward_f32(d->sdpa, shape, q, k, v, out, lse, scratch, why);
  });
  if (via == kSdpaOk) return LLMOPS_DRV_OK;
  if (via != kSdpaUnsupported) return via;
  if (int rc = check_own_attn(d, a); rc != LLMOPS_DRV_OK) return rc;
  DRV_CUDA(d, attention_train(q, k, v, out, lse, *a, d->stream), "the training attention kernel");
  return LLMOPS_DRV_OK;
}
int drv_attention_train_backward(llmops_drv* d, const float* q, const float* k, const float* v, const float* out, const float* lse,
                                 const float* dout, float* dq, float* dk, float* dv, float* scratch, const llmops_drv_train_attn* a) {
  if (int rc = check_train_attn(d, a); rc != LLMOPS_DRV_OK) return rc;
  const SdpaShape shape{a->batch, a->seq, a->n_heads, a->n_kv_heads, a->head_dim, a->scale};
  const int via = cudnn_attention(d, shape, true, [&](void* area, std::string* why) {
    return sdpa_backward_f32(d->sdpa, shape, q, k, v, out, lse, dout, dq, dk, dv, area, why);
  });
  if (via == kSdpaOk) return LLMOPS_DRV_OK;
  if (via != kSdpaUnsupported) return via;
  if (int rc = check_own_attn(d, a); rc != LLMOPS_DRV_OK) return rc;
  DRV_CUDA(d, attention_train_backward(q, k, v, out, lse, dout, dq, dk, dv, scratch, *a, d->stream), "the attention backward kernels");
  return LLMOPS_DRV_OK;
}

int drv_cross_entropy(llmops_drv* d, float* logits, const int32_t* targets, int t, int n, float scale, float* loss) {
  if (t < 1 || n < 1) return fail(d, LLMOPS_DRV_EINVAL, "cross-entropy needs t >= 1 and n >= 1");
  DRV_CUDA(d, cross_entropy(logits, targets, t, n, scale, loss, d->stream), "the cross-entropy kernel");
  return LLMOPS_DRV_OK;
}

int drv_embedding_backward(llmops_drv* d, const int32_t* ids, const float* dx, int t, uint64_t cols, float* grad) {
  if (t < 1 || cols < 1) return fail(d, LLMOPS_DRV_EINVAL, "the embedding backward needs t >= 1 and cols >= 1");
  DRV_CUDA(d, embedding_backward(ids, dx, t, cols, grad, d->stream), "the embedding backward kernel");
  return LLMOPS_DRV_OK;
}

int drv_sum_squares(llmops_drv* d, const float* x, uint64_t n, double* out) {
  if (int rc = ensure_scratch(d, static_cast<uint64_t>(sum_squares_partials()) * sizeof(double)); rc != LLMOPS_DRV_OK) return rc;
  DRV_CUDA(d, sum_squares(x, n, static_cast<double*>(d->scratch), out, d->stream), "the sum of squares kernels");
  return LLMOPS_DRV_OK;
}

int drv_adamw(llmops_drv* d, float* params, const float* grads, float* m, float* v, uint64_t n, const llmops_drv_adamw* h) {
  if (h == nullptr) return fail(d, LLMOPS_DRV_EINVAL, "AdamW needs its hyperparameters");
  if (n == 0) return LLMOPS_DRV_OK;
  DRV_CUDA(d, adamw(params, grads, m, v, n, *h, d->stream), "the AdamW kernel");
  return LLMOPS_DRV_OK;
}

int drv_zero(llmops_drv* d, void* p, uint64_t bytes) {
  DRV_CUDA(d, cudaMemsetAsync(p, 0, bytes, d->stream), "clearing device memory");
  return LLMOPS_DRV_OK;
}

int drv_dropout(llmops_drv* d, const float* x, float* y, uint64_t n, float p, float scale, uint64_t key) {
  if (!(p >= 0.0f && p < 1.0f)) return fail(d, LLMOPS_DRV_EINVAL, "dropout's p must be in [0, 1)");
  if (n == 0) return LLMOPS_DRV_OK;
  DRV_CUDA(d, dropout(x, y, n, p, scale, key, d->stream), "the dropout kernel");
  return LLMOPS_DRV_OK;
}

int drv_set_math(llmops_drv* d, int mode) {
  if (mode != LLMOPS_MATH_F32 && mode != LLMOPS_MATH_TF32 && mode != LLMOPS_MATH_BF16) return fail(d, LLMOPS_DRV_EINVAL, "math mode " + std::to_string(mode));
  d->math = mode;
  return LLMOPS_DRV_OK;
}

int drv_layer_norm_backward(llmops_drv* d, const float* x, const float* w, const float* dy, float* dx, float* dw, float* db, float* scratch, int t,
                            int n, float eps) {
  if (t < 1 || n < 1) return fail(d, LLMOPS_DRV_EINVAL, "LayerNorm backward needs t >= 1 and n >= 1");
  DRV_CUDA(d, layer_norm_backward(x, w, dy, dx, dw, db, scratch, t, n, eps, d->stream), "the LayerNorm backward kernels");
  return LLMOPS_DRV_OK;
}

int drv_add_bias(llmops_drv* d, float* y, const float* b, int t, uint64_t n) {
  if (t < 1 || n < 1) return fail(d, LLMOPS_DRV_EINVAL, "add_bias needs t >= 1 and n >= 1");
  DRV_CUDA(d, add_bias(y, b, t, n, d->stream), "the bias kernel");
  return LLMOPS_DRV_OK;
}

int drv_bias_backward(llmops_drv* d, const float* dy, float* db, int t, uint64_t n) {
  if (t < 1 || n < 1) return fail(d, LLMOPS_DRV_EINVAL, "bias_backward needs t >= 1 and n >= 1");
  DRV_CUDA(d, bias_backward(dy, db, t, n, d->stream), "the bias backward kernel");
  return LLMOPS_DRV_OK;
}

int drv_gelu_backward(llmops_drv* d, const float* x, const float* dy, float* dx, uint64_t n) {
  if (n == 0) return LLMOPS_DRV_OK;
  DRV_CUDA(d, gelu_backward(x, dy, dx, n, d->stream), "the GELU backward kernel");
  return LLMOPS_DRV_OK;
}

struct DrvComm {
  Comm* comm = nullptr;
  llmops_drv* first = nullptr;  // where errors are told
};

int drv_comm_create(llmops_drv* const* devs, int n, void** out) {
  if (out == nullptr || devs == nullptr || n < 1) return fail(nullptr, LLMOPS_DRV_EINVAL, "a communicator needs at least one device and an output");
  *out = nullptr;
  std::vector<int> ids;
  std::vector<cudaStream_t> streams;
  for (int i = 0; i < n; ++i) ids.push_back(devs[i]->device), streams.push_back(devs[i]->stream);
  auto* dc = new DrvComm;
  dc->first = devs[0];
  if (int rc = comm_create(ids.data(), streams.data(), n, &dc->comm, &devs[0]->error); rc != LLMOPS_DRV_OK) {
    delete dc;
    return rc;
  }
  *out = dc;
  return LLMOPS_DRV_OK;
}

int drv_comm_all_reduce(void* comm, float* const* bufs, uint64_t count) {
  auto* dc = static_cast<DrvComm*>(comm);
  if (dc == nullptr) return fail(nullptr, LLMOPS_DRV_EINVAL, "all-reduce without a communicator");
  if (bufs == nullptr) return fail(dc->first, LLMOPS_DRV_EINVAL, "all-reduce without buffers");
  return comm_all_reduce(dc->comm, bufs, count, &dc->first->error);
}

void drv_comm_destroy(void* comm) {
  auto* dc = static_cast<DrvComm*>(comm);
  if (dc == nullptr) return;
  comm_destroy(dc->comm);
  delete dc;
}

int drv_sample(llmops_drv* d, float* logits, int t, int n, const llmops_drv_sampling* rows, const int32_t* penalty_tokens,
               const int32_t* penalty_counts, int32_t* ids) {
  if (t < 1 || n < 1 || logits == nullptr || rows == nullptr || ids == nullptr) return fail(d, LLMOPS_DRV_EINVAL, "sample needs t, n >= 1, logits, rows and ids");
  DRV_CUDA(d, sample(logits, t, n, rows, penalty_tokens, penalty_counts, ids, d->stream), "the sampling kernel");
  return LLMOPS_DRV_OK;
}

const llmops_driver_api kApi = {
    sizeof(llmops_driver_api),
    LLMOPS_DRIVER_ABI_MAJOR,
    LLMOPS_DRIVER_ABI_MINOR,
    "cuda",
    "0.1.0",
    drv_score,
    drv_device_count,
    drv_device_info,
    drv_open,
    drv_close,
    drv_last_error,
    drv_alloc,
    drv_free,
    drv_upload,
    drv_download,
    drv_copy,
    drv_synchronize,
    drv_mark,
    drv_elapsed_ms,
    drv_matmul,
    drv_get_rows,
    drv_rms_norm,
    drv_layer_norm,
    drv_rope,
    drv_swiglu,
    drv_gelu,
    drv_add,
    drv_kv_store,
    drv_attention,
    drv_argmax,
    drv_fill_random,
    drv_capture_begin,
    drv_capture_end,
    drv_graph_launch,
    drv_graph_destroy,
    drv_matmul_add,
    drv_gemm,
    drv_rope_inverse,
    drv_rms_norm_backward,
    drv_swiglu_backward,
    drv_attention_train,
    drv_attention_train_backward,
    drv_cross_entropy,
    drv_embedding_backward,
    drv_sum_squares,
    drv_adamw,
    drv_zero,
    drv_dropout,
    drv_set_math,
    drv_layer_norm_backward,
    drv_add_bias,
    drv_bias_backward,
    drv_gelu_backward,
    drv_comm_create,
    drv_comm_all_reduce,
    drv_comm_destroy,
    drv_sample,
    drv_upload_async,
    drv_upload_release,
    drv_upload_wait,
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const llmops_driver_api* llmops_driver_get_api(void) { return &kApi; }
