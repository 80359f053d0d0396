#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>
#include <iterator>

namespace llmops::engine {
namespace {

struct CodePointRange {
  uint32_t first, last;
  CodePointClass cls;
};

constexpr CodePointRange kRanges[] = {
#include "tokenizer/unicode_ranges.inc"
};

constexpr bool ranges_sorted() {
  for (size_t i = 1; i < std::size(kRanges); ++i) {
    if (kRanges[i].first <= kRanges[i - 1].last || kRanges[i].first > kRanges[i].last) return false;
  }
  return true;
}
static_assert(ranges_sorted(), "unicode_ranges.inc must be sorted and non-overlapping");

struct ByteMap {
  std::array<uint32_t, 256> to_cp{};
  // Every code point of the map is below U+0144, so the inverse is a small array.
  std::array<int16_t, 0x144> from_cp{};
};

constexpr bool stands_for_itself(int b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

constexpr ByteMap make_byte_map() {
  ByteMap m;
  for (auto& v : m.from_cp) v = -1;
  uint32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    m.to_cp[b] = stands_for_itself(b) ? static_cast<uint32_t>(b) : next++;
    m.from_cp[m.to_cp[b]] = static_cast<int16_t>(b);
  }
  return m;
}

constexpr ByteMap kByteMap = make_byte_map();

}  // namespace

CodePointClass code_point_class(uint32_t cp) {
  // The first range that ends at or after cp; cp is in it when it also starts at or before cp.
  const auto* it = std::lower_bound(std::begin(kRanges), std::end(kRanges), cp,
                                    [](const CodePointRange& r, uint32_t v) { return r.last < v; });
  return it != std::end(kRanges) && it->first <= cp ? it->cls : CodePointClass::kOther;
}

size_t decode_utf8(std::string_view text, size_t pos, uint32_t& cp) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[pos + i]); };
  const unsigned char lead = byte(0);
  cp = kInvalidCodePoint;
  if (lead < 0x80) {
    cp = lead;
    return 1;
  }
  size_t len;
  uint32_t value, min_value;
  if (lead >= 0xC2 && lead <= 0xDF) {
    len = 2, value = lead & 0x1F, min_value = 0x80;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    len = 3, value = lead & 0x0F, min_value = 0x800;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    len = 4, value = lead & 0x07, min_value = 0x10000;
  } else {
    return 1;  // continuation byte, C0/C1 (always overlong) or F5..FF
  }
  if (len > text.size() - pos) return 1;
  for (size_t i = 1; i < len; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return 1;
    value = (value << 6) | (byte(i) & 0x3F);
  }
  if (value < min_value || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return 1;
  cp = value;
  return len;
}

void append_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

uint32_t byte_to_code_point(uint8_t byte) { return kByteMap.to_cp[byte]; }

int byte_from_code_point(uint32_t cp) { return cp < kByteMap.from_cp.size() ? kByteMap.from_cp[cp] : -1; }

std::string byte_level_encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) append_utf8(byte_to_code_point(static_cast<uint8_t>(c)), out);
  return out;
}

std::string byte_level_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    uint32_t cp;
    const size_t len = decode_utf8(text, pos, cp);
    const int byte = cp == kInvalidCodePoint ? -1 : byte_from_code_point(cp);
    if (byte >= 0) {
      out += static_cast<char>(byte);
    } else {
      out.append(text, pos, len);
    }
    pos += len;
  }
  return out;
}

}  // namespace llmops::engine
