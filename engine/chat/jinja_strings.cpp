#include "chat/jinja_strings.h"

#include <string.h>

#include <algorithm>
#include <unordered_set>

#include "tokenizer/unicode.h"

namespace llmops::engine::jinja {

uint32_t utf8_decode_at(std::string_view s, size_t i, size_t* len) {
  uint32_t cp;
  *len = decode_utf8(s, i, cp);
  return cp == kInvalidCodePoint ? static_cast<unsigned char>(s[i]) : cp;
}

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++n) {
    size_t len;
    utf8_decode_at(s, i, &len);
    i += len;
  }
  return n;
}

std::vector<size_t> utf8_offsets(std::string_view s) {
  std::vector<size_t> out;
  out.reserve(s.size() + 1);
  for (size_t i = 0; i < s.size();) {
    out.push_back(i);
    size_t len;
    utf8_decode_at(s, i, &len);
    i += len;
  }
  out.push_back(s.size());
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;  // a lone surrogate
  engine::append_utf8(cp, out);
}

bool is_py_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

size_t find_text(std::string_view haystack, std::string_view needle, size_t from) {
  if (from > haystack.size()) return std::string_view::npos;
  if (needle.empty()) return from;
  const void* hit = ::memmem(haystack.data() + from, haystack.size() - from, needle.data(), needle.size());
  return hit ? static_cast<size_t>(static_cast<const char*>(hit) - haystack.data()) : std::string_view::npos;
}

std::vector<size_t> find_all(std::string_view haystack, std::string_view needle) {
  std::vector<size_t> out;
  for (size_t pos = find_text(haystack, needle); pos != std::string_view::npos;
       pos = find_text(haystack, needle, pos + needle.size())) {
    out.push_back(pos);
  }
  return out;
}

namespace {

// The code points of s, each with its byte range.
struct CodePoint {
  uint32_t cp;
  size_t begin, end;
};

std::vector<CodePoint> code_points(std::string_view s) {
  std::vector<CodePoint> out;
  for (size_t i = 0; i < s.size();) {
    size_t len;
    uint32_t cp = utf8_decode_at(s, i, &len);
    out.push_back({cp, i, i + len});
    i += len;
  }
  return out;
}

bool is_line_break(uint32_t cp) {
  return cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || cp == 0x1C || cp == 0x1D || cp == 0x1E ||
         cp == 0x85 || cp == 0x2028 || cp == 0x2029;
}

bool is_ascii_upper(uint32_t c) { return c >= 'A' && c <= 'Z'; }
bool is_ascii_lower(uint32_t c) { return c >= 'a' && c <= 'z'; }
char to_upper(char c) { return is_ascii_lower(static_cast<unsigned char>(c)) ? static_cast<char>(c - 32) : c; }
char to_lower(char c) { return is_ascii_upper(static_cast<unsigned char>(c)) ? static_cast<char>(c + 32) : c; }

}  // namespace

std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right) {
  const auto cps = code_points(s);
  std::unordered_set<uint32_t> set;
  if (chars) {
    for (const auto& c : code_points(*chars)) set.insert(c.cp);
  }
  const auto strip = [&](uint32_t cp) { return chars ? set.count(cp) > 0 : is_py_space(cp); };
  size_t b = 0, e = cps.size();
  if (left) {
    while (b < e && strip(cps[b].cp)) ++b;
  }
  if (right) {
    while (e > b && strip(cps[e - 1].cp)) --e;
  }
  if (b == e) return "";
  return std::string(s.substr(cps[b].begin, cps[e - 1].end - cps[b].begin));
}

std::vector<std::string> py_split(std::string_view s, const std::string* sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    size_t pos = 0;
    for (;;) {
      size_t hit = maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit ? std::string_view::npos
                                                                                   : find_text(s, *sep, pos);
      if (hit == std::string_view::npos) {
        out.emplace_back(s.substr(pos));
        return out;
      }
      out.emplace_back(s.substr(pos, hit - pos));
      pos = hit + sep->size();
    }
  }
  const auto cps = code_points(s);
  size_t i = 0;
  for (;;) {
    while (i < cps.size() && is_py_space(cps[i].cp)) ++i;
    if (i == cps.size()) return out;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
      out.emplace_back(s.substr(cps[i].begin));
      return out;
    }
    size_t j = i;
    while (j < cps.size() && !is_py_space(cps[j].cp)) ++j;
    out.emplace_back(s.substr(cps[i].begin, cps[j - 1].end - cps[i].begin));
    i = j;
  }
}

std::vector<std::string> py_rsplit(std::string_view s, const std::string* sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    // Matches taken from the right, as Python does: a left-to-right search of the reversed text.
    const std::string rev_s(s.rbegin(), s.rend());
    const std::string rev_sep(sep->rbegin(), sep->rend());
    size_t end = s.size();
    size_t pos = 0;
    for (;;) {
      size_t hit = std::string_view::npos;
      if (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) hit = find_text(rev_s, rev_sep, pos);
      if (hit == std::string_view::npos) {
        out.emplace_back(s.substr(0, end));
        break;
      }
      const size_t start = s.size() - hit - sep->size();  // the match in s
      out.emplace_back(s.substr(start + sep->size(), end - start - sep->size()));
      end = start;
      pos = hit + sep->size();
    }
  } else {
    const auto cps = code_points(s);
    size_t j = cps.size();
    for (;;) {
      while (j > 0 && is_py_space(cps[j - 1].cp)) --j;
      if (j == 0) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
        out.emplace_back(s.substr(0, cps[j - 1].end));
        break;
      }
      size_t i = j;
      while (i > 0 && !is_py_space(cps[i - 1].cp)) --i;
      out.emplace_back(s.substr(cps[i].begin, cps[j - 1].end - cps[i].begin));
      j = i;
    }
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<std::string> py_splitlines(std::string_view s) {
  std::vector<std::string> out;
  const auto cps = code_points(s);
  size_t start = 0;
  for (size_t i = 0; i < cps.size(); ++i) {
    if (!is_line_break(cps[i].cp)) continue;
    out.emplace_back(s.substr(start, cps[i].begin - start));
    if (cps[i].cp == '\r' && i + 1 < cps.size() && cps[i + 1].cp == '\n') ++i;
    start = cps[i].end;
  }
  if (start < s.size()) out.emplace_back(s.substr(start));
  return out;
}

size_t py_replace_size(std::string_view s, std::string_view old, std::string_view repl, int64_t count) {
  size_t hits = 0;
  if (old.empty()) {
    hits = utf8_length(s) + 1;
  } else {
    hits = find_all(s, old).size();
  }
  if (count >= 0) hits = std::min<size_t>(hits, static_cast<size_t>(count));
  return s.size() - hits * old.size() + hits * repl.size();
}

std::string py_replace(std::string_view s, std::string_view old, std::string_view repl, int64_t count) {
  std::string out;
  int64_t done = 0;
  const auto more = [&] { return count < 0 || done < count; };
  if (old.empty()) {
    const auto offsets = utf8_offsets(s);
    for (size_t i = 0; i + 1 < offsets.size(); ++i) {
      if (more()) out += repl, ++done;
      out.append(s.substr(offsets[i], offsets[i + 1] - offsets[i]));
    }
    if (more()) out += repl;
    return out;
  }
  size_t pos = 0;
  while (more()) {
    size_t hit = find_text(s, old, pos);
    if (hit == std::string_view::npos) break;
    out.append(s.substr(pos, hit - pos));
    out += repl;
    pos = hit + old.size();
    ++done;
  }
  out.append(s.substr(pos));
  return out;
}

std::string ascii_upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = to_upper(c);
  return out;
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = to_lower(c);
  return out;
}

std::string py_capitalize(std::string_view s) {
  std::string out = ascii_lower(s);
  if (!out.empty()) out[0] = to_upper(out[0]);
  return out;
}

// A character counts as a letter for title-casing when it is an ASCII letter or any non-ASCII,
// non-space code point (left as it is).
std::string py_title(std::string_view s) {
  std::string out;
  bool prev_cased = false;
  for (const auto& c : code_points(s)) {
    if (c.cp < 0x80) {
      const char ch = static_cast<char>(c.cp);
      const bool letter = is_ascii_upper(c.cp) || is_ascii_lower(c.cp);
      out += letter ? (prev_cased ? to_lower(ch) : to_upper(ch)) : ch;
      prev_cased = letter;
    } else {
      out.append(s.substr(c.begin, c.end - c.begin));
      prev_cased = !is_py_space(c.cp);
    }
  }
  return out;
}

std::string jinja_title(std::string_view s) {
  const auto is_sep = [](char c) {
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || c == ' ' || c == '\t' || c == '\n' ||
           c == '\r' || c == '\f' || c == '\v';
  };
  std::string out(s);
  bool word_start = true;
  for (char& c : out) {
    if (is_sep(c)) {
      word_start = true;
      continue;
    }
    c = word_start ? to_upper(c) : to_lower(c);
    word_start = false;
  }
  return out;
}

bool py_islower(std::string_view s) {
  bool cased = false;
  for (char c : s) {
    if (is_ascii_upper(static_cast<unsigned char>(c))) return false;
    cased = cased || is_ascii_lower(static_cast<unsigned char>(c));
  }
  return cased;
}

bool py_isupper(std::string_view s) {
  bool cased = false;
  for (char c : s) {
    if (is_ascii_lower(static_cast<unsigned char>(c))) return false;
    cased = cased || is_ascii_upper(static_cast<unsigned char>(c));
  }
  return cased;
}

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace llmops::engine::jinja
