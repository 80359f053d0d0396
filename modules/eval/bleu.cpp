#include "eval/bleu.h"

#include <cmath>

#include "eval/text_units.h"
#include "tokenizer/unicode.h"

namespace llmops::eval {
namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  size_t at = 0;
  for (size_t hit; (hit = s.find(from, at)) != std::string::npos; at = hit + from.size()) {
    out.append(s, at, hit - at);
    out.append(to);
  }
  if (at == 0) return;
  out.append(s, at, std::string::npos);
  s.swap(out);
}

// The first regex of the 13a rules: ASCII symbols ({|}~ [\]^_` space..& (..+ :..@ /) stand apart.
bool symbol_13a(unsigned char c) {
  return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') || (c >= '(' && c <= '+') ||
         (c >= ':' && c <= '@') || c == '/';
}
bool digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool period_or_comma(unsigned char c) { return c == '.' || c == ','; }

// Each of the remaining rules is a two-character pattern replaced left to right without
// overlap, as Python's re.sub does; UTF-8 bytes give the same result as code points because
// every character the patterns name is ASCII.
template <typename Match, typename Emit>
std::string two_char_rule(const std::string& in, Match match, Emit emit) {
  std::string out;
  out.reserve(in.size() + in.size() / 4);
  size_t i = 0;
  while (i < in.size()) {
    if (i + 1 < in.size() && match(static_cast<unsigned char>(in[i]), static_cast<unsigned char>(in[i + 1]))) {
      emit(out, in[i], in[i + 1]);
      i += 2;
    } else {
      out.push_back(in[i++]);
    }
  }
  return out;
}

// Python's str.rstrip(): trailing whitespace off.
std::string_view py_rstrip(std::string_view s) {
  while (!s.empty()) {
    size_t start = s.size() - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    uint32_t cp;
    size_t len = engine::decode_utf8(s, start, cp);
    if (start + len != s.size() || !py_space(cp)) break;
    s.remove_suffix(len);
  }
  return s;
}

double log_or_floor(double p) { return p == 0.0 ? -9999999999.0 : std::log(p); }

}  // namespace

std::vector<std::string> tokenize_13a(std::string_view segment) {
  std::string line(py_rstrip(segment));
  replace_all(line, "<skipped>", "");
  replace_all(line, "-\n", "");
  replace_all(line, "\n", " ");
  replace_all(line, "&quot;", "\"");
  replace_all(line, "&amp;", "&");
  replace_all(line, "&lt;", "<");
  replace_all(line, "&gt;", ">");
  std::string spaced;
  spaced.reserve(line.size() * 2 + 2);
  spaced.push_back(' ');
  for (char c : line) {
    if (symbol_13a(static_cast<unsigned char>(c))) {
      spaced.push_back(' ');
      spaced.push_back(c);
      spaced.push_back(' ');
    } else {
      spaced.push_back(c);
    }
  }
  spaced.push_back(' ');
  // A period or comma not preceded by a digit, then one not followed by a digit, then a dash
  // after a digit.
  spaced = two_char_rule(spaced, [](unsigned char a, unsigned char b) { return !digit(a) && period_or_comma(b); },
                         [](std::string& o, char a, char b) { o.push_back(a), o.push_back(' '), o.push_back(b), o.push_back(' '); });
  spaced = two_char_rule(spaced, [](unsigned char a, unsigned char b) { return period_or_comma(a) && !digit(b); },
                         [](std::string& o, char a, char b) { o.push_back(' '), o.push_back(a), o.push_back(' '), o.push_back(b); });
  spaced = two_char_rule(spaced, [](unsigned char a, unsigned char b) { return digit(a) && b == '-'; },
                         [](std::string& o, char a, char b) { o.push_back(a), o.push_back(' '), o.push_back(b), o.push_back(' '); });
  std::vector<std::string> tokens;
  for (std::string_view t : py_split(spaced)) tokens.emplace_back(t);
  return tokens;
}

BleuStats& BleuStats::operator+=(const BleuStats& o) {
  hyp_len += o.hyp_len;
  ref_len += o.ref_len;
  for (int n = 0; n < 4; ++n) correct[n] += o.correct[n], total[n] += o.total[n];
  return *this;
}

BleuStats bleu_stats(std::string_view hypothesis, const std::vector<std::string>& references) {
  auto keys_of = [](const std::vector<std::string>& tokens) {
    std::vector<uint64_t> k;
    k.reserve(tokens.size());
    for (const auto& t : tokens) k.push_back(unit_key(t));
    return k;
  };
  BleuStats s;
  std::vector<uint64_t> hyp = keys_of(tokenize_13a(hypothesis));
  s.hyp_len = hyp.size();
  std::vector<std::vector<uint64_t>> refs;
  int64_t closest_diff = -1;
  for (const auto& r : references) {
    refs.push_back(keys_of(tokenize_13a(r)));
    int64_t len = static_cast<int64_t>(refs.back().size());
    int64_t diff = std::llabs(static_cast<int64_t>(s.hyp_len) - len);
    if (closest_diff < 0 || diff < closest_diff || (diff == closest_diff && len < static_cast<int64_t>(s.ref_len))) {
      closest_diff = diff;
      s.ref_len = static_cast<uint64_t>(len);
    }
  }
  for (int n = 1; n <= 4; ++n) {
    NgramCounts h = NgramCounts::of(hyp, n);
    s.total[n - 1] = h.total;
    if (refs.size() == 1) {
      s.correct[n - 1] = clipped_matches(h, NgramCounts::of(refs[0], n));
      continue;
    }
    // Several references: each n-gram is clipped by its largest count in any one of them.
    std::vector<NgramCounts> rc;
    for (const auto& r : refs) rc.push_back(NgramCounts::of(r, n));
    for (size_t i = 0; i < h.keys.size(); ++i) {
      uint32_t best = 0;
      for (const auto& c : rc) best = std::max(best, c.count(h.keys[i]));
      s.correct[n - 1] += std::min(best, h.counts[i]);
    }
  }
  return s;
}

BleuScore bleu_from_stats(const BleuStats& s, bool effective_order) {
  BleuScore out;
  out.hyp_len = s.hyp_len;
  out.ref_len = s.ref_len;
  if (s.hyp_len < s.ref_len) {
    out.bp = s.hyp_len > 0 ? std::exp(1.0 - static_cast<double>(s.ref_len) / static_cast<double>(s.hyp_len)) : 0.0;
  } else {
    out.bp = 1.0;
  }
  bool any = false;
  for (uint64_t c : s.correct) any = any || c != 0;
  if (!any) return out;
  double smooth = 1.0;
  int order = 4;
  for (int n = 1; n <= 4; ++n) {
    if (s.total[n - 1] == 0) break;
    if (effective_order) order = n;
    if (s.correct[n - 1] == 0) {
      smooth *= 2;
      out.precisions[n - 1] = 100.0 / (smooth * static_cast<double>(s.total[n - 1]));
    } else {
      out.precisions[n - 1] = 100.0 * static_cast<double>(s.correct[n - 1]) / static_cast<double>(s.total[n - 1]);
    }
  }
  double sum = 0;
  for (int n = 0; n < order; ++n) sum += log_or_floor(out.precisions[n]);
  out.score = out.bp * std::exp(sum / order);
  return out;
}

std::string bleu_signature(int nrefs, bool effective_order) {
  return "nrefs:" + (nrefs < 0 ? std::string("var") : std::to_string(nrefs)) + "|case:mixed|eff:" + (effective_order ? "yes" : "no") +
         "|tok:13a|smooth:exp|version:2.4.3";
}

}  // namespace llmops::eval
