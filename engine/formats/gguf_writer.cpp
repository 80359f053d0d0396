#include "formats/gguf_writer.h"

#include <cstdio>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "fs.h"
#include "formats/quantize.h"

namespace llmops::engine {
namespace {

constexpr uint64_t kAlignment = 32;

template <typename T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}
void put_str(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out.append(s);
}
void put_key(std::string& out, const std::string& key, uint32_t type) {
  put_str(out, key);
  put<uint32_t>(out, type);
}

}  // namespace

void GgufWriter::add_string(const std::string& key, const std::string& value) {
  put_key(kv_, key, 8);
  put_str(kv_, value);
  ++kv_count_;
}
void GgufWriter::add_u32(const std::string& key, uint32_t value) {
  put_key(kv_, key, 4);
  put(kv_, value);
  ++kv_count_;
}
void GgufWriter::add_f32(const std::string& key, float value) {
  put_key(kv_, key, 6);
  put(kv_, value);
  ++kv_count_;
}
void GgufWriter::add_bool(const std::string& key, bool value) {
  put_key(kv_, key, 7);
  put<uint8_t>(kv_, value ? 1 : 0);
  ++kv_count_;
}
void GgufWriter::add_strings(const std::string& key, const std::vector<std::string>& values) {
  put_key(kv_, key, 9);
  put<uint32_t>(kv_, 8);
  put<uint64_t>(kv_, values.size());
  for (const auto& v : values) put_str(kv_, v);
  ++kv_count_;
}
void GgufWriter::add_f32s(const std::string& key, const std::vector<float>& values) {
  put_key(kv_, key, 9);
  put<uint32_t>(kv_, 6);
  put<uint64_t>(kv_, values.size());
  for (float v : values) put(kv_, v);
  ++kv_count_;
}
void GgufWriter::add_i32s(const std::string& key, const std::vector<int32_t>& values) {
  put_key(kv_, key, 9);
  put<uint32_t>(kv_, 5);
  put<uint64_t>(kv_, values.size());
  for (int32_t v : values) put(kv_, v);
  ++kv_count_;
}

void GgufWriter::add_value(const std::string& key, const GgufValue& v) {
  auto scalar_bytes = [](GgufType t) -> size_t {
    switch (t) {
      case GgufType::kUint8: case GgufType::kInt8: case GgufType::kBool: return 1;
      case GgufType::kUint16: case GgufType::kInt16: return 2;
      case GgufType::kUint32: case GgufType::kInt32: case GgufType::kFloat32: return 4;
      case GgufType::kUint64: case GgufType::kInt64: case GgufType::kFloat64: return 8;
      default: return 0;
    }
  };
  auto put_scalar = [&](GgufType t, const GgufValue& s) {
    switch (t) {
      case GgufType::kUint8: case GgufType::kBool: put<uint8_t>(kv_, static_cast<uint8_t>(s.u)); break;
      case GgufType::kUint16: put<uint16_t>(kv_, static_cast<uint16_t>(s.u)); break;
      case GgufType::kUint32: put<uint32_t>(kv_, static_cast<uint32_t>(s.u)); break;
      case GgufType::kUint64: put<uint64_t>(kv_, s.u); break;
      case GgufType::kInt8: put<int8_t>(kv_, static_cast<int8_t>(s.i)); break;
      case GgufType::kInt16: put<int16_t>(kv_, static_cast<int16_t>(s.i)); break;
      case GgufType::kInt32: put<int32_t>(kv_, static_cast<int32_t>(s.i)); break;
      case GgufType::kInt64: put<int64_t>(kv_, s.i); break;
      case GgufType::kFloat32: put<float>(kv_, static_cast<float>(s.f)); break;
      case GgufType::kFloat64: put<double>(kv_, s.f); break;
      case GgufType::kString: put_str(kv_, std::string(s.s)); break;
      case GgufType::kArray: break;
    }
  };
  put_key(kv_, key, static_cast<uint32_t>(v.type));
  if (v.type != GgufType::kArray) {
    put_scalar(v.type, v);
  } else {
    put<uint32_t>(kv_, static_cast<uint32_t>(v.elem_type));
    put<uint64_t>(kv_, v.count);
    if (v.elem_type == GgufType::kString) {
      for (std::string_view s : v.strings) put_str(kv_, std::string(s));
    } else {
      kv_.append(reinterpret_cast<const char*>(v.elems), v.count * scalar_bytes(v.elem_type));
    }
  }
  ++kv_count_;
}

Status GgufWriter::add_tensor(const std::string& name, GgmlType type, std::vector<uint64_t> ne, RowFn fn) {
  if (!can_quantize(type)) return unimplemented("writing " + ggml_type_name(static_cast<uint32_t>(type)) + " tensors is not supported");
  if (ne.empty() || ne.size() > 4) return invalid_argument("tensor '" + name + "' needs 1 to 4 dimensions");
  auto row = ggml_row_bytes(type, ne[0]);
  if (!row) {
    return invalid_argument("tensor '" + name + "': rows of " + std::to_string(ne[0]) + " are not whole " +
                            ggml_type_name(static_cast<uint32_t>(type)) + " blocks");
  }
  uint64_t rows = 1;
  for (size_t d = 1; d < ne.size(); ++d) rows *= ne[d];
  tensors_.push_back({name, type, std::move(ne), std::move(fn), *row * rows});
  return ok_status();
}

Status GgufWriter::write(const std::string& path) const {
  std::string head;
  put<uint32_t>(head, 0x46554747);
  put<uint32_t>(head, 3);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, kv_count_);
  head += kv_;
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_str(head, t.name);
    put<uint32_t>(head, static_cast<uint32_t>(t.ne.size()));
    for (uint64_t d : t.ne) put<uint64_t>(head, d);
    put<uint32_t>(head, static_cast<uint32_t>(t.type));
    put<uint64_t>(head, offset);
    offset += (t.bytes + kAlignment - 1) / kAlignment * kAlignment;
  }
  head.resize((head.size() + kAlignment - 1) / kAlignment * kAlignment, '\0');

  // Rows are encoded into a buffer written out a megabyte at a time.
  return write_file_atomic(
      path,
      [&](int fd) {
        std::string buf = std::move(head);
        auto flush_if = [&](size_t at_least) {
          if (buf.size() < at_least) return ok_status();
          Status st = write_all(fd, buf.data(), buf.size());
          buf.clear();
          return st;
        };
        std::vector<float> row;
        for (const auto& t : tensors_) {
          const uint64_t row_bytes = *ggml_row_bytes(t.type, t.ne[0]), rows = t.bytes / row_bytes;
          row.resize(t.ne[0]);
          for (uint64_t r = 0; r < rows; ++r) {
            t.fn(r, row.data());
            const size_t at = buf.size();
            buf.resize(at + row_bytes);
            quantize_row(t.type, row.data(), buf.data() + at, t.ne[0]);
            LLMOPS_RETURN_IF_ERROR(flush_if(1u << 20));
          }
          buf.append((kAlignment - t.bytes % kAlignment) % kAlignment, '\0');
        }
        return flush_if(0);
      },
      0644);
}

}  // namespace llmops::engine
