// GGUF v2/v3 reader. The file is mapped read-only; the header, every metadata value and every
// tensor description are checked against the file's size before anything is allocated or
// read (counts, string and array lengths, dimensions and their products, types, alignment,
// offsets, overlaps, duplicate keys and names). Strings and tensor data are views into the
// mapping: they live as long as the GgufFile. Immutable after open; any thread may read it.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "formats/ggml_types.h"
#include "formats/mapped_file.h"
#include "status.h"

namespace llmops::engine {

enum class GgufType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5, kFloat32 = 6,
  kBool = 7, kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12,
};

struct GgufValue {
  GgufType type = GgufType::kUint8;
  uint64_t u = 0;        // unsigned integers and bool
  int64_t i = 0;         // signed integers (and unsigned ones that fit)
  double f = 0;          // floats (and every number, converted)
  std::string_view s;    // strings
  // Arrays: element type, count, and the elements' bytes (numbers) or views (strings).
  GgufType elem_type = GgufType::kUint8;
  uint64_t count = 0;
  const uint8_t* elems = nullptr;
  std::vector<std::string_view> strings;
};

struct GgufTensor {
  std::string name;
  GgmlType type = GgmlType::kF32;
  uint32_t n_dims = 0;
  std::array<uint64_t, 4> ne{1, 1, 1, 1};  // ne[0] is the contiguous dimension
  uint64_t offset = 0;                      // within the data section
  uint64_t bytes = 0;
  const uint8_t* data = nullptr;
  uint64_t elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  uint64_t rows() const { return ne[1] * ne[2] * ne[3]; }
};

struct GgufLimits {
  uint64_t max_tensors = 1u << 20;
  uint64_t max_metadata = 1u << 20;
  uint64_t max_array = 1u << 26;   // elements in one metadata array
  uint64_t max_string = 1u << 24;  // bytes in one string (chat templates are long)
};

class GgufFile {
 public:
  static Result<std::unique_ptr<GgufFile>> open(const std::string& path, const GgufLimits& limits = {});
  // Parses a buffer the caller keeps alive (fuzzing, tests).
  static Result<std::unique_ptr<GgufFile>> parse(const uint8_t* data, size_t size, const GgufLimits& limits = {});

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::map<std::string, GgufValue, std::less<>>& metadata() const { return kv_; }
  const GgufValue* find(std::string_view key) const;
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* tensor(std::string_view name) const;

  // Typed metadata lookups: kNotFound when absent, kInvalidArgument on a wrong type.
  Result<std::string> get_string(std::string_view key) const;
  Result<uint64_t> get_uint(std::string_view key) const;
  Result<double> get_float(std::string_view key) const;
  Result<std::vector<std::string_view>> get_strings(std::string_view key) const;
  Result<std::vector<float>> get_floats(std::string_view key) const;
  Result<std::vector<int64_t>> get_ints(std::string_view key) const;
  uint64_t get_uint_or(std::string_view key, uint64_t fallback) const;
  double get_float_or(std::string_view key, double fallback) const;
  // The mapping open() made (null for parse()).
  const MappedFile* mapped_file() const { return file_.get(); }

 private:
  GgufFile() = default;
  std::unique_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::map<std::string, GgufValue, std::less<>> kv_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t, std::less<>> by_name_;
};

}  // namespace llmops::engine
