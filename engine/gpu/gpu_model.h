// The transformer on an accelerator: the same forward pass as Runner (model/model.h), with the
// weights, the KV caches and every activation in device memory. Whole-model offload: every
// weight is uploaded once in its stored type (quantised blocks stay quantised; the driver
// dequantises in registers). Only token ids, positions and the outputs cross the bus: logits
// when a sampler on the host needs them, or just the argmax ids for greedy decoding.
//
// Per-layer offload, for a model larger than the device's budget: the first layers that fit
// stay on the device, and the matrices of the rest stay in host memory and are streamed into
// one device staging area, layer by layer, each forward pass (what vLLM's --cpu-offload-gb
// does). Embeddings, the classifier, every norm and bias and the KV caches stay on the device.
// Such a step reads those layers over the bus, so it is slower than a resident one, and it is
// not recorded as a graph; a model that fits is never streamed.
//
// A GpuModel is immutable after upload; a GpuSession is one sequence's device KV cache; a
// GpuRunner owns the activation buffers of one forward pass. All of them use their GpuDevice
// from one thread at a time, and the device must outlive them.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <tuple>
#include <memory>
#include <vector>

#include "gpu/device.h"
#include "model/model.h"

namespace llmops::engine {

struct GpuWeight {
  int type = LLMOPS_DT_F32;
  const void* data = nullptr;  // device
  uint64_t rows = 0, cols = 0;
};

struct GpuLayer {
  const float *attn_norm = nullptr, *attn_norm_b = nullptr;
  GpuWeight wq, wk, wv, wo;
  const float *bq = nullptr, *bk = nullptr, *bv = nullptr, *bo = nullptr;
  const float *ffn_norm = nullptr, *ffn_norm_b = nullptr;
  GpuWeight w_gate, w_up, w_down;
  const float *b_up = nullptr, *b_down = nullptr;
};

class GpuModel {
 public:
  // Uploads every weight of the model. kUnimplemented names a tensor whose type the driver
  // does not read (the caller runs on the CPU instead); kResourceExhausted when it does not fit.
  // budget_bytes > 0: keep the weights' device bytes under it, streaming the layers past what
  // fits (kResourceExhausted, saying how much it needs, when not even the rest and one layer's
  // staging fit). A streaming model reads the host model's weights: the Model must outlive it.
  static Result<std::unique_ptr<GpuModel>> upload(GpuDevice& dev, const Model& model, uint64_t budget_bytes = 0);
  // A model of this shape whose matrices are pseudo-random in one type, made on the device
  // (benchmarks of shapes no file on the machine holds). Norm weights are 1, biases absent.
  static Result<std::unique_ptr<GpuModel>> random(GpuDevice& dev, const ModelConfig& config, GgmlType type, uint64_t seed);

  GpuDevice& device() const { return dev_; }
  const ModelConfig& config() const { return config_; }
  const std::vector<GpuLayer>& layers() const { return layers_; }
  const GpuWeight& token_embedding() const { return token_embd_; }
  const GpuWeight& position_embedding() const { return pos_embd_; }
  const GpuWeight& classifier() const { return output_; }
  const float* output_norm() const { return output_norm_; }
  const float* output_norm_bias() const { return output_norm_b_; }
  const float* rope_inv_freq() const { return inv_freq_; }  // device, rope_dims/2 values
  int rope_dims() const { return rope_dims_; }
  // Device bytes of the weights, and the weight bytes one decode step reads.
  uint64_t device_bytes() const { return device_bytes_; }
  // Layers whose matrices stream from host memory each pass (0: the whole model is resident).
  int streamed_layers() const { return static_cast<int>(std::count(streamed_.begin(), streamed_.end(), true)); }
  bool streamed(int layer) const { return streamed_[static_cast<size_t>(layer)]; }
  // A layer as the kernels read it. A streamed layer's matrices are in the staging area:
  // uploaded now unless done_with() started their copy (or an earlier pass left them there),
  // and the kernels queued after this wait for them on the device.
  Result<GpuLayer> stage(int layer) const;
  // Called once a layer's kernels are queued: the staging area may be refilled once they
  // finish, and the next streamed layer's copy is started, its host-side part overlapping this
  // layer's work. abandon(): a pass that failed after stage(layer) gives the area back.
  Status done_with(int layer) const;
  void abandon(int layer) const;
  uint64_t bytes_per_token() const;

 private:
  explicit GpuModel(GpuDevice& dev) : dev_(dev) {}
  Result<const void*> keep(DeviceBuffer b);
  Result<GpuWeight> put(const WeightView& w, const char* name);
  Result<const float*> put_vector(const float* host, uint64_t n);
  Status put_rope(const std::vector<float>& inv_freq);
  std::array<uint8_t*, 7> staged_places(int layer) const;
  Status fill_staging(int layer) const;

  static constexpr int kStagingSlot = 0;  // the driver's upload slot the staging area uses

  GpuDevice& dev_;
  ModelConfig config_;
  std::vector<DeviceBuffer> buffers_;
  std::vector<GpuLayer> layers_;
  std::vector<bool> streamed_;
  std::vector<std::array<WeightView, 7>> host_matrices_;  // a streamed layer's wq wk wv wo w_gate w_up w_down
  DeviceBuffer staging_;     // one streamed layer's matrices at a time
  int first_streamed_ = -1;  // layers from here on stream (-1: none)
  mutable int staged_ = -1;  // the layer the staging area holds or is being filled with
  GpuWeight token_embd_, pos_embd_, output_;
  const float *output_norm_ = nullptr, *output_norm_b_ = nullptr;
  const float* inv_freq_ = nullptr;
  int rope_dims_ = 0;
  uint64_t device_bytes_ = 0;
};

// One sequence's KV cache on the device ([layer][kv head][position][head_dim] fp32, as the CPU's).
class GpuSession {
 public:
  // kResourceExhausted when the cache does not fit on the device.
  static Result<std::unique_ptr<GpuSession>> create(const GpuModel& model, int max_positions);
  const GpuModel& model() const { return m_; }
  int max_positions() const { return max_positions_; }
  int length() const { return length_; }
  void reset() { length_ = 0; }
  // Takes the first n positions of another session's cache (same model) as this one's, as
  // Session::copy_prefix does on the CPU: n is clipped to both; returns the positions taken.
  Result<int> copy_prefix(const GpuSession& other, int n);

 private:
  friend class GpuRunner;
  GpuSession(const GpuModel& m, int max_positions) : m_(m), max_positions_(max_positions) {}
  const GpuModel& m_;
  int max_positions_;
  int length_ = 0;
  DeviceBuffer keys_, values_;
};

struct GpuBatchToken {
  GpuSession* session = nullptr;
  int32_t token = 0;
  int pos = 0;
  bool logits = true;
};

class GpuRunner {
 public:
  // graphs: record each decode shape's kernels once as a device graph and replay it (one
  // launch per step instead of hundreds); off runs every kernel from the host each time.
  explicit GpuRunner(const GpuModel& model, int max_chunk = 512, bool graphs = true);
  ~GpuRunner();
  GpuRunner(const GpuRunner&) = delete;
  GpuRunner& operator=(const GpuRunner&) = delete;

  // Runs the batch (the rules of Runner::run: one sequence's tokens consecutive, starting at
  // most at its length) and returns the logits of the tokens that ask, in batch order, on the
  // host, valid until the next call.
  Result<const float*> run(const GpuBatchToken* batch, size_t n);
  // The same, returning only each asking token's greedy next token (argmax on the device).
  Result<std::vector<int32_t>> run_greedy(const GpuBatchToken* batch, size_t n);
  // The same, each asking token's next token sampled on the device by its row of `rows` (one
  // per asking token, in batch order), whose penalty_first/penalty_count index the seen-token
  // lists (host memory). Only ids cross the bus.
  Result<std::vector<int32_t>> run_sampled(const GpuBatchToken* batch, size_t n, const std::vector<llmops_drv_sampling>& rows,
                                           const std::vector<int32_t>& penalty_tokens, const std::vector<int32_t>& penalty_counts);

 private:
  Status check(const GpuBatchToken* batch, size_t n) const;
  // Checks the batch and runs it chunk by chunk, handing take() each chunk's number of asking
  // tokens while their logits are in logits_.
  Status run_chunks(const GpuBatchToken* batch, size_t n, const std::function<Status(int wanted)>& take);
  Status ensure_buffers(int t);
  void drop_graphs();
  // Runs one chunk; leaves the asking rows' logits in logits_ and returns how many asked.
  Result<int> run_chunk(const GpuBatchToken* batch, int t);
  // The kernels of one chunk of t tokens of which `wanted` ask for logits, every position under
  // max_positions (what a graph records).
  Status enqueue(int t, int wanted, int max_positions);
  Status drv(int rc, const char* what) const { return m_.device().check(rc, what); }

  const GpuModel& m_;
  int max_chunk_;
  bool graphs_on_;
  int capacity_ = 0;
  DeviceBuffer x_, xb_, xb2_, q_, k_, v_, att_, hb_, hb2_, rows_, logits_, step_, out_ids_;
  DeviceBuffer sampling_, penalty_tokens_, penalty_counts_;  // run_sampled's, grown as needed
  // Device room for at least `bytes` in b (reallocated, contents dropped, when smaller).
  Status room(DeviceBuffer& b, uint64_t bytes);
  // step_ holds, capacity_ entries each: token ids, positions, indices of the asking rows, KV refs.
  int32_t *ids_ = nullptr, *positions_ = nullptr, *wanted_ = nullptr;
  llmops_drv_kv_ref* refs_ = nullptr;
  std::vector<uint8_t> host_step_;
  std::vector<float> host_logits_;
  // Step shapes (tokens, asking tokens, position bound) seen once (run directly, sizing the
  // driver's scratch) and recorded.
  using StepShape = std::tuple<int, int, int>;
  std::map<StepShape, void*> graphs_;
  std::map<StepShape, int> seen_;
};

}  // namespace llmops::engine
