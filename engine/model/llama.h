// The Llama-family model: configuration, weights as typed views into a mapped file (never
// copied or dequantised up front), and a session that runs the forward pass one token at a
// time with its own KV cache (llama2.c's structure: RMSNorm, RoPE, grouped-query attention,
// SwiGLU, tied or separate classifier). A model is immutable after load and may be shared by
// sessions on different threads; a session belongs to one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/ggml_types.h"
#include "formats/gguf.h"
#include "formats/mapped_file.h"
#include "kernels/matvec.h"
#include "status.h"

namespace llmops::engine {

struct LlamaConfig {
  int dim = 0;
  int hidden_dim = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int vocab_size = 0;
  int seq_len = 0;
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  int head_dim() const { return dim / n_heads; }
  int kv_dim() const { return head_dim() * n_kv_heads; }
};

// A rows × cols matrix stored row by row in one ggml type (rows are the output dimension).
struct WeightView {
  GgmlType type = GgmlType::kF32;
  const uint8_t* data = nullptr;
  uint64_t rows = 0, cols = 0, row_bytes = 0;
  const uint8_t* row(uint64_t r) const { return data + r * row_bytes; }
};

struct LlamaLayer {
  WeightView attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_down, w_up;
};

class LlamaModel {
 public:
  // GGUF with general.architecture = llama.
  static Result<std::unique_ptr<LlamaModel>> load_gguf(const std::string& path);
  // llama2.c checkpoint: the legacy header (7 int32) or the versioned export (version 1, fp32).
  static Result<std::unique_ptr<LlamaModel>> load_llama2c(const std::string& path);

  const LlamaConfig& config() const { return config_; }
  const std::vector<LlamaLayer>& layers() const { return layers_; }
  const WeightView& token_embedding() const { return token_embd_; }
  const WeightView& output_norm() const { return output_norm_; }
  const WeightView& classifier() const { return output_; }
  // The GGUF the model came from (for its tokenizer metadata), or null.
  const GgufFile* gguf() const { return gguf_.get(); }
  uint64_t weight_bytes() const;

 private:
  LlamaModel() = default;
  friend struct LlamaLoader;
  LlamaConfig config_;
  std::unique_ptr<MappedFile> file_;
  std::unique_ptr<GgufFile> gguf_;
  WeightView token_embd_, output_norm_, output_;
  std::vector<LlamaLayer> layers_;
};

// One sequence: its KV cache and scratch buffers, sized for max_positions.
class ThreadPool;

class LlamaSession {
 public:
  // pool (may be null) runs the matrix-vector products; it must outlive the session.
  LlamaSession(const LlamaModel& model, int max_positions, ThreadPool* pool = nullptr);
  // The same, refusing (kResourceExhausted) a KV cache larger than budget_bytes.
  static Result<std::unique_ptr<LlamaSession>> create(const LlamaModel& model, int max_positions, uint64_t budget_bytes,
                                                      ThreadPool* pool = nullptr);
  // Bytes of the fp32 K and V caches for that many positions.
  static uint64_t kv_cache_bytes(const LlamaConfig& c, int positions);
  // Runs token at position pos (0-based, positions must come in order) and returns the
  // vocab_size logits, valid until the next call.
  Result<const float*> forward(int32_t token, int pos);
  // Runs n tokens at positions start_pos.. in chunks through matrix-matrix products (sgemm)
  // and returns the logits of the last one; the KV cache ends as after n forward() calls.
  Result<const float*> prefill(const int32_t* tokens, int n, int start_pos, int chunk = 256);
  int max_positions() const { return max_positions_; }

 private:
  void mv(const WeightView& w, const PreparedVector& x, float* y);
  void mm(const WeightView& w, const float* x, int t, float* y);
  void rope(float* vec, int n, int pos) const;
  // Attention of one query (all heads) at pos over cached positions 0..pos of layer l.
  void attend(int l, int pos, const float* q, float* out);
  Status check(int32_t token, int pos) const;
  const float* finish(const float* x_last);

  const LlamaModel& m_;
  int max_positions_;
  ThreadPool* pool_;
  KernelIsa isa_;
  unsigned vector_forms_ = 0;  // the quantised forms of activations the weights read
  PreparedVector pv_;
  std::vector<float> x_, xb_, xb2_, hb_, hb2_, q_, att_, logits_, key_cache_, value_cache_, row_;
  std::vector<float> inv_freq_;  // RoPE frequency per pair within a head
  // Prefill buffers, sized on first use: [chunk × width] row-major.
  std::vector<float> bx_, bxb_, bxb2_, bq_, bk_, bv_, bhb_, bhb2_, tile_;
};

}  // namespace llmops::engine
