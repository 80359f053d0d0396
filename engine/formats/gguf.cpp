#include "formats/gguf.h"

#include <algorithm>
#include <cstring>

namespace llmops::engine {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian

// Bounds-checked little-endian reader over the file.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  template <typename T>
  Status read(T* out, const char* what) {
    if (remaining() < sizeof(T)) return truncated(what);
    std::memcpy(out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return ok_status();
  }
  Status read_string(std::string_view* out, uint64_t max_len, const char* what) {
    uint64_t len = 0;
    LLMOPS_RETURN_IF_ERROR(read(&len, what));
    if (len > remaining()) {
      return invalid_argument(std::string(what) + ": string length " + std::to_string(len) + " runs past the end of the file");
    }
    if (len > max_len) return invalid_argument(std::string(what) + ": string of " + std::to_string(len) + " bytes is longer than allowed");
    *out = std::string_view(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return ok_status();
  }
  Status skip(uint64_t n, const char* what) {
    if (n > remaining()) return truncated(what);
    pos_ += n;
    return ok_status();
  }
  const uint8_t* here() const { return data_ + pos_; }

 private:
  Status truncated(const char* what) const {
    return invalid_argument(std::string("truncated GGUF: ") + what + " at byte " + std::to_string(pos_) + " runs past the end (" +
                            std::to_string(size_) + " bytes)");
  }
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool: return 1;
    case GgufType::kUint16:
    case GgufType::kInt16: return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32: return 4;
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64: return 8;
    default: return 0;
  }
}

// Reads one scalar of type t at p into v (u/i/f filled consistently).
void decode_scalar(GgufType t, const uint8_t* p, GgufValue* v) {
  auto get = [&](auto tag) {
    decltype(tag) x;
    std::memcpy(&x, p, sizeof x);
    return x;
  };
  switch (t) {
    case GgufType::kUint8: v->u = get(uint8_t{}); break;
    case GgufType::kBool: v->u = get(uint8_t{}) != 0; break;
    case GgufType::kUint16: v->u = get(uint16_t{}); break;
    case GgufType::kUint32: v->u = get(uint32_t{}); break;
    case GgufType::kUint64: v->u = get(uint64_t{}); break;
    case GgufType::kInt8: v->i = get(int8_t{}); break;
    case GgufType::kInt16: v->i = get(int16_t{}); break;
    case GgufType::kInt32: v->i = get(int32_t{}); break;
    case GgufType::kInt64: v->i = get(int64_t{}); break;
    case GgufType::kFloat32: v->f = get(float{}); break;
    case GgufType::kFloat64: v->f = get(double{}); break;
    default: break;
  }
  bool is_signed = t == GgufType::kInt8 || t == GgufType::kInt16 || t == GgufType::kInt32 || t == GgufType::kInt64;
  bool is_float = t == GgufType::kFloat32 || t == GgufType::kFloat64;
  if (is_signed) {
    v->f = static_cast<double>(v->i);
    v->u = v->i >= 0 ? static_cast<uint64_t>(v->i) : 0;
  } else if (!is_float) {
    v->i = v->u <= static_cast<uint64_t>(INT64_MAX) ? static_cast<int64_t>(v->u) : INT64_MAX;
    v->f = static_cast<double>(v->u);
  }
}

Status read_value(Reader& r, GgufType type, const GgufLimits& limits, GgufValue* v, const std::string& key) {
  v->type = type;
  if (type == GgufType::kString) return r.read_string(&v->s, limits.max_string, "metadata string");
  if (type == GgufType::kArray) {
    uint32_t et = 0;
    LLMOPS_RETURN_IF_ERROR(r.read(&et, "array element type"));
    uint64_t count = 0;
    LLMOPS_RETURN_IF_ERROR(r.read(&count, "array length"));
    if (count > limits.max_array) {
      return invalid_argument("metadata '" + key + "': array of " + std::to_string(count) + " elements is larger than allowed");
    }
    v->elem_type = static_cast<GgufType>(et);
    v->count = count;
    if (v->elem_type == GgufType::kString) {
      // Each string needs at least its 8-byte length: refuse impossible counts before reserving.
      if (count > r.remaining() / 8) return invalid_argument("metadata '" + key + "': array of strings longer than the file");
      v->strings.reserve(count);
      for (uint64_t k = 0; k < count; ++k) {
        std::string_view s;
        LLMOPS_RETURN_IF_ERROR(r.read_string(&s, limits.max_string, "array string"));
        v->strings.push_back(s);
      }
      return ok_status();
    }
    size_t es = scalar_size(v->elem_type);
    if (es == 0) return invalid_argument("metadata '" + key + "': arrays of type " + std::to_string(et) + " are not supported");
    if (count > r.remaining() / es) return invalid_argument("metadata '" + key + "': array runs past the end of the file");
    v->elems = r.here();
    return r.skip(count * es, "array");
  }
  size_t size = scalar_size(type);
  if (size == 0) return invalid_argument("metadata '" + key + "': unknown value type " + std::to_string(static_cast<uint32_t>(type)));
  if (r.remaining() < size) return invalid_argument("truncated GGUF: metadata '" + key + "' value runs past the end");
  decode_scalar(type, r.here(), v);
  return r.skip(size, "value");
}

}  // namespace

Result<std::unique_ptr<GgufFile>> GgufFile::open(const std::string& path, const GgufLimits& limits) {
  LLMOPS_ASSIGN_OR_RETURN(auto mapped, MappedFile::open(path));
  auto parsed = parse(mapped->data(), mapped->size(), limits);
  if (!parsed.ok()) return parsed.status().with_context(path);
  (*parsed)->file_ = std::move(mapped);
  return parsed;
}

Result<std::unique_ptr<GgufFile>> GgufFile::parse(const uint8_t* data, size_t size, const GgufLimits& limits) {
  std::unique_ptr<GgufFile> g(new GgufFile());
  Reader r(data, size);
  uint32_t magic = 0;
  LLMOPS_RETURN_IF_ERROR(r.read(&magic, "magic"));
  if (magic != kMagic) return invalid_argument("not a GGUF file (bad magic)");
  LLMOPS_RETURN_IF_ERROR(r.read(&g->version_, "version"));
  if (g->version_ != 2 && g->version_ != 3) {
    return invalid_argument("GGUF version " + std::to_string(g->version_) + " is not supported (2 and 3 are)");
  }
  uint64_t n_tensors = 0, n_kv = 0;
  LLMOPS_RETURN_IF_ERROR(r.read(&n_tensors, "tensor count"));
  LLMOPS_RETURN_IF_ERROR(r.read(&n_kv, "metadata count"));
  // Smallest possible entries: a tensor info is >= 8+4+8+4+8 bytes, a key-value >= 8+4+1.
  if (n_tensors > limits.max_tensors || n_tensors > r.remaining() / 32) {
    return invalid_argument("GGUF claims " + std::to_string(n_tensors) + " tensors, more than the file can hold");
  }
  if (n_kv > limits.max_metadata || n_kv > r.remaining() / 13) {
    return invalid_argument("GGUF claims " + std::to_string(n_kv) + " metadata entries, more than the file can hold");
  }
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string_view key;
    LLMOPS_RETURN_IF_ERROR(r.read_string(&key, 65535, "metadata key"));
    uint32_t type = 0;
    LLMOPS_RETURN_IF_ERROR(r.read(&type, "metadata type"));
    GgufValue v;
    LLMOPS_RETURN_IF_ERROR(read_value(r, static_cast<GgufType>(type), limits, &v, std::string(key)));
    if (!g->kv_.emplace(std::string(key), std::move(v)).second) {
      return invalid_argument("duplicate metadata key '" + std::string(key) + "'");
    }
  }
  if (const GgufValue* a = g->find("general.alignment")) {
    if (a->type != GgufType::kUint32 || a->u == 0 || (a->u & (a->u - 1)) != 0) {
      return invalid_argument("general.alignment must be a power of two (uint32)");
    }
    g->alignment_ = a->u;
  }
  g->tensors_.reserve(n_tensors);
  for (uint64_t t = 0; t < n_tensors; ++t) {
    GgufTensor ti;
    std::string_view name;
    LLMOPS_RETURN_IF_ERROR(r.read_string(&name, 1024, "tensor name"));
    ti.name = std::string(name);
    LLMOPS_RETURN_IF_ERROR(r.read(&ti.n_dims, "tensor dimensions"));
    if (ti.n_dims == 0 || ti.n_dims > 4) {
      return invalid_argument("tensor '" + ti.name + "' has " + std::to_string(ti.n_dims) + " dimensions (1 to 4 allowed)");
    }
    uint64_t elements = 1;
    for (uint32_t d = 0; d < ti.n_dims; ++d) {
      LLMOPS_RETURN_IF_ERROR(r.read(&ti.ne[d], "tensor shape"));
      if (ti.ne[d] == 0 || ti.ne[d] > (uint64_t{1} << 40) || elements > (uint64_t{1} << 50) / ti.ne[d]) {
        return invalid_argument("tensor '" + ti.name + "' has an impossible shape (dimension " + std::to_string(ti.ne[d]) + ")");
      }
      elements *= ti.ne[d];
    }
    uint32_t type = 0;
    LLMOPS_RETURN_IF_ERROR(r.read(&type, "tensor type"));
    auto info = ggml_type_info(type);
    if (!info) return invalid_argument("tensor '" + ti.name + "' has unknown type " + std::to_string(type));
    ti.type = static_cast<GgmlType>(type);
    if (ti.ne[0] % info->block_elements != 0) {
      return invalid_argument("tensor '" + ti.name + "': row of " + std::to_string(ti.ne[0]) + " elements is not a whole number of " +
                              info->name + " blocks");
    }
    ti.bytes = elements / info->block_elements * info->block_bytes;
    LLMOPS_RETURN_IF_ERROR(r.read(&ti.offset, "tensor offset"));
    if (ti.offset % g->alignment_ != 0) return invalid_argument("tensor '" + ti.name + "' offset is not aligned");
    if (!g->by_name_.emplace(ti.name, g->tensors_.size()).second) return invalid_argument("duplicate tensor name '" + ti.name + "'");
    g->tensors_.push_back(std::move(ti));
  }
  uint64_t data_start = (r.pos() + g->alignment_ - 1) / g->alignment_ * g->alignment_;
  if (data_start > size && n_tensors > 0) return invalid_argument("truncated GGUF: no tensor data section");
  uint64_t data_size = size > data_start ? size - data_start : 0;
  std::vector<const GgufTensor*> by_offset;
  for (auto& ti : g->tensors_) {
    if (ti.offset > data_size || ti.bytes > data_size - ti.offset) {
      return invalid_argument("tensor '" + ti.name + "' (" + std::to_string(ti.bytes) + " bytes at offset " + std::to_string(ti.offset) +
                              ") runs past the end of the file");
    }
    ti.data = data + data_start + ti.offset;
    by_offset.push_back(&ti);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < by_offset.size(); ++k) {
    if (by_offset[k - 1]->offset + by_offset[k - 1]->bytes > by_offset[k]->offset) {
      return invalid_argument("tensors '" + by_offset[k - 1]->name + "' and '" + by_offset[k]->name + "' overlap");
    }
  }
  return g;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

const GgufTensor* GgufFile::tensor(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

namespace {
Status missing(std::string_view key) { return not_found("GGUF metadata has no '" + std::string(key) + "'"); }
Status wrong(std::string_view key, const char* want) {
  return invalid_argument("GGUF metadata '" + std::string(key) + "' is not " + want);
}
bool is_int(GgufType t) { return scalar_size(t) != 0 && t != GgufType::kFloat32 && t != GgufType::kFloat64 && t != GgufType::kBool; }
}  // namespace

Result<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing(key);
  if (v->type != GgufType::kString) return wrong(key, "a string");
  return std::string(v->s);
}

Result<uint64_t> GgufFile::get_uint(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing(key);
  if (!is_int(v->type) || v->i < 0) return wrong(key, "a non-negative integer");
  return v->u;
}

Result<double> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing(key);
  if (scalar_size(v->type) == 0 || v->type == GgufType::kBool) return wrong(key, "a number");
  return v->f;
}

Result<std::vector<std::string_view>> GgufFile::get_strings(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing(key);
  if (v->type != GgufType::kArray || v->elem_type != GgufType::kString) return wrong(key, "an array of strings");
  return v->strings;
}

Result<std::vector<float>> GgufFile::get_floats(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing(key);
  if (v->type != GgufType::kArray || scalar_size(v->elem_type) == 0) return wrong(key, "an array of numbers");
  std::vector<float> out(v->count);
  size_t es = scalar_size(v->elem_type);
  for (uint64_t k = 0; k < v->count; ++k) {
    GgufValue e;
    decode_scalar(v->elem_type, v->elems + k * es, &e);
    out[k] = static_cast<float>(v->elem_type == GgufType::kFloat32 || v->elem_type == GgufType::kFloat64 ? e.f : static_cast<double>(e.i));
  }
  return out;
}

Result<std::vector<int64_t>> GgufFile::get_ints(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing(key);
  if (v->type != GgufType::kArray || !is_int(v->elem_type)) return wrong(key, "an array of integers");
  std::vector<int64_t> out(v->count);
  size_t es = scalar_size(v->elem_type);
  for (uint64_t k = 0; k < v->count; ++k) {
    GgufValue e;
    decode_scalar(v->elem_type, v->elems + k * es, &e);
    out[k] = e.i;
  }
  return out;
}

uint64_t GgufFile::get_uint_or(std::string_view key, uint64_t fallback) const {
  auto v = get_uint(key);
  return v.ok() ? *v : fallback;
}

double GgufFile::get_float_or(std::string_view key, double fallback) const {
  auto v = get_float(key);
  return v.ok() ? *v : fallback;
}

}  // namespace llmops::engine
