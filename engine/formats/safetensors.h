// safetensors: reader (one file, or a sharded Hugging Face model through its index), writer, and
// conversion of float tensors to fp32.
//
// File layout: an 8-byte little-endian header length N, N bytes of JSON
//   {"<tensor>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"<key>": "<value>"}}
// then the data section, which the tensors must cover exactly (sorted, no overlap, no hole, no
// trailing bytes). Offsets are relative to the data section; shapes are row-major (the last
// dimension is contiguous); an empty shape is a scalar.
//
// Every length, count, shape product and offset is checked against the file before anything is
// allocated or read; duplicate keys anywhere in the header are refused (a JSON DOM would keep
// the last one silently). Errors are kInvalidArgument naming the tensor and what is wrong.
//
// Tensor data and names are owned by the SafetensorsFile (the mapping lives as long as it does).
// Data pointers are only as aligned as the file makes them (8 bytes for files this writer and
// the reference implementation produce), so read them with memcpy. Immutable after open; any
// thread may read.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "formats/mapped_file.h"
#include "status.h"

namespace llmops::engine {

// Every dtype of the safetensors specification that has whole-byte elements. Only F32, F16 and
// BF16 convert to fp32 (safetensors_to_f32); the others parse and report their dtype.
enum class SafetensorsDtype : uint8_t {
  kBool, kU8, kI8, kF8_E5M2, kF8_E4M3, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kF64, kI64, kU64,
};

std::optional<SafetensorsDtype> safetensors_dtype_from_name(std::string_view name);  // "F32" → kF32
const char* safetensors_dtype_name(SafetensorsDtype dtype);
uint32_t safetensors_dtype_bytes(SafetensorsDtype dtype);
bool safetensors_dtype_converts_to_f32(SafetensorsDtype dtype);  // F32, F16, BF16

struct SafetensorsTensor {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
  std::vector<uint64_t> shape;  // row-major; empty for a scalar
  uint64_t offset = 0;          // within the data section
  uint64_t bytes = 0;
  const uint8_t* data = nullptr;
  uint64_t elements() const;
};

struct SafetensorsLimits {
  uint64_t max_header_bytes = 100ull << 20;  // the reference implementation's bound is 100 MB
  uint64_t max_tensors = 1u << 20;
  size_t max_dims = 32;
  size_t max_shards = 4096;
};

class SafetensorsFile {
 public:
  static Result<std::unique_ptr<SafetensorsFile>> open(const std::string& path, const SafetensorsLimits& limits = {});
  // Parses a buffer the caller keeps alive for the life of the result (fuzzing, tests).
  static Result<std::unique_ptr<SafetensorsFile>> parse(const uint8_t* data, size_t size, const SafetensorsLimits& limits = {});

  // In data-section order.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* tensor(std::string_view name) const;
  const std::map<std::string, std::string, std::less<>>& metadata() const { return metadata_; }
  uint64_t header_bytes() const { return header_bytes_; }  // N
  uint64_t data_start() const { return 8 + header_bytes_; }
  const std::string& path() const;  // empty for parse()

 private:
  SafetensorsFile() = default;
  std::unique_ptr<MappedFile> file_;
  uint64_t header_bytes_ = 0;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t, std::less<>> by_name_;
  std::map<std::string, std::string, std::less<>> metadata_;
};

// A model as Hugging Face stores it: path is a .safetensors file, a *.safetensors.index.json
// ({"weight_map": {"<tensor>": "<shard file>"}}), or a directory holding
// model.safetensors.index.json, model.safetensors, or exactly one *.safetensors file. Each shard
// is opened once. Refused: shard names with '/' or "..", a tensor the index places in a shard
// that lacks it, and a tensor present in two shards. Immutable after open; any thread may read.
class SafetensorsModel {
 public:
  static Result<std::unique_ptr<SafetensorsModel>> open(const std::string& path, const SafetensorsLimits& limits = {});

  const SafetensorsTensor* tensor(std::string_view name) const;
  // Every tensor of every shard, by name. Pointers live as long as the model.
  const std::map<std::string, const SafetensorsTensor*, std::less<>>& tensors() const { return by_name_; }
  const std::vector<std::unique_ptr<SafetensorsFile>>& shards() const { return shards_; }

 private:
  SafetensorsModel() = default;
  Status add_shard(std::unique_ptr<SafetensorsFile> shard);
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, const SafetensorsTensor*, std::less<>> by_name_;
};

// Converts elements [first, first + count) of an F32, F16 or BF16 tensor to fp32 into out
// (count floats). kUnimplemented for other dtypes; kInvalidArgument for a range past the tensor.
Status safetensors_to_f32(const SafetensorsTensor& tensor, uint64_t first, uint64_t count, float* out);
// The whole tensor: out holds tensor.elements() floats.
Status safetensors_to_f32(const SafetensorsTensor& tensor, float* out);

// What the writer stores: data points to product(shape) × dtype bytes, little-endian, row-major,
// and must stay valid until write_safetensors returns.
struct SafetensorsTensorSource {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
  std::vector<uint64_t> shape;
  const void* data = nullptr;
};

// Writes tensors in the order given, header first (tensors in the same order, "__metadata__"
// first when there is any), padded with spaces so the data section starts 8-byte aligned, as the
// reference implementation does; files load in Hugging Face safetensors and PyTorch unchanged.
// Tensor bytes stream from their pointers. The file appears under path only when complete
// (temp file, fsync, rename, fsync of the directory). kInvalidArgument for an empty, duplicate,
// reserved ("__metadata__") or non-UTF-8 name, or a shape whose size overflows. One thread.
Status write_safetensors(const std::string& path, const std::vector<SafetensorsTensorSource>& tensors,
                         const std::map<std::string, std::string>& metadata = {});

}  // namespace llmops::engine
