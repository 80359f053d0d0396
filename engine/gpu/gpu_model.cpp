#include "gpu/gpu_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>

#include "formats/ggml_types.h"
#include "formats/quantize.h"

namespace llmops::engine {

namespace {

// The driver reads exactly the types the engine writes (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K).
bool driver_reads(GgmlType t) { return can_quantize(t); }

uint64_t weight_bytes(const GpuWeight& w) {
  return w.data == nullptr ? 0 : *ggml_row_bytes(static_cast<GgmlType>(w.type), w.cols) * w.rows;
}

}  // namespace

Result<const void*> GpuModel::keep(DeviceBuffer b) {
  device_bytes_ += b.bytes();
  buffers_.push_back(std::move(b));
  return static_cast<const void*>(buffers_.back().get());
}

Result<GpuWeight> GpuModel::put(const WeightView& w, const char* name) {
  GpuWeight g;
  if (w.data == nullptr) return g;
  if (!driver_reads(w.type)) {
    return unimplemented(std::string("the GPU driver does not read ") + ggml_type_name(static_cast<uint32_t>(w.type)) + " weights (" + name +
                         "); this model runs on the CPU");
  }
  g.type = static_cast<int>(w.type), g.rows = w.rows, g.cols = w.cols;
  LLMOPS_ASSIGN_OR_RETURN(DeviceBuffer b, DeviceBuffer::from_host(dev_, w.data, w.bytes()));
  LLMOPS_ASSIGN_OR_RETURN(g.data, keep(std::move(b)));
  return g;
}

Result<const float*> GpuModel::put_vector(const float* host, uint64_t n) {
  if (host == nullptr) return static_cast<const float*>(nullptr);
  LLMOPS_ASSIGN_OR_RETURN(DeviceBuffer b, DeviceBuffer::from_host(dev_, host, n * sizeof(float)));
  LLMOPS_ASSIGN_OR_RETURN(const void* p, keep(std::move(b)));
  return static_cast<const float*>(p);
}

Status GpuModel::put_rope(const std::vector<float>& inv_freq) {
  rope_dims_ = static_cast<int>(inv_freq.size()) * 2;
  if (inv_freq.empty()) return ok_status();
  LLMOPS_ASSIGN_OR_RETURN(inv_freq_, put_vector(inv_freq.data(), inv_freq.size()));
  return ok_status();
}

namespace {
std::array<const WeightView*, 7> matrices(const Layer& L) { return {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}; }
std::array<GpuWeight*, 7> matrices(GpuLayer& G) { return {&G.wq, &G.wk, &G.wv, &G.wo, &G.w_gate, &G.w_up, &G.w_down}; }
constexpr const char* kMatrixNames[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
// Device bytes of a matrix when staged: whole 256-byte slots, so each starts aligned.
uint64_t slot_bytes(const WeightView& w) { return w.data == nullptr ? 0 : (w.bytes() + 255) & ~uint64_t{255}; }
}  // namespace

Result<std::unique_ptr<GpuModel>> GpuModel::upload(GpuDevice& dev, const Model& model, uint64_t budget_bytes) {
  std::unique_ptr<GpuModel> g(new GpuModel(dev));
  const ModelConfig& c = model.config();
  g->config_ = c;
  // Which layers stay: the first ones whose matrices fit beside everything else and, when some
  // do not, one layer's staging area.
  const size_t n_layers = model.layers().size();
  g->streamed_.assign(n_layers, false);
  g->host_matrices_.assign(n_layers, {});
  if (budget_bytes > 0) {
    auto bytes = [](const WeightView& w) { return w.data == nullptr ? uint64_t{0} : w.bytes(); };
    uint64_t fixed = bytes(model.token_embedding()) + bytes(model.position_embedding()) +
                     (model.classifier().data == model.token_embedding().data ? 0 : bytes(model.classifier()));
    const uint64_t dim = static_cast<uint64_t>(c.dim), qd = static_cast<uint64_t>(c.q_dim()), kvd = static_cast<uint64_t>(c.kv_dim());
    const uint64_t hd = static_cast<uint64_t>(c.hidden_dim);
    auto vec = [](const float* v, uint64_t n) { return v == nullptr ? uint64_t{0} : n * sizeof(float); };
    fixed += vec(model.output_norm(), dim) + vec(model.output_norm_bias(), dim) + model.rope_inv_freq().size() * sizeof(float);
    std::vector<uint64_t> layer(n_layers, 0), staged(n_layers, 0);
    for (size_t l = 0; l < n_layers; ++l) {
      const Layer& L = model.layers()[l];
      for (const WeightView* w : matrices(L)) layer[l] += bytes(*w), staged[l] += slot_bytes(*w);
      fixed += vec(L.attn_norm, dim) + vec(L.attn_norm_b, dim) + vec(L.bq, qd) + vec(L.bk, kvd) + vec(L.bv, kvd) + vec(L.bo, dim) +
               vec(L.ffn_norm, dim) + vec(L.ffn_norm_b, dim) + vec(L.b_up, hd) + vec(L.b_down, dim);
    }
    // The layers kept resident: as many of the first as fit beside the rest and, when any
    // stream, the staging area of the largest streamed one. One area, not two taking turns: a
    // second would cost as much memory as keeping one more layer, whose bytes then never cross
    // the bus; the copy into the one area still overlaps the work before it (done_with()).
    size_t keep = n_layers;
    uint64_t resident = fixed;
    for (size_t l = 0; l < n_layers; ++l) resident += layer[l];
    auto staging_for = [&](size_t k) { return k < n_layers ? *std::max_element(staged.begin() + static_cast<long>(k), staged.end()) : uint64_t{0}; };
    while (keep > 0 && resident + staging_for(keep) > budget_bytes) resident -= layer[--keep];
    const uint64_t staging = staging_for(keep);
    if (resident + staging > budget_bytes) {
      auto mib = [](uint64_t b) {
        char t[32];
        std::snprintf(t, sizeof t, "%.1f MiB", static_cast<double>(b) / (1 << 20));
        return std::string(t);
      };
      return resource_exhausted("the model needs at least " + mib(fixed + staging) + " on " + dev.info().name +
                                " even with every layer streamed, and its budget there is " + mib(budget_bytes));
    }
    for (size_t l = keep; l < n_layers; ++l) g->streamed_[l] = true;
    if (staging > 0) {
      g->first_streamed_ = static_cast<int>(keep);
      LLMOPS_ASSIGN_OR_RETURN(g->staging_, DeviceBuffer::alloc(dev, staging));
      g->device_bytes_ += staging;
    }
  }
  const uint64_t dim = static_cast<uint64_t>(c.dim), hidden = static_cast<uint64_t>(c.hidden_dim);
  const uint64_t q_dim = static_cast<uint64_t>(c.q_dim()), kv_dim = static_cast<uint64_t>(c.kv_dim());
  LLMOPS_ASSIGN_OR_RETURN(g->token_embd_, g->put(model.token_embedding(), "token_embd"));
  LLMOPS_ASSIGN_OR_RETURN(g->pos_embd_, g->put(model.position_embedding(), "position_embd"));
  if (model.classifier().data == model.token_embedding().data) {
    g->output_ = g->token_embd_;  // tied: one copy on the device too
  } else {
    LLMOPS_ASSIGN_OR_RETURN(g->output_, g->put(model.classifier(), "output"));
  }
  LLMOPS_ASSIGN_OR_RETURN(g->output_norm_, g->put_vector(model.output_norm(), dim));
  LLMOPS_ASSIGN_OR_RETURN(g->output_norm_b_, g->put_vector(model.output_norm_bias(), dim));
  for (size_t l = 0; l < n_layers; ++l) {
    const Layer& L = model.layers()[l];
    GpuLayer G;
    LLMOPS_ASSIGN_OR_RETURN(G.attn_norm, g->put_vector(L.attn_norm, dim));
    LLMOPS_ASSIGN_OR_RETURN(G.attn_norm_b, g->put_vector(L.attn_norm_b, dim));
    const auto src = matrices(L);
    const auto dst = matrices(G);
    for (size_t i = 0; i < 7; ++i) {
      if (!g->streamed_[l]) {
        LLMOPS_ASSIGN_OR_RETURN(*dst[i], g->put(*src[i], kMatrixNames[i]));
        continue;
      }
      // Streamed: its shape now, its bytes at each pass (stage()).
      if (src[i]->data == nullptr) continue;
      if (!driver_reads(src[i]->type)) {
        return unimplemented(std::string("the GPU driver does not read ") + ggml_type_name(static_cast<uint32_t>(src[i]->type)) + " weights (" +
                             kMatrixNames[i] + "); this model runs on the CPU");
      }
      dst[i]->type = static_cast<int>(src[i]->type), dst[i]->rows = src[i]->rows, dst[i]->cols = src[i]->cols;
      g->host_matrices_[l][i] = *src[i];
    }
    LLMOPS_ASSIGN_OR_RETURN(G.bq, g->put_vector(L.bq, q_dim));
    LLMOPS_ASSIGN_OR_RETURN(G.bk, g->put_vector(L.bk, kv_dim));
    LLMOPS_ASSIGN_OR_RETURN(G.bv, g->put_vector(L.bv, kv_dim));
    LLMOPS_ASSIGN_OR_RETURN(G.bo, g->put_vector(L.bo, dim));
    LLMOPS_ASSIGN_OR_RETURN(G.ffn_norm, g->put_vector(L.ffn_norm, dim));
    LLMOPS_ASSIGN_OR_RETURN(G.ffn_norm_b, g->put_vector(L.ffn_norm_b, dim));
    LLMOPS_ASSIGN_OR_RETURN(G.b_up, g->put_vector(L.b_up, hidden));
    LLMOPS_ASSIGN_OR_RETURN(G.b_down, g->put_vector(L.b_down, dim));
    g->layers_.push_back(G);
  }
  LLMOPS_RETURN_IF_ERROR(g->put_rope(model.rope_inv_freq()));
  return g;
}

// Where a streamed layer's matrices sit in the staging area (nullptr for those it lacks): one
// after another, each on a 256-byte boundary.
std::array<uint8_t*, 7> GpuModel::staged_places(int layer) const {
  std::array<uint8_t*, 7> at{};
  uint8_t* next = staging_.as<uint8_t>();
  for (size_t i = 0; i < 7; ++i) {
    const WeightView& w = host_matrices_[static_cast<size_t>(layer)][i];
    if (w.data == nullptr) continue;
    at[i] = next;
    next += slot_bytes(w);
  }
  return at;
}

Status GpuModel::fill_staging(int layer) const {
  if (staged_ == layer) return ok_status();  // still there from an earlier pass or prefetch
  staged_ = -1;  // until every matrix is queued
  const auto at = staged_places(layer);
  for (size_t i = 0; i < 7; ++i) {
    const WeightView& w = host_matrices_[static_cast<size_t>(layer)][i];
    if (w.data == nullptr) continue;
    // The copy waits on the device for the area's last release: the kernels before it are done with it.
    LLMOPS_RETURN_IF_ERROR(
        dev_.check(dev_.api().upload_async(dev_.handle(), at[i], w.data, w.bytes(), kStagingSlot), "streaming a layer's weights"));
  }
  staged_ = layer;
  return ok_status();
}

Result<GpuLayer> GpuModel::stage(int layer) const {
  if (!streamed_[static_cast<size_t>(layer)]) return layers_[static_cast<size_t>(layer)];
  LLMOPS_RETURN_IF_ERROR(fill_staging(layer));
  LLMOPS_RETURN_IF_ERROR(dev_.check(dev_.api().upload_wait(dev_.handle(), kStagingSlot), "waiting for a layer's weights"));
  GpuLayer G = layers_[static_cast<size_t>(layer)];
  const auto at = staged_places(layer);
  const auto dst = matrices(G);
  for (size_t i = 0; i < 7; ++i) {
    if (at[i] != nullptr) dst[i]->data = at[i];
  }
  return G;
}

Status GpuModel::done_with(int layer) const {
  if (!streamed_[static_cast<size_t>(layer)]) {
    // The last resident layer: the first streamed one's copy can start now, its host part
    // overlapping the resident layers' work.
    const int next = layer + 1;
    return next == first_streamed_ ? fill_staging(next) : ok_status();
  }
  LLMOPS_RETURN_IF_ERROR(dev_.check(dev_.api().upload_release(dev_.handle(), kStagingSlot), "releasing the staging area"));
  // The next streamed layer: its copy waits on the device for this layer's kernels, but the
  // host's part and the first chunks' staging start now, while they run.
  const int next = layer + 1;
  return next < static_cast<int>(streamed_.size()) ? fill_staging(next) : ok_status();
}

void GpuModel::abandon(int layer) const {
  if (streamed_[static_cast<size_t>(layer)]) dev_.api().upload_release(dev_.handle(), kStagingSlot);
}

Result<std::unique_ptr<GpuModel>> GpuModel::random(GpuDevice& dev, const ModelConfig& config, GgmlType type, uint64_t seed) {
  LLMOPS_RETURN_IF_ERROR(config.validate());
  if (!driver_reads(type)) return unimplemented(std::string("the GPU driver does not read ") + ggml_type_name(static_cast<uint32_t>(type)));
  std::unique_ptr<GpuModel> g(new GpuModel(dev));
  g->config_ = config;
  const ModelConfig& c = config;
  uint64_t next_seed = seed;
  auto matrix = [&](GgmlType t, uint64_t rows, uint64_t cols) -> Result<GpuWeight> {
    auto rb = ggml_row_bytes(t, cols);
    if (!rb) return invalid_argument("a row of " + std::to_string(cols) + " is not whole blocks of " + ggml_type_name(static_cast<uint32_t>(t)));
    LLMOPS_ASSIGN_OR_RETURN(DeviceBuffer b, DeviceBuffer::alloc(dev, *rb * rows));
    LLMOPS_RETURN_IF_ERROR(dev.check(dev.api().fill_random(dev.handle(), static_cast<int>(t), b.get(), rows, cols, ++next_seed,
                                                           1.0f / std::sqrt(static_cast<float>(cols))),
                                     "filling a random matrix"));
    GpuWeight w;
    w.type = static_cast<int>(t), w.rows = rows, w.cols = cols;
    LLMOPS_ASSIGN_OR_RETURN(w.data, g->keep(std::move(b)));
    return w;
  };
  const std::vector<float> ones(static_cast<size_t>(std::max(c.dim, c.hidden_dim)), 1.0f);
  const uint64_t dim = static_cast<uint64_t>(c.dim);
  const GgmlType out_type = (type == GgmlType::kQ4_0 || type == GgmlType::kQ4_K) ? GgmlType::kQ6_K : type;  // as llmops-synth writes
  LLMOPS_ASSIGN_OR_RETURN(g->token_embd_, matrix(type, static_cast<uint64_t>(c.vocab_size), dim));
  LLMOPS_ASSIGN_OR_RETURN(g->output_, matrix(out_type, static_cast<uint64_t>(c.vocab_size), dim));
  LLMOPS_ASSIGN_OR_RETURN(g->output_norm_, g->put_vector(ones.data(), dim));
  const bool gpt2 = c.arch == Arch::kGpt2;
  for (int l = 0; l < c.n_layers; ++l) {
    GpuLayer G;
    G.attn_norm = G.ffn_norm = g->output_norm_;
    LLMOPS_ASSIGN_OR_RETURN(G.wq, matrix(type, static_cast<uint64_t>(c.q_dim()), dim));
    LLMOPS_ASSIGN_OR_RETURN(G.wk, matrix(type, static_cast<uint64_t>(c.kv_dim()), dim));
    LLMOPS_ASSIGN_OR_RETURN(G.wv, matrix(type, static_cast<uint64_t>(c.kv_dim()), dim));
    LLMOPS_ASSIGN_OR_RETURN(G.wo, matrix(type, dim, static_cast<uint64_t>(c.q_dim())));
    if (!gpt2) {
      LLMOPS_ASSIGN_OR_RETURN(G.w_gate, matrix(type, static_cast<uint64_t>(c.hidden_dim), dim));
    }
    LLMOPS_ASSIGN_OR_RETURN(G.w_up, matrix(type, static_cast<uint64_t>(c.hidden_dim), dim));
    LLMOPS_ASSIGN_OR_RETURN(G.w_down, matrix(type, dim, static_cast<uint64_t>(c.hidden_dim)));
    g->layers_.push_back(G);
  }
  g->streamed_.assign(g->layers_.size(), false);
  LLMOPS_RETURN_IF_ERROR(g->put_rope(engine::rope_inv_freq(c)));
  LLMOPS_RETURN_IF_ERROR(dev.check(dev.api().synchronize(dev.handle()), "making the random weights"));
  return g;
}

uint64_t GpuModel::bytes_per_token() const {
  uint64_t b = weight_bytes(output_);
  if (token_embd_.data != output_.data) b += weight_bytes(token_embd_) / std::max<uint64_t>(token_embd_.rows, 1);
  for (const GpuLayer& L : layers_) {
    for (const GpuWeight* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) b += weight_bytes(*w);
  }
  return b;
}

Result<std::unique_ptr<GpuSession>> GpuSession::create(const GpuModel& model, int max_positions) {
  const ModelConfig& c = model.config();
  if (max_positions < 1) return invalid_argument("a session needs at least one position");
  std::unique_ptr<GpuSession> s(new GpuSession(model, max_positions));
  const uint64_t bytes = static_cast<uint64_t>(c.n_layers) * static_cast<uint64_t>(c.kv_dim()) * static_cast<uint64_t>(max_positions) * sizeof(float);
  LLMOPS_ASSIGN_OR_RETURN(s->keys_, DeviceBuffer::alloc(model.device(), bytes));
  LLMOPS_ASSIGN_OR_RETURN(s->values_, DeviceBuffer::alloc(model.device(), bytes));
  return s;
}

Result<int> GpuSession::copy_prefix(const GpuSession& other, int n) {
  if (&other.m_ != &m_) return invalid_argument("a prefix can only come from a session of the same model");
  n = std::max(0, std::min({n, other.length_, max_positions_}));
  const ModelConfig& c = m_.config();
  const uint64_t row = static_cast<uint64_t>(c.head_dim) * sizeof(float);
  GpuDevice& dev = m_.device();
  // One copy per layer and head: the caches are head-major, so a head's first n positions are contiguous.
  for (int l = 0; l < c.n_layers && n > 0; ++l) {
    for (int h = 0; h < c.n_kv_heads; ++h) {
      const uint64_t head = static_cast<uint64_t>(l) * c.n_kv_heads + static_cast<uint64_t>(h);
      for (const auto& [dst, src] : {std::pair{&keys_, &other.keys_}, std::pair{&values_, &other.values_}}) {
        void* to = dst->as<uint8_t>() + head * static_cast<uint64_t>(max_positions_) * row;
        const void* from = src->as<uint8_t>() + head * static_cast<uint64_t>(other.max_positions_) * row;
        LLMOPS_RETURN_IF_ERROR(dev.check(dev.api().copy(dev.handle(), to, from, static_cast<uint64_t>(n) * row), "copying a cached prefix"));
      }
    }
  }
  length_ = n;
  return n;
}

}  // namespace llmops::engine
