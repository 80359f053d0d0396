// The attention graphs (cudnn_sdpa_graphs.h). Logical dims are [B, H, S, D]; the training
// layout [B][S][H][D] is only strides. K (and V in the backward) enter as their transposes,
// dims [B, Hk, D, S], which is how the backend's attention patterns take them. GQA is the
// matmuls broadcasting Hk over H; the backward sums full-head dK/dV over each group with a
// reduction. Virtual tensors are FLOAT unless noted.
#include "cudnn_sdpa_graphs.h"

namespace llmops::cuda::sdpa_detail {

using namespace cudnn_backend;

namespace {

// Top-left causal mask on [B,H,S,S] scores: keep where row >= col, else the by-value kNegInf.
cudnnBackendDescriptor_t causal(Graph& g, cudnnBackendDescriptor_t scores, cudnnBackendDescriptor_t masked,
                                const Dims& dims, const Dims& strides) {
  cudnnBackendDescriptor_t row = g.virt(CUDNN_DATA_INT32, dims, strides);
  cudnnBackendDescriptor_t col = g.virt(CUDNN_DATA_INT32, dims, strides);
  g.pointwise(CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, scores, nullptr, nullptr, row, 2);
  g.pointwise(CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, scores, nullptr, nullptr, col, 3);
  cudnnBackendDescriptor_t keep = g.virt(CUDNN_DATA_BOOLEAN, dims, strides);
  g.pointwise(CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, row, col, nullptr, keep);
  cudnnBackendDescriptor_t out = g.virt(CUDNN_DATA_FLOAT, dims, strides);
  g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, scores, masked, keep, out);
  return out;
}

struct Layout {
  int64_t B, S, H, Hk, D;
  Dims q_dims, q_strides;    // Q, O, dO, dQ: [B,H,S,D] over [B][S][H][D]
  Dims kv_dims, kv_strides;  // K, V, dK, dV: [B,Hk,S,D] over [B][S][Hk][D]
  Dims kt_dims, kt_strides;  // Kᵀ, Vᵀ: [B,Hk,D,S], the same memory
  Dims ss_dims, ss_strides;  // scores [B,H,S,S]
  Dims st_strides;           // scores transposed, [B,H,S(kv),S(q)]
  Dims row_dims, row_strides;  // per-row values [B,H,S,1]: Stats and friends
  Dims full_dims, full_strides;  // per-query-head dK/dV and dQ accumulator, packed [B,H,S,D]
};

Layout layout(const SdpaShape& s) {
  Layout l;
  l.B = s.batch, l.S = s.seq, l.H = s.heads, l.Hk = s.kv_heads, l.D = s.head_dim;
  const int64_t B = l.B, S = l.S, H = l.H, Hk = l.Hk, D = l.D;
  l.q_dims = {B, H, S, D};
  l.q_strides = {S * H * D, D, H * D, 1};
  l.kv_dims = {B, Hk, S, D};
  l.kv_strides = {S * Hk * D, D, Hk * D, 1};
  l.kt_dims = {B, Hk, D, S};
  l.kt_strides = {S * Hk * D, D, 1, Hk * D};
  l.ss_dims = {B, H, S, S};
  l.ss_strides = {H * S * S, S * S, S, 1};
  l.st_strides = {H * S * S, S * S, 1, S};
  l.row_dims = {B, H, S, 1};
  l.row_strides = {H * S, S, 1, 1};
  l.full_dims = {B, H, S, D};
  l.full_strides = {H * S * D, S * D, D, 1};
  return l;
}

// out (a kv-head gradient, [B,Hk,S,D]) = a · b, which comes out per query head; with grouped
// heads a sum reduction folds each group onto its kv head.
void onto_kv_heads(Graph& g, const Layout& l, cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t out) {
  if (l.H == l.Hk) {
    g.matmul(a, b, out);
    return;
  }
  cudnnBackendDescriptor_t full = g.virt(CUDNN_DATA_BFLOAT16, l.full_dims, l.full_strides);
  g.matmul(a, b, full);
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, full, out);
}

}  // namespace

void build_forward(Graph& g, const SdpaShape& s) {
  const Layout l = layout(s);
  cudnnBackendDescriptor_t q = g.tensor(kQ, CUDNN_DATA_BFLOAT16, l.q_dims, l.q_strides);
  cudnnBackendDescriptor_t kt = g.tensor(kK, CUDNN_DATA_BFLOAT16, l.kt_dims, l.kt_strides);
  cudnnBackendDescriptor_t v = g.tensor(kV, CUDNN_DATA_BFLOAT16, l.kv_dims, l.kv_strides);
  cudnnBackendDescriptor_t o = g.tensor(kO, CUDNN_DATA_BFLOAT16, l.q_dims, l.q_strides);
  cudnnBackendDescriptor_t stats = g.tensor(kStats, CUDNN_DATA_FLOAT, l.row_dims, l.row_strides);
  cudnnBackendDescriptor_t scale = g.scalar(kScale);
  cudnnBackendDescriptor_t neg = g.scalar(kNegInf);

  cudnnBackendDescriptor_t s1 = g.virt(CUDNN_DATA_FLOAT, l.ss_dims, l.ss_strides);
  g.matmul(q, kt, s1);
  cudnnBackendDescriptor_t s2 = g.virt(CUDNN_DATA_FLOAT, l.ss_dims, l.ss_strides);
  g.pointwise(CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, s1, scale, nullptr, s2);
  cudnnBackendDescriptor_t s3 = causal(g, s2, neg, l.ss_dims, l.ss_strides);

  // Softmax with the statistics saved for the backward.
  cudnnBackendDescriptor_t mx = g.virt(CUDNN_DATA_FLOAT, l.row_dims, l.row_strides);
  g.reduction(CUDNN_REDUCE_TENSOR_MAX, s3, mx);
  cudnnBackendDescriptor_t centred = g.virt(CUDNN_DATA_FLOAT, l.ss_dims, l.ss_strides);
  g.pointwise(CUDNN_POINTWISE_SUB, CUDNN_DATA_FLOAT, s3, mx, nullptr, centred);
  cudnnBackendDescriptor_t e = g.virt(CUDNN_DATA_FLOAT, l.ss_dims, l.ss_strides);
  g.pointwise(CUDNN_POINTWISE_EXP, CUDNN_DATA_FLOAT, centred, nullptr, nullptr, e);
  cudnnBackendDescriptor_t z = g.virt(CUDNN_DATA_FLOAT, l.row_dims, l.row_strides);
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, e, z);
  cudnnBackendDescriptor_t log_z = g.virt(CUDNN_DATA_FLOAT, l.row_dims, l.row_strides);
  g.pointwise(CUDNN_POINTWISE_LOG, CUDNN_DATA_FLOAT, z, nullptr, nullptr, log_z);
  g.pointwise(CUDNN_POINTWISE_ADD, CUDNN_DATA_FLOAT, mx, log_z, nullptr, stats);
  cudnnBackendDescriptor_t p = g.virt(CUDNN_DATA_BFLOAT16, l.ss_dims, l.ss_strides);
  g.pointwise(CUDNN_POINTWISE_DIV, CUDNN_DATA_FLOAT, e, z, nullptr, p);

  g.matmul(p, v, o);
}

void build_backward(Graph& g, const SdpaShape& s) {
  const Layout l = layout(s);
  cudnnBackendDescriptor_t q = g.tensor(kQ, CUDNN_DATA_BFLOAT16, l.q_dims, l.q_strides);
  cudnnBackendDescriptor_t kt = g.tensor(kK, CUDNN_DATA_BFLOAT16, l.kt_dims, l.kt_strides);
  cudnnBackendDescriptor_t vt = g.tensor(kV, CUDNN_DATA_BFLOAT16, l.kt_dims, l.kt_strides);
  cudnnBackendDescriptor_t o = g.tensor(kO, CUDNN_DATA_BFLOAT16, l.q_dims, l.q_strides);
  cudnnBackendDescriptor_t stats = g.tensor(kStats, CUDNN_DATA_FLOAT, l.row_dims, l.row_strides);
  cudnnBackendDescriptor_t dout = g.tensor(kDO, CUDNN_DATA_BFLOAT16, l.q_dims, l.q_strides);
  cudnnBackendDescriptor_t dq = g.tensor(kDQ, CUDNN_DATA_BFLOAT16, l.q_dims, l.q_strides);
  cudnnBackendDescriptor_t dk = g.tensor(kDK, CUDNN_DATA_BFLOAT16, l.kv_dims, l.kv_strides);
  cudnnBackendDescriptor_t dv = g.tensor(kDV, CUDNN_DATA_BFLOAT16, l.kv_dims, l.kv_strides);
  cudnnBackendDescriptor_t scale = g.scalar(kScale);
  cudnnBackendDescriptor_t neg = g.scalar(kNegInf);
  cudnnBackendDescriptor_t one = g.scalar(kOne);
  cudnnBackendDescriptor_t softmax_sum = g.tensor(kSoftmaxSum, CUDNN_DATA_FLOAT, l.row_dims, l.row_strides);
  cudnnBackendDescriptor_t dq_accum = g.tensor(kDQAccum, CUDNN_DATA_FLOAT, l.full_dims, l.full_strides);

  // sum(dO * O) per query row (the "dot(dO, O)" of the flash backward); the times-one is the
  // frontend's dropout-scale slot, kept so the pattern is the one the engines expect.
  const Dims do_o_strides{l.H * l.S * l.D, l.S * l.D, l.H * l.D, 1};  // as the frontend declares it
  cudnnBackendDescriptor_t do_o = g.virt(CUDNN_DATA_FLOAT, l.q_dims, do_o_strides);
  g.pointwise(CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, dout, o, nullptr, do_o);
  cudnnBackendDescriptor_t row_sum = g.virt(CUDNN_DATA_FLOAT, l.row_dims, l.row_strides);
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, do_o, row_sum);
  g.pointwise(CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, row_sum, one, nullptr, softmax_sum);

  // Recompute the probabilities from the saved log-sum-exp.
  cudnnBackendDescriptor_t s1 = g.virt(CUDNN_DATA_FLOAT, l.ss_dims, l.ss_strides);
  g.matmul(q, kt, s1);
  cudnnBackendDescriptor_t s2 = g.virt(CUDNN_DATA_FLOAT, l.ss_dims, l.ss_strides);
  g.pointwise(CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, s1, scale, nullptr, s2);
  cudnnBackendDescriptor_t s3 = g.virt(CUDNN_DATA_FLOAT, l.ss_dims, l.ss_strides);
  g.pointwise(CUDNN_POINTWISE_SUB, CUDNN_DATA_FLOAT, s2, stats, nullptr, s3);
  cudnnBackendDescriptor_t s4 = causal(g, s3, neg, l.ss_dims, l.ss_strides);
  cudnnBackendDescriptor_t p = g.virt(CUDNN_DATA_FLOAT, l.ss_dims, l.ss_strides);
  g.pointwise(CUDNN_POINTWISE_EXP, CUDNN_DATA_FLOAT, s4, nullptr, nullptr, p);

  // dV = Pᵀ · dO
  cudnnBackendDescriptor_t pt = g.virt(CUDNN_DATA_BFLOAT16, l.ss_dims, l.st_strides);
  g.reshape(p, pt);
  onto_kv_heads(g, l, pt, dout, dv);

  // dS = (dO · Vᵀ - sum) * P * scale
  cudnnBackendDescriptor_t dp = g.virt(CUDNN_DATA_FLOAT, l.ss_dims, l.ss_strides);
  g.matmul(dout, vt, dp);
  cudnnBackendDescriptor_t t1 = g.virt(CUDNN_DATA_FLOAT, l.ss_dims, l.ss_strides);
  g.pointwise(CUDNN_POINTWISE_SUB, CUDNN_DATA_FLOAT, dp, softmax_sum, nullptr, t1);
  cudnnBackendDescriptor_t t2 = g.virt(CUDNN_DATA_FLOAT, l.ss_dims, l.ss_strides);
  g.pointwise(CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, t1, p, nullptr, t2);
  cudnnBackendDescriptor_t ds = g.virt(CUDNN_DATA_FLOAT, l.ss_dims, l.ss_strides);
  g.pointwise(CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, t2, scale, nullptr, ds);

  // dK = dSᵀ · Q
  cudnnBackendDescriptor_t dst = g.virt(CUDNN_DATA_BFLOAT16, l.ss_dims, l.st_strides);
  g.reshape(ds, dst);
  onto_kv_heads(g, l, dst, q, dk);

  // dQ = dS · K, accumulated in FLOAT and then converted. The K view is the frontend's
  // un-transpose of Kᵀ; its type is left at the intermediate FLOAT, as the frontend leaves it.
  cudnnBackendDescriptor_t k = g.virt(CUDNN_DATA_FLOAT, l.kv_dims, l.kv_strides);
  g.reshape(kt, k);
  g.matmul(ds, k, dq_accum);
  g.pointwise(CUDNN_POINTWISE_IDENTITY, CUDNN_DATA_FLOAT, dq_accum, nullptr, nullptr, dq);
}

}  // namespace llmops::cuda::sdpa_detail
