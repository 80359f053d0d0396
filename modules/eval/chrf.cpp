#include "eval/chrf.h"

#include "eval/text_units.h"

namespace llmops::eval {
namespace {

// sacreBLEU's chrF+ word splitter: one punctuation mark at the end (else at the start) of a
// word of two or more characters stands apart.
bool ascii_punct(char c) {
  return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') || (c >= '{' && c <= '~');
}
std::vector<uint64_t> word_keys(std::string_view text) {
  std::vector<uint64_t> out;
  for (std::string_view w : py_split(text)) {
    // len(w) counts code points in Python: a single multi-byte character is one.
    if (code_points(w).size() == 1) {
      out.push_back(unit_key(w));
    } else if (ascii_punct(w.back())) {
      out.push_back(unit_key(w.substr(0, w.size() - 1)));
      out.push_back(unit_key(w.substr(w.size() - 1)));
    } else if (ascii_punct(w.front())) {
      out.push_back(unit_key(w.substr(0, 1)));
      out.push_back(unit_key(w.substr(1)));
    } else {
      out.push_back(unit_key(w));
    }
  }
  return out;
}

std::vector<uint64_t> char_keys(std::string_view text, bool whitespace) {
  std::vector<uint64_t> out;
  for (uint32_t cp : code_points(text)) {
    if (!whitespace && py_space(cp)) continue;
    out.push_back(0x5bd1e995ULL * (static_cast<uint64_t>(cp) + 1));
  }
  return out;
}

std::vector<NgramCounts> all_orders(std::string_view text, const ChrfOptions& opt) {
  std::vector<NgramCounts> out;
  std::vector<uint64_t> chars = char_keys(text, opt.whitespace);
  for (int n = 1; n <= opt.char_order; ++n) out.push_back(NgramCounts::of(chars, n));
  if (opt.word_order > 0) {
    std::vector<uint64_t> words = word_keys(text);
    for (int n = 1; n <= opt.word_order; ++n) out.push_back(NgramCounts::of(words, n));
  }
  return out;
}

}  // namespace

ChrfStats chrf_stats(std::string_view hypothesis, const std::vector<std::string>& references, const ChrfOptions& opt) {
  std::vector<NgramCounts> hyp = all_orders(hypothesis, opt);
  ChrfStats best;
  double best_f = -1;
  for (const auto& r : references) {
    std::vector<NgramCounts> ref = all_orders(r, opt);
    ChrfStats s;
    for (size_t i = 0; i < hyp.size(); ++i) {
      // A hypothesis n-gram of an order the reference lacks entirely is not counted.
      s.push_back(ref[i].total > 0 ? hyp[i].total : 0);
      s.push_back(ref[i].total);
      s.push_back(clipped_matches(hyp[i], ref[i]));
    }
    double f = chrf_from_stats(s, opt);
    if (f > best_f) best_f = f, best = std::move(s);
  }
  return best;
}

double chrf_from_stats(const ChrfStats& s, const ChrfOptions& opt) {
  const double eps = 1e-16, factor = opt.beta * opt.beta;
  const size_t order = s.size() / 3;
  double score = 0, avg_prec = 0, avg_rec = 0;
  int effective = 0;
  for (size_t i = 0; i < order; ++i) {
    double n_hyp = static_cast<double>(s[3 * i]), n_ref = static_cast<double>(s[3 * i + 1]), n_match = static_cast<double>(s[3 * i + 2]);
    double prec = n_hyp > 0 ? n_match / n_hyp : eps;
    double rec = n_ref > 0 ? n_match / n_ref : eps;
    double denom = factor * prec + rec;
    score += denom > 0 ? (1 + factor) * prec * rec / denom : eps;
    if (n_hyp > 0 && n_ref > 0) {
      avg_prec += prec;
      avg_rec += rec;
      ++effective;
    }
  }
  if (opt.eps_smoothing) return order == 0 ? 0.0 : 100 * score / static_cast<double>(order);
  if (effective == 0) return 0.0;
  avg_prec /= effective;
  avg_rec /= effective;
  if (avg_prec + avg_rec == 0) return 0.0;
  return 100 * (1 + factor) * avg_prec * avg_rec / (factor * avg_prec + avg_rec);
}

std::string chrf_signature(int nrefs, const ChrfOptions& opt) {
  return "nrefs:" + (nrefs < 0 ? std::string("var") : std::to_string(nrefs)) + "|case:mixed|eff:" + (opt.eps_smoothing ? "no" : "yes") +
         "|nc:" + std::to_string(opt.char_order) + "|nw:" + std::to_string(opt.word_order) + "|space:" + (opt.whitespace ? "yes" : "no") +
         "|version:2.4.3";
}

}  // namespace llmops::eval
