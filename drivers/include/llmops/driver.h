/* The compute driver interface: what the engine asks of an accelerator. A driver is a shared
 * object loaded at run time (dlopen) that exports one function,
 *
 *     const llmops_driver_api *llmops_driver_get_api(void);
 *
 * returning a static table. The engine checks struct_size and the ABI version, asks score()
 * (0: no usable device here, so the CPU path runs) and opens a device.
 *
 * Ownership and threads: a llmops_drv is one device with one stream; every call on it comes
 * from one thread at a time (the engine's runner). Operations are enqueued on that stream in
 * order and return before the device finishes; download() and synchronize() wait. Pointers
 * passed to operations are device memory from alloc() unless named host_. All matrices are
 * row-major; a weight matrix is `rows` output rows of `cols` inputs stored in one ggml type
 * (the GGUF block layouts, read as they are: no widened copy of the weights is kept).
 *
 * Errors: every int-returning call gives 0 or a negative LLMOPS_DRV_E* code; last_error()
 * then says what went wrong, in words meant for an operator. Structs only grow by appending. */
#ifndef LLMOPS_DRIVER_H
#define LLMOPS_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LLMOPS_DRIVER_ABI_MAJOR 1
#define LLMOPS_DRIVER_ABI_MINOR 2

enum {
  LLMOPS_DRV_OK = 0,
  LLMOPS_DRV_EINVAL = -1,       /* a bad argument: shape, type or pointer */
  LLMOPS_DRV_ENOMEM = -2,       /* device memory is exhausted */
  LLMOPS_DRV_EDEVICE = -3,      /* the device or its runtime failed */
  LLMOPS_DRV_EUNSUPPORTED = -4  /* this driver does not do that (type, shape) */
};

/* Weight types are ggml's ids (as in GGUF): these are the ones the drivers read. */
enum {
  LLMOPS_DT_F32 = 0,
  LLMOPS_DT_F16 = 1,
  LLMOPS_DT_Q4_0 = 2,
  LLMOPS_DT_Q8_0 = 8,
  LLMOPS_DT_Q4_K = 12,
  LLMOPS_DT_Q6_K = 14,
  LLMOPS_DT_BF16 = 30
};

typedef struct llmops_drv_device_info {
  char name[128];
  char pci_bus_id[32];          /* "0000:41:00.0": what hwloc's OS devices name */
  uint64_t total_bytes;
  uint64_t free_bytes;
  int32_t compute_major, compute_minor;
  int32_t multiprocessors;
  int32_t reserved;
} llmops_drv_device_info;

/* One token's view of its sequence's KV cache, for kv_store() and attention(): the cache is
 * [layer][kv head][position][head_dim] fp32, so head h of layer l starts at
 * k + (l * n_kv_heads + h) * max_positions * head_dim. */
typedef struct llmops_drv_kv_ref {
  float *k;
  float *v;
  int32_t pos;            /* this token's position: it sees positions 0..pos */
  int32_t max_positions;  /* of its cache */
} llmops_drv_kv_ref;

typedef struct llmops_drv_attn_shape {
  int32_t n_heads, n_kv_heads, head_dim;
  int32_t layer;
  float scale;            /* usually 1/sqrt(head_dim) */
  /* An upper bound on every token's pos + 1 (e.g. the largest max_positions of the batch's
   * caches): it picks the kernel and its shared memory, so a recorded graph stays valid for
   * any positions under it. */
  int32_t max_positions;
} llmops_drv_attn_shape;

enum {
  LLMOPS_MATH_F32 = 0,   /* plain F32 products */
  LLMOPS_MATH_TF32 = 1,  /* inputs rounded to TF32 (10-bit mantissa) */
  LLMOPS_MATH_BF16 = 2   /* inputs rounded to BF16 (7-bit mantissa, round to nearest even) */
};

/* Training attention (ABI 1.1): batch sequences of seq tokens, causal, grouped-query heads.
 * q and out are [batch·seq][n_heads·head_dim], k and v [batch·seq][n_kv_heads·head_dim]. */
typedef struct llmops_drv_train_attn {
  int32_t batch, seq, n_heads, n_kv_heads, head_dim;
  float scale;            /* usually 1/sqrt(head_dim) */
} llmops_drv_train_attn;

/* One AdamW update (ABI 1.1), all in F32 on the device: g = grad·grad_scale (the clipping),
 * m = beta1·m + (1 − beta1)·g, v = beta2·v + (1 − beta2)·g², and
 * p −= lr·((m / bias1) / (sqrt(v / bias2) + eps) + weight_decay·p). */
typedef struct llmops_drv_adamw {
  float lr, beta1, beta2, eps, weight_decay, grad_scale;
  float bias1, bias2;     /* 1 − beta^step, the bias corrections */
} llmops_drv_adamw;

/* One row's sampling (ABI 1.1), for sample(): the host sampler's cuts, made on the device. */
typedef struct llmops_drv_sampling {
  float temperature;         /* <= 0: the first largest logit (after the penalties) */
  float top_p;               /* 1: off */
  float min_p;               /* 0: off */
  int32_t top_k;             /* 0: off */
  float repetition_penalty;  /* 1: off; a seen token's logit l becomes l / p (l > 0) or l · p */
  float frequency_penalty;   /* minus count · this */
  float presence_penalty;    /* minus this once seen */
  int32_t penalty_first;     /* this row's seen tokens: entries [first, first + count) of the lists */
  int32_t penalty_count;
  int32_t reserved;
  uint64_t seed;             /* the draw's u = (splitmix64(seed ^ (counter · 0x9E3779B97F4A7C15)) >> 40) / 2^24 */
  uint64_t counter;          /* (counter_hash.h's llmops_draw_unit) */
} llmops_drv_sampling;

typedef struct llmops_drv llmops_drv;

typedef struct llmops_driver_api {
  uint32_t struct_size;
  uint32_t abi_major, abi_minor;
  const char *name;        /* "cuda" */
  const char *version;

  /* How well this driver would serve here: 0 = not at all (no device, no runtime). */
  int (*score)(void);
  int (*device_count)(void);
  int (*device_info)(int device, llmops_drv_device_info *out);
  /* Opens a device: a stream, a BLAS handle, pinned staging. *out is null on failure, and
   * then last_error(NULL) says why. */
  int (*open)(int device, llmops_drv **out);
  void (*close)(llmops_drv *d);
  const char *(*last_error)(llmops_drv *d);

  /* Memory: plain device allocations (never managed memory). Null on failure. */
  void *(*alloc)(llmops_drv *d, uint64_t bytes);
  void (*free)(llmops_drv *d, void *p);
  /* host → device through pinned staging; the host buffer may be reused on return. */
  int (*upload)(llmops_drv *d, void *dst, const void *host_src, uint64_t bytes);
  /* device → host; waits for the stream. */
  int (*download)(llmops_drv *d, void *host_dst, const void *src, uint64_t bytes);
  int (*copy)(llmops_drv *d, void *dst, const void *src, uint64_t bytes);
  int (*synchronize)(llmops_drv *d);
  /* Milliseconds the device spent between two marks of the stream (timing benchmarks). */
  int (*mark)(llmops_drv *d, int slot);        /* slot 0 or 1: records an event */
  int (*elapsed_ms)(llmops_drv *d, float *ms); /* from mark 0 to mark 1; waits for mark 1 */

  /* y[t][rows] = x[t][cols] · Wᵀ (+ bias[rows] when bias is not null), F32 accumulation.
   * Few tokens: our kernels dequantise in registers; many: cuBLAS (F32/F16/BF16 directly,
   * quantised types through a per-call dequantised tile). */
  int (*matmul)(llmops_drv *d, int type, const void *w, uint64_t rows, uint64_t cols, const float *x, int t, float *y,
                const float *bias);
  /* out[i][cols] = row ids[i] of the table, widened to fp32 (embeddings). ids is device memory. */
  int (*get_rows)(llmops_drv *d, int type, const void *table, uint64_t cols, const int32_t *ids, int t, float *out);
  /* t rows of n: y = w ⊙ x / rms(x) (b null) or LayerNorm y = w ⊙ (x - mean)/sd + b. */
  int (*rms_norm)(llmops_drv *d, const float *x, const float *w, float *y, int t, int n, float eps);
  int (*layer_norm)(llmops_drv *d, const float *x, const float *w, const float *b, float *y, int t, int n, float eps);
  /* RoPE in place over t rows of n_heads heads; positions (device) one per row; inv_freq
   * (device) rope_dims/2 frequencies; neox 1 rotates i with i + rope_dims/2, else pairs. */
  int (*rope)(llmops_drv *d, float *x, int t, int n_heads, int head_dim, int rope_dims, const int32_t *positions,
              const float *inv_freq, int neox);
  /* out = silu(gate) ⊙ up, n values; gelu (tanh form) in place; acc += x. */
  int (*swiglu)(llmops_drv *d, const float *gate, const float *up, float *out, uint64_t n);
  int (*gelu)(llmops_drv *d, float *x, uint64_t n);
  int (*add)(llmops_drv *d, float *acc, const float *x, uint64_t n);
  /* Writes t tokens' keys and values (t × n_kv_heads·head_dim each) into their caches at
   * their positions, for layer shape->layer. refs is device memory, one per token. */
  int (*kv_store)(llmops_drv *d, const float *k, const float *v, int t, const llmops_drv_kv_ref *refs,
                  const llmops_drv_attn_shape *shape);
  /* Causal attention of t query rows (t × n_heads·head_dim) over their caches into out. */
  int (*attention)(llmops_drv *d, const float *q, float *out, int t, const llmops_drv_kv_ref *refs,
                   const llmops_drv_attn_shape *shape);
  /* ids[i] = argmax of row i of t rows of n logits (greedy sampling: only ids cross the bus). */
  int (*argmax)(llmops_drv *d, const float *logits, int t, int n, int32_t *ids);
  /* Fills a rows × cols matrix of the type with reproducible pseudo-random values (uniform in
   * ±scale before quantisation): benchmarks and tests of shapes no file holds. */
  int (*fill_random)(llmops_drv *d, int type, void *w, uint64_t rows, uint64_t cols, uint64_t seed, float scale);

  /* Graphs: the operations enqueued between capture_begin() and capture_end() are recorded,
   * not run, and graph_launch() replays them in one launch (a decode step is hundreds of small
   * kernels). Nothing in between may allocate, upload or download. A failed capture returns
   * an error and leaves the stream usable. */
  int (*capture_begin)(llmops_drv *d);
  int (*capture_end)(llmops_drv *d, void **graph);
  int (*graph_launch)(llmops_drv *d, void *graph);
  void (*graph_destroy)(llmops_drv *d, void *graph);
  /* y[t][rows] += x[t][cols] · Wᵀ (+ bias): matmul adding into the residual stream, one
   * kernel instead of a product and an add. */
  int (*matmul_add)(llmops_drv *d, int type, const void *w, uint64_t rows, uint64_t cols, const float *x, int t, float *y,
                    const float *bias);

  /* ---- ABI 1.1: training. Everything F32 in device memory; each result is a function of its
   * inputs alone (fixed summation orders, no atomics), so a run repeats bit for bit. ---- */
  /* C[m][n] = alpha·op(A)·op(B) + beta·C, row-major; op(X) is X transposed when tX is 1;
   * lda, ldb and ldc are the row strides of A, B and C as stored. F32 throughout (no TF32). */
  int (*gemm)(llmops_drv *d, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
              float beta, float *c, int ldc);
  /* rope's transpose (rotates back): the backward pass of rope, same arguments. */
  int (*rope_inverse)(llmops_drv *d, float *x, int t, int n_heads, int head_dim, int rope_dims, const int32_t *positions,
                      const float *inv_freq, int neox);
  /* RMSNorm's backward over t rows of n, with r = (mean(x²) + eps)^-1/2 per row:
   * dx += r·(w ⊙ dy) − (r³/n)·x·Σ(w ⊙ dy ⊙ x) and dw += Σ over rows of dy ⊙ x·r.
   * scratch: t floats of device memory. */
  int (*rms_norm_backward)(llmops_drv *d, const float *x, const float *w, const float *dy, float *dx, float *dw, float *scratch, int t,
                           int n, float eps);
  /* SwiGLU's backward (h = silu(gate) ⊙ up): dup = dh ⊙ silu(gate), dgate = dh ⊙ up ⊙ σ(gate)·(1 + gate·(1 − σ(gate))),
   * both written. */
  int (*swiglu_backward)(llmops_drv *d, const float *gate, const float *up, const float *dh, float *dgate, float *dup, uint64_t n);
  /* Causal attention of whole sequences: out = softmax(scale·q·kᵀ)·v per head, and lse
   * [batch][n_heads][seq] = each row's log-sum-exp of the scaled scores, kept for backward. */
  int (*attention_train)(llmops_drv *d, const float *q, const float *k, const float *v, float *out, float *lse,
                         const llmops_drv_train_attn *shape);
  /* Its backward: writes dq, dk and dv (every head of a group adds into its kv head's rows)
   * from dout and the forward's out and lse. scratch: batch·n_heads·seq floats. */
  int (*attention_train_backward)(llmops_drv *d, const float *q, const float *k, const float *v, const float *out, const float *lse,
                                  const float *dout, float *dq, float *dk, float *dv, float *scratch, const llmops_drv_train_attn *shape);
  /* Softmax cross-entropy over t rows of n logits, in place: each row becomes
   * (softmax − onehot(target))·scale, all zero where its target is < 0; loss[i] (device) =
   * −log softmax[target] (0 where masked). */
  int (*cross_entropy)(llmops_drv *d, float *logits, const int32_t *targets, int t, int n, float scale, float *loss);
  /* The embedding's backward: grad[ids[i]] += dx[i] for t rows of cols, rows added in order. */
  int (*embedding_backward)(llmops_drv *d, const int32_t *ids, const float *dx, int t, uint64_t cols, float *grad);
  /* out[0] (device) = Σ x² over n values, summed in double in a fixed order (gradient norms). */
  int (*sum_squares)(llmops_drv *d, const float *x, uint64_t n, double *out);
  /* One AdamW update of n parameters (see llmops_drv_adamw). */
  int (*adamw)(llmops_drv *d, float *params, const float *grads, float *m, float *v, uint64_t n, const llmops_drv_adamw *h);
  /* bytes of device memory at p set to zero (gradients before a step). */
  int (*zero)(llmops_drv *d, void *p, uint64_t bytes);
  /* Inverted dropout with a mask every device and the CPU trainer draw alike (LoRA's, so a run
   * repeats on any of them): y[i] = x[i]·scale where element i is kept, else 0; y may be x.
   * Element i is kept iff u >= p with u = (splitmix64(key + i·0x9E3779B97F4A7C15) >> 40) / 2^24
   * (a float), where splitmix64(z): z += 0x9E3779B97F4A7C15; z = (z ^ (z >> 30))·0xBF58476D1CE4E5B9;
   * z = (z ^ (z >> 27))·0x94D049BB133111EB; return z ^ (z >> 31) (llmops/counter_hash.h's
   * llmops_hash_unit, which every driver and the CPU trainer call). */
  int (*dropout)(llmops_drv *d, const float *x, float *y, uint64_t n, float p, float scale, uint64_t key);
  /* How gemm() multiplies from now on (LLMOPS_MATH_*): F32 exactly (the default), or on tensor
   * cores with each input rounded to TF32 or BF16 first; F32 in, out and accumulation always. */
  int (*set_math)(llmops_drv *d, int mode);
  /* LayerNorm's backward over t rows of n, with x̂ = (x − mean)·r, r = (var(x) + eps)^-1/2 and
   * g = dy ⊙ w: dx += r·(g − mean(g) − x̂·mean(g ⊙ x̂)), dw += Σ over rows of dy ⊙ x̂, db += Σ dy.
   * scratch: 2·t floats of device memory. */
  int (*layer_norm_backward)(llmops_drv *d, const float *x, const float *w, const float *dy, float *dx, float *dw, float *db, float *scratch,
                             int t, int n, float eps);
  /* y[i][j] += b[j] over t rows of n; bias_backward: db[j] += Σ over rows (in order) of dy[i][j]. */
  int (*add_bias)(llmops_drv *d, float *y, const float *b, int t, uint64_t n);
  int (*bias_backward)(llmops_drv *d, const float *dy, float *db, int t, uint64_t n);
  /* GELU's backward (the tanh form): dx = dy ⊙ gelu'(x), written. */
  int (*gelu_backward)(llmops_drv *d, const float *x, const float *dy, float *dx, uint64_t n);
  /* Data parallelism across several opened devices of this driver in one process (NCCL on
   * CUDA): a communicator whose rank i is devs[i]; comm_all_reduce sums count floats of bufs[i]
   * (memory of devs[i]) over the ranks in place, enqueued on each device's stream, called once
   * by one thread for the whole group. Errors are told by last_error(devs[0]); comm_create says
   * EUNSUPPORTED (and what to install) where the driver cannot. */
  int (*comm_create)(llmops_drv *const *devs, int n, void **comm);
  int (*comm_all_reduce)(void *comm, float *const *bufs, uint64_t count);
  void (*comm_destroy)(void *comm);
  /* Samples one token from each of t rows of n logits (overwritten: they become the kept
   * tokens' weights) by rows[i] (device memory), so only ids cross the bus: the penalties for
   * the row's seen tokens (penalty_tokens / penalty_counts, device), then w = exp((l − max)/T),
   * top_k (the k largest w; ties at the k-th are all kept), min_p (w ≥ min_p), top_p (the
   * largest w whose mass reaches top_p of the top-k's), and the token where u × (the kept
   * mass) falls, the kept tokens taken in index order. ids: t entries of device memory. */
  int (*sample)(llmops_drv *d, float *logits, int t, int n, const llmops_drv_sampling *rows, const int32_t *penalty_tokens,
                const int32_t *penalty_counts, int32_t *ids);

  /* ---- ABI 1.2: uploads that overlap compute (per-layer offload streaming its layers) ---- */
  /* Copies bytes of host memory to dst on a copy queue of the driver's own, once the compute
   * work queued before the last upload_release(slot) has finished with dst (at once if there
   * was none), through pinned buffers of the driver's; returns when host_src has been read.
   * slot: 0 .. LLMOPS_DRV_UPLOAD_SLOTS − 1, one per destination area the caller rotates. */
  int (*upload_async)(llmops_drv *d, void *dst, const void *host_src, uint64_t bytes, int slot);
  /* The compute work queued so far is the last to read slot's area before the next upload_async. */
  int (*upload_release)(llmops_drv *d, int slot);
  /* Compute work queued after this waits for slot's last upload_async to land. */
  int (*upload_wait)(llmops_drv *d, int slot);
} llmops_driver_api;

#define LLMOPS_DRV_UPLOAD_SLOTS 4

typedef const llmops_driver_api *(*llmops_driver_get_api_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* LLMOPS_DRIVER_H */
