#include "formats/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <set>

#include "formats/ggml_types.h"
#include "fs.h"
#include "json.h"

namespace llmops::engine {

// The format is little-endian and tensor data is used in place.
static_assert(std::endian::native == std::endian::little, "safetensors data is read in place: little-endian hosts only");

namespace {

struct DtypeInfo {
  SafetensorsDtype dtype;
  const char* name;
  uint32_t bytes;
};

constexpr DtypeInfo kDtypes[] = {
    {SafetensorsDtype::kBool, "BOOL", 1},      {SafetensorsDtype::kU8, "U8", 1},   {SafetensorsDtype::kI8, "I8", 1},
    {SafetensorsDtype::kF8_E5M2, "F8_E5M2", 1}, {SafetensorsDtype::kF8_E4M3, "F8_E4M3", 1},
    {SafetensorsDtype::kI16, "I16", 2},         {SafetensorsDtype::kU16, "U16", 2}, {SafetensorsDtype::kF16, "F16", 2},
    {SafetensorsDtype::kBF16, "BF16", 2},       {SafetensorsDtype::kI32, "I32", 4}, {SafetensorsDtype::kU32, "U32", 4},
    {SafetensorsDtype::kF32, "F32", 4},         {SafetensorsDtype::kF64, "F64", 8}, {SafetensorsDtype::kI64, "I64", 8},
    {SafetensorsDtype::kU64, "U64", 8},
};

const DtypeInfo& info_of(SafetensorsDtype dtype) {
  for (const auto& d : kDtypes) {
    if (d.dtype == dtype) return d;
  }
  return kDtypes[0];  // unreachable for values of the enum
}

constexpr size_t kHeaderJsonDepth = 3;  // {tensor: {shape: [...]}}
constexpr size_t kIndexJsonDepth = 4;   // {weight_map: {...}, metadata: {...}} with some slack

Status corrupt(const std::string& what) { return invalid_argument("safetensors " + what + " (the file is corrupt or truncated)"); }

std::string shape_text(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t k = 0; k < shape.size(); ++k) s += (k ? ", " : "") + std::to_string(shape[k]);
  return s + "]";
}

// nlohmann's DOM keeps the last of two equal keys; this SAX pass finds them first. Run it only
// on text that already parsed (parse errors are reported by parse_json_bounded).
class DuplicateKeyFinder {
 public:
  bool null() { return true; }
  bool boolean(bool) { return true; }
  bool number_integer(Json::number_integer_t) { return true; }
  bool number_unsigned(Json::number_unsigned_t) { return true; }
  bool number_float(Json::number_float_t, const Json::string_t&) { return true; }
  bool string(Json::string_t&) { return true; }
  bool binary(Json::binary_t&) { return true; }
  bool start_object(std::size_t) {
    open_.emplace_back();
    return true;
  }
  bool key(Json::string_t& k) {
    if (open_.size() == 1) top_key_ = k;
    if (!open_.back().insert(k).second) {
      duplicate_ = k;
      nested_ = open_.size() > 1;
      return false;
    }
    return true;
  }
  bool end_object() {
    open_.pop_back();
    return true;
  }
  bool start_array(std::size_t) { return true; }
  bool end_array() { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) { return false; }

  // Empty when every object's keys are distinct; otherwise names the repeated key.
  static std::string find(std::string_view text, std::string* top_key, bool* nested) {
    DuplicateKeyFinder finder;
    Json::sax_parse(text.begin(), text.end(), &finder);
    *top_key = finder.top_key_;
    *nested = finder.nested_;
    return finder.duplicate_;
  }

 private:
  std::vector<std::set<std::string>> open_;
  std::string top_key_;
  std::string duplicate_;
  bool nested_ = false;
};

bool as_u64(const Json& j, uint64_t* out) {
  if (!j.is_number_unsigned()) return false;
  *out = j.get<uint64_t>();
  return true;
}

Status parse_tensor(const std::string& name, const Json& entry, const SafetensorsLimits& limits, uint64_t data_size,
                    SafetensorsTensor* t) {
  auto bad = [&](const std::string& what) { return corrupt("tensor '" + name + "': " + what); };
  if (!entry.is_object()) return bad("its entry is not an object");
  auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end() || !dtype_it->is_string()) return bad("\"dtype\" is missing or not a string");
  const auto& dtype_name = dtype_it->get_ref<const std::string&>();
  auto dtype = safetensors_dtype_from_name(dtype_name);
  if (!dtype) {
    return invalid_argument("safetensors tensor '" + name + "' has dtype '" + dtype_name +
                            "', which this engine does not know (the file may be corrupt, or from a newer format version)");
  }
  t->name = name;
  t->dtype = *dtype;

  auto shape_it = entry.find("shape");
  if (shape_it == entry.end() || !shape_it->is_array()) return bad("\"shape\" is missing or not an array");
  if (shape_it->size() > limits.max_dims) {
    return bad("shape has " + std::to_string(shape_it->size()) + " dimensions, more than the " + std::to_string(limits.max_dims) +
               " allowed");
  }
  t->shape.reserve(shape_it->size());
  for (const auto& d : *shape_it) {
    uint64_t dim = 0;
    if (!as_u64(d, &dim)) return bad("shape holds " + d.dump() + ", not a non-negative integer");
    t->shape.push_back(dim);
  }
  uint64_t elements = 1;
  for (uint64_t dim : t->shape) {
    if (dim != 0 && elements > UINT64_MAX / dim) return bad("the size of shape " + shape_text(t->shape) + " overflows");
    elements *= dim;
  }
  const uint32_t dsize = safetensors_dtype_bytes(t->dtype);
  if (elements > UINT64_MAX / dsize) return bad("the size of shape " + shape_text(t->shape) + " overflows");
  t->bytes = elements * dsize;

  auto off_it = entry.find("data_offsets");
  uint64_t begin = 0, end = 0;
  if (off_it == entry.end() || !off_it->is_array() || off_it->size() != 2 || !as_u64((*off_it)[0], &begin) ||
      !as_u64((*off_it)[1], &end)) {
    return bad("\"data_offsets\" is missing or not two non-negative integers [begin, end]");
  }
  std::string offsets = "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "]";
  if (end < begin) return bad(offsets + " end before they begin");
  if (end > data_size) return bad(offsets + " run past the end of the " + std::to_string(data_size) + "-byte data section");
  if (end - begin != t->bytes) {
    return bad(offsets + " hold " + std::to_string(end - begin) + " bytes but shape " + shape_text(t->shape) + " of " + dtype_name +
               " needs " + std::to_string(t->bytes));
  }
  t->offset = begin;
  return ok_status();
}

// The data section must be covered exactly: sorted by offset, each tensor begins where the one
// before ends, and the last ends at the end of the file.
Status check_coverage(const std::vector<SafetensorsTensor>& sorted, uint64_t data_size) {
  uint64_t expected = 0;
  const SafetensorsTensor* prev = nullptr;
  for (const auto& t : sorted) {
    if (t.offset < expected) {
      return corrupt("tensors '" + prev->name + "' and '" + t.name + "' overlap ('" + prev->name + "' ends at byte " +
                     std::to_string(expected) + ", '" + t.name + "' begins at " + std::to_string(t.offset) + ")");
    }
    if (t.offset > expected) {
      return corrupt("data section has a hole of " + std::to_string(t.offset - expected) + " bytes " +
                     (prev ? "between '" + prev->name + "' and '" + t.name + "'" : "before '" + t.name + "'"));
    }
    expected = t.offset + t.bytes;
    prev = &t;
  }
  if (expected != data_size) {
    return corrupt("data section has " + std::to_string(data_size - expected) + " bytes after the last tensor that no tensor covers");
  }
  return ok_status();
}

// "model-00001-of-00002.safetensors": a plain file name in the index's directory.
Status check_shard_name(const std::string& tensor, const std::string& shard) {
  if (shard.empty() || shard.find('/') != std::string::npos || shard.find("..") != std::string::npos ||
      shard.find('\0') != std::string::npos) {
    return invalid_argument("safetensors index places tensor '" + tensor + "' in shard '" + shard +
                            "', which is not a plain file name beside the index ('/' and '..' are refused)");
  }
  return ok_status();
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The file to open in a model directory: see SafetensorsModel.
Result<std::string> model_file_in(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const char* name : {"model.safetensors.index.json", "model.safetensors"}) {
    std::string p = join_path(dir, name);
    if (fs::is_regular_file(p, ec)) return p;
  }
  std::vector<std::string> indexes, files;
  fs::directory_iterator it(dir, ec), end;
  if (ec) return errno_status("listing " + dir, ec.value());
  for (; it != end; it.increment(ec)) {
    if (ec) return errno_status("listing " + dir, ec.value());
    if (!it->is_regular_file(ec)) continue;
    std::string name = it->path().filename().string();
    if (ends_with(name, ".safetensors.index.json")) indexes.push_back(it->path().string());
    if (ends_with(name, ".safetensors")) files.push_back(it->path().string());
  }
  if (indexes.size() == 1) return indexes[0];
  if (indexes.empty() && files.size() == 1) return files[0];
  if (indexes.empty() && files.empty()) {
    return not_found(dir + " holds no model.safetensors, model.safetensors.index.json or other *.safetensors file");
  }
  return invalid_argument(dir + " holds several safetensors files or indexes but no model.safetensors.index.json saying which to use");
}

}  // namespace

std::optional<SafetensorsDtype> safetensors_dtype_from_name(std::string_view name) {
  for (const auto& d : kDtypes) {
    if (name == d.name) return d.dtype;
  }
  return std::nullopt;
}

const char* safetensors_dtype_name(SafetensorsDtype dtype) { return info_of(dtype).name; }
uint32_t safetensors_dtype_bytes(SafetensorsDtype dtype) { return info_of(dtype).bytes; }

bool safetensors_dtype_converts_to_f32(SafetensorsDtype dtype) {
  return dtype == SafetensorsDtype::kF32 || dtype == SafetensorsDtype::kF16 || dtype == SafetensorsDtype::kBF16;
}

uint64_t SafetensorsTensor::elements() const {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;
  return n;
}

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path, const SafetensorsLimits& limits) {
  LLMOPS_ASSIGN_OR_RETURN(auto mapped, MappedFile::open(path));
  auto parsed = parse(mapped->data(), mapped->size(), limits);
  if (!parsed.ok()) return parsed.status().with_context(path);
  (*parsed)->file_ = std::move(mapped);
  return parsed;
}

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::parse(const uint8_t* data, size_t size, const SafetensorsLimits& limits) {
  if (size < 8) return corrupt("file of " + std::to_string(size) + " bytes is shorter than its 8-byte header length");
  uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = n << 8 | data[k];
  if (n > limits.max_header_bytes) {
    return corrupt("header length " + std::to_string(n) + " is larger than the " + std::to_string(limits.max_header_bytes) +
                   " bytes allowed");
  }
  if (n > size - 8) {
    return corrupt("header length " + std::to_string(n) + " runs past the end of the " + std::to_string(size) + "-byte file");
  }
  std::string_view text(reinterpret_cast<const char*>(data + 8), n);
  if (text.empty() || text.front() != '{') return corrupt("header is not a JSON object");
  auto parsed = parse_json_bounded(text, kHeaderJsonDepth);
  if (!parsed.ok()) return corrupt("header: " + parsed.status().message());
  std::string top_key;
  bool nested = false;
  std::string dup = DuplicateKeyFinder::find(text, &top_key, &nested);
  if (!dup.empty()) {
    return corrupt(nested ? "header entry '" + top_key + "' has key '" + dup + "' twice" : "header names '" + dup + "' twice");
  }
  const Json& header = *parsed;
  if (!header.is_object()) return corrupt("header is not a JSON object");

  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->header_bytes_ = n;
  const uint64_t data_size = size - 8 - n;
  const uint8_t* data_section = data + 8 + n;
  const bool has_metadata = header.contains("__metadata__");
  const uint64_t count = header.size() - (has_metadata ? 1 : 0);
  if (count > limits.max_tensors) {
    return corrupt("header lists " + std::to_string(count) + " tensors, more than the " + std::to_string(limits.max_tensors) + " allowed");
  }
  f->tensors_.reserve(count);
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) return corrupt("__metadata__ is not an object");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) return corrupt("__metadata__ '" + mk + "' is not a string");
        f->metadata_.emplace(mk, mv.get<std::string>());
      }
      continue;
    }
    SafetensorsTensor t;
    LLMOPS_RETURN_IF_ERROR(parse_tensor(key, value, limits, data_size, &t));
    f->tensors_.push_back(std::move(t));
  }
  std::sort(f->tensors_.begin(), f->tensors_.end(), [](const SafetensorsTensor& a, const SafetensorsTensor& b) {
    return a.offset != b.offset ? a.offset < b.offset : a.bytes < b.bytes;
  });
  LLMOPS_RETURN_IF_ERROR(check_coverage(f->tensors_, data_size));
  for (size_t k = 0; k < f->tensors_.size(); ++k) {
    auto& t = f->tensors_[k];
    t.data = data_section + t.offset;
    f->by_name_.emplace(t.name, k);
  }
  return f;
}

const SafetensorsTensor* SafetensorsFile::tensor(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

const std::string& SafetensorsFile::path() const {
  static const std::string kNone;
  return file_ ? file_->path() : kNone;
}

Status SafetensorsModel::add_shard(std::unique_ptr<SafetensorsFile> shard) {
  for (const auto& t : shard->tensors()) {
    auto [it, added] = by_name_.emplace(t.name, &t);
    if (added) continue;
    std::string first = "an earlier shard";
    for (const auto& other : shards_) {
      if (other->tensor(t.name) == it->second) first = other->path();
    }
    return invalid_argument("safetensors tensor '" + t.name + "' is in two shards, " + first + " and " + shard->path());
  }
  shards_.push_back(std::move(shard));
  return ok_status();
}

Result<std::unique_ptr<SafetensorsModel>> SafetensorsModel::open(const std::string& path, const SafetensorsLimits& limits) {
  std::error_code ec;
  auto st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st)) return not_found("no such file or directory: " + path);
  std::string target = path;
  if (std::filesystem::is_directory(st)) {
    LLMOPS_ASSIGN_OR_RETURN(target, model_file_in(path));
  }
  std::unique_ptr<SafetensorsModel> model(new SafetensorsModel());
  if (!ends_with(target, ".index.json")) {
    LLMOPS_ASSIGN_OR_RETURN(auto file, SafetensorsFile::open(target, limits));
    LLMOPS_RETURN_IF_ERROR(model->add_shard(std::move(file)));
    return model;
  }

  LLMOPS_ASSIGN_OR_RETURN(std::string text, read_file(target, limits.max_header_bytes));
  auto parsed = parse_json_bounded(text, kIndexJsonDepth);
  if (!parsed.ok()) return parsed.status().with_context(target);
  std::string top_key;
  bool nested = false;
  std::string dup = DuplicateKeyFinder::find(text, &top_key, &nested);
  if (!dup.empty()) {
    return invalid_argument(target + ": " + (nested ? "'" + top_key + "' lists '" + dup + "' twice" : "key '" + dup + "' appears twice"));
  }
  const Json& index = *parsed;
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object() || index["weight_map"].empty()) {
    return invalid_argument(target + ": not a safetensors index (no \"weight_map\" object listing tensors)");
  }
  const Json& weight_map = index["weight_map"];
  std::map<std::string, size_t> shard_of;  // file name → position in shards_
  std::vector<std::string> order;
  for (const auto& [tensor, shard] : weight_map.items()) {
    if (!shard.is_string()) return invalid_argument(target + ": the shard of tensor '" + tensor + "' is not a file name");
    const auto& name = shard.get_ref<const std::string&>();
    LLMOPS_RETURN_IF_ERROR(check_shard_name(tensor, name).with_context(target));
    if (shard_of.emplace(name, order.size()).second) order.push_back(name);
  }
  if (order.size() > limits.max_shards) {
    return invalid_argument(target + ": " + std::to_string(order.size()) + " shards, more than the " + std::to_string(limits.max_shards) +
                            " allowed");
  }
  const std::string dir = dir_of(target);
  for (const auto& name : order) {
    auto file = SafetensorsFile::open(join_path(dir, name), limits);
    if (!file.ok()) return file.status().with_context("shard '" + name + "' of " + target);
    LLMOPS_RETURN_IF_ERROR(model->add_shard(std::move(file).value()));
  }
  for (const auto& [tensor, shard] : weight_map.items()) {
    const auto& name = shard.get_ref<const std::string&>();
    if (model->shards_[shard_of[name]]->tensor(tensor) == nullptr) {
      return invalid_argument(target + " places tensor '" + tensor + "' in shard '" + name +
                              "', which does not hold it (the model is incomplete or its files are mixed up)");
    }
  }
  return model;
}

const SafetensorsTensor* SafetensorsModel::tensor(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

Status safetensors_to_f32(const SafetensorsTensor& tensor, uint64_t first, uint64_t count, float* out) {
  GgmlType type = GgmlType::kF32;
  switch (tensor.dtype) {
    case SafetensorsDtype::kF32: type = GgmlType::kF32; break;
    case SafetensorsDtype::kF16: type = GgmlType::kF16; break;
    case SafetensorsDtype::kBF16: type = GgmlType::kBF16; break;
    default:
      return unimplemented("tensor '" + tensor.name + "' is " + safetensors_dtype_name(tensor.dtype) +
                           "; only F32, F16 and BF16 tensors convert to fp32");
  }
  // bytes is what the file holds for this tensor: never read past it, whatever the shape says.
  const uint64_t held = tensor.bytes / safetensors_dtype_bytes(tensor.dtype);
  const uint64_t n = std::min(tensor.elements(), held);
  if (first > n || count > n - first) {
    return invalid_argument("elements [" + std::to_string(first) + ", +" + std::to_string(count) + ") are past the " + std::to_string(n) +
                            " of tensor '" + tensor.name + "'");
  }
  if (count == 0) return ok_status();
  dequantize_row(type, tensor.data + first * safetensors_dtype_bytes(tensor.dtype), out, count);
  return ok_status();
}

Status safetensors_to_f32(const SafetensorsTensor& tensor, float* out) {
  return safetensors_to_f32(tensor, 0, tensor.elements(), out);
}

}  // namespace llmops::engine
