// Prometheus metrics: counters, gauges and histograms with labels, rendered in the text
// exposition format for /metrics. Registration takes a lock; updating a series is lock-free.
// Series are never removed, so references stay valid for the registry's life. Any thread.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

namespace llmops {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void add(double v = 1) { value_.fetch_add(v, std::memory_order_relaxed); }
  void set(double v) { value_.store(v, std::memory_order_relaxed); }  // gauges only
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  uint64_t bucket(size_t i) const { return counts_[i].load(std::memory_order_relaxed); }
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bound, not cumulative
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

// Latency buckets in seconds, 0.5 ms to 60 s.
std::vector<double> latency_buckets();

class MetricsRegistry {
 public:
  Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {});
  Counter& gauge(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram& histogram(const std::string& name, const std::string& help, const Labels& labels,
                       const std::vector<double>& bounds);
  // Called on every render to refresh gauges computed on demand (health, store size).
  void add_collector(std::function<void()> collect);
  std::string render();

 private:
  enum class Kind { kCounter, kGauge, kHistogram };
  struct Family {
    Kind kind;
    std::string help;
    std::map<std::string, Counter*> scalars;       // label text → series
    std::map<std::string, Histogram*> histograms;
  };
  Family& family(const std::string& name, Kind kind, const std::string& help);

  std::shared_mutex mu_;
  std::map<std::string, Family> families_;
  std::deque<Counter> counters_;
  std::deque<Histogram> histograms_;
  std::vector<std::function<void()>> collectors_;
};

// Escapes a label value per the exposition format and joins labels as {a="b",...}.
std::string format_labels(const Labels& labels);

}  // namespace llmops
