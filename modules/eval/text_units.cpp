#include "eval/text_units.h"

#include <algorithm>

#include "data/text.h"
#include "tokenizer/unicode.h"

namespace llmops::eval {

bool py_space(uint32_t cp) {
  if (cp >= 0x1C && cp <= 0x1F) return true;
  return cp != engine::kInvalidCodePoint && engine::code_point_class(cp) == engine::CodePointClass::kWhitespace;
}

std::vector<std::string_view> py_split(std::string_view text) {
  std::vector<std::string_view> out;
  size_t i = 0, start = std::string_view::npos;
  while (i < text.size()) {
    uint32_t cp;
    size_t len;
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      cp = static_cast<unsigned char>(text[i]);
      len = 1;
    } else {
      len = engine::decode_utf8(text, i, cp);
    }
    if (py_space(cp)) {
      if (start != std::string_view::npos) out.push_back(text.substr(start, i - start));
      start = std::string_view::npos;
    } else if (start == std::string_view::npos) {
      start = i;
    }
    i += len;
  }
  if (start != std::string_view::npos) out.push_back(text.substr(start));
  return out;
}

std::vector<uint32_t> code_points(std::string_view text) {
  std::vector<uint32_t> out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    uint32_t cp;
    size_t len = engine::decode_utf8(text, i, cp);
    // A bad byte keeps its identity (0xDC80 + byte, as Python's surrogateescape would).
    out.push_back(cp == engine::kInvalidCodePoint ? 0xDC80u + static_cast<unsigned char>(text[i]) : cp);
    i += len;
  }
  return out;
}

uint64_t unit_key(std::string_view token) { return data::hash64(token, 0x6c6c6d6f7073ULL); }

uint64_t ngram_key(const uint64_t* keys, int n) {
  uint64_t h = 0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(n);
  for (int i = 0; i < n; ++i) h = data::mix64(h ^ keys[i]) + 0x632be59bd9b4e019ULL;
  return h;
}

NgramCounts NgramCounts::of(const std::vector<uint64_t>& unit_keys, int n) {
  NgramCounts c;
  if (static_cast<int>(unit_keys.size()) < n) return c;
  std::vector<uint64_t> all;
  all.reserve(unit_keys.size() - n + 1);
  for (size_t i = 0; i + n <= unit_keys.size(); ++i) all.push_back(n == 1 ? unit_keys[i] : ngram_key(&unit_keys[i], n));
  std::sort(all.begin(), all.end());
  c.total = all.size();
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    while (j < all.size() && all[j] == all[i]) ++j;
    c.keys.push_back(all[i]);
    c.counts.push_back(static_cast<uint32_t>(j - i));
    i = j;
  }
  return c;
}

uint32_t NgramCounts::count(uint64_t key) const {
  auto it = std::lower_bound(keys.begin(), keys.end(), key);
  return it != keys.end() && *it == key ? counts[it - keys.begin()] : 0;
}

uint64_t clipped_matches(const NgramCounts& hyp, const NgramCounts& ref) {
  uint64_t m = 0;
  size_t i = 0, j = 0;
  while (i < hyp.keys.size() && j < ref.keys.size()) {
    if (hyp.keys[i] < ref.keys[j]) {
      ++i;
    } else if (ref.keys[j] < hyp.keys[i]) {
      ++j;
    } else {
      m += std::min(hyp.counts[i], ref.counts[j]);
      ++i;
      ++j;
    }
  }
  return m;
}

}  // namespace llmops::eval
