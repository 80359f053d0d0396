#include "metrics.h"

#include <gtest/gtest.h>

#include <thread>

namespace llmops {
namespace {

TEST(Metrics, RendersPrometheusTextFormat) {
  MetricsRegistry m;
  m.counter("llmops_requests_total", "Requests", {{"route", "/v1/models"}, {"code", "200"}}).add(3);
  m.gauge("llmops_up", "Up").set(1);
  auto& h = m.histogram("llmops_latency_seconds", "Latency", {{"route", "/x"}}, {0.1, 1});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5);
  std::string out = m.render();
  EXPECT_NE(out.find("# TYPE llmops_requests_total counter\n"), std::string::npos);
  EXPECT_NE(out.find("llmops_requests_total{route=\"/v1/models\",code=\"200\"} 3\n"), std::string::npos);
  EXPECT_NE(out.find("# TYPE llmops_up gauge\nllmops_up 1\n"), std::string::npos);
  EXPECT_NE(out.find("llmops_latency_seconds_bucket{route=\"/x\",le=\"0.1\"} 1\n"), std::string::npos);
  EXPECT_NE(out.find("llmops_latency_seconds_bucket{route=\"/x\",le=\"1\"} 2\n"), std::string::npos);
  EXPECT_NE(out.find("llmops_latency_seconds_bucket{route=\"/x\",le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(out.find("llmops_latency_seconds_count{route=\"/x\"} 3\n"), std::string::npos);
  EXPECT_NE(out.find("llmops_latency_seconds_sum{route=\"/x\"} 5.55\n"), std::string::npos);
}

TEST(Metrics, EscapesLabelValues) {
  EXPECT_EQ(format_labels({{"a", "x\"y\\z\nw"}}), "{a=\"x\\\"y\\\\z\\nw\"}");
}

TEST(Metrics, SameSeriesIsSharedAndUpdatesAreAtomic) {
  MetricsRegistry m;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) m.counter("c_total", "c", {{"k", "v"}}).add();
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(m.counter("c_total", "c", {{"k", "v"}}).value(), 40000);
}

TEST(Metrics, CollectorsRunOnRender) {
  MetricsRegistry m;
  int calls = 0;
  m.add_collector([&] { m.gauge("g", "g").set(++calls); });
  EXPECT_NE(m.render().find("g 1\n"), std::string::npos);
  EXPECT_NE(m.render().find("g 2\n"), std::string::npos);
}

}  // namespace
}  // namespace llmops
