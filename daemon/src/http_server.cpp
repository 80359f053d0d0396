#include "http_server.h"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstring>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "log.h"

namespace llmops {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using unix_socket = net::local::stream_protocol;
using Clock = std::chrono::steady_clock;

HttpPlane::HttpPlane(std::string name, Router router, HttpLimits limits, PlanePolicy policy, MetricsRegistry* metrics,
                     WorkerPool* workers)
    : name_(std::move(name)),
      router_(std::move(router)),
      limits_(limits),
      policy_(std::move(policy)),
      metrics_(metrics),
      workers_(workers) {}

void HttpPlane::observe(const std::string& route, int status, double seconds) {
  metrics_->counter("llmops_http_requests_total", "HTTP requests answered",
                    {{"plane", name_}, {"route", route}, {"code", std::to_string(status)}}).add();
  metrics_->histogram("llmops_http_request_duration_seconds", "Time from a whole request to its whole response",
                      {{"plane", name_}, {"route", route}}, latency_buckets()).observe(seconds);
}

void HttpPlane::count_rejected_connection() {
  metrics_->counter("llmops_http_connections_rejected_total", "Connections refused at http.max-connections",
                    {{"plane", name_}}).add();
}

HttpRequest to_http_request(http::request<http::string_body>&& msg) {
  HttpRequest req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  for (const auto& f : msg) {
    std::string name(f.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    req.headers.emplace_back(std::move(name), std::string(f.value()));
  }
  req.body = std::move(msg.body());
  return req;
}

void HttpPlane::handle(HttpRequest req, std::function<void(HttpResponse)> done) {
  ++in_flight_;
  auto finish = [this, done](const HttpRequest& r, HttpResponse resp, std::string route) {
    resp.route = std::move(route);
    if (policy_.finished) policy_.finished(r, resp);
    done(std::move(resp));
  };
  if (draining_) {
    HttpResponse r = error_response(503, "service_unavailable_error",
                                    "llmopsd is shutting down and takes no new requests; retry after it restarts",
                                    "draining");
    r.close = true;
    r.headers.emplace_back("Retry-After", "5");
    return finish(req, std::move(r), "draining");
  }
  std::string raw_path = req.target.substr(0, req.target.find('?'));
  if (req.target.find('?') != std::string::npos) req.query = req.target.substr(req.target.find('?') + 1);
  auto path = decode_path(raw_path);
  if (!path.ok() || raw_path.empty() || raw_path.front() != '/') {
    return finish(req, error_response(invalid_argument("request target '" + req.target.substr(0, 200) + "' is not a valid path")),
                  "invalid");
  }
  req.path = std::move(path).value();
  Router::Match match = router_.match(req.method, req.path);
  if (policy_.admit) {
    if (auto early = policy_.admit(req, match)) return finish(req, std::move(*early), match.handler ? match.pattern : "unmatched");
  }
  if (match.handler == nullptr) {
    if (match.method_mismatch) {
      return finish(req, error_response(405, "invalid_request_error", "method " + req.method + " is not allowed on " + req.path,
                                        "method_not_allowed"),
                    "unmatched");
    }
    return finish(req, error_response(not_found("no route " + req.method + " " + req.path)), "unmatched");
  }
  req.params = std::move(match.params);
  auto run = [req = std::move(req), handler = match.handler, finish, route = match.pattern]() mutable {
    HttpResponse resp;
    try {
      resp = (*handler)(req);
    } catch (const std::exception& e) {
      log_error("http", "handler for " + route + " threw: " + e.what());
      resp = error_response(internal_error("the handler failed unexpectedly; the daemon logged the details"));
    }
    finish(req, std::move(resp), route);
  };
  if (match.options.blocking && workers_ != nullptr) {
    workers_->submit(std::move(run));
  } else {
    run();
  }
}

namespace {

// Chunks passed from a streaming producer (worker thread) to its connection (strand).
class ChunkChannel : public StreamWriter {
 public:
  static constexpr size_t kMaxPending = 64;
  std::function<void()> wake;  // posts pump() to the connection's strand

  bool write(std::string chunk) override {
    if (chunk.empty()) return !client_gone();
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return gone_ || pending_.size() < kMaxPending; });
      if (gone_) return false;
      pending_.push_back(std::move(chunk));
    }
    wake();
    return true;
  }
  bool client_gone() const override {
    std::lock_guard lock(mu_);
    return gone_;
  }
  void finish() {
    {
      std::lock_guard lock(mu_);
      finished_ = true;
    }
    wake();
  }
  void mark_gone() {
    {
      std::lock_guard lock(mu_);
      gone_ = true;
    }
    cv_.notify_all();
  }
  // Connection side: the next chunk, or nullopt with *finished telling whether the producer ended.
  std::optional<std::string> pop(bool* finished) {
    std::lock_guard lock(mu_);
    *finished = finished_ && pending_.empty();
    if (pending_.empty()) return std::nullopt;
    std::string c = std::move(pending_.front());
    pending_.pop_front();
    cv_.notify_all();
    return c;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> pending_;
  bool finished_ = false;
  bool gone_ = false;
};

template <class Response>
void apply_headers(Response& res, const HttpResponse& r) {
  res.set(http::field::server, "llmopsd/" LLMOPS_VERSION_STRING);
  res.set(http::field::content_type, r.content_type);
  for (const auto& [k, v] : r.headers) res.set(k, v);
}

template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(Stream&& stream, HttpPlane* plane, Caller caller)
      : stream_(std::move(stream)), timer_(stream_.get_executor()), plane_(plane), caller_(std::move(caller)) {
    ++plane_->connections();
  }
  ~Session() { --plane_->connections(); }

  void run() {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] { self->wait_request(); });
  }

 private:
  enum class Phase { kIdle, kReading, kWriting };

  void arm(int seconds, Phase phase) {
    phase_ = phase;
    timed_out_ = false;
    uint64_t gen = ++timer_gen_;
    timer_.expires_after(std::chrono::seconds(seconds));
    timer_.async_wait([self = this->shared_from_this(), gen](beast::error_code ec) {
      if (ec || gen != self->timer_gen_) return;
      self->timed_out_ = true;
      beast::error_code ignored;
      // cancel() only ends a read in flight: when a read's completion is already queued, the
      // composed read starts the next one after this, and a client dribbling bytes would keep
      // it going. Shutting the receive side ends that one too (the 408 still goes out).
      if (self->phase_ == Phase::kReading) self->stream_.shutdown(net::socket_base::shutdown_receive, ignored);
      self->stream_.cancel(ignored);
    });
  }
  void disarm() {
    ++timer_gen_;
    timer_.cancel();
  }

  void wait_request() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(plane_->limits().max_header_bytes));
    parser_->body_limit(plane_->limits().max_body_bytes);
    if (buffer_.size() > 0) return read_request();
    arm(plane_->limits().idle_timeout_s, Phase::kIdle);
    stream_.async_wait(Stream::wait_read, [self = this->shared_from_this()](beast::error_code ec) {
      if (ec) return self->close();
      self->read_request();
    });
  }

  void read_request() {
    arm(plane_->limits().request_timeout_s, Phase::kReading);
    http::async_read(stream_, buffer_, *parser_, [self = this->shared_from_this()](beast::error_code ec, size_t) {
      self->on_read(ec);
    });
  }

  void on_read(beast::error_code ec) {
    bool timed_out = timed_out_;
    disarm();
    if (timed_out) {
      if (parser_->got_some() || buffer_.size() > 0) {
        return send_error(408, "timeout_error",
                          "the request did not arrive whole within " + std::to_string(plane_->limits().request_timeout_s) +
                              " seconds (http.request-timeout)",
                          "request_timeout");
      }
      return close();
    }
    if (ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset) return close();
    if (ec == http::error::body_limit) {
      return send_error(413, "invalid_request_error",
                        "the request body is larger than the " + std::to_string(plane_->limits().max_body_bytes) +
                            " bytes allowed (http.max-body-bytes)",
                        "body_too_large");
    }
    if (ec == http::error::header_limit) {
      return send_error(431, "invalid_request_error",
                        "the request headers are larger than the " + std::to_string(plane_->limits().max_header_bytes) +
                            " bytes allowed (http.max-header-bytes)",
                        "headers_too_large");
    }
    if (ec) {
      if (parser_->got_some()) return send_error(400, "invalid_request_error", "malformed HTTP request: " + ec.message(), "bad_http");
      return close();
    }
    auto msg = parser_->release();
    keep_alive_ = msg.keep_alive();
    HttpRequest req = to_http_request(std::move(msg));
    req.caller = caller_;
    started_ = Clock::now();
    // The callback owns the session until the answer is sent: nothing else may hold it while a
    // handler runs on a worker.
    auto self = this->shared_from_this();
    auto executor = stream_.get_executor();
    plane_->handle(std::move(req), [self, executor](HttpResponse resp) {
      net::post(executor, [self, resp = std::move(resp)]() mutable { self->send(std::move(resp)); });
    });
  }

  void send_error(int status, const std::string& type, const std::string& message, const std::string& code) {
    HttpResponse r = error_response(status, type, message, code);
    r.close = true;
    r.route = "invalid";
    keep_alive_ = false;
    ++errors_before_routing_;
    plane_->observe(r.route, r.status, 0);
    write_plain(std::move(r), /*counted=*/false);
  }

  void send(HttpResponse r) {
    if (r.stream) return send_stream(std::move(r));
    write_plain(std::move(r), /*counted=*/true);
  }

  void write_plain(HttpResponse r, bool counted) {
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(r.status), 11);
    apply_headers(*res, r);
    res->body() = std::move(r.body);
    res->keep_alive(keep_alive_ && !r.close);
    res->prepare_payload();
    arm(plane_->limits().request_timeout_s, Phase::kWriting);
    http::async_write(stream_, *res,
                      [self = this->shared_from_this(), res, counted, route = r.route, status = r.status](
                          beast::error_code ec, size_t) {
                        self->disarm();
                        if (counted) self->finish_request(route, status);
                        if (ec || res->need_eof()) return self->close();
                        self->wait_request();
                      });
  }

  void finish_request(const std::string& route, int status) {
    plane_->observe(route, status, std::chrono::duration<double>(Clock::now() - started_).count());
    plane_->request_done();
  }

  void send_stream(HttpResponse r) {
    stream_header_ = std::make_shared<http::response<http::empty_body>>(static_cast<http::status>(r.status), 11);
    apply_headers(*stream_header_, r);
    stream_header_->keep_alive(keep_alive_ && !r.close);
    stream_header_->chunked(true);
    stream_route_ = r.route;
    stream_status_ = r.status;
    channel_ = std::make_shared<ChunkChannel>();
    // The channel owns the session until the producer has finished and the last chunk is out
    // (pump() then drops the channel, breaking the cycle).
    auto self = this->shared_from_this();
    auto executor = stream_.get_executor();
    channel_->wake = [self, executor] { net::post(executor, [self] { self->pump(); }); };
    serializer_.emplace(*stream_header_);
    writing_ = true;  // chunks wait until the header is out
    arm(plane_->limits().request_timeout_s, Phase::kWriting);
    http::async_write_header(stream_, *serializer_,
                             [self = this->shared_from_this(), producer = std::move(r.stream)](beast::error_code ec, size_t) mutable {
                               self->disarm();
                               self->writing_ = false;
                               if (ec) {
                                 self->broken_ = true;
                                 self->channel_->mark_gone();
                               }
                               auto channel = self->channel_;
                               self->plane_->workers()->submit([channel, producer = std::move(producer)] {
                                 try {
                                   producer(*channel);
                                 } catch (const std::exception& e) {
                                   log_error("http", std::string("stream producer threw: ") + e.what());
                                 }
                                 channel->finish();
                               });
                               self->pump();
                             });
  }

  void pump() {
    if (writing_ || !channel_) return;
    bool finished = false;
    auto chunk = channel_->pop(&finished);
    if (broken_) {
      if (finished) {
        channel_.reset();
        finish_request(stream_route_, stream_status_);
        close();
      }
      return;
    }
    if (!chunk) {
      if (!finished) return;
      writing_ = true;
      arm(plane_->limits().request_timeout_s, Phase::kWriting);
      net::async_write(stream_, http::make_chunk_last(), [self = this->shared_from_this()](beast::error_code ec, size_t) {
        self->disarm();
        self->writing_ = false;
        self->channel_.reset();
        self->finish_request(self->stream_route_, self->stream_status_);
        if (ec || !self->stream_header_->keep_alive()) return self->close();
        self->wait_request();
      });
      return;
    }
    writing_ = true;
    auto buf = std::make_shared<std::string>(std::move(*chunk));
    arm(plane_->limits().request_timeout_s, Phase::kWriting);
    net::async_write(stream_, http::make_chunk(net::buffer(*buf)), [self = this->shared_from_this(), buf](beast::error_code ec, size_t) {
      self->disarm();
      self->writing_ = false;
      if (ec) {
        self->broken_ = true;
        self->channel_->mark_gone();  // the producer sees write() == false and ends
      }
      self->pump();
    });
  }

  void close() {
    beast::error_code ec;
    stream_.shutdown(Stream::shutdown_both, ec);
    stream_.close(ec);
  }

  Stream stream_;
  net::steady_timer timer_;
  HttpPlane* plane_;
  Caller caller_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Phase phase_ = Phase::kIdle;
  bool timed_out_ = false;
  uint64_t timer_gen_ = 0;
  bool keep_alive_ = true;
  Clock::time_point started_;
  int errors_before_routing_ = 0;
  // Streaming state.
  std::shared_ptr<http::response<http::empty_body>> stream_header_;
  std::optional<http::response_serializer<http::empty_body>> serializer_;
  std::shared_ptr<ChunkChannel> channel_;
  std::string stream_route_;
  int stream_status_ = 200;
  bool writing_ = false;
  bool broken_ = false;
};

template <class Socket>
void reject_busy(Socket& socket, HttpPlane* plane) {
  plane->count_rejected_connection();
  static const std::string kBody =
      R"({"error":{"message":"too many open connections (http.max-connections); retry shortly","type":"service_unavailable_error","param":null,"code":"too_many_connections"}})";
  std::string resp = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
                     "Connection: close\r\nContent-Length: " + std::to_string(kBody.size()) + "\r\n\r\n" + kBody;
  beast::error_code ec;
  socket.non_blocking(true, ec);
  net::write(socket, net::buffer(resp), ec);
  socket.shutdown(Socket::shutdown_both, ec);
  socket.close(ec);
}

Caller peer_caller(int fd) {
  Caller c;
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
    c.has_creds = true;
    c.uid = cred.uid;
    c.gid = cred.gid;
    c.pid = cred.pid;
    c.id = "uid:" + std::to_string(cred.uid);
    passwd pw{};
    passwd* found = nullptr;
    char buf[1024];
    if (::getpwuid_r(cred.uid, &pw, buf, sizeof buf, &found) == 0 && found != nullptr) c.user = found->pw_name;
  }
  return c;
}

template <class Protocol>
class Listener : public std::enable_shared_from_this<Listener<Protocol>> {
 public:
  Listener(net::io_context& ioc, typename Protocol::acceptor acceptor, HttpPlane* plane)
      : ioc_(ioc), acceptor_(std::move(acceptor)), plane_(plane) {}

  void accept() {
    acceptor_.async_accept(net::make_strand(ioc_), [self = this->shared_from_this()](beast::error_code ec,
                                                                                   typename Protocol::socket socket) {
      if (ec == net::error::operation_aborted) return;
      if (!ec) self->on_accept(std::move(socket));
      self->accept();
    });
  }
  void close() {
    beast::error_code ec;
    acceptor_.close(ec);
  }

 private:
  void on_accept(typename Protocol::socket socket) {
    if (plane_->connections().load() >= plane_->limits().max_connections) return reject_busy(socket, plane_);
    Caller caller;
    if constexpr (std::is_same_v<Protocol, unix_socket>) {
      caller = peer_caller(socket.native_handle());
    } else {
      beast::error_code ec;
      socket.set_option(tcp::no_delay(true), ec);
    }
    std::make_shared<Session<typename Protocol::socket>>(std::move(socket), plane_, std::move(caller))->run();
  }

  net::io_context& ioc_;
  typename Protocol::acceptor acceptor_;
  HttpPlane* plane_;
};

}  // namespace

struct HttpServer::Impl {
  explicit Impl(int threads) : ioc(threads), thread_count(threads) {}
  net::io_context ioc;
  int thread_count;
  std::vector<std::thread> threads;
  std::vector<std::function<void()>> closers;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> guard;
};

HttpServer::HttpServer(int threads) : impl_(std::make_unique<Impl>(threads)) {}
HttpServer::~HttpServer() { stop(); }

Result<uint16_t> HttpServer::listen_tcp(const std::string& host, uint16_t port, HttpPlane* plane) {
  beast::error_code ec;
  auto addr = net::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) return invalid_argument("'" + host + "' is not an IP address (http.listen takes IP:PORT)");
  tcp::acceptor acceptor(impl_->ioc);
  tcp::endpoint ep(addr, port);
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return unavailable("cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message() +
                       " (is another process using it? change http.listen)");
  }
  uint16_t bound = acceptor.local_endpoint().port();
  auto l = std::make_shared<Listener<tcp>>(impl_->ioc, std::move(acceptor), plane);
  l->accept();
  impl_->closers.push_back([l] { l->close(); });
  return bound;
}

Status HttpServer::listen_unix(const std::string& path, const std::string& group, HttpPlane* plane) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return failed_precondition(path + " exists and is not a socket; move it away");
    unix_socket::socket probe(impl_->ioc);
    beast::error_code ec;
    probe.connect(unix_socket::endpoint(path), ec);
    if (!ec) return failed_precondition("another llmopsd is already serving on " + path + "; stop it first");
    ::unlink(path.c_str());
  }
  unix_socket::acceptor acceptor(impl_->ioc);
  beast::error_code ec;
  acceptor.open(unix_socket(), ec);
  mode_t old_mask = ::umask(0117);  // the socket file is born 0660
  if (!ec) acceptor.bind(unix_socket::endpoint(path), ec);
  ::umask(old_mask);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return unavailable("cannot listen on the admin socket " + path + ": " + ec.message());
  ::chmod(path.c_str(), 0660);
  if (!group.empty()) {
    struct group g{};
    struct group* found = nullptr;
    char buf[4096];
    if (::getgrnam_r(group.c_str(), &g, buf, sizeof buf, &found) == 0 && found != nullptr) {
      if (::chown(path.c_str(), static_cast<uid_t>(-1), found->gr_gid) != 0) {
        log_warning("admin", "could not give " + path + " to group " + group + ": " + std::strerror(errno));
      }
    } else {
      log_info("admin", "group '" + group + "' does not exist; the admin socket keeps the daemon's group");
    }
  }
  auto l = std::make_shared<Listener<unix_socket>>(impl_->ioc, std::move(acceptor), plane);
  l->accept();
  impl_->closers.push_back([l, path] {
    l->close();
    ::unlink(path.c_str());
  });
  return ok_status();
}

void HttpServer::start() {
  impl_->guard.emplace(impl_->ioc.get_executor());
  for (int i = 0; i < impl_->thread_count; ++i) {
    impl_->threads.emplace_back([this] { impl_->ioc.run(); });
  }
}

void HttpServer::post(std::function<void()> fn) { net::post(impl_->ioc, std::move(fn)); }

void HttpServer::stop() {
  if (!impl_) return;
  for (auto& c : impl_->closers) c();
  impl_->closers.clear();
  impl_->guard.reset();
  impl_->ioc.stop();
  for (auto& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
  impl_->threads.clear();
}

}  // namespace llmops
