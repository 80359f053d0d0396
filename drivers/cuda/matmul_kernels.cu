// Weight-reading kernels: the few-token matrix product that dequantises in registers (the decode
// hot path), the int8 tensor-core product of quantised weights and many tokens (mmq.cuh), the
// dequantised tiles cuBLAS multiplies for the rest, embedding lookups and the random fill of
// benchmark weights.
#include "kernels.cuh"
#include "mmq.cuh"
#include "quant.cuh"
#include "reduce.cuh"

namespace llmops::cuda {
namespace {

constexpr int kMatvecThreads = 128;  // one block per output row; each thread takes every 128th unit

template <int TYPE, int NT>
__global__ void __launch_bounds__(kMatvecThreads) matvec_kernel(const uint8_t* __restrict__ w, uint64_t row_bytes, int cols,
                                                                 const float* __restrict__ x, int t, float* __restrict__ y,
                                                                 uint64_t rows, const float* __restrict__ bias, bool accumulate) {
  __shared__ float partial[kMatvecThreads / 32][NT];
  const uint64_t row = blockIdx.x;
  const uint8_t* r = w + row * row_bytes;
  const int units = (cols + 31) / 32;
  const bool whole = (cols & 31) == 0;
  float acc[NT];
#pragma unroll
  for (int i = 0; i < NT; ++i) acc[i] = 0.0f;
  for (int u = threadIdx.x; u < units; u += kMatvecThreads) {
    float wv[32];
    load_unit<TYPE>(r, u, cols, wv);
#pragma unroll
    for (int tok = 0; tok < NT; ++tok) {
      if (tok >= t) break;
      const float* xr = x + static_cast<uint64_t>(tok) * cols + 32 * u;
      float sum = 0.0f;
      if (whole) {
        const float4* x4 = reinterpret_cast<const float4*>(xr);
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const float4 v = x4[i];
          sum += wv[4 * i] * v.x + wv[4 * i + 1] * v.y + wv[4 * i + 2] * v.z + wv[4 * i + 3] * v.w;
        }
      } else {
#pragma unroll
        for (int i = 0; i < 32; ++i) sum += 32 * u + i < cols ? wv[i] * xr[i] : 0.0f;
      }
      acc[tok] += sum;
    }
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
#pragma unroll
  for (int tok = 0; tok < NT; ++tok) {
    const float v = warp_sum(acc[tok]);
    if (lane == 0) partial[warp][tok] = v;
  }
  __syncthreads();
  if (threadIdx.x < NT && static_cast<int>(threadIdx.x) < t) {
    float sum = 0.0f;
#pragma unroll
    for (int wi = 0; wi < kMatvecThreads / 32; ++wi) sum += partial[wi][threadIdx.x];
    if (bias != nullptr) sum += bias[row];
    float* out = y + static_cast<uint64_t>(threadIdx.x) * rows + row;
    *out = accumulate ? *out + sum : sum;
  }
}

// A warp's sums for one row (NT tokens) into y: written, or added to it (accumulate), with the bias.
template <int NT>
__device__ inline void store_row(float (&acc)[NT], int lane, int t, float* y, uint64_t rows, uint64_t row, const float* bias, bool accumulate) {
#pragma unroll
  for (int tok = 0; tok < NT; ++tok) {
    const float v = warp_sum(acc[tok]);
    if (lane == 0 && tok < t) {
      float* out = y + static_cast<uint64_t>(tok) * rows + row;
      *out = (accumulate ? *out : 0.0f) + v + (bias != nullptr ? bias[row] : 0.0f);
    }
  }
}

// Decode (one or two tokens), rows of whole 8-weight groups: a warp per row, each lane taking
// 8 consecutive weights of every 256, so the warp's loads are coalesced; up to 16 groups per
// lane are loaded (as raw bits) before any is decoded, so many loads are in flight; the activations
// come through L1 (the block's 8 rows read the same ones). No shared memory, no barriers.
constexpr int kWideRows = 8;  // rows (warps) per block

template <int TYPE, int NT>
__global__ void __launch_bounds__(kWideRows * 32) matvec_decode_kernel(const uint8_t* __restrict__ w, uint64_t row_bytes, int cols,
                                                                        const float* __restrict__ x, int t, float* __restrict__ y,
                                                                        uint64_t rows, const float* __restrict__ bias, bool accumulate) {
  constexpr int U = groups_in_flight<TYPE>();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const uint64_t row = blockIdx.x * static_cast<uint64_t>(kWideRows) + warp;
  if (row >= rows) return;
  const uint8_t* r = w + row * row_bytes;
  const int groups = cols / 8;
  float acc[NT];
#pragma unroll
  for (int i = 0; i < NT; ++i) acc[i] = 0.0f;
  for (int g0 = lane; g0 < groups; g0 += 32 * U) {
    Raw8<TYPE> raw[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (g0 + 32 * u < groups) raw[u].load(r, g0 + 32 * u);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int g = g0 + 32 * u;
      if (g >= groups) break;
      float wv[8];
      raw[u].decode(wv);
#pragma unroll
      for (int tok = 0; tok < NT; ++tok) {
        if (tok >= t) break;
        const float4* xv = reinterpret_cast<const float4*>(x + static_cast<uint64_t>(tok) * cols + 8 * g);
        const float4 a = __ldg(xv), b = __ldg(xv + 1);
        acc[tok] += wv[0] * a.x + wv[1] * a.y + wv[2] * a.z + wv[3] * a.w + wv[4] * b.x + wv[5] * b.y + wv[6] * b.z + wv[7] * b.w;
      }
    }
  }
  store_row<NT>(acc, lane, t, y, rows, row, bias, accumulate);
}

// A few tokens (3 to 8): a block of 8 warps takes 8·RW rows, RW per warp; the tokens' activations
// for a chunk of columns are staged once in shared memory for all of them (instead of each row
// reading them again from L2), so the staging costs 1/(8·RW) of a read of x per row.
template <int TYPE, int NT, int RW>
__global__ void __launch_bounds__(kWideRows * 32) matvec_wide_kernel(const uint8_t* __restrict__ w, uint64_t row_bytes, int cols,
                                                                      const float* __restrict__ x, int t, float* __restrict__ y,
                                                                      uint64_t rows, const float* __restrict__ bias, bool accumulate) {
  constexpr int C = 1024;  // columns per chunk: NT × C floats of shared memory, at most 32 KB
  constexpr int G = C / 256;                // 8-weight groups per lane per chunk
  __shared__ __align__(16) float xs[NT * C];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const uint64_t row0 = (blockIdx.x * static_cast<uint64_t>(kWideRows) + warp) * RW;
  float acc[RW][NT];
#pragma unroll
  for (int rr = 0; rr < RW; ++rr) {
#pragma unroll
    for (int i = 0; i < NT; ++i) acc[rr][i] = 0.0f;
  }
  for (int c0 = 0; c0 < cols; c0 += C) {
    const int groups = min(C, cols - c0) / 8;
    for (int i = threadIdx.x; i < NT * C / 4; i += kWideRows * 32) {
      const int tok = i / (C / 4), c4 = i % (C / 4);
      float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (tok < t && 4 * c4 < 8 * groups) v = *reinterpret_cast<const float4*>(x + static_cast<uint64_t>(tok) * cols + c0 + 4 * c4);
      reinterpret_cast<float4*>(xs)[i] = v;
    }
    __syncthreads();
#pragma unroll
    for (int rr = 0; rr < RW; ++rr) {
      if (row0 + rr >= rows) break;
      const uint8_t* r = w + (row0 + rr) * row_bytes;
      float wv[G][8];
#pragma unroll
      for (int i = 0; i < G; ++i) {
        if (lane + 32 * i < groups) load8<TYPE>(r, c0 / 8 + lane + 32 * i, wv[i]);
      }
#pragma unroll
      for (int i = 0; i < G; ++i) {
        const int g = lane + 32 * i;
        if (g >= groups) break;
#pragma unroll
        for (int tok = 0; tok < NT; ++tok) {
          const float4* xv = reinterpret_cast<const float4*>(xs + tok * C + 8 * g);
          const float4 a = xv[0], b = xv[1];
          acc[rr][tok] += wv[i][0] * a.x + wv[i][1] * a.y + wv[i][2] * a.z + wv[i][3] * a.w + wv[i][4] * b.x + wv[i][5] * b.y +
                          wv[i][6] * b.z + wv[i][7] * b.w;
        }
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int rr = 0; rr < RW; ++rr) {
    if (row0 + rr >= rows) break;
#pragma unroll
    for (int tok = 0; tok < NT; ++tok) {
      const float v = warp_sum(acc[rr][tok]);
      if (lane == 0 && tok < t) {
        float* out = y + static_cast<uint64_t>(tok) * rows + row0 + rr;
        *out = (accumulate ? *out : 0.0f) + v + (bias != nullptr ? bias[row0 + rr] : 0.0f);
      }
    }
  }
}

// Q4_K decode with the activations in 8 bits: the float kernel above reads 4 bytes of x from
// L1 for every half byte of weights, and that, not the weights, bounds it (measured on an
// H200: Q4_K took as long as F16 for the same shape). Here x is first quantised per 32 values
// (an int8 each, one scale, and d·Σq for the min term), and a lane takes a whole 32-weight
// sub-block: 32 bytes of nibbles (shared with its neighbour) and 32 of x, 8 dp4a. What
// llama.cpp's mmvq does.
// x to int8 per 32 values, as the CPU engine's quantize_q8 (d = amax / 127, q = round(x / d)
// half away from zero, through 1/d) writes them, with d·Σq for the min term: the product is
// then exactly W · x̂, x̂ the rounded activations.
__global__ void quantize_x_kernel(const float* __restrict__ x, int8_t* __restrict__ xq, float* __restrict__ xd, float* __restrict__ xs,
                                  int blocks) {
  const int b = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
  if (b >= blocks) return;
  const float v = x[static_cast<uint64_t>(b) * 32 + lane];
  float amax = fabsf(v);
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
  const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  const int q = static_cast<int>(roundf(v * id));
  int sum = q;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  xq[static_cast<uint64_t>(b) * 32 + lane] = static_cast<int8_t>(q);
  if (lane == 0) xd[b] = d, xs[b] = d * static_cast<float>(sum);
}

template <int NT>
__global__ void __launch_bounds__(kWideRows * 32) matvec_q4k_q8_kernel(const uint8_t* __restrict__ w, uint64_t row_bytes, int cols,
                                                                        const int8_t* __restrict__ xq, const float* __restrict__ xd,
                                                                        const float* __restrict__ xs, int t, float* __restrict__ y,
                                                                        uint64_t rows, const float* __restrict__ bias, bool accumulate) {
  constexpr int U = 2;  // sub-blocks in flight per lane
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const uint64_t row = blockIdx.x * static_cast<uint64_t>(kWideRows) + warp;
  if (row >= rows) return;
  const uint8_t* r = w + row * row_bytes;
  const int units = cols / 32;
  float acc[NT];
#pragma unroll
  for (int i = 0; i < NT; ++i) acc[i] = 0.0f;
  for (int u0 = lane; u0 < units; u0 += 32 * U) {
    uint4 q[U][2];
    float scale[U], minv[U];
#pragma unroll
    for (int k = 0; k < U; ++k) {
      const int u = u0 + 32 * k;
      if (u >= units) break;
      const uint8_t* b = r + 144 * (u >> 3);
      const int j = u & 7;
      q4k_group_scale(b, j, &scale[k], &minv[k]);
      const uint4* qs = reinterpret_cast<const uint4*>(b + 16 + 32 * (j >> 1));
      q[k][0] = qs[0], q[k][1] = qs[1];
    }
#pragma unroll
    for (int k = 0; k < U; ++k) {
      const int u = u0 + 32 * k;
      if (u >= units) break;
      const int shift = (u & 1) * 4;
      const uint32_t words[8] = {q[k][0].x, q[k][0].y, q[k][0].z, q[k][0].w, q[k][1].x, q[k][1].y, q[k][1].z, q[k][1].w};
#pragma unroll
      for (int tok = 0; tok < NT; ++tok) {
        if (tok >= t) break;
        const uint64_t at = static_cast<uint64_t>(tok) * cols + 32 * static_cast<uint64_t>(u);
        const uint4 xa = __ldg(reinterpret_cast<const uint4*>(xq + at)), xb = __ldg(reinterpret_cast<const uint4*>(xq + at) + 1);
        const int xw[8] = {static_cast<int>(xa.x), static_cast<int>(xa.y), static_cast<int>(xa.z), static_cast<int>(xa.w),
                           static_cast<int>(xb.x), static_cast<int>(xb.y), static_cast<int>(xb.z), static_cast<int>(xb.w)};
        int sum = 0;
#pragma unroll
        for (int i = 0; i < 8; ++i) sum = __dp4a(static_cast<int>((words[i] >> shift) & 0x0F0F0F0Fu), xw[i], sum);
        const uint64_t blk = static_cast<uint64_t>(tok) * units + u;
        acc[tok] += scale[k] * __ldg(xd + blk) * static_cast<float>(sum) - minv[k] * __ldg(xs + blk);
      }
    }
  }
  store_row<NT>(acc, lane, t, y, rows, row, bias, accumulate);
}

// D += A · B over one m16n8k32 int8 tile (mmq.cuh gives the registers' layout).
__device__ inline void mma_s8(int c[4], const uint32_t a[4], const uint32_t b[2]) {
  asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// A warp takes 16 rows and TILES tiles of 8 tokens; per unit it unpacks its two rows' quants once
// and runs one mma per token tile. Rows past the matrix repeat its last row (their sums are not
// stored), tokens past the batch multiply zeros.
template <int TYPE, int TILES>
__global__ void __launch_bounds__(mmq::kWarps * 32) mmq_kernel(const uint8_t* __restrict__ w, uint64_t row_bytes, int cols,
                                                               const int8_t* __restrict__ xq, const float* __restrict__ xd,
                                                               const float* __restrict__ xs, int t, float* __restrict__ y, uint64_t rows,
                                                               const float* __restrict__ bias, bool accumulate) {
  using namespace mmq;
  const Lane l = lane_of(static_cast<int>(threadIdx.x & 31));
  const uint64_t row0 = (static_cast<uint64_t>(blockIdx.x) * kWarps + threadIdx.x / 32) * kRowsPerWarp;
  if (row0 >= rows) return;  // the whole warp: mma needs every lane
  const int tok0 = static_cast<int>(blockIdx.y) * TILES * kTokensPerTile;
  const uint8_t* top = w + min(row0 + l.group, rows - 1) * row_bytes;
  const uint8_t* bottom = w + min(row0 + l.group + 8, rows - 1) * row_bytes;
  const int units = cols / 32;
  float acc[TILES][4];
#pragma unroll
  for (int n = 0; n < TILES; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
#pragma unroll 2
  for (int u = 0; u < units; ++u) {
    const UnitQuants qt = unit_quants<TYPE>(top, u, l.quad), qb = unit_quants<TYPE>(bottom, u, l.quad);
    uint32_t a[4];
    a_registers(qt, qb, a);
#pragma unroll
    for (int n = 0; n < TILES; ++n) {
      const int tile0 = tok0 + n * kTokensPerTile;
      if (tile0 >= t) break;  // the same for every lane
      uint32_t b[2];
      b_registers(xq, static_cast<uint64_t>(cols), tile0 + l.group, t, u, l.quad, b);
      int c[4] = {0, 0, 0, 0};
      mma_s8(c, a, b);
      float xdv[2], xsv[2];
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int tok = tile0 + 2 * l.quad + e;
        const uint64_t blk = static_cast<uint64_t>(tok) * units + u;
        xdv[e] = tok < t ? __ldg(xd + blk) : 0.0f;
        xsv[e] = tok < t ? __ldg(xs + blk) : 0.0f;
      }
      mmq::accumulate(acc[n], c, qt, qb, xdv, xsv);
    }
  }
#pragma unroll
  for (int n = 0; n < TILES; ++n) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint64_t row = row0 + acc_row(l, i);
      const int tok = tok0 + n * kTokensPerTile + acc_token(l, i);
      if (row >= rows || tok >= t) continue;
      float* out = y + static_cast<uint64_t>(tok) * rows + row;
      *out = (accumulate ? *out : 0.0f) + acc[n][i] + (bias != nullptr ? bias[row] : 0.0f);
    }
  }
}

template <int TYPE>
void launch_mmq(const uint8_t* w, uint64_t cols, const int8_t* xq, const float* xd, const float* xs, int t, float* y, uint64_t rows,
                const float* bias, bool accumulate, cudaStream_t s) {
  constexpr int kBlockRows = mmq::kWarps * mmq::kRowsPerWarp;
  const unsigned row_blocks = static_cast<unsigned>((rows + kBlockRows - 1) / kBlockRows);
  const uint64_t rb = row_bytes(TYPE, cols);
  const int c = static_cast<int>(cols);
  if (t <= 4 * mmq::kTokensPerTile) {
    mmq_kernel<TYPE, 4><<<dim3(row_blocks, 1), mmq::kWarps * 32, 0, s>>>(w, rb, c, xq, xd, xs, t, y, rows, bias, accumulate);
  } else {
    constexpr int kTile = 8 * mmq::kTokensPerTile;
    const dim3 grid(row_blocks, static_cast<unsigned>((t + kTile - 1) / kTile));
    mmq_kernel<TYPE, 8><<<grid, mmq::kWarps * 32, 0, s>>>(w, rb, c, xq, xd, xs, t, y, rows, bias, accumulate);
  }
}

template <int TYPE, int NT>
void launch_matvec(const uint8_t* wb, uint64_t rb, int c, const float* xt, int n, float* yt, uint64_t rows, const float* bias, bool acc,
                   cudaStream_t s) {
  if constexpr (NT <= 2) {
    if (c % 8 == 0) {
      const unsigned blocks = static_cast<unsigned>((rows + kWideRows - 1) / kWideRows);
      matvec_decode_kernel<TYPE, NT><<<blocks, kWideRows * 32, 0, s>>>(wb, rb, c, xt, n, yt, rows, bias, acc);
      return;
    }
  } else {
    if (c % 8 == 0) {
      constexpr int RW = NT <= 4 ? 8 : 4;  // rows per warp: RW × NT accumulators per lane
      const unsigned blocks = static_cast<unsigned>((rows + kWideRows * RW - 1) / (kWideRows * RW));
      matvec_wide_kernel<TYPE, NT, RW><<<blocks, kWideRows * 32, 0, s>>>(wb, rb, c, xt, n, yt, rows, bias, acc);
      return;
    }
  }
  {  // float rows that are not whole groups of 8 (small models): the unit form reads within cols
    matvec_kernel<TYPE, NT><<<static_cast<unsigned>(rows), kMatvecThreads, 0, s>>>(wb, rb, c, xt, n, yt, rows, bias, acc);
  }
}

template <int TYPE>
cudaError_t matvec_typed(const void* w, uint64_t rows, uint64_t cols, const float* x, int t, float* y, const float* bias, bool acc,
                         cudaStream_t s) {
  const uint64_t rb = row_bytes(TYPE, cols);
  const auto* wb = static_cast<const uint8_t*>(w);
  const int c = static_cast<int>(cols);
  const int tile = 8;  // tokens per launch
  for (int done = 0; done < t; done += tile) {
    const int n = t - done < tile ? t - done : tile;
    const float* xt = x + static_cast<uint64_t>(done) * cols;
    float* yt = y + static_cast<uint64_t>(done) * rows;
    if (n == 1) {
      launch_matvec<TYPE, 1>(wb, rb, c, xt, n, yt, rows, bias, acc, s);
    } else if (n == 2) {
      launch_matvec<TYPE, 2>(wb, rb, c, xt, n, yt, rows, bias, acc, s);
    } else if (n <= 4) {
      launch_matvec<TYPE, 4>(wb, rb, c, xt, n, yt, rows, bias, acc, s);
    } else {
      launch_matvec<TYPE, 8>(wb, rb, c, xt, n, yt, rows, bias, acc, s);
    }
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

// One thread per 8-weight group, writing its 8 halves as one 16-byte store: the warp's loads
// and stores are both contiguous.
template <int TYPE>
__global__ void dequantize_half_kernel(const uint8_t* __restrict__ w, uint64_t row_bytes, int cols, uint64_t row0, uint64_t n,
                                       __half* __restrict__ out) {
  const int groups = cols / 8;
  const uint64_t item = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x;
  if (item >= n * groups) return;
  const uint64_t row = item / groups;
  const int g = static_cast<int>(item % groups);
  float wv[8];
  load8<TYPE>(w + (row0 + row) * row_bytes, g, wv);
  __align__(16) __half h[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) h[i] = __float2half(wv[i]);
  *reinterpret_cast<uint4*>(out + row * cols + 8 * g) = *reinterpret_cast<const uint4*>(h);
}

__global__ void to_half_kernel(const float* __restrict__ x, uint64_t n, void* out, bool bf16) {
  const uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  if (bf16) {
    static_cast<__nv_bfloat16*>(out)[i] = __float2bfloat16(x[i]);
  } else {
    static_cast<__half*>(out)[i] = __float2half(x[i]);
  }
}

__global__ void from_bf16_kernel(const __nv_bfloat16* __restrict__ x, uint64_t n, float* __restrict__ out) {
  const uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = __bfloat162float(x[i]);
}

__global__ void add_bias_kernel(float* y, const float* bias, uint64_t rows, uint64_t n) {
  const uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x;
  if (i < n) y[i] += bias[i % rows];
}

__global__ void get_rows_kernel(int type, const uint8_t* table, uint64_t row_bytes, int cols, const int32_t* ids, float* out) {
  const int tok = blockIdx.y;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= cols) return;
  const uint8_t* row = table + static_cast<uint64_t>(ids[tok]) * row_bytes;
  out[static_cast<uint64_t>(tok) * cols + i] = weight_at(type, row, i);
}

__device__ inline uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
__device__ inline float uniform_pm1(uint64_t h) { return static_cast<float>(h >> 40) * (2.0f / 16777216.0f) - 1.0f; }
__device__ inline void put_half(uint8_t* p, float v) {
  const uint16_t b = __half_as_ushort(__float2half(v));
  p[0] = static_cast<uint8_t>(b & 0xFF);
  p[1] = static_cast<uint8_t>(b >> 8);
}

// One thread per block of the type (per element for float types): random quants with scales
// that keep every weight within ±scale.
__global__ void fill_random_kernel(int type, uint8_t* w, uint64_t blocks, uint64_t seed, float scale) {
  const uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x;
  if (i >= blocks) return;
  uint64_t h = mix64(seed ^ (i * 0x2545F4914F6CDD1Dull));
  const int bytes = block_bytes(type);
  uint8_t* b = w + i * bytes;
  switch (type) {
    case LLMOPS_DT_F32: reinterpret_cast<float*>(b)[0] = scale * uniform_pm1(h); return;
    case LLMOPS_DT_F16: put_half(b, scale * uniform_pm1(h)); return;
    case LLMOPS_DT_BF16: {
      const __nv_bfloat16 v = __float2bfloat16(scale * uniform_pm1(h));
      const uint16_t bits = *reinterpret_cast<const uint16_t*>(&v);
      b[0] = static_cast<uint8_t>(bits & 0xFF), b[1] = static_cast<uint8_t>(bits >> 8);
      return;
    }
  }
  for (int k = 0; k < bytes; ++k) {
    if ((k & 7) == 0) h = mix64(h);
    b[k] = static_cast<uint8_t>(h >> (8 * (k & 7)));
  }
  switch (type) {
    case LLMOPS_DT_Q8_0: put_half(b, scale / 127.0f); break;
    case LLMOPS_DT_Q4_0: put_half(b, scale / 8.0f); break;
    case LLMOPS_DT_Q4_K:
      put_half(b, scale / (63.0f * 15.0f) * 2.0f);
      put_half(b + 2, scale / 63.0f);
      break;
    case LLMOPS_DT_Q6_K: put_half(b + 208, scale / (127.0f * 32.0f)); break;
  }
}

struct QuantisedX {
  int8_t* xq;
  float *xd, *xs;
};

// t rows of cols activations to int8 per 32 in scratch (q8_scratch_bytes(t, cols)).
QuantisedX quantize_x(const float* x, int t, uint64_t cols, void* scratch, cudaStream_t s) {
  const int blocks = static_cast<int>(static_cast<uint64_t>(t) * cols / 32);
  QuantisedX q;
  q.xq = static_cast<int8_t*>(scratch);
  q.xd = reinterpret_cast<float*>(q.xq + static_cast<uint64_t>(t) * cols);
  q.xs = q.xd + blocks;
  quantize_x_kernel<<<(blocks + 7) / 8, 256, 0, s>>>(x, q.xq, q.xd, q.xs, blocks);
  return q;
}

}  // namespace

cudaError_t matvec(int type, const void* w, uint64_t rows, uint64_t cols, const float* x, int t, float* y, const float* bias,
                   bool accumulate, cudaStream_t s) {
  switch (type) {
    case LLMOPS_DT_F32: return matvec_typed<LLMOPS_DT_F32>(w, rows, cols, x, t, y, bias, accumulate, s);
    case LLMOPS_DT_F16: return matvec_typed<LLMOPS_DT_F16>(w, rows, cols, x, t, y, bias, accumulate, s);
    case LLMOPS_DT_BF16: return matvec_typed<LLMOPS_DT_BF16>(w, rows, cols, x, t, y, bias, accumulate, s);
    case LLMOPS_DT_Q8_0: return matvec_typed<LLMOPS_DT_Q8_0>(w, rows, cols, x, t, y, bias, accumulate, s);
    case LLMOPS_DT_Q4_0: return matvec_typed<LLMOPS_DT_Q4_0>(w, rows, cols, x, t, y, bias, accumulate, s);
    case LLMOPS_DT_Q4_K: return matvec_typed<LLMOPS_DT_Q4_K>(w, rows, cols, x, t, y, bias, accumulate, s);
    case LLMOPS_DT_Q6_K: return matvec_typed<LLMOPS_DT_Q6_K>(w, rows, cols, x, t, y, bias, accumulate, s);
  }
  return cudaErrorInvalidValue;
}

cudaError_t matvec_q4k_q8(const void* w, uint64_t rows, uint64_t cols, const float* x, int t, float* y, const float* bias, bool accumulate,
                          void* scratch, cudaStream_t s) {
  const QuantisedX q = quantize_x(x, t, cols, scratch, s);
  const int8_t* xq = q.xq;
  const float *xd = q.xd, *xs = q.xs;
  const unsigned grid = static_cast<unsigned>((rows + kWideRows - 1) / kWideRows);
  const uint64_t rb = row_bytes(LLMOPS_DT_Q4_K, cols);
  const auto* wb = static_cast<const uint8_t*>(w);
  if (t == 1) {
    matvec_q4k_q8_kernel<1><<<grid, kWideRows * 32, 0, s>>>(wb, rb, static_cast<int>(cols), xq, xd, xs, t, y, rows, bias, accumulate);
  } else {
    matvec_q4k_q8_kernel<2><<<grid, kWideRows * 32, 0, s>>>(wb, rb, static_cast<int>(cols), xq, xd, xs, t, y, rows, bias, accumulate);
  }
  return cudaGetLastError();
}

bool mmq_takes(int type) { return type == LLMOPS_DT_Q8_0 || type == LLMOPS_DT_Q4_0 || type == LLMOPS_DT_Q4_K; }

cudaError_t matmul_mmq(int type, const void* w, uint64_t rows, uint64_t cols, const float* x, int t, float* y, const float* bias,
                       bool accumulate, void* scratch, cudaStream_t s) {
  const QuantisedX q = quantize_x(x, t, cols, scratch, s);
  const auto* wb = static_cast<const uint8_t*>(w);
  switch (type) {
    case LLMOPS_DT_Q8_0: launch_mmq<LLMOPS_DT_Q8_0>(wb, cols, q.xq, q.xd, q.xs, t, y, rows, bias, accumulate, s); break;
    case LLMOPS_DT_Q4_0: launch_mmq<LLMOPS_DT_Q4_0>(wb, cols, q.xq, q.xd, q.xs, t, y, rows, bias, accumulate, s); break;
    case LLMOPS_DT_Q4_K: launch_mmq<LLMOPS_DT_Q4_K>(wb, cols, q.xq, q.xd, q.xs, t, y, rows, bias, accumulate, s); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

uint64_t q8_scratch_bytes(int t, uint64_t cols) { return static_cast<uint64_t>(t) * cols + 2 * (static_cast<uint64_t>(t) * cols / 32) * 4 + 256; }

cudaError_t dequantize_half(int type, const void* w, uint64_t cols, uint64_t row0, uint64_t n, void* out_half, cudaStream_t s) {
  const uint64_t items = n * (cols / 8);  // quantised rows are whole blocks, so whole groups of 8
  const unsigned threads = 256, grid = blocks_for(items, threads);
  const auto* wb = static_cast<const uint8_t*>(w);
  const uint64_t rb = row_bytes(type, cols);
  auto* o = static_cast<__half*>(out_half);
  const int c = static_cast<int>(cols);
  switch (type) {
    case LLMOPS_DT_Q8_0: dequantize_half_kernel<LLMOPS_DT_Q8_0><<<grid, threads, 0, s>>>(wb, rb, c, row0, n, o); break;
    case LLMOPS_DT_Q4_0: dequantize_half_kernel<LLMOPS_DT_Q4_0><<<grid, threads, 0, s>>>(wb, rb, c, row0, n, o); break;
    case LLMOPS_DT_Q4_K: dequantize_half_kernel<LLMOPS_DT_Q4_K><<<grid, threads, 0, s>>>(wb, rb, c, row0, n, o); break;
    case LLMOPS_DT_Q6_K: dequantize_half_kernel<LLMOPS_DT_Q6_K><<<grid, threads, 0, s>>>(wb, rb, c, row0, n, o); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t to_half(const float* x, uint64_t n, void* out, bool bf16, cudaStream_t s) {
  to_half_kernel<<<blocks_for(n, 256), 256, 0, s>>>(x, n, out, bf16);
  return cudaGetLastError();
}

cudaError_t from_bf16(const void* x, uint64_t n, float* out, cudaStream_t s) {
  from_bf16_kernel<<<blocks_for(n, 256), 256, 0, s>>>(static_cast<const __nv_bfloat16*>(x), n, out);
  return cudaGetLastError();
}

cudaError_t add_bias(float* y, const float* bias, int t, uint64_t rows, cudaStream_t s) {
  const uint64_t n = static_cast<uint64_t>(t) * rows;
  add_bias_kernel<<<blocks_for(n, 256), 256, 0, s>>>(y, bias, rows, n);
  return cudaGetLastError();
}

cudaError_t get_rows(int type, const void* table, uint64_t cols, const int32_t* ids, int t, float* out, cudaStream_t s) {
  const dim3 grid(blocks_for(cols, 256), static_cast<unsigned>(t));
  get_rows_kernel<<<grid, 256, 0, s>>>(type, static_cast<const uint8_t*>(table), row_bytes(type, cols), static_cast<int>(cols), ids,
                                        out);
  return cudaGetLastError();
}

cudaError_t fill_random(int type, void* w, uint64_t rows, uint64_t cols, uint64_t seed, float scale, cudaStream_t s) {
  const uint64_t blocks = rows * (cols / block_weights(type));
  fill_random_kernel<<<blocks_for(blocks, 256), 256, 0, s>>>(type, static_cast<uint8_t*>(w), blocks, seed, scale);
  return cudaGetLastError();
}

}  // namespace llmops::cuda
