// One request through Beast's parser with llmopsd's limits, then through HttpPlane::handle
// with a router and a policy like the daemon's: path decoding, query parsing, routing and the
// JSON-depth check must answer every input with some status.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <string>

#include "http_server.h"
#include "json.h"

namespace http = boost::beast::http;
using namespace llmops;

namespace {

HttpPlane& plane() {
  static MetricsRegistry metrics;
  static HttpPlane* p = [] {
    Router r;
    r.add("GET", "/v1/jobs/{id}", [](HttpRequest& req) {
      return json_response({{"id", req.params["id"]}, {"state", req.query_param("state").value_or("")}});
    });
    r.add("POST", "/v1/keys", [](HttpRequest& req) {
      auto j = parse_json_bounded(req.body, 16);
      return j.ok() ? json_response(*j) : error_response(j.status());
    });
    r.add("GET", "/files/*", [](HttpRequest& req) { return json_response({{"rest", req.params["*"]}}); });
    PlanePolicy policy;
    policy.admit = [](HttpRequest& req, const Router::Match&) -> std::optional<HttpResponse> {
      if (json_nesting_depth(req.body, 16) > 16) return error_response(invalid_argument("too deep"));
      if (req.header("authorization") == "Bearer bad") return error_response(unauthenticated("bad key"));
      return std::nullopt;
    };
    return new HttpPlane("fuzz", std::move(r), HttpLimits{}, policy, &metrics, nullptr);
  }();
  return *p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(16 << 10);
  parser.body_limit(64 << 10);
  parser.eager(true);
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(data, size), ec);
  if (!ec && !parser.is_done()) parser.put_eof(ec);
  if (ec || !parser.is_done()) return 0;
  HttpRequest req = to_http_request(parser.release());
  int status = 0;
  plane().handle(std::move(req), [&](HttpResponse r) { status = r.status; });
  plane().request_done();
  if (status < 100 || status > 599) __builtin_trap();
  return 0;
}
