// The baseline for bench/http/run.sh: the smallest reasonable Beast HTTP/1.1 server — async
// sessions on strands, keep-alive, a fixed JSON answer, N threads on one io_context. No
// routing, auth, limits, metrics or logging: what llmopsd's data plane is measured against.
#include <utility>  // before Asio: Boost 1.74 under C++20 needs std::exchange declared
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket s) : stream_(std::move(s)) {}
  void run() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read(); });
  }

 private:
  void read() {
    req_ = {};
    http::async_read(stream_, buf_, req_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->close();
      self->respond();
    });
  }
  void respond() {
    auto res = std::make_shared<http::response<http::string_body>>(http::status::ok, req_.version());
    res->set(http::field::content_type, "application/json");
    res->body() = "{\"status\":\"ok\"}\n";
    res->keep_alive(req_.keep_alive());
    res->prepare_payload();
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, size_t) {
      if (ec || res->need_eof()) return self->close();
      self->read();
    });
  }
  void close() {
    beast::error_code ec;
    stream_.shutdown(tcp::socket::shutdown_send, ec);
  }
  tcp::socket stream_;
  beast::flat_buffer buf_;
  http::request<http::string_body> req_;
};

void accept(net::io_context& ioc, tcp::acceptor& acc) {
  acc.async_accept(net::make_strand(ioc), [&](beast::error_code ec, tcp::socket s) {
    if (!ec) {
      s.set_option(tcp::no_delay(true), ec);
      std::make_shared<Session>(std::move(s))->run();
    }
    accept(ioc, acc);
  });
}

int main(int argc, char** argv) {
  int port = argc > 1 ? std::atoi(argv[1]) : 0;
  int threads = argc > 2 ? std::atoi(argv[2]) : 2;
  net::io_context ioc(threads);
  tcp::acceptor acc(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
  std::printf("%d\n", acc.local_endpoint().port());
  std::fflush(stdout);
  accept(ioc, acc);
  std::vector<std::thread> ts;
  for (int i = 1; i < threads; ++i) ts.emplace_back([&] { ioc.run(); });
  ioc.run();
}
