#include "gpu/gpu_model.h"

#include <algorithm>
#include <cmath>
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

Result<std::unique_ptr<GpuModel>> GpuModel::upload(GpuDevice& dev, const Model& model) {
  std::unique_ptr<GpuModel> g(new GpuModel(dev));
  const ModelConfig& c = model.config();
  g->config_ = c;
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
  for (const Layer& L : model.layers()) {
    GpuLayer G;
    LLMOPS_ASSIGN_OR_RETURN(G.attn_norm, g->put_vector(L.attn_norm, dim));
    LLMOPS_ASSIGN_OR_RETURN(G.attn_norm_b, g->put_vector(L.attn_norm_b, dim));
    LLMOPS_ASSIGN_OR_RETURN(G.wq, g->put(L.wq, "attn_q"));
    LLMOPS_ASSIGN_OR_RETURN(G.wk, g->put(L.wk, "attn_k"));
    LLMOPS_ASSIGN_OR_RETURN(G.wv, g->put(L.wv, "attn_v"));
    LLMOPS_ASSIGN_OR_RETURN(G.wo, g->put(L.wo, "attn_output"));
    LLMOPS_ASSIGN_OR_RETURN(G.bq, g->put_vector(L.bq, q_dim));
    LLMOPS_ASSIGN_OR_RETURN(G.bk, g->put_vector(L.bk, kv_dim));
    LLMOPS_ASSIGN_OR_RETURN(G.bv, g->put_vector(L.bv, kv_dim));
    LLMOPS_ASSIGN_OR_RETURN(G.bo, g->put_vector(L.bo, dim));
    LLMOPS_ASSIGN_OR_RETURN(G.ffn_norm, g->put_vector(L.ffn_norm, dim));
    LLMOPS_ASSIGN_OR_RETURN(G.ffn_norm_b, g->put_vector(L.ffn_norm_b, dim));
    LLMOPS_ASSIGN_OR_RETURN(G.w_gate, g->put(L.w_gate, "ffn_gate"));
    LLMOPS_ASSIGN_OR_RETURN(G.w_up, g->put(L.w_up, "ffn_up"));
    LLMOPS_ASSIGN_OR_RETURN(G.w_down, g->put(L.w_down, "ffn_down"));
    LLMOPS_ASSIGN_OR_RETURN(G.b_up, g->put_vector(L.b_up, hidden));
    LLMOPS_ASSIGN_OR_RETURN(G.b_down, g->put_vector(L.b_down, dim));
    g->layers_.push_back(G);
  }
  LLMOPS_RETURN_IF_ERROR(g->put_rope(model.rope_inv_freq()));
  return g;
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
