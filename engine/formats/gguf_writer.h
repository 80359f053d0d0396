// Writes GGUF v3 files: metadata, then tensors produced row by row in fp32 and stored in any
// type quantize_row can write, so a multi-GB model streams through a row buffer. The file
// appears under its name only when complete (temp file, fsync, rename). One thread, unless
// set_threads() lets tensors be encoded side by side (each tensor's rows still by one thread,
// in order, so the file is the same whatever the count).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "formats/ggml_types.h"
#include "formats/gguf.h"
#include "status.h"

namespace llmops::engine {

class GgufWriter {
 public:
  using RowFn = std::function<void(uint64_t row, float* out)>;  // fills ne[0] values of one row

  void add_string(const std::string& key, const std::string& value);
  void add_u32(const std::string& key, uint32_t value);
  void add_f32(const std::string& key, float value);
  void add_bool(const std::string& key, bool value);
  void add_strings(const std::string& key, const std::vector<std::string>& values);
  void add_f32s(const std::string& key, const std::vector<float>& values);
  void add_i32s(const std::string& key, const std::vector<int32_t>& values);
  // A value read from another GGUF, copied as it was (any type, arrays included).
  void add_value(const std::string& key, const GgufValue& value);
  // ne as in GGUF: ne[0] contiguous. Rows are produced by fn in order.
  Status add_tensor(const std::string& name, GgmlType type, std::vector<uint64_t> ne, RowFn fn);
  Status write(const std::string& path) const;
  // Up to n tensors encoded at once, each by its own thread (n <= 1: one thread does all). Only
  // for tensors whose row functions may run concurrently with other tensors' (llmops-synth's:
  // a generator each); encoded tensors wait in memory for their turn, up to about 4 GiB.
  void set_threads(int n) { threads_ = n; }

 private:
  struct Tensor {
    std::string name;
    GgmlType type;
    std::vector<uint64_t> ne;
    RowFn fn;
    uint64_t bytes;
  };
  std::string kv_;  // encoded key-value pairs
  uint64_t kv_count_ = 0;
  std::vector<Tensor> tensors_;
  int threads_ = 1;
};

}  // namespace llmops::engine
