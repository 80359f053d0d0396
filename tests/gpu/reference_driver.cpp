#include "gpu/reference_driver.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "formats/ggml_types.h"
#include "llmops/counter_hash.h"
#include "train/llama_train.h"

struct llmops_drv {
  std::string error;
  int math = LLMOPS_MATH_F32;
  std::chrono::steady_clock::time_point marks[2];  // everything runs at once: wall time is device time
  // upload_async's copies land only at the slot's upload_wait, so a caller that reads a slot
  // without waiting for it reads stale bytes here, as it could on a GPU.
  struct Pending {
    void* dst;
    std::vector<uint8_t> bytes;
  };
  std::vector<Pending> pending[LLMOPS_DRV_UPLOAD_SLOTS];
  // A slot waited for and not released since: its area may still be read, so upload_async
  // into it is a caller's bug (on a GPU the copy would overwrite weights a kernel reads).
  bool in_use[LLMOPS_DRV_UPLOAD_SLOTS] = {};
};

namespace llmops::engine::gpu_test {
namespace {

thread_local std::string g_error;

int fail(llmops_drv* d, int code, const std::string& what) {
  (d != nullptr ? d->error : g_error) = what;
  return code;
}
int unsupported(llmops_drv* d, const char* op) {
  return fail(d, LLMOPS_DRV_EUNSUPPORTED, std::string("the CPU reference driver does not do ") + op);
}

// Two "devices", so that data parallelism has a group to run on, of kDeviceBytes each: a larger
// allocation fails as a full device's would.
constexpr int kDevices = 2;
constexpr uint64_t kDeviceBytes = 8ull << 30;

int ref_score() { return 1; }
int ref_device_count() { return kDevices; }
int ref_device_info(int device, llmops_drv_device_info* out) {
  if (device < 0 || device >= kDevices) return fail(nullptr, LLMOPS_DRV_EINVAL, "the reference driver has two devices");
  std::memset(out, 0, sizeof(*out));
  std::snprintf(out->name, sizeof(out->name), "CPU reference");
  std::snprintf(out->pci_bus_id, sizeof(out->pci_bus_id), "none");
  out->total_bytes = out->free_bytes = kDeviceBytes;
  out->multiprocessors = 1;
  return LLMOPS_DRV_OK;
}
int ref_open(int device, llmops_drv** out) {
  if (device < 0 || device >= kDevices) return fail(nullptr, LLMOPS_DRV_EINVAL, "the reference driver has two devices");
  *out = new llmops_drv;
  return LLMOPS_DRV_OK;
}
void ref_close(llmops_drv* d) { delete d; }
const char* ref_last_error(llmops_drv* d) { return d != nullptr ? d->error.c_str() : g_error.c_str(); }
void* ref_alloc(llmops_drv* d, uint64_t bytes) {
  if (bytes > kDeviceBytes) {
    fail(d, LLMOPS_DRV_ENOMEM, "allocating " + std::to_string(bytes >> 20) + " MiB: the reference device has " + std::to_string(kDeviceBytes >> 20));
    return nullptr;
  }
  return std::calloc(std::max<uint64_t>(bytes, 1), 1);
}
// upload_async's copies into slot land now.
void land(llmops_drv* d, int slot) {
  for (const auto& c : d->pending[slot]) std::memcpy(c.dst, c.bytes.data(), c.bytes.size());
  d->pending[slot].clear();
}
// As the CUDA driver's free, it lets every upload in flight land first.
void ref_free(llmops_drv* d, void* p) {
  for (int slot = 0; slot < LLMOPS_DRV_UPLOAD_SLOTS; ++slot) land(d, slot);
  std::free(p);
}
int ref_copy(llmops_drv*, void* dst, const void* src, uint64_t bytes) {
  if (bytes > 0) std::memmove(dst, src, bytes);
  return LLMOPS_DRV_OK;
}
int ref_synchronize(llmops_drv*) { return LLMOPS_DRV_OK; }
int ref_mark(llmops_drv* d, int slot) {
  if (slot != 0 && slot != 1) return fail(d, LLMOPS_DRV_EINVAL, "mark slot must be 0 or 1");
  d->marks[slot] = std::chrono::steady_clock::now();
  return LLMOPS_DRV_OK;
}
int ref_elapsed_ms(llmops_drv* d, float* ms) {
  *ms = std::chrono::duration<float, std::milli>(d->marks[1] - d->marks[0]).count();
  return LLMOPS_DRV_OK;
}

// y[t][rows] (+)= x[t][cols]·Wᵀ (+ bias), W of any type the engine dequantises.
std::atomic<int> g_fail_product{0};

int product(llmops_drv* d, int type, const void* w, uint64_t rows, uint64_t cols, const float* x, int t, float* y, const float* bias, bool add) {
  if (int n = g_fail_product.load(); n > 0 && g_fail_product.fetch_sub(1) == 1) return fail(d, LLMOPS_DRV_EDEVICE, "an injected product failure");
  const auto row_bytes = ggml_row_bytes(static_cast<GgmlType>(type), cols);
  if (!row_bytes) {
    const auto info = ggml_type_info(static_cast<uint32_t>(type));
    if (!info || !info->can_dequantize) return fail(d, LLMOPS_DRV_EUNSUPPORTED, "weight type " + std::to_string(type) + " is not read by the reference driver");
    return fail(d, LLMOPS_DRV_EINVAL, std::to_string(cols) + " columns are not whole blocks of weight type " + std::to_string(type));
  }
  std::vector<float> wr(cols);
  for (uint64_t r = 0; r < rows; ++r) {
    dequantize_row(static_cast<GgmlType>(type), static_cast<const uint8_t*>(w) + r * *row_bytes, wr.data(), cols);
    for (int i = 0; i < t; ++i) {
      double s = bias != nullptr ? bias[r] : 0.0;
      for (uint64_t j = 0; j < cols; ++j) s += static_cast<double>(wr[j]) * x[static_cast<uint64_t>(i) * cols + j];
      float& out = y[static_cast<uint64_t>(i) * rows + r];
      out = static_cast<float>(add ? out + s : s);
    }
  }
  return LLMOPS_DRV_OK;
}
int ref_matmul(llmops_drv* d, int type, const void* w, uint64_t rows, uint64_t cols, const float* x, int t, float* y, const float* bias) {
  return product(d, type, w, rows, cols, x, t, y, bias, false);
}
int ref_matmul_add(llmops_drv* d, int type, const void* w, uint64_t rows, uint64_t cols, const float* x, int t, float* y, const float* bias) {
  return product(d, type, w, rows, cols, x, t, y, bias, true);
}
int ref_get_rows(llmops_drv* d, int type, const void* table, uint64_t cols, const int32_t* ids, int t, float* out) {
  const auto row_bytes = ggml_row_bytes(static_cast<GgmlType>(type), cols);
  if (!row_bytes) return fail(d, LLMOPS_DRV_EINVAL, "a table of " + std::to_string(cols) + " columns of type " + std::to_string(type));
  for (int i = 0; i < t; ++i) {
    dequantize_row(static_cast<GgmlType>(type), static_cast<const uint8_t*>(table) + static_cast<uint64_t>(ids[i]) * *row_bytes,
                   out + static_cast<uint64_t>(i) * cols, cols);
  }
  return LLMOPS_DRV_OK;
}

int norm(const float* x, const float* w, const float* b, float* y, int t, int n, float eps, bool layer) {
  for (int i = 0; i < t; ++i) {
    const float* xi = x + static_cast<size_t>(i) * n;
    double mean = 0, ss = 0;
    if (layer) {
      for (int j = 0; j < n; ++j) mean += xi[j];
      mean /= n;
    }
    for (int j = 0; j < n; ++j) ss += (xi[j] - mean) * (xi[j] - mean);
    const double r = 1.0 / std::sqrt(ss / n + eps);
    for (int j = 0; j < n; ++j) y[static_cast<size_t>(i) * n + j] = static_cast<float>(w[j] * (xi[j] - mean) * r + (b != nullptr ? b[j] : 0.0));
  }
  return LLMOPS_DRV_OK;
}
int ref_rms_norm(llmops_drv*, const float* x, const float* w, float* y, int t, int n, float eps) { return norm(x, w, nullptr, y, t, n, eps, false); }
int ref_layer_norm(llmops_drv*, const float* x, const float* w, const float* b, float* y, int t, int n, float eps) {
  return norm(x, w, b, y, t, n, eps, true);
}

int rotate(llmops_drv* d, float* x, int t, int n_heads, int head_dim, int rope_dims, const int32_t* positions, const float* inv_freq, int neox,
           double sign) {
  if (rope_dims <= 0 || rope_dims > head_dim || rope_dims % 2 != 0) return fail(d, LLMOPS_DRV_EINVAL, "rope_dims must be even and within head_dim");
  const int half = rope_dims / 2;
  for (int r = 0; r < t; ++r) {
    for (int i = 0; i < half; ++i) {
      const double angle = static_cast<float>(positions[r]) * inv_freq[i];  // the angle in F32, as the kernels take it
      const double cs = std::cos(angle), sn = sign * std::sin(angle);
      for (int h = 0; h < n_heads; ++h) {
        float* v = x + (static_cast<size_t>(r) * n_heads + h) * head_dim;
        float* a = neox ? v + i : v + 2 * i;
        float* c = neox ? v + i + half : v + 2 * i + 1;
        const double v0 = *a, v1 = *c;
        *a = static_cast<float>(v0 * cs - v1 * sn);
        *c = static_cast<float>(v0 * sn + v1 * cs);
      }
    }
  }
  return LLMOPS_DRV_OK;
}
int ref_rope(llmops_drv* d, float* x, int t, int n_heads, int head_dim, int rope_dims, const int32_t* positions, const float* inv_freq, int neox) {
  return rotate(d, x, t, n_heads, head_dim, rope_dims, positions, inv_freq, neox, 1.0);
}
int ref_rope_inverse(llmops_drv* d, float* x, int t, int n_heads, int head_dim, int rope_dims, const int32_t* positions, const float* inv_freq,
                     int neox) {
  return rotate(d, x, t, n_heads, head_dim, rope_dims, positions, inv_freq, neox, -1.0);
}

double sigmoid(double g) { return 1.0 / (1.0 + std::exp(-g)); }
int ref_swiglu(llmops_drv*, const float* gate, const float* up, float* out, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) out[i] = static_cast<float>(gate[i] * sigmoid(gate[i]) * up[i]);
  return LLMOPS_DRV_OK;
}
int ref_gelu(llmops_drv*, float* x, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    const double v = x[i];
    x[i] = static_cast<float>(0.5 * v * (1.0 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))));
  }
  return LLMOPS_DRV_OK;
}
int ref_add(llmops_drv*, float* acc, const float* x, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) acc[i] += x[i];
  return LLMOPS_DRV_OK;
}
// A head's rows in a token's cache: [layer][kv head][position][head_dim].
uint64_t head_offset(const llmops_drv_kv_ref& r, int layer, int n_kv_heads, int kv_head, int head_dim) {
  return (static_cast<uint64_t>(layer) * n_kv_heads + kv_head) * static_cast<uint64_t>(r.max_positions) * head_dim;
}

int check_cache_attn(llmops_drv* d, int t, const llmops_drv_attn_shape* s) {
  if (s == nullptr || t < 1 || s->n_heads < 1 || s->n_kv_heads < 1 || s->n_heads % s->n_kv_heads != 0 || s->head_dim < 1 || s->layer < 0) {
    return fail(d, LLMOPS_DRV_EINVAL, "attention needs t >= 1 and heads that group evenly");
  }
  return LLMOPS_DRV_OK;
}

int ref_kv_store(llmops_drv* d, const float* k, const float* v, int t, const llmops_drv_kv_ref* refs, const llmops_drv_attn_shape* s) {
  if (int rc = check_cache_attn(d, t, s); rc != LLMOPS_DRV_OK) return rc;
  const int kv_dim = s->n_kv_heads * s->head_dim;
  for (int i = 0; i < t; ++i) {
    const llmops_drv_kv_ref& r = refs[i];
    for (int h = 0; h < s->n_kv_heads; ++h) {
      const uint64_t at = head_offset(r, s->layer, s->n_kv_heads, h, s->head_dim) + static_cast<uint64_t>(r.pos) * s->head_dim;
      for (int e = 0; e < s->head_dim; ++e) {
        r.k[at + e] = k[static_cast<uint64_t>(i) * kv_dim + h * s->head_dim + e];
        r.v[at + e] = v[static_cast<uint64_t>(i) * kv_dim + h * s->head_dim + e];
      }
    }
  }
  return LLMOPS_DRV_OK;
}

int ref_attention(llmops_drv* d, const float* q, float* out, int t, const llmops_drv_kv_ref* refs, const llmops_drv_attn_shape* s) {
  if (int rc = check_cache_attn(d, t, s); rc != LLMOPS_DRV_OK) return rc;
  const int group = s->n_heads / s->n_kv_heads;
  std::vector<double> score;
  for (int i = 0; i < t; ++i) {
    const llmops_drv_kv_ref& r = refs[i];
    if (r.pos + 1 > s->max_positions) return fail(d, LLMOPS_DRV_EINVAL, "a token's position is past the shape's max_positions");
    score.resize(static_cast<size_t>(r.pos) + 1);
    for (int h = 0; h < s->n_heads; ++h) {
      const float* qh = q + (static_cast<uint64_t>(i) * s->n_heads + h) * s->head_dim;
      const uint64_t base = head_offset(r, s->layer, s->n_kv_heads, h / group, s->head_dim);
      double mx = -INFINITY, sum = 0;
      for (int p = 0; p <= r.pos; ++p) {
        double dot = 0;
        for (int e = 0; e < s->head_dim; ++e) dot += static_cast<double>(qh[e]) * r.k[base + static_cast<uint64_t>(p) * s->head_dim + e];
        mx = std::max(mx, score[static_cast<size_t>(p)] = dot * s->scale);
      }
      for (int p = 0; p <= r.pos; ++p) sum += (score[static_cast<size_t>(p)] = std::exp(score[static_cast<size_t>(p)] - mx));
      float* oh = out + (static_cast<uint64_t>(i) * s->n_heads + h) * s->head_dim;
      for (int e = 0; e < s->head_dim; ++e) {
        double o = 0;
        for (int p = 0; p <= r.pos; ++p) o += score[static_cast<size_t>(p)] * r.v[base + static_cast<uint64_t>(p) * s->head_dim + e];
        oh[e] = static_cast<float>(o / sum);
      }
    }
  }
  return LLMOPS_DRV_OK;
}
int ref_argmax(llmops_drv*, const float* logits, int t, int n, int32_t* ids) {
  for (int i = 0; i < t; ++i) {
    const float* r = logits + static_cast<size_t>(i) * n;
    ids[i] = static_cast<int32_t>(std::max_element(r, r + n) - r);
  }
  return LLMOPS_DRV_OK;
}
int ref_fill_random(llmops_drv* d, int type, void* w, uint64_t rows, uint64_t cols, uint64_t seed, float scale) {
  if (type != LLMOPS_DT_F32) return unsupported(d, "random weights of a quantised type");
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  for (uint64_t i = 0; i < rows * cols; ++i) static_cast<float*>(w)[i] = u(rng);
  return LLMOPS_DRV_OK;
}
int ref_capture_begin(llmops_drv* d) { return unsupported(d, "graphs"); }
int ref_capture_end(llmops_drv* d, void** graph) {
  *graph = nullptr;
  return unsupported(d, "graphs");
}
int ref_graph_launch(llmops_drv* d, void*) { return unsupported(d, "graphs"); }
void ref_graph_destroy(llmops_drv*, void*) {}

// ---- training ----

// An input as the tensor cores see it: mantissa rounded to `bits` (to nearest, ties to even).
double rounded(float x, int math) {
  if (math == LLMOPS_MATH_F32 || !std::isfinite(x)) return x;
  const int drop = math == LLMOPS_MATH_BF16 ? 16 : 13;
  uint32_t u;
  std::memcpy(&u, &x, 4);
  const uint32_t half = 1u << (drop - 1), lsb = (u >> drop) & 1u;
  u = (u + half - 1 + lsb) & ~((1u << drop) - 1);
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}

int ref_gemm(llmops_drv* d, int ta, int tb, int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb, float beta, float* c,
             int ldc) {
  if (m < 1 || n < 1 || k < 1) return fail(d, LLMOPS_DRV_EINVAL, "gemm needs m, n, k >= 1");
  const int math = d->math;
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double s = 0;
      for (int p = 0; p < k; ++p) {
        const double av = rounded(ta ? a[static_cast<size_t>(p) * lda + i] : a[static_cast<size_t>(i) * lda + p], math);
        const double bv = rounded(tb ? b[static_cast<size_t>(j) * ldb + p] : b[static_cast<size_t>(p) * ldb + j], math);
        s += av * bv;
      }
      float& out = c[static_cast<size_t>(i) * ldc + j];
      out = static_cast<float>(alpha * s + (beta != 0.0f ? static_cast<double>(beta) * out : 0.0));
    }
  }
  return LLMOPS_DRV_OK;
}

int ref_rms_norm_backward(llmops_drv*, const float* x, const float* w, const float* dy, float* dx, float* dw, float*, int t, int n, float eps) {
  std::vector<double> dw_acc(static_cast<size_t>(n), 0.0);
  for (int i = 0; i < t; ++i) {
    const float* xi = x + static_cast<size_t>(i) * n;
    const float* dyi = dy + static_cast<size_t>(i) * n;
    double ss = 0, dot = 0;
    for (int j = 0; j < n; ++j) ss += static_cast<double>(xi[j]) * xi[j], dot += static_cast<double>(w[j]) * dyi[j] * xi[j];
    const double r = 1.0 / std::sqrt(ss / n + eps), k = dot * r * r * r / n;
    for (int j = 0; j < n; ++j) {
      dw_acc[static_cast<size_t>(j)] += dyi[j] * xi[j] * r;
      dx[static_cast<size_t>(i) * n + j] += static_cast<float>(r * w[j] * dyi[j] - k * xi[j]);
    }
  }
  for (int j = 0; j < n; ++j) dw[j] += static_cast<float>(dw_acc[static_cast<size_t>(j)]);
  return LLMOPS_DRV_OK;
}

int ref_swiglu_backward(llmops_drv*, const float* gate, const float* up, const float* dh, float* dgate, float* dup, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    const double g = gate[i], s = sigmoid(g);
    dup[i] = static_cast<float>(dh[i] * g * s);
    dgate[i] = static_cast<float>(dh[i] * up[i] * s * (1.0 + g * (1.0 - s)));
  }
  return LLMOPS_DRV_OK;
}

struct Attn {
  const llmops_drv_train_attn& a;
  size_t q(int b, int t, int h) const { return ((static_cast<size_t>(b) * a.seq + t) * a.n_heads + h) * a.head_dim; }
  size_t kv(int b, int u, int h) const { return ((static_cast<size_t>(b) * a.seq + u) * a.n_kv_heads + h / (a.n_heads / a.n_kv_heads)) * a.head_dim; }
  size_t stat(int b, int h, int t) const { return (static_cast<size_t>(b) * a.n_heads + h) * a.seq + t; }
  double dot(const float* x, const float* y) const {
    double s = 0;
    for (int d = 0; d < a.head_dim; ++d) s += static_cast<double>(x[d]) * y[d];
    return s;
  }
};

int check_attn(llmops_drv* d, const llmops_drv_train_attn* a) {
  if (a->batch < 1 || a->seq < 1 || a->n_heads < 1 || a->n_kv_heads < 1 || a->n_heads % a->n_kv_heads != 0 || a->head_dim < 1) {
    return fail(d, LLMOPS_DRV_EINVAL, "training attention needs batch, seq >= 1 and heads that group evenly");
  }
  return LLMOPS_DRV_OK;
}

int ref_attention_train(llmops_drv* d, const float* q, const float* k, const float* v, float* out, float* lse, const llmops_drv_train_attn* shape) {
  if (int rc = check_attn(d, shape); rc != LLMOPS_DRV_OK) return rc;
  const Attn at{*shape};
  std::vector<double> s(static_cast<size_t>(shape->seq));
  for (int b = 0; b < shape->batch; ++b) {
    for (int h = 0; h < shape->n_heads; ++h) {
      for (int t = 0; t < shape->seq; ++t) {
        double m = -INFINITY, sum = 0;
        for (int u = 0; u <= t; ++u) m = std::max(m, s[static_cast<size_t>(u)] = shape->scale * at.dot(q + at.q(b, t, h), k + at.kv(b, u, h)));
        for (int u = 0; u <= t; ++u) sum += (s[static_cast<size_t>(u)] = std::exp(s[static_cast<size_t>(u)] - m));
        lse[at.stat(b, h, t)] = static_cast<float>(m + std::log(sum));
        for (int dd = 0; dd < shape->head_dim; ++dd) {
          double o = 0;
          for (int u = 0; u <= t; ++u) o += s[static_cast<size_t>(u)] * v[at.kv(b, u, h) + dd];
          out[at.q(b, t, h) + dd] = static_cast<float>(o / sum);
        }
      }
    }
  }
  return LLMOPS_DRV_OK;
}

int ref_attention_train_backward(llmops_drv* d, const float* q, const float* k, const float* v, const float* out, const float* lse, const float* dout,
                                 float* dq, float* dk, float* dv, float*, const llmops_drv_train_attn* shape) {
  if (int rc = check_attn(d, shape); rc != LLMOPS_DRV_OK) return rc;
  const Attn at{*shape};
  const size_t rows = static_cast<size_t>(shape->batch) * shape->seq;
  std::vector<double> gq(rows * shape->n_heads * shape->head_dim, 0.0), gk(rows * shape->n_kv_heads * shape->head_dim, 0.0), gv(gk.size(), 0.0);
  for (int b = 0; b < shape->batch; ++b) {
    for (int h = 0; h < shape->n_heads; ++h) {
      for (int t = 0; t < shape->seq; ++t) {
        const float* qt = q + at.q(b, t, h);
        const float* dot = dout + at.q(b, t, h);
        const double delta = at.dot(dot, out + at.q(b, t, h));
        for (int u = 0; u <= t; ++u) {
          const double p = std::exp(shape->scale * at.dot(qt, k + at.kv(b, u, h)) - lse[at.stat(b, h, t)]);
          const double ds = p * (at.dot(dot, v + at.kv(b, u, h)) - delta);
          for (int dd = 0; dd < shape->head_dim; ++dd) {
            gq[at.q(b, t, h) + dd] += shape->scale * ds * k[at.kv(b, u, h) + dd];
            gk[at.kv(b, u, h) + dd] += shape->scale * ds * qt[dd];
            gv[at.kv(b, u, h) + dd] += p * dot[dd];
          }
        }
      }
    }
  }
  for (size_t i = 0; i < gq.size(); ++i) dq[i] = static_cast<float>(gq[i]);
  for (size_t i = 0; i < gk.size(); ++i) dk[i] = static_cast<float>(gk[i]), dv[i] = static_cast<float>(gv[i]);
  return LLMOPS_DRV_OK;
}

int ref_cross_entropy(llmops_drv*, float* logits, const int32_t* targets, int t, int n, float scale, float* loss) {
  for (int i = 0; i < t; ++i) {
    float* x = logits + static_cast<size_t>(i) * n;
    if (targets[i] < 0 || targets[i] >= n) {
      std::fill(x, x + n, 0.0f);
      loss[i] = targets[i] < 0 ? 0.0f : NAN;
      continue;
    }
    const double m = *std::max_element(x, x + n);
    double sum = 0;
    for (int j = 0; j < n; ++j) sum += std::exp(x[j] - m);
    loss[i] = static_cast<float>(std::log(sum) + m - x[targets[i]]);
    for (int j = 0; j < n; ++j) x[j] = static_cast<float>((std::exp(x[j] - m) / sum - (j == targets[i] ? 1.0 : 0.0)) * scale);
  }
  return LLMOPS_DRV_OK;
}

int ref_embedding_backward(llmops_drv*, const int32_t* ids, const float* dx, int t, uint64_t cols, float* grad) {
  for (int i = 0; i < t; ++i) {
    for (uint64_t j = 0; j < cols; ++j) grad[static_cast<uint64_t>(ids[i]) * cols + j] += dx[static_cast<uint64_t>(i) * cols + j];
  }
  return LLMOPS_DRV_OK;
}

int ref_sum_squares(llmops_drv*, const float* x, uint64_t n, double* out) {
  double s = 0;
  for (uint64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  *out = s;
  return LLMOPS_DRV_OK;
}

int ref_adamw(llmops_drv*, float* p, const float* g, float* m, float* v, uint64_t n, const llmops_drv_adamw* h) {
  for (uint64_t i = 0; i < n; ++i) {
    const double gi = static_cast<double>(g[i]) * h->grad_scale;
    m[i] = static_cast<float>(h->beta1 * m[i] + (1.0 - h->beta1) * gi);
    v[i] = static_cast<float>(h->beta2 * v[i] + (1.0 - h->beta2) * gi * gi);
    p[i] = static_cast<float>(p[i] - h->lr * ((m[i] / h->bias1) / (std::sqrt(v[i] / h->bias2) + h->eps) + h->weight_decay * p[i]));
  }
  return LLMOPS_DRV_OK;
}

int ref_zero(llmops_drv*, void* p, uint64_t bytes) {
  std::memset(p, 0, bytes);
  return LLMOPS_DRV_OK;
}

// The mask is the CPU trainer's own (train::dropout_keeps), which driver.h's formula describes.
int ref_dropout(llmops_drv*, const float* x, float* y, uint64_t n, float p, float scale, uint64_t key) {
  for (uint64_t i = 0; i < n; ++i) y[i] = train::dropout_keeps(key, i, p) ? x[i] * scale : 0.0f;
  return LLMOPS_DRV_OK;
}

int ref_set_math(llmops_drv* d, int mode) {
  if (mode != LLMOPS_MATH_F32 && mode != LLMOPS_MATH_TF32 && mode != LLMOPS_MATH_BF16) return fail(d, LLMOPS_DRV_EINVAL, "math mode " + std::to_string(mode));
  d->math = mode;
  return LLMOPS_DRV_OK;
}

int ref_layer_norm_backward(llmops_drv*, const float* x, const float* w, const float* dy, float* dx, float* dw, float* db, float*, int t, int n,
                            float eps) {
  std::vector<double> aw(static_cast<size_t>(n), 0.0), ab(static_cast<size_t>(n), 0.0);
  for (int i = 0; i < t; ++i) {
    const float* xi = x + static_cast<size_t>(i) * n;
    const float* dyi = dy + static_cast<size_t>(i) * n;
    double mean = 0, var = 0;
    for (int j = 0; j < n; ++j) mean += xi[j];
    mean /= n;
    for (int j = 0; j < n; ++j) var += (xi[j] - mean) * (xi[j] - mean);
    const double r = 1.0 / std::sqrt(var / n + eps);
    double gm = 0, gxm = 0;
    for (int j = 0; j < n; ++j) gm += static_cast<double>(dyi[j]) * w[j], gxm += static_cast<double>(dyi[j]) * w[j] * (xi[j] - mean) * r;
    gm /= n, gxm /= n;
    for (int j = 0; j < n; ++j) {
      const double xh = (xi[j] - mean) * r;
      aw[static_cast<size_t>(j)] += dyi[j] * xh;
      ab[static_cast<size_t>(j)] += dyi[j];
      dx[static_cast<size_t>(i) * n + j] += static_cast<float>(r * (static_cast<double>(dyi[j]) * w[j] - gm - xh * gxm));
    }
  }
  for (int j = 0; j < n; ++j) dw[j] += static_cast<float>(aw[static_cast<size_t>(j)]), db[j] += static_cast<float>(ab[static_cast<size_t>(j)]);
  return LLMOPS_DRV_OK;
}

int ref_add_bias(llmops_drv*, float* y, const float* b, int t, uint64_t n) {
  for (int i = 0; i < t; ++i) {
    for (uint64_t j = 0; j < n; ++j) y[static_cast<uint64_t>(i) * n + j] += b[j];
  }
  return LLMOPS_DRV_OK;
}

int ref_bias_backward(llmops_drv*, const float* dy, float* db, int t, uint64_t n) {
  for (uint64_t j = 0; j < n; ++j) {
    double s = 0;
    for (int i = 0; i < t; ++i) s += dy[static_cast<uint64_t>(i) * n + j];
    db[j] += static_cast<float>(s);
  }
  return LLMOPS_DRV_OK;
}

int ref_gelu_backward(llmops_drv*, const float* x, const float* dy, float* dx, uint64_t n) {
  constexpr double c = 0.7978845608028654;
  for (uint64_t i = 0; i < n; ++i) {
    const double v = x[i], th = std::tanh(c * (v + 0.044715 * v * v * v));
    dx[i] = static_cast<float>(dy[i] * (0.5 * (1.0 + th) + 0.5 * v * (1.0 - th * th) * c * (1.0 + 3.0 * 0.044715 * v * v)));
  }
  return LLMOPS_DRV_OK;
}

// All-reduce: the ranks' buffers summed in rank order, the sum written back to each.
struct RefComm {
  int n;
};
int ref_comm_create(llmops_drv* const* devs, int n, void** comm) {
  if (devs == nullptr || n < 1) return fail(nullptr, LLMOPS_DRV_EINVAL, "a communicator needs at least one device");
  *comm = new RefComm{n};
  return LLMOPS_DRV_OK;
}
int ref_comm_all_reduce(void* comm, float* const* bufs, uint64_t count) {
  const int n = static_cast<RefComm*>(comm)->n;
  for (uint64_t i = 0; i < count; ++i) {
    float s = 0.0f;
    for (int r = 0; r < n; ++r) s += bufs[r][i];
    for (int r = 0; r < n; ++r) bufs[r][i] = s;
  }
  return LLMOPS_DRV_OK;
}
void ref_comm_destroy(void* comm) { delete static_cast<RefComm*>(comm); }

// driver.h's sample(), row by row in index order: the same threshold searches as the kernel.
int ref_sample(llmops_drv* d, float* logits, int t, int n, const llmops_drv_sampling* rows, const int32_t* ptok, const int32_t* pcnt, int32_t* ids) {
  if (t < 1 || n < 1) return fail(d, LLMOPS_DRV_EINVAL, "sample needs t, n >= 1");
  auto bits = [](float f) {
    uint32_t b;
    std::memcpy(&b, &f, 4);
    return b;
  };
  auto from = [](uint32_t b) {
    float f;
    std::memcpy(&f, &b, 4);
    return f;
  };
  for (int row = 0; row < t; ++row) {
    const llmops_drv_sampling& r = rows[row];
    float* x = logits + static_cast<size_t>(row) * n;
    for (int e = 0; e < r.penalty_count; ++e) {
      const int tok = ptok[r.penalty_first + e];
      if (tok < 0 || tok >= n) continue;
      float l = x[tok];
      if (r.repetition_penalty != 1.0f) l = l > 0.0f ? l / r.repetition_penalty : l * r.repetition_penalty;
      x[tok] = l - static_cast<float>(pcnt[r.penalty_first + e]) * r.frequency_penalty - r.presence_penalty;
    }
    if (r.temperature <= 0.0f) {
      ids[row] = static_cast<int32_t>(std::max_element(x, x + n) - x);
      continue;
    }
    const float m = *std::max_element(x, x + n);
    for (int j = 0; j < n; ++j) x[j] = std::exp((x[j] - m) / r.temperature);
    auto count = [&](float floor) { return std::count_if(x, x + n, [&](float w) { return w >= floor; }); };
    auto mass = [&](float floor) {
      float s = 0.0f;
      for (int j = 0; j < n; ++j) s += x[j] >= floor ? x[j] : 0.0f;
      return s;
    };
    float floor = 0.0f;
    if (r.top_k > 0 && r.top_k < n) {
      uint32_t lo = 0, hi = bits(1.0f);
      while (lo < hi) {
        const uint32_t mid = lo + (hi - lo + 1) / 2;
        if (count(from(mid)) >= r.top_k) lo = mid;
        else hi = mid - 1;
      }
      floor = from(lo);
    }
    const float norm = mass(floor);
    if (r.min_p > 0.0f) floor = std::max(floor, r.min_p);
    if (r.top_p < 1.0f) {
      uint32_t lo = bits(floor), hi = bits(1.0f);
      while (lo < hi) {
        const uint32_t mid = lo + (hi - lo + 1) / 2;
        if (mass(from(mid)) >= r.top_p * norm) lo = mid;
        else hi = mid - 1;
      }
      floor = std::max(floor, from(lo));
    }
    const float total = mass(floor);
    const float target = llmops_draw_unit(r.seed, r.counter) * total;
    float cum = 0.0f;
    int pick = -1, last = 0;
    for (int j = 0; j < n && pick < 0; ++j) {
      if (x[j] < floor) continue;
      last = j;
      if ((cum += x[j]) > target) pick = j;
    }
    ids[row] = pick >= 0 ? pick : last;
  }
  return LLMOPS_DRV_OK;
}

int ref_upload_slot(llmops_drv* d, int slot) {
  if (slot < 0 || slot >= LLMOPS_DRV_UPLOAD_SLOTS) return fail(d, LLMOPS_DRV_EINVAL, "upload slot " + std::to_string(slot) + " is out of range");
  return LLMOPS_DRV_OK;
}
int ref_upload_async(llmops_drv* d, void* dst, const void* src, uint64_t bytes, int slot) {
  if (int rc = ref_upload_slot(d, slot); rc != LLMOPS_DRV_OK) return rc;
  if (d->in_use[slot]) return fail(d, LLMOPS_DRV_EINVAL, "upload_async into slot " + std::to_string(slot) + " before its readers were released");
  const auto* p = static_cast<const uint8_t*>(src);
  d->pending[slot].push_back({dst, std::vector<uint8_t>(p, p + bytes)});  // the host memory may be reused on return
  return LLMOPS_DRV_OK;
}
int ref_upload_release(llmops_drv* d, int slot) {
  if (int rc = ref_upload_slot(d, slot); rc != LLMOPS_DRV_OK) return rc;
  d->in_use[slot] = false;
  return LLMOPS_DRV_OK;
}
int ref_upload_wait(llmops_drv* d, int slot) {
  if (int rc = ref_upload_slot(d, slot); rc != LLMOPS_DRV_OK) return rc;
  land(d, slot);
  d->in_use[slot] = true;
  return LLMOPS_DRV_OK;
}

const llmops_driver_api kReference = {
    sizeof(llmops_driver_api), LLMOPS_DRIVER_ABI_MAJOR, LLMOPS_DRIVER_ABI_MINOR, "cpu-reference", "1",
    ref_score, ref_device_count, ref_device_info, ref_open, ref_close, ref_last_error, ref_alloc, ref_free,
    ref_copy,  // upload: host memory both sides
    ref_copy,  // download
    ref_copy, ref_synchronize, ref_mark, ref_elapsed_ms, ref_matmul, ref_get_rows, ref_rms_norm, ref_layer_norm, ref_rope, ref_swiglu, ref_gelu,
    ref_add, ref_kv_store, ref_attention, ref_argmax, ref_fill_random, ref_capture_begin, ref_capture_end, ref_graph_launch, ref_graph_destroy,
    ref_matmul_add, ref_gemm, ref_rope_inverse, ref_rms_norm_backward, ref_swiglu_backward, ref_attention_train, ref_attention_train_backward,
    ref_cross_entropy, ref_embedding_backward, ref_sum_squares, ref_adamw, ref_zero, ref_dropout, ref_set_math, ref_layer_norm_backward,
    ref_add_bias, ref_bias_backward, ref_gelu_backward, ref_comm_create, ref_comm_all_reduce, ref_comm_destroy,
    ref_sample, ref_upload_async, ref_upload_release, ref_upload_wait,
};

}  // namespace

const llmops_driver_api* reference_driver_api() { return &kReference; }

void reference_driver_fail_product(int n) { g_fail_product.store(n); }

}  // namespace llmops::engine::gpu_test

// Built as a shared object too (libllmops_reference.so): a daemon given it through
// LLMOPS_COMPUTE_DRIVER runs its device paths (the tuning stage's GPU training) in the
// integration tests.
extern "C" __attribute__((visibility("default"))) const llmops_driver_api* llmops_driver_get_api(void) {
  return llmops::engine::gpu_test::reference_driver_api();
}
