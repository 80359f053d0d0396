#include "eval/squad.h"

#include <utf8proc.h>

#include <algorithm>
#include <map>

#include "eval/text_units.h"
#include "tokenizer/unicode.h"

namespace llmops::eval {
namespace {

bool ascii_punct(uint32_t c) {
  return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') || (c >= '{' && c <= '~');
}
// Python's \w for str patterns: letters, digits (any script) and the underscore.
bool word_char(uint32_t cp) {
  if (cp == '_') return true;
  if (cp == engine::kInvalidCodePoint || cp > 0x10FFFF) return false;
  auto c = engine::code_point_class(cp);
  return c == engine::CodePointClass::kLetter || c == engine::CodePointClass::kNumber;
}

}  // namespace

std::string squad_normalize(std::string_view answer) {
  // The script's order: lower, remove punctuation, remove articles, fix whitespace.
  std::vector<uint32_t> cps;
  for (uint32_t cp : code_points(answer)) {
    uint32_t lower = cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF) ? static_cast<uint32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))) : cp;
    if (!ascii_punct(lower)) cps.push_back(lower);
  }
  // \b(a|an|the)\b → " ": an article bounded by non-word characters (or the ends).
  std::vector<uint32_t> out;
  for (size_t i = 0; i < cps.size();) {
    bool at_start = i == 0 || !word_char(cps[i - 1]);
    size_t len = 0;
    if (at_start) {
      for (std::string_view art : {"the", "an", "a"}) {
        if (i + art.size() > cps.size()) continue;
        bool same = true;
        for (size_t k = 0; k < art.size() && same; ++k) same = cps[i + k] == static_cast<uint32_t>(art[k]);
        if (same && (i + art.size() == cps.size() || !word_char(cps[i + art.size()]))) {
          len = art.size();
          break;
        }
      }
    }
    if (len > 0) {
      out.push_back(' ');
      i += len;
    } else {
      out.push_back(cps[i++]);
    }
  }
  std::string text;
  for (uint32_t cp : out) {
    if (cp >= 0xDC80 && cp <= 0xDCFF) text.push_back(static_cast<char>(cp - 0xDC80));  // a bad byte, as it came
    else engine::append_utf8(cp, text);
  }
  std::string joined;
  for (std::string_view t : py_split(text)) {
    if (!joined.empty()) joined.push_back(' ');
    joined.append(t);
  }
  return joined;
}

double squad_exact_match(std::string_view prediction, const std::vector<std::string>& golds) {
  std::string p = squad_normalize(prediction);
  for (const auto& g : golds) {
    if (squad_normalize(g) == p) return 1.0;
  }
  return 0.0;
}

double squad_f1(std::string_view prediction, const std::vector<std::string>& golds) {
  std::string p = squad_normalize(prediction);
  std::vector<std::string_view> pt = py_split(p);
  double best = 0;
  for (const auto& g : golds) {
    std::string gn = squad_normalize(g);
    std::vector<std::string_view> gt = py_split(gn);
    if (pt.empty() || gt.empty()) {
      best = std::max(best, pt.size() == gt.size() ? 1.0 : 0.0);
      continue;
    }
    std::map<std::string_view, int> counts;
    for (auto t : gt) ++counts[t];
    int common = 0;
    for (auto t : pt) {
      auto it = counts.find(t);
      if (it != counts.end() && it->second > 0) --it->second, ++common;
    }
    if (common == 0) continue;
    double precision = static_cast<double>(common) / static_cast<double>(pt.size());
    double recall = static_cast<double>(common) / static_cast<double>(gt.size());
    best = std::max(best, 2 * precision * recall / (precision + recall));
  }
  return best;
}

}  // namespace llmops::eval
