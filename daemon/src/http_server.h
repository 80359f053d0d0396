// The HTTP/1.1 server under both planes (Boost.Beast, after its advanced server): a listener
// per endpoint, one session object per connection kept alive by shared_from_this, every socket
// on its own strand so several threads run one io_context without locks. A new parser per
// request with header and body limits; an idle timer while waiting for a request and a request
// timer while receiving one (slowloris → 408); one request in flight per connection (pipelined
// requests wait in the buffer). Handlers marked blocking, and streamed responses, run on a
// worker pool and post their results back to the connection's strand.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "metrics.h"
#include "placement.h"
#include "router.h"

namespace llmops {

struct HttpLimits {
  uint64_t max_body_bytes = 8u << 20;
  uint64_t max_header_bytes = 16u << 10;
  int idle_timeout_s = 60;
  int request_timeout_s = 30;
  int max_connections = 1024;
};

// Moves a parsed Beast request into the plane's request type (header names lower-cased).
HttpRequest to_http_request(boost::beast::http::request<boost::beast::http::string_body>&& msg);

// Per-plane policy: admit() may answer a request before routing (auth, Host check);
// finished() sees every answered request (audit). Both run on network or worker threads.
struct PlanePolicy {
  std::function<std::optional<HttpResponse>(HttpRequest&, const Router::Match&)> admit;
  std::function<void(const HttpRequest&, const HttpResponse&)> finished;
};

class HttpPlane {
 public:
  HttpPlane(std::string name, Router router, HttpLimits limits, PlanePolicy policy, MetricsRegistry* metrics,
            WorkerPool* workers);

  // Routes and answers one request; `done` is called exactly once, from any thread. The
  // connection calls request_done() after the response (or its stream) is fully written.
  void handle(HttpRequest request, std::function<void(HttpResponse)> done);
  void request_done() { --in_flight_; }

  const std::string& name() const { return name_; }
  const HttpLimits& limits() const { return limits_; }
  WorkerPool* workers() const { return workers_; }
  void set_draining() { draining_ = true; }
  bool draining() const { return draining_; }
  int in_flight() const { return in_flight_; }
  std::atomic<int>& connections() { return connections_; }
  void count_rejected_connection();
  void observe(const std::string& route, int status, double seconds);

 private:
  std::string name_;
  Router router_;
  HttpLimits limits_;
  PlanePolicy policy_;
  MetricsRegistry* metrics_;
  WorkerPool* workers_;
  std::atomic<bool> draining_{false};
  std::atomic<int> in_flight_{0};
  std::atomic<int> connections_{0};
};

// Owns the io_context, its threads and the listeners.
class HttpServer {
 public:
  explicit HttpServer(int threads);
  ~HttpServer();

  // Listens on TCP host:port (port 0 picks one); returns the bound port.
  Result<uint16_t> listen_tcp(const std::string& host, uint16_t port, HttpPlane* plane);
  // Listens on a Unix socket; removes a stale socket file first, refuses when another process
  // is serving on it. Sets mode 0660 and, when the group exists, that group.
  Status listen_unix(const std::string& path, const std::string& group, HttpPlane* plane);
  void start();
  // Stops accepting and ends all connections; joins the threads.
  void stop();
  // Runs fn on a network thread; used by the watchdog to prove the loop is alive.
  void post(std::function<void()> fn);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace llmops
