#include "metrics.h"

#include <cmath>
#include <cstdio>
#include <mutex>

namespace llmops {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i] = 0;
}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

std::vector<double> latency_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

std::string format_labels(const Labels& labels) {
  if (labels.empty()) return {};
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ',';
    out += labels[i].first + "=\"";
    for (char c : labels[i].second) {
      if (c == '\\') out += "\\\\";
      else if (c == '"') out += "\\\"";
      else if (c == '\n') out += "\\n";
      else out += c;
    }
    out += '"';
  }
  return out + "}";
}

MetricsRegistry::Family& MetricsRegistry::family(const std::string& name, Kind kind, const std::string& help) {
  auto [it, inserted] = families_.try_emplace(name);
  if (inserted) {
    it->second.kind = kind;
    it->second.help = help;
  }
  return it->second;
}

Counter& MetricsRegistry::counter(const std::string& name, const std::string& help, const Labels& labels) {
  std::string key = format_labels(labels);
  {
    std::shared_lock lock(mu_);
    auto f = families_.find(name);
    if (f != families_.end()) {
      auto s = f->second.scalars.find(key);
      if (s != f->second.scalars.end()) return *s->second;
    }
  }
  std::unique_lock lock(mu_);
  Family& f = family(name, Kind::kCounter, help);
  auto& slot = f.scalars[key];
  if (slot == nullptr) slot = &counters_.emplace_back();
  return *slot;
}

Counter& MetricsRegistry::gauge(const std::string& name, const std::string& help, const Labels& labels) {
  Counter& c = counter(name, help, labels);
  std::unique_lock lock(mu_);
  families_[name].kind = Kind::kGauge;
  return c;
}

Histogram& MetricsRegistry::histogram(const std::string& name, const std::string& help, const Labels& labels,
                                      const std::vector<double>& bounds) {
  std::string key = format_labels(labels);
  {
    std::shared_lock lock(mu_);
    auto f = families_.find(name);
    if (f != families_.end()) {
      auto s = f->second.histograms.find(key);
      if (s != f->second.histograms.end()) return *s->second;
    }
  }
  std::unique_lock lock(mu_);
  Family& f = family(name, Kind::kHistogram, help);
  auto& slot = f.histograms[key];
  if (slot == nullptr) slot = &histograms_.emplace_back(bounds);
  return *slot;
}

void MetricsRegistry::add_collector(std::function<void()> collect) {
  std::unique_lock lock(mu_);
  collectors_.push_back(std::move(collect));
}

namespace {
std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) std::snprintf(buf, sizeof buf, "%.0f", v);
  else std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}
// Inserts le="x" into an existing {..} label block.
std::string with_le(const std::string& labels, const std::string& le) {
  if (labels.empty()) return "{le=\"" + le + "\"}";
  return labels.substr(0, labels.size() - 1) + ",le=\"" + le + "\"}";
}
}  // namespace

std::string MetricsRegistry::render() {
  std::vector<std::function<void()>> collectors;
  {
    std::shared_lock lock(mu_);
    collectors = collectors_;
  }
  for (auto& c : collectors) c();
  std::string out;
  std::shared_lock lock(mu_);
  for (const auto& [name, f] : families_) {
    const char* type = f.kind == Kind::kCounter ? "counter" : f.kind == Kind::kGauge ? "gauge" : "histogram";
    out += "# HELP " + name + " " + f.help + "\n# TYPE " + name + " " + type + "\n";
    for (const auto& [labels, c] : f.scalars) out += name + labels + " " + number(c->value()) + "\n";
    for (const auto& [labels, h] : f.histograms) {
      uint64_t cumulative = 0;
      for (size_t i = 0; i < h->bounds().size(); ++i) {
        cumulative += h->bucket(i);
        out += name + "_bucket" + with_le(labels, number(h->bounds()[i])) + " " + std::to_string(cumulative) + "\n";
      }
      cumulative += h->bucket(h->bounds().size());
      out += name + "_bucket" + with_le(labels, "+Inf") + " " + std::to_string(cumulative) + "\n";
      out += name + "_sum" + labels + " " + number(h->sum()) + "\n";
      out += name + "_count" + labels + " " + std::to_string(cumulative) + "\n";
    }
  }
  return out;
}

}  // namespace llmops
