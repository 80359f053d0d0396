#include "formats/gguf_writer.h"

#include <cstdio>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <future>
#include <memory>

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

  // One tensor's rows, encoded in order and padded to the alignment.
  auto encode = [](const Tensor& t, auto&& sink) -> Status {
    const uint64_t row_bytes = *ggml_row_bytes(t.type, t.ne[0]), rows = t.bytes / row_bytes;
    std::vector<float> row(t.ne[0]);
    std::string out;
    for (uint64_t r = 0; r < rows; ++r) {
      t.fn(r, row.data());
      const size_t at = out.size();
      out.resize(at + row_bytes);
      quantize_row(t.type, row.data(), out.data() + at, t.ne[0]);
      if (out.size() >= (1u << 20)) LLMOPS_RETURN_IF_ERROR(sink(out));
    }
    out.append((kAlignment - t.bytes % kAlignment) % kAlignment, '\0');
    return sink(out);
  };
  return write_file_atomic(
      path,
      [&](int fd) -> Status {
        // Small pieces (the header, norm vectors) gather into one buffer written a megabyte at a
        // time; a large one goes out as it is, after what was gathered.
        std::string gathered = std::move(head);
        auto to_file = [fd, &gathered](std::string& bytes) -> Status {
          if (gathered.size() + bytes.size() < (1u << 20)) {
            gathered += bytes;
          } else {
            LLMOPS_RETURN_IF_ERROR(write_all(fd, gathered.data(), gathered.size()));
            gathered.clear();
            LLMOPS_RETURN_IF_ERROR(write_all(fd, bytes.data(), bytes.size()));
          }
          bytes.clear();
          return ok_status();
        };
        auto flush = [fd, &gathered] { return write_all(fd, gathered.data(), gathered.size()); };
        if (threads_ <= 1) {
          for (const auto& t : tensors_) LLMOPS_RETURN_IF_ERROR(encode(t, to_file));
          return flush();
        }
        // Tensors ahead of the one being written are encoded into memory by their own threads.
        constexpr uint64_t kAheadBytes = 4ull << 30;
        struct Pending {
          std::string bytes;  // declared first, destroyed last: done's destructor waits for the task writing it
          std::future<Status> done;
          uint64_t counted = 0;  // its share of held
        };
        std::deque<std::unique_ptr<Pending>> ahead;
        size_t next = 0;
        uint64_t held = 0;
        auto start = [&](const Tensor& t) {
          auto p = std::make_unique<Pending>();
          Pending* raw = p.get();
          raw->bytes.reserve(t.bytes + kAlignment);  // held counts what is reserved
          raw->done = std::async(std::launch::async, [&encode, &t, raw] {
            return encode(t, [raw](std::string& part) {
              raw->bytes += part;
              part.clear();
              return ok_status();
            });
          });
          raw->counted = t.bytes;
          held += t.bytes;
          ahead.push_back(std::move(p));
        };
        Status failed = ok_status();
        while (next < tensors_.size() || !ahead.empty()) {
          while (next < tensors_.size() && static_cast<int>(ahead.size()) < threads_ && (ahead.empty() || held + tensors_[next].bytes <= kAheadBytes)) {
            start(tensors_[next++]);
          }
          std::unique_ptr<Pending> p = std::move(ahead.front());
          ahead.pop_front();
          Status st = p->done.get();  // every started thread is joined, even after a failure
          held -= p->counted;
          if (failed.ok() && !st.ok()) failed = st;
          if (failed.ok()) failed = to_file(p->bytes);
          if (!failed.ok()) next = tensors_.size();  // start nothing more; drain what runs
        }
        return failed.ok() ? flush() : failed;
      },
      0644);
}

}  // namespace llmops::engine
