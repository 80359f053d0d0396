#include "model/model.h"


#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels/activations.h"
#include "kernels/matmul.h"
#include "kernels/thread_pool.h"
#include "model/batch_check.h"
#include "model/present_memory.h"

namespace llmops::engine {

// ---------------------------------------------------------------------------------------------
// Model

Status ModelConfig::validate() const {
  auto bad = [](const std::string& what) { return invalid_argument("model shape: " + what); };
  for (auto [name, v] : {std::pair<const char*, int>{"dim", dim}, {"hidden_dim", hidden_dim}, {"n_layers", n_layers},
                         {"n_heads", n_heads}, {"n_kv_heads", n_kv_heads}, {"head_dim", head_dim},
                         {"vocab_size", vocab_size}, {"seq_len", seq_len}}) {
    if (v <= 0 || v > (1 << 24)) return bad(std::string(name) + " = " + std::to_string(v) + " is out of range");
  }
  if (n_heads % n_kv_heads != 0) {
    return bad(std::to_string(n_heads) + " heads do not split into " + std::to_string(n_kv_heads) + " key/value heads");
  }
  if (static_cast<int64_t>(n_heads) * head_dim > (1 << 20)) return bad("heads × head_dim is too large");
  if (rope != RopeLayout::kNone) {
    int rd = rope_dims == 0 ? head_dim : rope_dims;
    if (rd <= 0 || rd > head_dim || rd % 2 != 0) return bad("rope dimensions " + std::to_string(rd) + " do not fit a head of " + std::to_string(head_dim));
    if (!(rope_theta > 0.0f) || !(rope_linear > 0.0f)) return bad("rope base and scale must be positive");
  }
  if (!(norm_eps >= 0.0f) || norm_eps > 1.0f) return bad("norm epsilon " + std::to_string(norm_eps) + " is out of range");
  return ok_status();
}

std::vector<float> rope_inv_freq(const ModelConfig& c, const float* factors) {
  std::vector<float> out;
  if (c.rope == RopeLayout::kNone) return out;
  const int rd = c.rope_dims == 0 ? c.head_dim : c.rope_dims;
  for (int i = 0; i < rd; i += 2) {
    float f = 1.0f / std::pow(c.rope_theta, static_cast<float>(i) / static_cast<float>(rd));
    if (c.rope_llama3_factor > 0.0f) {
      const float pi = 3.14159265358979f;
      const float wavelen = 2.0f * pi / f;
      const float low_wavelen = static_cast<float>(c.rope_llama3_original_ctx) / c.rope_llama3_low;
      const float high_wavelen = static_cast<float>(c.rope_llama3_original_ctx) / c.rope_llama3_high;
      if (wavelen > low_wavelen) {
        f /= c.rope_llama3_factor;
      } else if (wavelen >= high_wavelen && c.rope_llama3_high != c.rope_llama3_low) {
        float smooth = (static_cast<float>(c.rope_llama3_original_ctx) / wavelen - c.rope_llama3_low) /
                       (c.rope_llama3_high - c.rope_llama3_low);
        f = (1.0f - smooth) * f / c.rope_llama3_factor + smooth * f;
      }
    }
    if (factors != nullptr) f /= factors[i / 2];
    out.push_back(f / c.rope_linear);
  }
  return out;
}

void Model::init_rope(const float* factors) { rope_inv_freq_ = engine::rope_inv_freq(config_, factors); }

const float* Model::keep(std::vector<float> v) {
  owned_.push_back(std::move(v));
  return owned_.back().data();
}

uint64_t Model::weight_bytes() const {
  uint64_t total = token_embd_.bytes() + pos_embd_.bytes();
  if (output_.data != token_embd_.data) total += output_.bytes();
  for (const auto& l : layers_) {
    for (const WeightView* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) total += w->bytes();
  }
  return total;
}

uint64_t Model::pack_for_batches(ThreadPool* pool) { return pack(pool, true); }

uint64_t Model::pack_for_decode(ThreadPool* pool) { return pack(pool, false); }

const MappedFile* Model::file_holding(const WeightView& w) const {
  if (gguf_ != nullptr && gguf_->mapped_file() != nullptr && gguf_->mapped_file()->contains(w.data, w.bytes())) return gguf_->mapped_file();
  for (const auto& f : files_) {
    if (f->contains(w.data, w.bytes())) return f.get();
  }
  return nullptr;
}

uint64_t Model::pack(ThreadPool* pool, bool every_type) {
  std::vector<WeightView*> views;
  for (auto& l : layers_) {
    for (WeightView* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) views.push_back(w);
  }
  views.push_back(&output_);
  // What each matrix gets: panels (for batches, or for decode where they serve it), and a copy
  // of its rows where decode still reads rows from a mapped file. All of it in one block, large
  // enough for huge pages (map_whole): a decode step streams it whole, and with 4 KiB pages the
  // reads stall at every page. The copied rows' file pages are dropped as each is copied.
  struct Todo {
    WeightView* w;
    const MappedFile* file;  // where its rows lie, or null
    bool rows_unread;        // its panels serve decode: its rows are no longer read
    uint64_t panel_bytes, row_bytes;
  };
  std::vector<Todo> todo;
  uint64_t total = 0;
  for (WeightView* w : views) {
    if (w->data == nullptr) continue;
    const bool panels_decode = packed_serves_decode(w->type);
    const MappedFile* file = file_holding(*w);
    uint64_t panel = 0, rows = 0;
    if (w->packed == nullptr && (every_type || panels_decode)) panel = (int8_packed_bytes(w->type, w->rows, w->cols) + 63) / 64 * 64;
    const bool rows_read = !(panels_decode && (panel > 0 || w->packed != nullptr));
    if (rows_read && file != nullptr) rows = (w->bytes() + 63) / 64 * 64;
    if (panel + rows == 0) continue;
    todo.push_back({w, file, !rows_read, panel, rows});
    total += panel + rows;
  }
  if (total == 0) return 0;
  uint8_t* block = nullptr;
  try {
    block = static_cast<uint8_t*>(map_whole(total));
  } catch (const std::bad_alloc&) {
    return 0;  // no memory for it: batches repack as before, decode reads the mapped rows
  }
  packed_.emplace_back(block, PresentDeleter{total, /*whole=*/true});
  uint64_t panels = 0;
  for (const Todo& t : todo) {
    WeightView& w = *t.w;
    // The embedding table, when it is the classifier too, still gives one row per token.
    const bool tied = w.data == token_embd_.data;
    if (t.panel_bytes > 0) {
      // 256 rows at a time, the file pages of rows no longer read dropped as each step is packed,
      // so a large matrix (the classifier) is not held twice.
      const bool drop = t.rows_unread && !tied && t.file != nullptr;
      const uint64_t step = drop ? 256 : w.rows, panel_step = int8_packed_bytes(w.type, step, w.cols);
      for (uint64_t r0 = 0; r0 < w.rows; r0 += step) {
        const uint64_t n = std::min(step, w.rows - r0);
        pack_int8_weights(w.type, w.data + r0 * w.row_bytes, n, w.row_bytes, w.cols, block + r0 / step * panel_step, pool);
        if (drop) t.file->release(w.data + r0 * w.row_bytes, n * w.row_bytes);
      }
      w.packed = block;
      block += t.panel_bytes;
      panels += t.panel_bytes;
    }
    if (t.row_bytes > 0) {
      // A few MiB at a time, each dropped from the file's pages once copied: memory holds the
      // matrix about once, not twice, while it moves.
      constexpr uint64_t kStep = uint64_t{4} << 20;
      for (uint64_t at = 0; at < w.bytes(); at += kStep) {
        const uint64_t n = std::min(kStep, w.bytes() - at);
        std::memcpy(block + at, w.data + at, n);
        if (!tied) t.file->release(w.data + at, n);
      }
      if (!tied) t.file->release(w.data, w.bytes());  // the pages that straddled two steps
      w.data = block;
      block += t.row_bytes;
    } else if (t.rows_unread && !tied && t.file != nullptr) {
      t.file->release(w.data, w.bytes());
    }
  }
  packed_bytes_ += panels;
  return panels;
}

uint64_t Model::bytes_per_token() const {
  uint64_t total = weight_bytes() - token_embd_.bytes() - pos_embd_.bytes() + token_embd_.row_bytes + pos_embd_.row_bytes;
  if (output_.data == token_embd_.data) total += output_.bytes() - output_.row_bytes;  // tied: the classifier reads it whole
  return total;
}

// ---------------------------------------------------------------------------------------------
// Session

const char* kv_type_name(KvType t) { return t == KvType::kF16 ? "f16" : "f32"; }

Result<KvType> parse_kv_type(std::string_view name) {
  if (name == "f32") return KvType::kF32;
  if (name == "f16") return KvType::kF16;
  return invalid_argument("KV cache type '" + std::string(name) + "': use f16 or f32");
}

Session::Session(const Model& model, int max_positions, ThreadPool* pool, KvType kv)
    : m_(model),
      max_positions_(max_positions),
      kv_dim_(static_cast<size_t>(model.config().kv_dim())),
      head_dim_(static_cast<size_t>(model.config().head_dim)),
      n_kv_heads_(static_cast<size_t>(model.config().n_kv_heads)),
      kv_type_(kv),
      kv_bytes_(kv == KvType::kF16 ? 2 : 4),
      pool_(pool),
      key_cache_(kv_cache_bytes(model.config(), max_positions, kv) / 2),
      value_cache_(kv_cache_bytes(model.config(), max_positions, kv) / 2) {}

Session::KvCache::KvCache(size_t bytes)
    : data_(static_cast<uint8_t*>(map_present(std::max<size_t>(4, bytes), /*zeroed=*/false))), bytes_(std::max<size_t>(4, bytes)) {}

Session::KvCache::~KvCache() { unmap_present(data_, bytes_); }

Session::~Session() = default;

int Session::copy_prefix(const Session& other, int n) {
  if (other.kv_type_ != kv_type_) return 0;
  if (&other.m_ != &m_ && !(other.kv_dim_ == kv_dim_ && other.m_.config().n_layers == m_.config().n_layers)) return 0;
  n = std::max(0, std::min({n, other.length_, max_positions_}));
  const size_t run = static_cast<size_t>(n) * head_dim_ * kv_bytes_;
  for (int l = 0; l < m_.config().n_layers; ++l) {
    for (int h = 0; h < static_cast<int>(n_kv_heads_); ++h) {
      std::memcpy(key(l, h, 0), other.key(l, h, 0), run);
      std::memcpy(value(l, h, 0), other.value(l, h, 0), run);
    }
  }
  length_ = n;
  return n;
}

uint64_t Session::kv_cache_bytes(const ModelConfig& c, int positions, KvType kv) {
  return 2ull * static_cast<uint64_t>(c.n_layers) * static_cast<uint64_t>(positions) * static_cast<uint64_t>(c.kv_dim()) *
         (kv == KvType::kF16 ? 2u : 4u);
}

Result<std::unique_ptr<Session>> Session::create(const Model& model, int max_positions, uint64_t budget_bytes, ThreadPool* pool,
                                                 KvType kv) {
  if (max_positions <= 0) return invalid_argument("a session needs at least one position");
  uint64_t need = kv_cache_bytes(model.config(), max_positions, kv);
  if (need > budget_bytes) {
    auto size = [](uint64_t b) { return b >= (1u << 20) ? std::to_string(b >> 20) + " MiB" : std::to_string((b + 1023) >> 10) + " KiB"; };
    return resource_exhausted("a KV cache for " + std::to_string(max_positions) + " positions needs " + size(need) + ", more than the " +
                              size(budget_bytes) + " budget; use a shorter context or raise the budget");
  }
  return std::make_unique<Session>(model, max_positions, pool, kv);
}

Runner& Session::runner() {
  if (!runner_) runner_ = std::make_unique<Runner>(m_, pool_);
  return *runner_;
}

Result<const float*> Session::forward(int32_t token, int pos) {
  BatchToken b{this, token, pos, true};
  return runner().run(&b, 1);
}

Result<const float*> Session::prefill(const int32_t* tokens, int n, int start_pos, int chunk) {
  if (n <= 0) return invalid_argument("prefill needs at least one token");
  std::vector<BatchToken> batch(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) batch[static_cast<size_t>(i)] = BatchToken{this, tokens[i], start_pos + i, i == n - 1};
  Runner& r = runner();
  r.set_max_chunk(chunk);
  return r.run(batch.data(), batch.size());
}

// ---------------------------------------------------------------------------------------------
// Runner

namespace {

// GPT-2's GELU, the tanh approximation.
void gelu(float* x, size_t n) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  for (size_t i = 0; i < n; ++i) {
    float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
  }
}

}  // namespace

Runner::Runner(const Model& model, ThreadPool* pool, int max_chunk)
    : m_(model), pool_(pool), max_chunk_(std::max(1, max_chunk)), isa_(best_isa()) {
  vector_forms_ = vector_forms(m_.classifier().type);
  for (const auto& L : m_.layers()) {
    for (const WeightView* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) {
      if (w->data != nullptr) vector_forms_ |= vector_forms(w->type);
    }
  }
}

Runner::~Runner() = default;

Status Runner::check(const BatchToken* batch, size_t n) const {
  const uint64_t position_rows = m_.position_embedding().data != nullptr ? m_.position_embedding().rows : 0;
  return check_batch(batch, n, m_.config(), position_rows, [&](const Session* s) { return s != nullptr && &s->model() == &m_; });
}

Result<const float*> Runner::run(const BatchToken* batch, size_t n, Output output) {
  if (n == 0) return invalid_argument("an empty batch");
  LLMOPS_RETURN_IF_ERROR(check(batch, n));
  const size_t vocab = static_cast<size_t>(output == Output::kLogits ? m_.config().vocab_size : m_.config().dim);
  size_t wanted = 0;
  for (size_t i = 0; i < n; ++i) wanted += batch[i].logits ? 1 : 0;
  logits_.resize(std::max<size_t>(wanted, 1) * vocab);
  float* out = logits_.data();
  for (size_t done = 0; done < n;) {
    const int t = static_cast<int>(std::min<size_t>(static_cast<size_t>(max_chunk_), n - done));
    run_chunk(batch + done, t, out, output);
    for (int i = 0; i < t; ++i) {
      const BatchToken& b = batch[done + static_cast<size_t>(i)];
      if (b.logits) out += vocab;
      b.session->length_ = b.pos + 1;
    }
    done += static_cast<size_t>(t);
  }
  return logits_.data();
}

void Runner::project(const WeightView& w, const float* bias, const float* x, int t, float* y) { project_together({{&w, bias, y}}, x, t); }

// Projections of the same x (one, or Q, K and V; gate and up). Several tokens go through the
// products of kernels/matmul.h (the integer GEMM on the pool where the CPU has it, else
// dequantised tiles and sgemm), X quantised once for all of them where their panels allow. One
// token runs as one pass across the pool over all their rows: the pool is woken once, not once
// per matrix, and its threads balance over the sum; matrices that decode from panels take the
// panels starting in a range.
void Runner::project_together(std::initializer_list<Projection> ps, const float* x, int t) {
  if (t != 1) {
    MatmulJob jobs[4];
    size_t n = 0;
    for (const Projection& p : ps) jobs[n++] = {p.w->type, p.w->data, p.w->rows, p.w->row_bytes, p.w->packed, p.y};
    matmul_rows_together(jobs, n, ps.begin()->w->cols, x, static_cast<uint64_t>(t), &tile_, pool_, isa_);
    add_biases(ps, t);
    return;
  }
  const uint64_t cols = ps.begin()->w->cols;
  prepare_vector(x, cols, vector_forms_, &pv_);
  uint64_t total = 0;
  for (const Projection& p : ps) total += p.w->rows;
  auto run = [&](size_t begin, size_t end) {
    uint64_t first = 0;
    for (const Projection& p : ps) {
      const WeightView& w = *p.w;
      const uint64_t lo = std::max<uint64_t>(begin, first), hi = std::min<uint64_t>(end, first + w.rows);
      if (lo < hi) {
        if (w.packed != nullptr && packed_serves_decode(w.type, isa_)) {
          matvec_packed_panels(w.type, w.packed, w.rows, w.cols, pv_, p.y, (lo - first + 15) / 16, (hi - first + 15) / 16);
        } else {
          matvec_row_range(w.type, w.data, w.row_bytes, pv_, p.y, lo - first, hi - first, isa_);
        }
      }
      first += w.rows;
    }
  };
  if (pool_ == nullptr || pool_->size() == 1 || total * cols < (1u << 15)) run(0, total);
  else pool_->parallel_for(total, run);
  add_biases(ps, 1);
}

void Runner::add_biases(std::initializer_list<Projection> ps, int t) {
  for (const Projection& p : ps) {
    if (p.bias == nullptr) continue;
    for (int i = 0; i < t; ++i) {
      float* yi = p.y + static_cast<size_t>(i) * p.w->rows;
      for (uint64_t r = 0; r < p.w->rows; ++r) yi[r] += p.bias[r];
    }
  }
}

// RMSNorm (Llama) or LayerNorm with bias (GPT-2) of t rows of n values.
// fn(begin, end) over rows [0, t) of width floats each, across the pool when there is enough
// work to pay for waking it (a prompt's chunk, a batch of many sequences), else on this thread.
void Runner::rows(int t, size_t width, const std::function<void(size_t, size_t)>& fn) const {
  if (t >= 2 && static_cast<size_t>(t) * width >= 4096) {
    parallel_for(pool_, static_cast<size_t>(t), fn);
  } else {
    fn(0, static_cast<size_t>(t));
  }
}

void Runner::norm(const float* w, const float* b, const float* x, float* out, int t, int n) const {
  const float eps = m_.config().norm_eps;
  const bool layer_norm = m_.config().arch == Arch::kGpt2;
  rows(t, static_cast<size_t>(n), [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      norm_row(x + i * static_cast<size_t>(n), w, b, out + i * static_cast<size_t>(n), static_cast<uint64_t>(n), eps, layer_norm, isa_);
    }
  });
}

void Runner::add_norm(const float* y, const float* w, const float* b, float* out, int t) {
  const size_t dim = static_cast<size_t>(m_.config().dim);
  const float eps = m_.config().norm_eps;
  const bool layer_norm = m_.config().arch == Arch::kGpt2;
  rows(t, dim, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      float* xi = x_.data() + i * dim;
      const float* yi = y + i * dim;
      for (size_t j = 0; j < dim; ++j) xi[j] += yi[j];
      norm_row(xi, w, b, out + i * dim, dim, eps, layer_norm, isa_);
    }
  });
}

void Runner::rope_angles(int pos, float* cs) const {
  const std::vector<float>& freq = m_.rope_inv_freq();
  const size_t half = freq.size();
  for (size_t i = 0; i < half; ++i) {
    const float angle = static_cast<float>(pos) * freq[i];
    cs[i] = std::cos(angle);
    cs[half + i] = std::sin(angle);
  }
}

void Runner::rope(float* vec, int n_heads, const float* cs) const {
  const ModelConfig& c = m_.config();
  const int half = static_cast<int>(m_.rope_inv_freq().size());
  const float* sn = cs + half;
  for (int h = 0; h < n_heads; ++h) {
    float* v = vec + static_cast<size_t>(h) * c.head_dim;
    if (c.rope == RopeLayout::kNeox) {
      for (int i = 0; i < half; ++i) {
        const float v0 = v[i], v1 = v[i + half];
        v[i] = v0 * cs[i] - v1 * sn[i];
        v[i + half] = v0 * sn[i] + v1 * cs[i];
      }
    } else {
      for (int i = 0; i < half; ++i) {
        const float v0 = v[2 * i], v1 = v[2 * i + 1];
        v[2 * i] = v0 * cs[i] - v1 * sn[i];
        v[2 * i + 1] = v0 * sn[i] + v1 * cs[i];
      }
    }
  }
}

// Scaled dot-product attention of t query rows (q: t × q_dim) over their sessions' caches,
// causal: the row at pos sees positions 0..pos. Softmax runs online over blocks of positions,
// so no buffer grows with the context and (row, head) pairs run in parallel.
void Runner::attention(const BatchToken* batch, int t, int layer, const float* q, float* out) {
  const ModelConfig& c = m_.config();
  const int head_dim = c.head_dim, kv_mul = c.n_heads / c.n_kv_heads, q_dim = c.q_dim();
  const size_t stride = static_cast<size_t>(head_dim);  // between positions of one head (head-major caches)
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const KernelIsa isa = isa_;
  auto work = [&](size_t begin, size_t end) {
    constexpr int kBlock = 128;
    float scores[kBlock];
    for (size_t item = begin; item < end; ++item) {
      const int i = static_cast<int>(item / static_cast<size_t>(c.n_heads)), h = static_cast<int>(item % static_cast<size_t>(c.n_heads));
      Session& s = *batch[i].session;
      const int pos = batch[i].pos;
      const float* qh = q + static_cast<size_t>(i) * q_dim + static_cast<size_t>(h) * head_dim;
      float* o = out + static_cast<size_t>(i) * q_dim + static_cast<size_t>(h) * head_dim;
      const bool f16 = s.kv_type() == KvType::kF16;
      const uint8_t* keys = s.key(layer, h / kv_mul, 0);
      const uint8_t* values = s.value(layer, h / kv_mul, 0);
      const size_t row_bytes = stride * (f16 ? 2 : 4);
      if (item + 1 < end) {
        // The next item's first rows, asked for now: its keys and values are another short run
        // of memory, which the kernels' own look-ahead reaches only a few rows in.
        const size_t ni = (item + 1) / static_cast<size_t>(c.n_heads), nh = (item + 1) % static_cast<size_t>(c.n_heads);
        const Session& ns = *batch[ni].session;
        const uint8_t* nk = ns.key(layer, static_cast<int>(nh) / kv_mul, 0);
        const uint8_t* nv = ns.value(layer, static_cast<int>(nh) / kv_mul, 0);
        const size_t ahead = std::min<size_t>(8, static_cast<size_t>(batch[ni].pos) + 1) * row_bytes;
        for (size_t b = 0; b < ahead; b += 64) __builtin_prefetch(nk + b), __builtin_prefetch(nv + b);
      }
      std::memset(o, 0, static_cast<size_t>(head_dim) * sizeof(float));
      float max = -INFINITY, sum = 0.0f;
      for (int t0 = 0; t0 <= pos; t0 += kBlock) {
        const int nb = std::min(kBlock, pos + 1 - t0);
        float block_max = -INFINITY;
        const uint8_t* k0 = keys + static_cast<size_t>(t0) * row_bytes;
        if (f16) dot_f16_strided(qh, reinterpret_cast<const uint16_t*>(k0), stride, nb, static_cast<uint64_t>(head_dim), scale, scores, isa);
        else dot_f32_strided(qh, reinterpret_cast<const float*>(k0), stride, nb, static_cast<uint64_t>(head_dim), scale, scores, isa);
        for (int j = 0; j < nb; ++j) block_max = std::max(block_max, scores[j]);
        if (block_max > max) {
          // Rescale what is accumulated to the new maximum.
          const float r = std::exp(max - block_max);
          sum *= r;
          for (int d = 0; d < head_dim; ++d) o[d] *= r;
          max = block_max;
        }
        for (int j = 0; j < nb; ++j) scores[j] -= max;
        exp_row(scores, scores, static_cast<uint64_t>(nb), isa);
        for (int j = 0; j < nb; ++j) sum += scores[j];
        const uint8_t* v0 = values + static_cast<size_t>(t0) * row_bytes;
        if (f16) axpy_f16_strided(scores, reinterpret_cast<const uint16_t*>(v0), stride, nb, static_cast<uint64_t>(head_dim), o, isa);
        else axpy_f32_strided(scores, reinterpret_cast<const float*>(v0), stride, nb, static_cast<uint64_t>(head_dim), o, isa);
      }
      const float inv = 1.0f / sum;
      for (int d = 0; d < head_dim; ++d) o[d] *= inv;
    }
  };
  const size_t items = static_cast<size_t>(t) * static_cast<size_t>(c.n_heads);
  int64_t work_size = 0;
  for (int i = 0; i < t; ++i) work_size += static_cast<int64_t>(batch[i].pos + 1) * q_dim;
  if (pool_ != nullptr && pool_->size() > 1 && work_size >= 16384) {
    pool_->parallel_for(items, work);
  } else {
    work(0, items);
  }
}

void Runner::run_chunk(const BatchToken* batch, int t, float* out, Output output) {
  const ModelConfig& c = m_.config();
  const size_t T = static_cast<size_t>(t), dim = static_cast<size_t>(c.dim), q_dim = static_cast<size_t>(c.q_dim());
  const size_t kv_dim = static_cast<size_t>(c.kv_dim()), hidden = static_cast<size_t>(c.hidden_dim);
  x_.resize(T * dim), xb_.resize(T * std::max(dim, q_dim)), xb2_.resize(T * dim), q_.resize(T * q_dim);
  k_.resize(T * kv_dim), v_.resize(T * kv_dim), hb_.resize(T * hidden), hb2_.resize(T * hidden), att_.resize(T * q_dim);

  const WeightView& e = m_.token_embedding();
  const WeightView& pe = m_.position_embedding();
  rows(t, dim, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      dequantize_row(e.type, e.row(static_cast<uint64_t>(batch[i].token)), x_.data() + i * dim, dim);
      if (pe.data != nullptr) {
        // GPT-2's learned positions (positions past the table were refused at load by seq_len).
        float* p = xb2_.data() + i * dim;
        dequantize_row(pe.type, pe.row(static_cast<uint64_t>(batch[i].pos)), p, dim);
        for (size_t j = 0; j < dim; ++j) x_[i * dim + j] += p[j];
      }
    }
  });
  // The rotation angles depend on the position only: once per token, not per layer and head.
  const size_t pairs = m_.rope_inv_freq().size();
  if (c.rope != RopeLayout::kNone) {
    angles_.resize(T * 2 * pairs);
    for (size_t i = 0; i < T; ++i) rope_angles(batch[i].pos, angles_.data() + i * 2 * pairs);
  }
  norm(m_.layers()[0].attn_norm, m_.layers()[0].attn_norm_b, x_.data(), xb_.data(), t, c.dim);
  for (int l = 0; l < c.n_layers; ++l) {
    const Layer& L = m_.layers()[static_cast<size_t>(l)];
    project_together({{&L.wq, L.bq, q_.data()}, {&L.wk, L.bk, k_.data()}, {&L.wv, L.bv, v_.data()}}, xb_.data(), t);
    rows(t, q_dim + 2 * kv_dim, [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) {
        const int pos = batch[i].pos;
        if (c.rope != RopeLayout::kNone) {
          rope(q_.data() + i * q_dim, c.n_heads, angles_.data() + i * 2 * pairs);
          rope(k_.data() + i * kv_dim, c.n_kv_heads, angles_.data() + i * 2 * pairs);
        }
        const Session& s = *batch[i].session;
        const size_t hd = static_cast<size_t>(c.head_dim);
        for (int h = 0; h < c.n_kv_heads; ++h) {
          const size_t at = i * kv_dim + static_cast<size_t>(h) * hd;
          if (s.kv_type() == KvType::kF16) {
            fp32_to_fp16_row(k_.data() + at, reinterpret_cast<uint16_t*>(s.key(l, h, pos)), hd, isa_);
            fp32_to_fp16_row(v_.data() + at, reinterpret_cast<uint16_t*>(s.value(l, h, pos)), hd, isa_);
          } else {
            std::memcpy(s.key(l, h, pos), k_.data() + at, hd * sizeof(float));
            std::memcpy(s.value(l, h, pos), v_.data() + at, hd * sizeof(float));
          }
        }
      }
    });
    // Every row's keys and values of this layer are cached now, so rows of one sequence see
    // each other causally.
    attention(batch, t, l, q_.data(), att_.data());
    project(L.wo, L.bo, att_.data(), t, xb2_.data());
    add_norm(xb2_.data(), L.ffn_norm, L.ffn_norm_b, xb_.data(), t);
    if (L.w_gate.data != nullptr) {
      project_together({{&L.w_gate, nullptr, hb_.data()}, {&L.w_up, L.b_up, hb2_.data()}}, xb_.data(), t);
      rows(t, hidden, [&](size_t begin, size_t end) {
        silu_mul(hb_.data() + begin * hidden, hb2_.data() + begin * hidden, (end - begin) * hidden, isa_);
      });
    } else {
      project(L.w_up, L.b_up, xb_.data(), t, hb_.data());
      rows(t, hidden, [&](size_t begin, size_t end) { gelu(hb_.data() + begin * hidden, (end - begin) * hidden); });
    }
    project(L.w_down, L.b_down, hb_.data(), t, xb2_.data());
    if (l + 1 < c.n_layers) {
      const Layer& next = m_.layers()[static_cast<size_t>(l) + 1];
      add_norm(xb2_.data(), next.attn_norm, next.attn_norm_b, xb_.data(), t);
    } else {
      rows(t, dim, [&](size_t begin, size_t end) {
        for (size_t j = begin * dim; j < end * dim; ++j) x_[j] += xb2_[j];
      });
    }
  }

  // The classifier runs only over the rows whose logits are wanted.
  rows_.clear();
  int wanted = 0;
  for (size_t i = 0; i < T; ++i) {
    if (!batch[i].logits) continue;
    rows_.insert(rows_.end(), x_.begin() + static_cast<ptrdiff_t>(i * dim), x_.begin() + static_cast<ptrdiff_t>((i + 1) * dim));
    ++wanted;
  }
  if (wanted == 0) return;
  if (output == Output::kHidden) {
    norm(m_.output_norm(), m_.output_norm_bias(), rows_.data(), out, wanted, c.dim);
    return;
  }
  norm(m_.output_norm(), m_.output_norm_bias(), rows_.data(), xb_.data(), wanted, c.dim);
  project(m_.classifier(), nullptr, xb_.data(), wanted, out);
}

}  // namespace llmops::engine
