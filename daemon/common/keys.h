// Big-endian typed keys for LMDB, so byte order equals numeric order and prefixes group
// related records. Header-only; plain values, any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace llmops {

class KeyBuilder {
 public:
  KeyBuilder& u8(uint8_t v) { out_.push_back(static_cast<char>(v)); return *this; }
  KeyBuilder& u32(uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out_.push_back(static_cast<char>((v >> s) & 0xff));
    return *this;
  }
  KeyBuilder& u64(uint64_t v) {
    for (int s = 56; s >= 0; s -= 8) out_.push_back(static_cast<char>((v >> s) & 0xff));
    return *this;
  }
  // Strings end with a 0 byte so "ab" sorts before "ab\x01..." and no string is a prefix
  // of another's key; the string itself must not hold a 0 byte.
  KeyBuilder& str(std::string_view s) { out_.append(s); out_.push_back('\0'); return *this; }
  KeyBuilder& raw(std::string_view s) { out_.append(s); return *this; }
  const std::string& bytes() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// Reads keys written by KeyBuilder, front to back; every read checks the remaining length.
class KeyReader {
 public:
  explicit KeyReader(std::string_view key) : rest_(key) {}
  std::optional<uint64_t> u64() { return fixed(8); }
  std::optional<uint32_t> u32() {
    auto v = fixed(4);
    return v ? std::optional<uint32_t>(static_cast<uint32_t>(*v)) : std::nullopt;
  }
  std::optional<std::string_view> str() {
    auto end = rest_.find('\0');
    if (end == std::string_view::npos) return std::nullopt;
    auto s = rest_.substr(0, end);
    rest_.remove_prefix(end + 1);
    return s;
  }
  bool empty() const { return rest_.empty(); }

 private:
  std::optional<uint64_t> fixed(size_t n) {
    if (rest_.size() < n) return std::nullopt;
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<uint8_t>(rest_[i]);
    rest_.remove_prefix(n);
    return v;
  }
  std::string_view rest_;
};

inline std::string u64_key(uint64_t v) { return KeyBuilder().u64(v).take(); }

}  // namespace llmops
