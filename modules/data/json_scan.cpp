#include "data/json_scan.h"

#include <cstdint>
#include <cstring>

namespace llmops::data {
namespace {

// True when none of the 8 bytes is '"', '\\', a control character or non-ASCII.
inline bool plain8(uint64_t w) {
  constexpr uint64_t k01 = 0x0101010101010101ULL, k80 = 0x8080808080808080ULL;
  auto zero_byte = [&](uint64_t v) { return (v - k01) & ~v & k80; };
  const uint64_t quote = zero_byte(w ^ (k01 * '"'));
  const uint64_t slash = zero_byte(w ^ (k01 * '\\'));
  const uint64_t control = (w - k01 * 0x20) & ~w & k80;
  return ((quote | slash | control | (w & k80))) == 0;
}

struct Scanner {
  const char* p;
  const char* end;
  size_t max_depth;

  void ws() {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) ++p;
  }
  bool lit(const char* word, size_t n) {
    if (static_cast<size_t>(end - p) < n || std::memcmp(p, word, n) != 0) return false;
    p += n;
    return true;
  }
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool u4(unsigned* v) {
    if (end - p < 4) return false;
    unsigned x = 0;
    for (int k = 0; k < 4; ++k) {
      int h = hex(p[k]);
      if (h < 0) return false;
      x = x * 16 + static_cast<unsigned>(h);
    }
    p += 4;
    *v = x;
    return true;
  }
  // At the opening quote; leaves p after the closing one.
  bool string(bool* escaped) {
    ++p;
    *escaped = false;
    while (true) {
      while (end - p >= 8) {
        uint64_t w;
        std::memcpy(&w, p, 8);
        if (!plain8(w)) break;
        p += 8;
      }
      if (p >= end) return false;
      const unsigned char c = static_cast<unsigned char>(*p);
      if (c == '"') {
        ++p;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        *escaped = true;
        if (++p >= end) return false;
        switch (*p++) {
          case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't': break;
          case 'u': {
            unsigned v;
            if (!u4(&v)) return false;
            if (v >= 0xDC00 && v <= 0xDFFF) return false;  // a low surrogate alone
            if (v >= 0xD800 && v <= 0xDBFF) {
              unsigned lo;
              if (end - p < 2 || p[0] != '\\' || p[1] != 'u') return false;
              p += 2;
              if (!u4(&lo) || lo < 0xDC00 || lo > 0xDFFF) return false;
            }
            break;
          }
          default: return false;
        }
        continue;
      }
      if (c < 0x80) {
        ++p;
        continue;
      }
      // A UTF-8 sequence, checked as valid_utf8 does.
      const auto* u = reinterpret_cast<const unsigned char*>(p);
      const size_t left = static_cast<size_t>(end - p);
      size_t len = 0;
      if (c >= 0xC2 && c <= 0xDF) len = left >= 2 && (u[1] & 0xC0) == 0x80 ? 2 : 0;
      else if (c >= 0xE0 && c <= 0xEF) {
        len = left >= 3 && (u[1] & 0xC0) == 0x80 && (u[2] & 0xC0) == 0x80 && !(c == 0xE0 && u[1] < 0xA0) && !(c == 0xED && u[1] >= 0xA0) ? 3 : 0;
      } else if (c >= 0xF0 && c <= 0xF4) {
        len = left >= 4 && (u[1] & 0xC0) == 0x80 && (u[2] & 0xC0) == 0x80 && (u[3] & 0xC0) == 0x80 && !(c == 0xF0 && u[1] < 0x90) &&
                      !(c == 0xF4 && u[1] >= 0x90)
                  ? 4
                  : 0;
      }
      if (len == 0) return false;
      p += len;
    }
  }
  bool number() {
    if (p < end && *p == '-') ++p;
    if (p >= end) return false;
    if (*p == '0') {
      ++p;
    } else if (*p >= '1' && *p <= '9') {
      while (p < end && *p >= '0' && *p <= '9') ++p;
    } else {
      return false;
    }
    if (p < end && *p == '.') {
      ++p;
      const char* d = p;
      while (p < end && *p >= '0' && *p <= '9') ++p;
      if (p == d) return false;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
      ++p;
      if (p < end && (*p == '+' || *p == '-')) ++p;
      const char* d = p;
      while (p < end && *p >= '0' && *p <= '9') ++p;
      if (p == d) return false;
    }
    return true;
  }
  bool value(size_t depth, JsonType* type, bool* escaped) {
    if (p >= end) return false;
    *escaped = false;
    switch (*p) {
      case '"': *type = JsonType::kString; return string(escaped);
      case '{': *type = JsonType::kObject; return object(depth + 1, nullptr);
      case '[': *type = JsonType::kArray; return array(depth + 1);
      case 't': *type = JsonType::kBoolean; return lit("true", 4);
      case 'f': *type = JsonType::kBoolean; return lit("false", 5);
      case 'n': *type = JsonType::kNull; return lit("null", 4);
      default: *type = JsonType::kNumber; return number();
    }
  }
  bool array(size_t depth) {
    if (depth > max_depth) return false;
    ++p;
    ws();
    if (p < end && *p == ']') return ++p, true;
    while (true) {
      ws();
      JsonType t;
      bool esc;
      if (!value(depth, &t, &esc)) return false;
      ws();
      if (p >= end) return false;
      if (*p == ']') return ++p, true;
      if (*p++ != ',') return false;
    }
  }
  bool object(size_t depth, ScannedObject* top) {
    if (depth > max_depth) return false;
    ++p;
    ws();
    if (p < end && *p == '}') return ++p, true;
    while (true) {
      ws();
      if (p >= end || *p != '"') return false;
      const char* key = p;
      bool key_esc;
      if (!string(&key_esc)) return false;
      std::string_view key_text(key, static_cast<size_t>(p - key));
      ws();
      if (p >= end || *p++ != ':') return false;
      ws();
      const char* vbegin = p;
      JsonType t;
      bool esc;
      if (!value(depth, &t, &esc)) return false;
      if (top != nullptr) {
        ScannedField f;
        f.name = key_esc ? decode_json_string(key_text) : std::string(key_text.substr(1, key_text.size() - 2));
        f.type = t;
        f.begin = static_cast<size_t>(vbegin - begin_);
        f.end = static_cast<size_t>(p - begin_);
        f.escaped = esc;
        top->fields.push_back(std::move(f));
      }
      ws();
      if (p >= end) return false;
      if (*p == '}') return ++p, true;
      if (*p++ != ',') return false;
    }
  }
  const char* begin_ = nullptr;
};

void append_utf8(std::string& out, unsigned cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace

const char* json_type_name(JsonType t) {
  static const char* kNames[] = {"string", "number", "boolean", "null", "object", "array"};
  return kNames[static_cast<size_t>(t)];
}

const ScannedField* ScannedObject::find(std::string_view name) const {
  for (const auto& f : fields) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

bool scan_object(std::string_view line, size_t max_depth, ScannedObject* out) {
  out->fields.clear();
  Scanner s{line.data(), line.data() + line.size(), max_depth};
  s.begin_ = line.data();
  s.ws();
  if (s.p >= s.end || *s.p != '{') return false;
  if (!s.object(1, out)) return false;
  s.ws();
  if (s.p != s.end) return false;
  // A repeated name: the parsers disagree on which wins; let the full parser decide.
  for (size_t i = 1; i < out->fields.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (out->fields[i].name == out->fields[j].name) return false;
    }
  }
  return true;
}

std::string decode_json_string(std::string_view q) {
  std::string out;
  out.reserve(q.size());
  const char* p = q.data() + 1;
  const char* end = q.data() + q.size() - 1;
  while (p < end) {
    const char* run = p;
    while (p < end && *p != '\\') ++p;
    out.append(run, static_cast<size_t>(p - run));
    if (p >= end) break;
    ++p;
    char c = *p++;
    switch (c) {
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      case 'u': {
        auto h4 = [&](const char* s) {
          unsigned v = 0;
          for (int k = 0; k < 4; ++k) v = v * 16 + static_cast<unsigned>(Scanner::hex(s[k]));
          return v;
        };
        unsigned v = h4(p);
        p += 4;
        if (v >= 0xD800 && v <= 0xDBFF) {
          unsigned lo = h4(p + 2);
          p += 6;
          v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
        }
        append_utf8(out, v);
        break;
      }
      default: out.push_back(c);  // " \ /
    }
  }
  return out;
}

void append_json_string(std::string& out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  out.push_back('"');
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\b': out.append("\\b"); break;
      case '\f': out.append("\\f"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default: {
        const char u[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        out.append(u, 6);
      }
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

std::string splice_string(std::string_view line, size_t begin, size_t end, std::string_view text) {
  std::string out;
  out.reserve(line.size() + text.size() / 8 + 8);
  out.append(line.substr(0, begin));
  append_json_string(out, text);
  out.append(line.substr(end));
  return out;
}

}  // namespace llmops::data
