// The forward pass on the device, step by step as Runner::run_chunk does it on the CPU.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

#include "gpu/gpu_model.h"
#include "model/batch_check.h"

namespace llmops::engine {

GpuRunner::GpuRunner(const GpuModel& model, int max_chunk, bool graphs)
    : m_(model), max_chunk_(std::max(1, max_chunk)), graphs_on_(graphs && model.streamed_layers() == 0) {}  // uploads cannot be recorded

GpuRunner::~GpuRunner() { drop_graphs(); }

void GpuRunner::drop_graphs() {
  for (auto& [shape, g] : graphs_) m_.device().api().graph_destroy(m_.device().handle(), g);
  graphs_.clear();
  seen_.clear();
}

Status GpuRunner::check(const GpuBatchToken* batch, size_t n) const {
  const uint64_t position_rows = m_.position_embedding().data != nullptr ? m_.position_embedding().rows : 0;
  return check_batch(batch, n, m_.config(), position_rows, [&](const GpuSession* s) { return s != nullptr && &s->model() == &m_; });
}

Status GpuRunner::ensure_buffers(int t) {
  if (t <= capacity_) return ok_status();
  drop_graphs();  // they point at the old buffers
  const ModelConfig& c = m_.config();
  const uint64_t T = static_cast<uint64_t>(t), f = sizeof(float);
  const uint64_t dim = static_cast<uint64_t>(c.dim), q_dim = static_cast<uint64_t>(c.q_dim()), kv_dim = static_cast<uint64_t>(c.kv_dim());
  const uint64_t hidden = static_cast<uint64_t>(c.hidden_dim), vocab = static_cast<uint64_t>(c.vocab_size);
  GpuDevice& dev = m_.device();
  LLMOPS_ASSIGN_OR_RETURN(x_, DeviceBuffer::alloc(dev, T * dim * f));
  LLMOPS_ASSIGN_OR_RETURN(xb_, DeviceBuffer::alloc(dev, T * std::max(dim, q_dim) * f));
  LLMOPS_ASSIGN_OR_RETURN(xb2_, DeviceBuffer::alloc(dev, T * dim * f));
  LLMOPS_ASSIGN_OR_RETURN(q_, DeviceBuffer::alloc(dev, T * q_dim * f));
  LLMOPS_ASSIGN_OR_RETURN(k_, DeviceBuffer::alloc(dev, T * kv_dim * f));
  LLMOPS_ASSIGN_OR_RETURN(v_, DeviceBuffer::alloc(dev, T * kv_dim * f));
  LLMOPS_ASSIGN_OR_RETURN(att_, DeviceBuffer::alloc(dev, T * q_dim * f));
  LLMOPS_ASSIGN_OR_RETURN(hb_, DeviceBuffer::alloc(dev, T * hidden * f));
  LLMOPS_ASSIGN_OR_RETURN(hb2_, DeviceBuffer::alloc(dev, T * hidden * f));
  LLMOPS_ASSIGN_OR_RETURN(rows_, DeviceBuffer::alloc(dev, T * dim * f));
  LLMOPS_ASSIGN_OR_RETURN(logits_, DeviceBuffer::alloc(dev, T * vocab * f));
  LLMOPS_ASSIGN_OR_RETURN(out_ids_, DeviceBuffer::alloc(dev, T * sizeof(int32_t)));
  const uint64_t step_bytes = 3 * T * sizeof(int32_t) + 8 + T * sizeof(llmops_drv_kv_ref);
  LLMOPS_ASSIGN_OR_RETURN(step_, DeviceBuffer::alloc(dev, step_bytes));
  host_step_.assign(step_bytes, 0);
  ids_ = step_.as<int32_t>(), positions_ = ids_ + T, wanted_ = positions_ + T;
  refs_ = reinterpret_cast<llmops_drv_kv_ref*>(step_.as<uint8_t>() + ((3 * T * sizeof(int32_t) + 7) & ~uint64_t{7}));
  capacity_ = t;
  return ok_status();
}

Status GpuRunner::enqueue(int t, int wanted, int max_positions) {
  const ModelConfig& c = m_.config();
  const llmops_driver_api& api = m_.device().api();
  llmops_drv* h = m_.device().handle();
  const uint64_t T = static_cast<uint64_t>(t), dim = static_cast<uint64_t>(c.dim), hidden = static_cast<uint64_t>(c.hidden_dim);
  const bool gpt2 = c.arch == Arch::kGpt2;
  float *x = x_.as<float>(), *xb = xb_.as<float>(), *xb2 = xb2_.as<float>(), *q = q_.as<float>(), *k = k_.as<float>(), *v = v_.as<float>();
  float *att = att_.as<float>(), *hb = hb_.as<float>(), *hb2 = hb2_.as<float>();
  auto norm = [&](const float* w, const float* b, const float* in, float* out, int rows) {
    return gpt2 ? api.layer_norm(h, in, w, b, out, rows, c.dim, c.norm_eps) : api.rms_norm(h, in, w, out, rows, c.dim, c.norm_eps);
  };
  auto matmul = [&](const GpuWeight& w, const float* in, int rows, float* out, const float* bias) {
    return api.matmul(h, w.type, w.data, w.rows, w.cols, in, rows, out, bias);
  };
  auto residual = [&](const GpuWeight& w, const float* in, const float* bias) {  // x += in · Wᵀ
    return api.matmul_add(h, w.type, w.data, w.rows, w.cols, in, t, x, bias);
  };
#define GPU_STEP(call, what) LLMOPS_RETURN_IF_ERROR(drv((call), what))
  const GpuWeight& e = m_.token_embedding();
  GPU_STEP(api.get_rows(h, e.type, e.data, dim, ids_, t, x), "looking up embeddings");
  if (const GpuWeight& pe = m_.position_embedding(); pe.data != nullptr) {
    GPU_STEP(api.get_rows(h, pe.type, pe.data, dim, positions_, t, xb2), "looking up position embeddings");
    GPU_STEP(api.add(h, x, xb2, T * dim), "adding position embeddings");
  }
  llmops_drv_attn_shape shape{c.n_heads, c.n_kv_heads, c.head_dim, 0, 1.0f / std::sqrt(static_cast<float>(c.head_dim)), max_positions};
  for (int l = 0; l < c.n_layers; ++l) {
    // A pass that fails after a streamed layer is staged gives the staging area back.
    struct Abandon {
      const GpuModel& m;
      int layer;
      ~Abandon() {
        if (layer >= 0) m.abandon(layer);
      }
    } staged{m_, l};
    LLMOPS_ASSIGN_OR_RETURN(const GpuLayer L, m_.stage(l));  // a resident layer as it is; a streamed one from its slot
    shape.layer = l;
    GPU_STEP(norm(L.attn_norm, L.attn_norm_b, x, xb, t), "the attention norm");
    GPU_STEP(matmul(L.wq, xb, t, q, L.bq), "the query projection");
    GPU_STEP(matmul(L.wk, xb, t, k, L.bk), "the key projection");
    GPU_STEP(matmul(L.wv, xb, t, v, L.bv), "the value projection");
    if (c.rope != RopeLayout::kNone) {
      const int neox = c.rope == RopeLayout::kNeox ? 1 : 0;
      GPU_STEP(api.rope(h, q, t, c.n_heads, c.head_dim, m_.rope_dims(), positions_, m_.rope_inv_freq(), neox), "RoPE on queries");
      GPU_STEP(api.rope(h, k, t, c.n_kv_heads, c.head_dim, m_.rope_dims(), positions_, m_.rope_inv_freq(), neox), "RoPE on keys");
    }
    GPU_STEP(api.kv_store(h, k, v, t, refs_, &shape), "storing keys and values");
    GPU_STEP(api.attention(h, q, att, t, refs_, &shape), "attention");
    GPU_STEP(residual(L.wo, att, L.bo), "the attention output");
    GPU_STEP(norm(L.ffn_norm, L.ffn_norm_b, x, xb, t), "the MLP norm");
    if (L.w_gate.data != nullptr) {
      GPU_STEP(matmul(L.w_gate, xb, t, hb, nullptr), "the gate projection");
      GPU_STEP(matmul(L.w_up, xb, t, hb2, L.b_up), "the up projection");
      GPU_STEP(api.swiglu(h, hb, hb2, hb, T * hidden), "SwiGLU");
    } else {
      GPU_STEP(matmul(L.w_up, xb, t, hb, L.b_up), "the up projection");
      GPU_STEP(api.gelu(h, hb, T * hidden), "GELU");
    }
    GPU_STEP(residual(L.w_down, hb, L.b_down), "the down projection");
    staged.layer = -1;
    LLMOPS_RETURN_IF_ERROR(m_.done_with(l));
  }
  if (wanted == 0) return ok_status();
  // Only the asking rows go through the output norm and the classifier.
  GPU_STEP(api.get_rows(h, LLMOPS_DT_F32, x, dim, wanted_, wanted, rows_.as<float>()), "gathering the output rows");
  GPU_STEP(norm(m_.output_norm(), m_.output_norm_bias(), rows_.as<float>(), xb, wanted), "the output norm");
  GPU_STEP(matmul(m_.classifier(), xb, wanted, logits_.as<float>(), nullptr), "the classifier");
#undef GPU_STEP
  return ok_status();
}

Result<int> GpuRunner::run_chunk(const GpuBatchToken* batch, int t) {
  LLMOPS_RETURN_IF_ERROR(ensure_buffers(std::max(t, std::min(max_chunk_, 8))));
  const size_t T = static_cast<size_t>(capacity_);
  auto* ids = reinterpret_cast<int32_t*>(host_step_.data());
  int32_t* positions = ids + T;
  int32_t* wanted = positions + T;
  auto* refs = reinterpret_cast<llmops_drv_kv_ref*>(host_step_.data() + (reinterpret_cast<uint8_t*>(refs_) - step_.as<uint8_t>()));
  int n_wanted = 0, max_positions = 256;
  for (int i = 0; i < t; ++i) {
    // A power of two over the largest cache: few graph shapes, each valid for any position under it.
    while (max_positions < batch[i].session->max_positions()) max_positions *= 2;
    const GpuBatchToken& b = batch[i];
    ids[i] = b.token, positions[i] = b.pos;
    refs[i] = llmops_drv_kv_ref{b.session->keys_.as<float>(), b.session->values_.as<float>(), b.pos, b.session->max_positions()};
    if (b.logits) wanted[n_wanted++] = i;
  }
  const llmops_driver_api& api = m_.device().api();
  llmops_drv* h = m_.device().handle();
  LLMOPS_RETURN_IF_ERROR(drv(api.upload(h, step_.get(), host_step_.data(), host_step_.size()), "uploading the batch"));
  const StepShape key{t, n_wanted, max_positions};
  if (auto it = graphs_.find(key); it != graphs_.end()) {
    LLMOPS_RETURN_IF_ERROR(drv(api.graph_launch(h, it->second), "replaying a step"));
    return n_wanted;
  }
  // A shape's first run goes straight through (and grows the driver's scratch); its second is
  // recorded, then replayed from then on. Only decode steps (every token asks for logits) are
  // recorded, and at most kMaxGraphs shapes: steps that mix prompt chunks come in too many
  // shapes to be worth keeping. A capture that fails turns graphs off for good.
  constexpr size_t kMaxGraphs = 64;
  if (graphs_on_ && n_wanted == t && graphs_.size() < kMaxGraphs && seen_[key]++ > 0) {
    if (api.capture_begin(h) == LLMOPS_DRV_OK) {
      Status st = enqueue(t, n_wanted, max_positions);
      void* graph = nullptr;
      const int rc = api.capture_end(h, &graph);
      if (st.ok() && rc == LLMOPS_DRV_OK) {
        graphs_[key] = graph;
        LLMOPS_RETURN_IF_ERROR(drv(api.graph_launch(h, graph), "replaying a step"));
        return n_wanted;
      }
      api.graph_destroy(h, graph);
    }
    graphs_on_ = false;
  }
  LLMOPS_RETURN_IF_ERROR(enqueue(t, n_wanted, max_positions));
  return n_wanted;
}

Status GpuRunner::run_chunks(const GpuBatchToken* batch, size_t n, const std::function<Status(int wanted)>& take) {
  if (n == 0) return invalid_argument("an empty batch");
  LLMOPS_RETURN_IF_ERROR(check(batch, n));
  for (size_t done = 0; done < n;) {
    const int t = static_cast<int>(std::min<size_t>(static_cast<size_t>(max_chunk_), n - done));
    LLMOPS_ASSIGN_OR_RETURN(int wanted, run_chunk(batch + done, t));
    if (wanted > 0) LLMOPS_RETURN_IF_ERROR(take(wanted));
    for (int i = 0; i < t; ++i) batch[done + static_cast<size_t>(i)].session->length_ = batch[done + static_cast<size_t>(i)].pos + 1;
    done += static_cast<size_t>(t);
  }
  return ok_status();
}

Result<const float*> GpuRunner::run(const GpuBatchToken* batch, size_t n) {
  const size_t vocab = static_cast<size_t>(m_.config().vocab_size);
  host_logits_.clear();
  LLMOPS_RETURN_IF_ERROR(run_chunks(batch, n, [&](int wanted) {
    const size_t at = host_logits_.size();
    host_logits_.resize(at + static_cast<size_t>(wanted) * vocab);
    return drv(m_.device().api().download(m_.device().handle(), host_logits_.data() + at, logits_.get(),
                                          static_cast<uint64_t>(wanted) * vocab * sizeof(float)),
               "reading the logits");
  }));
  return host_logits_.data();
}

Result<std::vector<int32_t>> GpuRunner::run_greedy(const GpuBatchToken* batch, size_t n) {
  std::vector<int32_t> out;
  const llmops_driver_api& api = m_.device().api();
  llmops_drv* h = m_.device().handle();
  LLMOPS_RETURN_IF_ERROR(run_chunks(batch, n, [&](int wanted) {
    LLMOPS_RETURN_IF_ERROR(drv(api.argmax(h, logits_.as<float>(), wanted, m_.config().vocab_size, out_ids_.as<int32_t>()), "greedy sampling"));
    const size_t at = out.size();
    out.resize(at + static_cast<size_t>(wanted));
    return drv(api.download(h, out.data() + at, out_ids_.get(), static_cast<uint64_t>(wanted) * sizeof(int32_t)), "reading the ids");
  }));
  return out;
}

Status GpuRunner::room(DeviceBuffer& b, uint64_t bytes) {
  if (b.get() != nullptr && b.bytes() >= bytes) return ok_status();
  b.reset();
  LLMOPS_ASSIGN_OR_RETURN(b, DeviceBuffer::alloc(m_.device(), std::max<uint64_t>(bytes, 256)));
  return ok_status();
}

Result<std::vector<int32_t>> GpuRunner::run_sampled(const GpuBatchToken* batch, size_t n, const std::vector<llmops_drv_sampling>& rows,
                                                    const std::vector<int32_t>& penalty_tokens, const std::vector<int32_t>& penalty_counts) {
  size_t asking = 0;
  for (size_t i = 0; i < n; ++i) asking += batch[i].logits;
  if (rows.size() != asking) return invalid_argument(std::to_string(rows.size()) + " sampling rows for " + std::to_string(asking) + " asking tokens");
  if (penalty_tokens.size() != penalty_counts.size()) return invalid_argument("the penalty lists differ in length");
  for (const llmops_drv_sampling& r : rows) {
    if (r.penalty_first < 0 || r.penalty_count < 0 || static_cast<size_t>(r.penalty_first) + static_cast<size_t>(r.penalty_count) > penalty_tokens.size()) {
      return invalid_argument("a sampling row's seen tokens lie outside the penalty lists");
    }
  }
  const llmops_driver_api& api = m_.device().api();
  llmops_drv* h = m_.device().handle();
  const uint64_t pen_bytes = penalty_tokens.size() * sizeof(int32_t);
  LLMOPS_RETURN_IF_ERROR(room(penalty_tokens_, pen_bytes));
  LLMOPS_RETURN_IF_ERROR(room(penalty_counts_, pen_bytes));
  LLMOPS_RETURN_IF_ERROR(room(sampling_, rows.size() * sizeof(llmops_drv_sampling)));
  if (pen_bytes > 0) {
    LLMOPS_RETURN_IF_ERROR(drv(api.upload(h, penalty_tokens_.get(), penalty_tokens.data(), pen_bytes), "uploading the seen tokens"));
    LLMOPS_RETURN_IF_ERROR(drv(api.upload(h, penalty_counts_.get(), penalty_counts.data(), pen_bytes), "uploading the seen tokens' counts"));
  }
  LLMOPS_RETURN_IF_ERROR(drv(api.upload(h, sampling_.get(), rows.data(), rows.size() * sizeof(llmops_drv_sampling)), "uploading the sampling rows"));
  std::vector<int32_t> out;
  LLMOPS_RETURN_IF_ERROR(run_chunks(batch, n, [&](int wanted) {
    const auto* chunk_rows = sampling_.as<llmops_drv_sampling>() + out.size();
    LLMOPS_RETURN_IF_ERROR(drv(api.sample(h, logits_.as<float>(), wanted, m_.config().vocab_size, chunk_rows, penalty_tokens_.as<int32_t>(),
                                          penalty_counts_.as<int32_t>(), out_ids_.as<int32_t>()),
                               "sampling"));
    const size_t at = out.size();
    out.resize(at + static_cast<size_t>(wanted));
    return drv(api.download(h, out.data() + at, out_ids_.get(), static_cast<uint64_t>(wanted) * sizeof(int32_t)), "reading the ids");
  }));
  return out;
}

}  // namespace llmops::engine
