// The data plane, black-box: routes, keys, limits and bad clients. The daemon must answer each
// bad request with a JSON error and keep serving everyone else.
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <thread>

#include "integration/harness.h"

namespace llmops::test {
namespace {

TEST(Http, HealthReadyModelsMetrics) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  auto h = d.get("/healthz");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.json()["status"], "ok");
  auto r = d.get("/readyz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json()["status"], "ready");
  EXPECT_EQ(r.json()["modules"]["serving"], "ok");
  auto m = d.get("/v1/models");
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.json()["object"], "list");
  auto metrics = d.get("/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.headers["content-type"].find("text/plain"), std::string::npos);
  EXPECT_NE(metrics.body.find("llmops_http_requests_total{plane=\"data\",route=\"/healthz\",code=\"200\"} 1"), std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("llmops_http_request_duration_seconds_bucket{plane=\"data\",route=\"/v1/models\",le=\"+Inf\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics.body.find("llmops_module_health{module=\"data\"} 2"), std::string::npos);
  auto missing = d.get("/v1/nothing");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.json()["error"]["type"], "not_found_error");
  EXPECT_EQ(d.request("POST", "/healthz").status, 405);
}

TEST(Http, ApiKeysGuardEverythingButHealthz) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  EXPECT_EQ(d.get("/v1/models").status, 200) << "open while no key exists";
  auto created = d.ctl({"--json", "keys", "create", "app"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  std::string key = Json::parse(created.out)["key"];
  auto denied = d.get("/v1/models");
  EXPECT_EQ(denied.status, 401);
  EXPECT_EQ(denied.json()["error"]["code"], "missing_api_key");
  EXPECT_EQ(denied.headers["www-authenticate"], "Bearer");
  EXPECT_EQ(d.get("/v1/models", {{"Authorization", "Bearer nope-nope-nope"}}).status, 401);
  EXPECT_EQ(d.get("/v1/models", {{"Authorization", "Bearer " + key}}).status, 200);
  EXPECT_EQ(d.get("/metrics", {{"Authorization", "Bearer " + key}}).status, 200);
  EXPECT_EQ(d.get("/metrics").status, 401);
  EXPECT_EQ(d.get("/healthz").status, 200);
  ASSERT_EQ(d.ctl({"keys", "revoke", "app"}).exit_code, 0);
  EXPECT_EQ(d.get("/v1/models", {{"Authorization", "Bearer " + key}}).status, 401) << "revocation is immediate";
}

TEST(Http, LimitsAnswer4xxAndTheDaemonKeepsServing) {
  DaemonProcess d({"--http.max-body-bytes=2048", "--http.max-header-bytes=2048", "--http.max-json-depth=16"});
  ASSERT_TRUE(d.start()) << d.log();
  auto big = d.request("POST", "/v1/models", std::string(4096, 'x'));
  EXPECT_EQ(big.status, 413);
  EXPECT_NE(big.json()["error"]["message"].get<std::string>().find("http.max-body-bytes"), std::string::npos);
  auto headers = d.get("/healthz", {{"X-Padding", std::string(4096, 'h')}});
  EXPECT_EQ(headers.status, 431);
  auto deep = d.request("POST", "/testkit/slow", std::string(100, '[') + std::string(100, ']'));
  EXPECT_EQ(deep.status, 400);
  EXPECT_NE(deep.body.find("http.max-json-depth"), std::string::npos);
  auto evil = d.get("/healthz", {{"Host", "attacker.example:8642"}});
  EXPECT_EQ(evil.status, 403);
  EXPECT_NE(evil.body.find("DNS-rebinding"), std::string::npos);
  EXPECT_EQ(d.get("/healthz", {{"Host", "localhost:1234"}}).status, 200);
  EXPECT_EQ(d.get("/healthz").status, 200);
}

TEST(Http, ModulesStreamResponsesThroughTheAbi) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  auto r = d.get("/testkit/ticks?n=4");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: [DONE]\n\n");
  // The connection serves the next request after the stream ends.
  EXPECT_EQ(d.get("/healthz").status, 200);
}

TEST(Http, MalformedRequestsGet400) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  for (std::string garbage : {std::string("GARBAGE\r\n\r\n"), std::string("GET / HTTP/9.9\r\n\r\n"),
                              std::string("GET /healthz HTTP/1.1\r\nBad Header Line\r\n\r\n"),
                              std::string("POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n"),
                              std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11)}) {
    int fd = tcp_connect(d.port());
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, garbage.data(), garbage.size()), static_cast<ssize_t>(garbage.size()));
    auto r = parse_http(read_until_close(fd, 5000));
    ::close(fd);
    EXPECT_EQ(r.status, 400) << garbage;
    EXPECT_EQ(r.json()["error"]["code"], "bad_http") << garbage;
  }
  EXPECT_EQ(d.get("/v1/%00x").status, 400);
  EXPECT_EQ(d.get("/healthz").status, 200);
}

TEST(Http, SlowlorisGets408AndOthersAreServed) {
  DaemonProcess d({"--http.request-timeout=1"});
  ASSERT_TRUE(d.start()) << d.log();
  int fd = tcp_connect(d.port());
  ASSERT_GE(fd, 0);
  std::string partial = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
  ASSERT_GT(::write(fd, partial.data(), partial.size()), 0);
  auto t0 = std::chrono::steady_clock::now();
  std::thread dribble([fd] {
    for (int i = 0; i < 30; ++i) {
      if (::write(fd, "a", 1) != 1) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  EXPECT_EQ(d.get("/healthz").status, 200) << "served while the slow client dribbles";
  auto r = parse_http(read_until_close(fd, 5000));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  dribble.join();
  ::close(fd);
  EXPECT_EQ(r.status, 408);
  EXPECT_LT(secs, 3.0);
}

TEST(Http, IdleConnectionsAreClosed) {
  DaemonProcess d({"--http.idle-timeout=1"});
  ASSERT_TRUE(d.start()) << d.log();
  int fd = tcp_connect(d.port());
  ASSERT_GE(fd, 0);
  auto t0 = std::chrono::steady_clock::now();
  std::string got = read_until_close(fd, 5000);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ::close(fd);
  EXPECT_TRUE(got.empty()) << "an idle connection is closed without a response";
  EXPECT_LT(secs, 3.0);
}

TEST(Http, ConnectionLimitAnswers503) {
  DaemonProcess d({"--http.max-connections=4"});
  ASSERT_TRUE(d.start()) << d.log();
  std::vector<int> held;
  for (int i = 0; i < 4; ++i) held.push_back(tcp_connect(d.port()));
  ASSERT_TRUE(eventually([&] { return d.admin("GET", "/v1/status").status == 200; }, 2000));
  auto r = d.get("/healthz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.json()["error"]["code"], "too_many_connections");
  for (int fd : held) ::close(fd);
  EXPECT_TRUE(eventually([&] { return d.get("/healthz").status == 200; }, 3000));
}

TEST(Http, KeepAliveServesSeveralRequestsOnOneConnection) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  int fd = tcp_connect(d.port());
  std::string two = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  ASSERT_GT(::write(fd, two.data(), two.size()), 0);
  std::string raw = read_until_close(fd, 5000);
  ::close(fd);
  EXPECT_NE(raw.find("{\"status\":\"ok\"}"), std::string::npos);
  EXPECT_NE(raw.find("\"object\":\"list\""), std::string::npos);
}

}  // namespace
}  // namespace llmops::test
