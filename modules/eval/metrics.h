// The reference-based metrics by name, behind one shape so runs, comparisons and the bootstrap
// treat them alike: each example yields a vector of sufficient statistics, statistics add up
// over any set of examples, and a metric's score of a set is a function of their sum. Corpus
// BLEU and chrF are not means of sentence scores, and this is how they stay exact under
// resampling.
//
// Each metric keeps its reference's scale: BLEU and chrF 0..100 (sacreBLEU), ROUGE 0..1
// (rouge-score), exact match and F1 0..100 (the SQuAD script), perplexity as is.
// Pure; any thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "status.h"

namespace llmops::eval {

struct MetricOptions {
  bool rouge_stemmer = false;  // rouge-score's use_stemmer
};

class Metric {
 public:
  virtual ~Metric() = default;
  virtual const std::string& name() const = 0;
  virtual bool higher_is_better() const { return true; }
  // The statistics of one example. Empty when the reference implementation would refuse it
  // (sacreBLEU: no non-empty reference): the example is left out of this metric and counted.
  virtual std::vector<double> example_stats(std::string_view prediction, const std::vector<std::string>& references) const = 0;
  // The example's own score (sentence BLEU, sentence chrF, its F1, ...).
  virtual double example_score(const std::vector<double>& stats) const = 0;
  // The score of a set of examples from the sum of their statistics.
  virtual double aggregate(const std::vector<double>& summed) const = 0;
  // Parts worth showing beside the score (precision/recall, BP, ...), from summed statistics.
  virtual std::vector<std::pair<std::string, double>> details(const std::vector<double>&) const { return {}; }
  // The reference tool's signature of the settings, "" when it has none.
  virtual std::string signature(int /*nrefs*/) const { return {}; }
};

// bleu chrf chrf++ rouge1 rouge2 rougeL rougeLsum em f1; kInvalidArgument naming the known ones.
Result<std::unique_ptr<Metric>> make_metric(const std::string& name, const MetricOptions& opt = {});
const std::vector<std::string>& reference_metric_names();

// Perplexity and bits per byte of a model on text: statistics (nats, tokens, bytes) of the
// tokens scored. Not made by make_metric: a run computes its statistics with the model.
class PerplexityMetric : public Metric {
 public:
  explicit PerplexityMetric(std::string name = "ppl") : name_(std::move(name)) {}
  const std::string& name() const override { return name_; }
  bool higher_is_better() const override { return false; }
  std::vector<double> example_stats(std::string_view, const std::vector<std::string>&) const override { return {}; }
  double example_score(const std::vector<double>& s) const override { return aggregate(s); }
  double aggregate(const std::vector<double>& s) const override;
  std::vector<std::pair<std::string, double>> details(const std::vector<double>& s) const override;

 private:
  std::string name_;
};

// A judge model's grades (judge.h): statistics (grade, 1), the score their mean.
class JudgeMetric : public Metric {
 public:
  explicit JudgeMetric(std::string signature = {}) : signature_(std::move(signature)) {}
  const std::string& name() const override { return name_; }
  std::vector<double> example_stats(std::string_view, const std::vector<std::string>&) const override { return {}; }
  double example_score(const std::vector<double>& s) const override { return s.empty() ? 0.0 : s[0]; }
  double aggregate(const std::vector<double>& s) const override { return s.size() < 2 || s[1] == 0 ? 0.0 : s[0] / s[1]; }
  std::string signature(int) const override { return signature_; }

 private:
  std::string name_ = "judge";
  std::string signature_;
};

// Adds b into a (a grows to b's size).
void add_stats(std::vector<double>& a, const std::vector<double>& b);

}  // namespace llmops::eval
