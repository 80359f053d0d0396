#include "eval/metrics.h"

#include <cmath>
#include <numbers>

#include "eval/bleu.h"
#include "eval/chrf.h"
#include "eval/rouge.h"
#include "eval/squad.h"

namespace llmops::eval {
namespace {

std::vector<std::string> non_empty(const std::vector<std::string>& refs) {
  std::vector<std::string> out;
  for (const auto& r : refs) {
    if (!r.empty()) out.push_back(r);
  }
  return out;
}

class BleuMetric : public Metric {
 public:
  const std::string& name() const override { return name_; }
  std::vector<double> example_stats(std::string_view pred, const std::vector<std::string>& refs) const override {
    auto usable = non_empty(refs);
    if (usable.empty()) return {};
    BleuStats s = bleu_stats(pred, usable);
    std::vector<double> v = {static_cast<double>(s.hyp_len), static_cast<double>(s.ref_len)};
    for (int n = 0; n < 4; ++n) v.push_back(static_cast<double>(s.correct[n]));
    for (int n = 0; n < 4; ++n) v.push_back(static_cast<double>(s.total[n]));
    return v;
  }
  double example_score(const std::vector<double>& s) const override { return bleu_from_stats(to_stats(s), true).score; }
  double aggregate(const std::vector<double>& s) const override { return bleu_from_stats(to_stats(s), false).score; }
  std::vector<std::pair<std::string, double>> details(const std::vector<double>& s) const override {
    BleuScore b = bleu_from_stats(to_stats(s), false);
    return {{"p1", b.precisions[0]}, {"p2", b.precisions[1]}, {"p3", b.precisions[2]}, {"p4", b.precisions[3]},
            {"bp", b.bp},           {"hyp_len", static_cast<double>(b.hyp_len)}, {"ref_len", static_cast<double>(b.ref_len)}};
  }
  std::string signature(int nrefs) const override { return bleu_signature(nrefs, false); }

 private:
  static BleuStats to_stats(const std::vector<double>& v) {
    BleuStats s;
    if (v.size() < 10) return s;
    s.hyp_len = static_cast<uint64_t>(v[0]);
    s.ref_len = static_cast<uint64_t>(v[1]);
    for (int n = 0; n < 4; ++n) s.correct[n] = static_cast<uint64_t>(v[2 + n]), s.total[n] = static_cast<uint64_t>(v[6 + n]);
    return s;
  }
  std::string name_ = "bleu";
};

class ChrfMetric : public Metric {
 public:
  ChrfMetric(std::string name, int word_order) : name_(std::move(name)) { opt_.word_order = word_order; }
  const std::string& name() const override { return name_; }
  std::vector<double> example_stats(std::string_view pred, const std::vector<std::string>& refs) const override {
    auto usable = non_empty(refs);
    if (usable.empty()) return {};
    ChrfStats s = chrf_stats(pred, usable, opt_);
    return std::vector<double>(s.begin(), s.end());
  }
  double example_score(const std::vector<double>& s) const override { return aggregate(s); }
  double aggregate(const std::vector<double>& s) const override {
    if (s.empty()) return 0.0;
    return chrf_from_stats(ChrfStats(s.begin(), s.end()), opt_);
  }
  std::string signature(int nrefs) const override { return chrf_signature(nrefs, opt_); }

 private:
  std::string name_;
  ChrfOptions opt_;
};

// A mean over examples: statistics (sum of values..., count).
class MeanMetric : public Metric {
 public:
  using Fn = std::vector<double> (*)(std::string_view, const std::vector<std::string>&, bool);
  MeanMetric(std::string name, std::vector<std::string> parts, Fn fn, bool stem)
      : name_(std::move(name)), parts_(std::move(parts)), fn_(fn), stem_(stem) {}
  const std::string& name() const override { return name_; }
  std::vector<double> example_stats(std::string_view pred, const std::vector<std::string>& refs) const override {
    std::vector<double> v = fn_(pred, refs, stem_);
    v.push_back(1.0);
    return v;
  }
  // The first part is the score (F1 for ROUGE, the value for EM/F1).
  double example_score(const std::vector<double>& s) const override { return s.empty() ? 0.0 : s[0]; }
  double aggregate(const std::vector<double>& s) const override { return s.empty() || s.back() == 0 ? 0.0 : s[0] / s.back(); }
  std::vector<std::pair<std::string, double>> details(const std::vector<double>& s) const override {
    std::vector<std::pair<std::string, double>> out;
    for (size_t i = 1; i < parts_.size() && i + 1 < s.size(); ++i) out.emplace_back(parts_[i], s.back() == 0 ? 0.0 : s[i] / s.back());
    return out;
  }
  std::string signature(int) const override {
    if (name_.rfind("rouge", 0) == 0) return std::string("rouge-score|tokenizer:default|stemmer:") + (stem_ ? "porter" : "none");
    return "squad-v1.1-normalisation";
  }

 private:
  std::string name_;
  std::vector<std::string> parts_;
  Fn fn_;
  bool stem_;
};

template <int Which>
std::vector<double> rouge_of(std::string_view pred, const std::vector<std::string>& refs, bool stem) {
  RougeScores r = refs.size() == 1 ? rouge_score(refs[0], pred, stem) : rouge_score_multi(refs, pred, stem);
  const RougeScore& s = Which == 1 ? r.rouge1 : Which == 2 ? r.rouge2 : Which == 3 ? r.rougeL : r.rougeLsum;
  return {s.f1, s.precision, s.recall};
}
std::vector<double> em_of(std::string_view pred, const std::vector<std::string>& refs, bool) {
  return {100.0 * squad_exact_match(pred, refs)};
}
std::vector<double> f1_of(std::string_view pred, const std::vector<std::string>& refs, bool) { return {100.0 * squad_f1(pred, refs)}; }

}  // namespace

const std::vector<std::string>& reference_metric_names() {
  static const std::vector<std::string> names = {"bleu", "chrf", "chrf++", "rouge1", "rouge2", "rougeL", "rougeLsum", "em", "f1"};
  return names;
}

Result<std::unique_ptr<Metric>> make_metric(const std::string& name, const MetricOptions& opt) {
  const std::vector<std::string> prf = {"f1", "precision", "recall"};
  if (name == "bleu") return std::unique_ptr<Metric>(new BleuMetric());
  if (name == "chrf") return std::unique_ptr<Metric>(new ChrfMetric("chrf", 0));
  if (name == "chrf++") return std::unique_ptr<Metric>(new ChrfMetric("chrf++", 2));
  if (name == "rouge1") return std::unique_ptr<Metric>(new MeanMetric(name, prf, rouge_of<1>, opt.rouge_stemmer));
  if (name == "rouge2") return std::unique_ptr<Metric>(new MeanMetric(name, prf, rouge_of<2>, opt.rouge_stemmer));
  if (name == "rougeL") return std::unique_ptr<Metric>(new MeanMetric(name, prf, rouge_of<3>, opt.rouge_stemmer));
  if (name == "rougeLsum") return std::unique_ptr<Metric>(new MeanMetric(name, prf, rouge_of<4>, opt.rouge_stemmer));
  if (name == "em") return std::unique_ptr<Metric>(new MeanMetric(name, {"em"}, em_of, false));
  if (name == "f1") return std::unique_ptr<Metric>(new MeanMetric(name, {"f1"}, f1_of, false));
  std::string known;
  for (const auto& n : reference_metric_names()) known += (known.empty() ? "" : ", ") + n;
  return invalid_argument("unknown metric '" + name + "'; the metrics are " + known + ", and ppl (with a model)");
}

double PerplexityMetric::aggregate(const std::vector<double>& s) const {
  if (s.size() < 2 || s[1] == 0) return 0.0;
  return std::exp(s[0] / s[1]);
}

std::vector<std::pair<std::string, double>> PerplexityMetric::details(const std::vector<double>& s) const {
  if (s.size() < 3 || s[1] == 0) return {};
  return {{"nll_per_token", s[0] / s[1]},
          {"bits_per_byte", s[2] > 0 ? s[0] / (std::numbers::ln2 * s[2]) : 0.0},
          {"tokens", s[1]},
          {"bytes", s[2]}};
}

void add_stats(std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() < b.size()) a.resize(b.size(), 0.0);
  for (size_t i = 0; i < b.size(); ++i) a[i] += b[i];
}

}  // namespace llmops::eval
