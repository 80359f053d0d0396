#include "data/text.h"

#include <utf8proc.h>

#include <cstdlib>
#include <cstring>
#include <memory>

namespace llmops::data {
namespace {

bool all_ascii(std::string_view s) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    if ((w & 0x8080808080808080ULL) != 0) return false;
  }
  for (; i < n; ++i) {
    if (p[i] & 0x80) return false;
  }
  return true;
}

// Length of the valid UTF-8 sequence at p (n bytes left), or 0 when it is not one.
size_t utf8_seq(const unsigned char* p, size_t n) {
  unsigned c = p[0];
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return n >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && p[1] < 0xA0) return 0;   // overlong
    if (c == 0xED && p[1] >= 0xA0) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
    if (c == 0xF0 && p[1] < 0x90) return 0;   // overlong
    if (c == 0xF4 && p[1] >= 0x90) return 0;  // past U+10FFFF
    return 4;
  }
  return 0;
}

// Decodes the valid sequence at p of length len.
int32_t decode(const unsigned char* p, size_t len) {
  switch (len) {
    case 1: return p[0];
    case 2: return ((p[0] & 0x1F) << 6) | (p[1] & 0x3F);
    case 3: return ((p[0] & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    default: return ((p[0] & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) | (p[3] & 0x3F);
  }
}


bool is_unicode_space(int32_t cp) {
  return cp == 0xA0 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0x1680;
}

// Invisible format marks that only get in the way of training text.
bool is_dropped_mark(int32_t cp) { return cp == 0xFEFF || cp == 0x200B || cp == 0x2060 || cp == 0x00AD; }

std::string map_with(std::string_view text, int options) {
  utf8proc_uint8_t* dst = nullptr;
  auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()), &dst,
                        static_cast<utf8proc_option_t>(options));
  if (n < 0) return std::string(text);  // only on invalid input, which callers repaired
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(dst, &std::free);
  return std::string(reinterpret_cast<char*>(dst), static_cast<size_t>(n));
}

}  // namespace

bool valid_utf8(std::string_view text) {
  if (all_ascii(text)) return true;
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  size_t n = text.size();
  for (size_t i = 0; i < n;) {
    size_t len = utf8_seq(p + i, n - i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string repair_utf8(std::string_view text, size_t* replaced) {
  size_t bad = 0;
  std::string out;
  out.reserve(text.size());
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  size_t n = text.size();
  for (size_t i = 0; i < n;) {
    size_t len = utf8_seq(p + i, n - i);
    if (len > 0) {
      out.append(text.data() + i, len);
      i += len;
      continue;
    }
    // One U+FFFD per maximal run of bytes that cannot start a valid sequence.
    ++bad;
    out.append("\xEF\xBF\xBD");
    ++i;
    while (i < n && utf8_seq(p + i, n - i) == 0) ++i;
  }
  if (replaced != nullptr) *replaced = bad;
  return out;
}

size_t utf8_length(std::string_view text) {
  size_t count = 0;
  for (unsigned char c : text) count += (c & 0xC0) != 0x80;
  return count;
}

std::string normalize(std::string_view text, NormalForm form) {
  if (form == NormalForm::kNone || all_ascii(text)) return std::string(text);
  std::string repaired;
  if (!valid_utf8(text)) {
    repaired = repair_utf8(text);
    text = repaired;
  }
  int options = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
  if (form == NormalForm::kNfkc) options |= UTF8PROC_COMPAT;
  return map_with(text, options);
}

std::string clean_whitespace(std::string_view text, WhitespaceReport* report) {
  WhitespaceReport r;
  std::string out;
  out.reserve(text.size());
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t newlines = 0;   // newlines pending since the last visible character
  bool space = false;    // a space pending since the last visible character
  for (size_t i = 0; i < n;) {
    // A run of visible ASCII goes over in one append.
    if (p[i] > 0x20 && p[i] < 0x7F) {
      size_t j = i + 1;
      while (j < n && p[j] > 0x20 && p[j] < 0x7F) ++j;
      if (!out.empty()) {
        if (newlines > 0) out.append(newlines >= 2 ? "\n\n" : "\n");
        else if (space) out.push_back(' ');
      }
      newlines = 0;
      space = false;
      out.append(text.data() + i, j - i);
      i = j;
      continue;
    }
    int32_t cp;
    size_t len = utf8_seq(p + i, n - i);
    if (len == 0) {  // invalid byte: kept as is (repair is its own, explicit step)
      cp = -1;
      len = 1;
    } else {
      cp = decode(p + i, len);
    }
    const size_t at = i;
    i += len;
    if (cp == '\r') {
      if (i < n && p[i] == '\n') ++i;
      cp = '\n';
    }
    if (cp == '\n') {
      ++newlines;
      space = false;
      continue;
    }
    if (cp == ' ' || cp == '\t' || is_unicode_space(cp)) {
      space = true;
      continue;
    }
    if ((cp >= 0 && cp < 0x20) || cp == 0x7F || (cp >= 0x80 && cp < 0xA0) || is_dropped_mark(cp)) {
      ++r.control_removed;
      continue;
    }
    if (!out.empty()) {
      if (newlines > 0) out.append(newlines >= 2 ? "\n\n" : "\n");
      else if (space) out.push_back(' ');
    }
    newlines = 0;
    space = false;
    out.append(text.data() + at, len);
  }
  r.changed = out != text;
  if (report != nullptr) *report = r;
  return out;
}

namespace {
// Whitespace runs as one space, ends trimmed; ASCII upper case folded when asked.
std::string collapse_spaces(std::string_view in, bool fold_ascii) {
  std::string out(in.size(), '\0');
  char* o = out.data();
  char* const start = o;
  bool space = false;
  for (char c : in) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      space = true;
      continue;
    }
    if (space && o != start) *o++ = ' ';
    space = false;
    *o++ = fold_ascii && c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
  }
  out.resize(static_cast<size_t>(o - start));
  return out;
}
}  // namespace

std::string dedup_key(std::string_view text) {
  if (all_ascii(text)) return collapse_spaces(text, true);  // one pass for the common case
  std::string repaired = valid_utf8(text) ? std::string(text) : repair_utf8(text);
  return collapse_spaces(map_with(repaired, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD), false);
}

uint64_t hash64(std::string_view data, uint64_t seed) {
  const uint64_t k0 = 0xa0761d6478bd642fULL, k1 = 0xe7037ed1a0b428dbULL;
  auto mum = [](uint64_t a, uint64_t b) {
    __uint128_t r = static_cast<__uint128_t>(a) * b;
    return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
  };
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t n = data.size();
  uint64_t h = seed ^ mum(seed ^ k0, n ^ k1);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    uint64_t a, b;
    std::memcpy(&a, p + i, 8);
    std::memcpy(&b, p + i + 8, 8);
    h = mum(a ^ k1 ^ h, b ^ k0 ^ h) ^ h;
  }
  uint64_t a = 0, b = 0;
  size_t rest = n - i;
  if (rest > 8) {
    std::memcpy(&a, p + i, 8);
    std::memcpy(&b, p + i + 8, rest - 8);
  } else if (rest > 0) {
    std::memcpy(&a, p + i, rest);
  }
  h = mum(a ^ k1 ^ h, b ^ k0 ^ (h + rest));
  return mix64(h ^ n);
}

CharMix char_mix(std::string_view text) {
  CharMix m;
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    size_t len = utf8_seq(p + i, n - i);
    if (len == 0) {
      ++m.other;
      ++i;
      continue;
    }
    int32_t cp = decode(p + i, len);
    i += len;
    if (cp < 0x80) {
      if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) ++m.letters;
      else if (cp >= '0' && cp <= '9') ++m.digits;
      else if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r') ++m.spaces;
      else if (cp < 0x20 || cp == 0x7F) ++m.other;
      else if (std::strchr("!\"#%&'()*,-./:;?@[\\]_{}", cp) != nullptr) ++m.punctuation;
      else ++m.symbols;
      continue;
    }
    switch (utf8proc_category(cp)) {
      case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
      case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
      case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
        ++m.letters; break;
      case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        ++m.digits; break;
      case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP:
        ++m.spaces; break;
      case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
      case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
      case UTF8PROC_CATEGORY_PO:
        ++m.punctuation; break;
      case UTF8PROC_CATEGORY_SM: case UTF8PROC_CATEGORY_SC: case UTF8PROC_CATEGORY_SK:
      case UTF8PROC_CATEGORY_SO:
        ++m.symbols; break;
      default:
        ++m.other;
    }
  }
  return m;
}

}  // namespace llmops::data
