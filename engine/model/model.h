// The transformer the engine runs: the Llama family (RMSNorm, RoPE in either layout with
// optional linear or Llama-3 frequency scaling, grouped-query attention, SwiGLU, optional q/k/v
// biases: Llama 2/3, TinyLlama, Mistral, Qwen2, SmolLM) and GPT-2 (LayerNorm, learned
// positions, GELU, biases everywhere). Weights are typed views into mapped files, never
// dequantised up front; only one-dimensional tensors (norms, biases) stored in a narrow type
// are widened to fp32 at load. pack_for_decode / pack_for_batches move what decode streams into
// huge pages of the process's own.
//
// A Model is immutable after load and shared by any number of sessions and runners on any
// threads. A Session is one sequence: its KV cache. A Runner owns the scratch of one forward
// pass and runs a batch of tokens from several sessions at different positions through the
// model at once (continuous batching builds on it); one thread at a time per runner, and a
// session belongs to one runner call at a time.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "formats/ggml_types.h"
#include "formats/gguf.h"
#include "formats/mapped_file.h"
#include "kernels/matvec.h"
#include "model/present_memory.h"
#include "status.h"

namespace llmops::engine {

enum class Arch { kLlama, kGpt2 };
// How RoPE pairs a head's values: kNormal rotates adjacent pairs (GGUF Llama, llama2.c),
// kNeox rotates value i with value i + rope_dims/2 (Hugging Face Llama, Qwen2 in GGUF).
enum class RopeLayout { kNone, kNormal, kNeox };

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string arch_name = "llama";  // as the file names it (llama, qwen2, mistral, gpt2)
  int dim = 0;
  int hidden_dim = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;  // usually dim / n_heads
  int vocab_size = 0;
  int seq_len = 0;
  float norm_eps = 1e-5f;
  RopeLayout rope = RopeLayout::kNormal;
  int rope_dims = 0;  // leading values of each head that rotate (partial rotary); 0 = head_dim
  float rope_theta = 10000.0f;
  float rope_linear = 1.0f;  // linear scaling: positions are divided by this
  // Llama 3.1 frequency scaling (factor 0: off): long wavelengths slow down by factor, short
  // ones stay, and the band between blends.
  float rope_llama3_factor = 0.0f, rope_llama3_low = 1.0f, rope_llama3_high = 4.0f;
  int rope_llama3_original_ctx = 8192;

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
  // Checks that the shape is whole and consistent (kInvalidArgument naming the field).
  Status validate() const;
};

// The RoPE frequency of each rotating pair of a head, scaling applied (linear, Llama 3);
// factors (GGUF rope_freqs, may be null) divide each. Empty without RoPE.
std::vector<float> rope_inv_freq(const ModelConfig& c, const float* factors = nullptr);

// A rows × cols matrix stored row by row in one ggml type (rows are the output dimension).
struct WeightView {
  GgmlType type = GgmlType::kF32;
  const uint8_t* data = nullptr;
  uint64_t rows = 0, cols = 0, row_bytes = 0;
  const uint8_t* packed = nullptr;  // the integer GEMM's panels, when Model::pack_for_batches made them
  const uint8_t* row(uint64_t r) const { return data + r * row_bytes; }
  uint64_t bytes() const { return rows * row_bytes; }
};

// One block. Vectors (norm weights, biases) are fp32 pointers, null where the model has none.
struct Layer {
  const float* attn_norm = nullptr;
  const float* attn_norm_b = nullptr;  // LayerNorm bias (GPT-2)
  WeightView wq, wk, wv, wo;
  const float *bq = nullptr, *bk = nullptr, *bv = nullptr, *bo = nullptr;
  const float* ffn_norm = nullptr;
  const float* ffn_norm_b = nullptr;
  WeightView w_gate, w_up, w_down;  // w_gate absent (GELU MLP) for GPT-2
  const float *b_up = nullptr, *b_down = nullptr;
};

class Model {
 public:
  // Any format the engine reads, told apart by content: GGUF, a llama2.c checkpoint, a
  // Hugging Face directory (config.json + safetensors).
  static Result<std::unique_ptr<Model>> load(const std::string& path);
  // GGUF with general.architecture llama, mistral, qwen2 or gpt2.
  static Result<std::unique_ptr<Model>> load_gguf(const std::string& path);
  // llama2.c checkpoint: the legacy header (7 int32) or the versioned export (version 1, fp32).
  static Result<std::unique_ptr<Model>> load_llama2c(const std::string& path);
  // A Hugging Face directory: config.json and model.safetensors or a sharded index.
  static Result<std::unique_ptr<Model>> load_hf(const std::string& dir);

  const ModelConfig& config() const { return config_; }
  const std::vector<Layer>& layers() const { return layers_; }
  const WeightView& token_embedding() const { return token_embd_; }
  const WeightView& position_embedding() const { return pos_embd_; }  // GPT-2; empty otherwise
  const float* output_norm() const { return output_norm_; }
  const float* output_norm_bias() const { return output_norm_b_; }
  const WeightView& classifier() const { return output_; }
  // RoPE frequency of each rotating pair, scaling applied.
  const std::vector<float>& rope_inv_freq() const { return rope_inv_freq_; }
  // The GGUF the model came from (for its tokenizer metadata), or null.
  const GgufFile* gguf() const { return gguf_.get(); }
  // The directory a Hugging Face model came from (its tokenizer.json is there), or "".
  const std::string& hf_dir() const { return hf_dir_; }
  // Bytes of all weights, and of the weights one decoded token reads (the embedding tables
  // contribute one row each, unless the embedding is also the classifier).
  uint64_t weight_bytes() const;
  uint64_t bytes_per_token() const;
  // Repacks the quantised matrices once into the integer GEMM's panels (AVX-512 VNNI; a no-op
  // elsewhere or for other types), so products over a few tokens at a time (batched decode of
  // many sequences) stream them instead of repacking every call. Every such type's panels also
  // serve decode (kernels/matmul.h packed_serves_decode), so its rows are no longer read and
  // their mapped pages are dropped as the panels are made (they come back from the file if the
  // rows are read again: export, a GPU upload): memory holds the panels in the rows' place, at
  // most 3% larger. Rows that decode still reads from a mapped file (F32, F16, ...) are moved
  // into the same huge-page block (their file pages dropped in turn, so memory does not grow).
  // Call before sharing the model. Returns the bytes of panels made.
  uint64_t pack_for_batches(ThreadPool* pool = nullptr);
  // The same for the types whose panels serve decode (today every type with panels, so the same
  // as pack_for_batches), and the move of the other rows.
  uint64_t pack_for_decode(ThreadPool* pool = nullptr);
  uint64_t packed_bytes() const { return packed_bytes_; }

 private:
  Model() = default;
  friend struct ModelLoader;
  // Computes rope_inv_freq_ from the config; `factors` (GGUF rope_freqs) divide each frequency.
  void init_rope(const float* factors);
  const float* keep(std::vector<float> v);
  uint64_t pack(ThreadPool* pool, bool every_type);
  const MappedFile* file_holding(const WeightView& w) const;  // the mapped file w's rows lie in, or null

  ModelConfig config_;
  std::vector<std::unique_ptr<MappedFile>> files_;
  std::unique_ptr<GgufFile> gguf_;
  std::shared_ptr<const void> keepalive_;  // other owners of mapped data (safetensors shards)
  std::string hf_dir_;
  std::deque<std::vector<float>> owned_;   // vectors widened to fp32 at load
  std::vector<std::vector<uint8_t>> owned_bytes_;  // matrices re-laid out at load (GPT-2 HF)
  std::vector<std::unique_ptr<uint8_t, PresentDeleter>> packed_;  // one block of panels per pack()
  uint64_t packed_bytes_ = 0;
  WeightView token_embd_, pos_embd_, output_;
  const float* output_norm_ = nullptr;
  const float* output_norm_b_ = nullptr;
  std::vector<Layer> layers_;
  std::vector<float> rope_inv_freq_;
};

class ThreadPool;
class Runner;

// How a session's KV cache holds keys and values. fp16 (what llama.cpp and Ollama keep by
// default) halves the bytes decode's attention reads per position, which with many sequences
// or long contexts outweighs the weights; fp32 keeps the activations' bits exactly.
enum class KvType { kF32, kF16 };
const char* kv_type_name(KvType t);  // "f32", "f16"
// "f32" or "f16"; kInvalidArgument otherwise, naming both.
Result<KvType> parse_kv_type(std::string_view name);

// One sequence: a KV cache for max_positions and how much of it is filled.
class Session {
 public:
  // pool (may be null) runs the products; it must outlive the session.
  Session(const Model& model, int max_positions, ThreadPool* pool = nullptr, KvType kv = KvType::kF32);
  ~Session();
  // The same, refusing (kResourceExhausted) a KV cache larger than budget_bytes.
  static Result<std::unique_ptr<Session>> create(const Model& model, int max_positions, uint64_t budget_bytes,
                                                 ThreadPool* pool = nullptr, KvType kv = KvType::kF32);
  // Bytes of the K and V caches for that many positions.
  static uint64_t kv_cache_bytes(const ModelConfig& c, int positions, KvType kv = KvType::kF32);
  KvType kv_type() const { return kv_type_; }

  // Runs token at position pos and returns the vocab_size logits, valid until the next call.
  // pos may be at most length(): positions come in order, and an earlier one rewinds.
  Result<const float*> forward(int32_t token, int pos);
  // Runs n tokens at positions start_pos.. in chunks through matrix-matrix products and
  // returns the logits of the last one; the cache ends as after n forward() calls.
  Result<const float*> prefill(const int32_t* tokens, int n, int start_pos, int chunk = 256);

  const Model& model() const { return m_; }
  int max_positions() const { return max_positions_; }
  int length() const { return length_; }  // positions 0..length()-1 are in the cache
  void reset() { length_ = 0; }
  // Takes the first n positions of another session's cache (of the same model and KV type) as
  // this one's, as if those tokens had run here: a shared prompt prefix is computed once. n is
  // clipped to both sessions' lengths and this one's positions; returns the positions taken
  // (0 from a session of another shape or KV type).
  int copy_prefix(const Session& other, int n);

 private:
  friend class Runner;
  // The caches are head-major, [layer][kv head][position][head_dim]: one head's keys (or
  // values) at every position are contiguous, so attention streams them.
  size_t head_offset(int layer, int head, int pos) const {
    return ((static_cast<size_t>(layer) * n_kv_heads_ + static_cast<size_t>(head)) * max_positions_ + static_cast<size_t>(pos)) * head_dim_;
  }
  // Where one head's row at pos starts: floats (kF32) or halves (kF16).
  uint8_t* key(int layer, int head, int pos) const { return key_cache_.get() + head_offset(layer, head, pos) * kv_bytes_; }
  uint8_t* value(int layer, int head, int pos) const { return value_cache_.get() + head_offset(layer, head, pos) * kv_bytes_; }
  Runner& runner();

  const Model& m_;
  int max_positions_;
  int length_ = 0;
  size_t kv_dim_, head_dim_, n_kv_heads_;
  KvType kv_type_;
  size_t kv_bytes_;  // per element
  ThreadPool* pool_;
  // A cache mapped on its own and made present (model/present_memory.h): faulted one page at a
  // time as decode reaches new positions, its pages cost a third of a 16-sequence decode step on
  // a 2-vCPU VM (bench_batch). Nothing reads a position before it is written.
  class KvCache {
   public:
    explicit KvCache(size_t bytes);  // std::bad_alloc when the memory is not there
    ~KvCache();
    KvCache(const KvCache&) = delete;
    KvCache& operator=(const KvCache&) = delete;
    uint8_t* get() const { return data_; }

   private:
    uint8_t* data_ = nullptr;
    size_t bytes_ = 0;
  };
  KvCache key_cache_, value_cache_;
  std::unique_ptr<Runner> runner_;  // for forward() and prefill(), made on first use
};

// One token of a batch: which sequence, which token, at which position, and whether its
// logits are wanted (decode steps and the last prompt token; not the rest of a prompt).
struct BatchToken {
  Session* session = nullptr;
  int32_t token = 0;
  int pos = 0;
  bool logits = true;
};

class Runner {
 public:
  // pool (may be null) runs the products and attention; it must outlive the runner.
  Runner(const Model& model, ThreadPool* pool = nullptr, int max_chunk = 256);
  ~Runner();

  // What run() returns for each token that asks: the next-token logits (vocab_size floats) or
  // the final hidden state after the output norm (dim floats; embeddings).
  enum class Output { kLogits, kHidden };

  // Runs every token of the batch through the model, max_chunk tokens at a time. Tokens of
  // one session must have consecutive positions, the first at most session->length(); all
  // sessions must be of this runner's model. Returns the output of the tokens that asked for
  // it, in batch order, valid until the next run. A bad token id, position or session is
  // kInvalidArgument/kResourceExhausted and changes no cache.
  Result<const float*> run(const BatchToken* batch, size_t n, Output output = Output::kLogits);
  void set_max_chunk(int max_chunk) { max_chunk_ = max_chunk < 1 ? 1 : max_chunk; }

 private:
  Status check(const BatchToken* batch, size_t n) const;
  void run_chunk(const BatchToken* batch, int t, float* out, Output output);
  void project(const WeightView& w, const float* bias, const float* x, int t, float* y);
  struct Projection {
    const WeightView* w;
    const float* bias;
    float* y;
  };
  void project_together(std::initializer_list<Projection> ps, const float* x, int t);
  void add_biases(std::initializer_list<Projection> ps, int t);
  void rows(int t, size_t width, const std::function<void(size_t, size_t)>& fn) const;
  void norm(const float* w, const float* b, const float* x, float* out, int t, int n) const;
  // x_ += y, then out = norm(x_), row by row in one pass (a residual connection and the norm
  // after it).
  void add_norm(const float* y, const float* w, const float* b, float* out, int t);
  // The cos and sin of each rotating pair at pos, into cs (2 × pairs floats).
  void rope_angles(int pos, float* cs) const;
  // RoPE over n_heads heads of one token, with the angles rope_angles gave for its position.
  void rope(float* vec, int n_heads, const float* cs) const;
  void attention(const BatchToken* batch, int t, int layer, const float* q, float* out);

  const Model& m_;
  ThreadPool* pool_;
  int max_chunk_;
  KernelIsa isa_;
  unsigned vector_forms_ = 0;  // the quantised forms of activations the weights read
  PreparedVector pv_;
  // Activations, made present when they grow (model/present_memory.h): a prompt's first chunk
  // writes megabytes of them, a page fault per 4 KiB otherwise.
  using Buffer = std::vector<float, PresentAllocator<float>>;
  Buffer x_, xb_, xb2_, q_, k_, v_, att_, hb_, hb2_, logits_, rows_;
  std::vector<float> angles_;  // rope_angles of each token of the chunk
  std::vector<float> tile_;  // the products' scratch (kernels/matmul.h takes a std::vector)
};

}  // namespace llmops::engine
