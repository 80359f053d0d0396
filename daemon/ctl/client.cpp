#include "client.h"

#include <sys/stat.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdlib>

namespace llmops::ctl {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using unix_socket = net::local::stream_protocol;

namespace {

bool exists(const std::string& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0;
}

Status connect(unix_socket::socket& s, const std::string& path) {
  beast::error_code ec;
  s.connect(unix_socket::endpoint(path), ec);
  if (!ec) return ok_status();
  if (ec == net::error::access_denied) {
    return permission_denied("cannot open the admin socket " + path + ": permission denied (join group 'llmops' or run as root)");
  }
  return unavailable("cannot reach llmopsd at " + path + ": " + ec.message() +
                     " (is it running? systemctl status llmopsd; or pass --socket PATH)");
}

http::request<http::string_body> make_request(const std::string& method, const std::string& target, const std::string* body,
                                              const char* content_type) {
  http::request<http::string_body> req(http::string_to_verb(method), target, 11);
  req.set(http::field::host, "localhost");
  req.set(http::field::user_agent, "llmopsctl/" LLMOPS_VERSION_STRING);
  if (body != nullptr) {
    req.set(http::field::content_type, content_type);
    req.body() = *body;
  }
  req.prepare_payload();
  return req;
}

// Connects s to the daemon and writes one request.
Status send_request(unix_socket::socket& s, const std::string& socket_path, const std::string& method, const std::string& target,
                    const std::string* body, const char* content_type) {
  LLMOPS_RETURN_IF_ERROR(connect(s, socket_path));
  beast::error_code ec;
  auto req = make_request(method, target, body, content_type);
  http::write(s, req, ec);
  if (ec) return unavailable("sending to llmopsd failed: " + ec.message());
  return ok_status();
}

}  // namespace

std::string default_socket_path() {
  if (const char* env = std::getenv("LLMOPS_SOCKET"); env != nullptr && *env != '\0') return env;
  if (exists("/run/llmops/admin.sock")) return "/run/llmops/admin.sock";
  if (exists("llmops-data/run/admin.sock")) return "llmops-data/run/admin.sock";
  return "/run/llmops/admin.sock";
}

Status status_from_error(int http_status, std::string_view body) {
  auto j = parse_json_bounded(body, 16);
  std::string message = "llmopsd answered HTTP " + std::to_string(http_status);
  Code code = Code::kInternal;
  if (http_status == 400) code = Code::kInvalidArgument;
  if (http_status == 401) code = Code::kUnauthenticated;
  if (http_status == 403) code = Code::kPermissionDenied;
  if (http_status == 404) code = Code::kNotFound;
  if (http_status == 409) code = Code::kFailedPrecondition;
  if (http_status == 429) code = Code::kResourceExhausted;
  if (http_status == 503) code = Code::kUnavailable;
  if (j.ok() && j->is_object() && j->contains("error") && (*j)["error"].is_object()) {
    const Json& e = (*j)["error"];
    if (e.contains("message") && e["message"].is_string()) message = e["message"];
    if (e.contains("code") && e["code"].is_string()) {
      if (auto c = code_from_name(e["code"].get<std::string>())) code = *c;
    }
  }
  return Status(code, message);
}

Result<Json> AdminClient::call(const std::string& method, const std::string& target, const Json* body) {
  if (body == nullptr) return call_raw(method, target, nullptr, nullptr);
  const std::string text = dump_json(*body);
  return call_raw(method, target, &text, "application/json");
}

Result<Json> AdminClient::call_raw(const std::string& method, const std::string& target, const std::string* body,
                                   const char* content_type) {
  net::io_context ioc;
  unix_socket::socket s(ioc);
  LLMOPS_RETURN_IF_ERROR(send_request(s, socket_, method, target, body, content_type));
  beast::error_code ec;
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(256u << 20);
  http::read(s, buf, parser, ec);
  if (ec) return unavailable("reading llmopsd's answer failed: " + ec.message());
  auto res = parser.release();
  int status = static_cast<int>(res.result_int());
  if (status >= 400) return status_from_error(status, res.body());
  if (res.body().empty()) return Json::object();
  auto j = parse_json_bounded(res.body(), 256);
  if (!j.ok()) return internal_error("llmopsd answered with something that is not JSON: " + j.status().message());
  return j;
}

Status AdminClient::stream(const std::string& target, const std::function<bool(const Json&)>& on_line) {
  return stream("GET", target, nullptr, on_line);
}

Status AdminClient::stream(const std::string& method, const std::string& target, const Json* body,
                           const std::function<bool(const Json&)>& on_line) {
  std::string pending;
  bool stop = false;
  Status inner;
  Status st = stream_raw(method, target, body, [&](std::string_view data) {
    pending.append(data.data(), data.size());
    size_t nl;
    while (!stop && (nl = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (line.rfind("data: ", 0) == 0) line.erase(0, 6);  // Server-Sent Events
      if (line.empty()) continue;
      if (line == "[DONE]") {
        stop = true;
        break;
      }
      auto j = parse_json_bounded(line, 64);
      if (!j.ok()) {
        inner = internal_error("llmopsd streamed a line that is not JSON");
        stop = true;
      } else if (!on_line(*j)) {
        stop = true;
      }
    }
    return !stop;
  });
  return st.ok() ? inner : st;
}

Status AdminClient::stream_raw(const std::string& method, const std::string& target, const Json* body,
                               const std::function<bool(std::string_view)>& on_data) {
  net::io_context ioc;
  unix_socket::socket s(ioc);
  const std::string text = body != nullptr ? dump_json(*body) : std::string();
  LLMOPS_RETURN_IF_ERROR(send_request(s, socket_, method, target, body != nullptr ? &text : nullptr, "application/json"));
  beast::error_code ec;
  beast::flat_buffer buf;
  http::response_parser<http::string_body> head;
  head.body_limit(16u << 20);
  http::read_header(s, buf, head, ec);
  if (ec) return unavailable("reading llmopsd's answer failed: " + ec.message());
  int status = static_cast<int>(head.get().result_int());
  if (status >= 400) {
    http::read(s, buf, head, ec);
    return status_from_error(status, head.get().body());
  }
  head.body_limit(boost::none);
  bool stop = false;
  auto on_chunk = [&](std::uint64_t, beast::string_view data, beast::error_code&) -> std::size_t {
    if (!stop && !on_data(std::string_view(data.data(), data.size()))) stop = true;
    return data.size();
  };
  head.on_chunk_body(on_chunk);
  while (!stop && !head.is_done()) {
    http::read_some(s, buf, head, ec);
    if (ec == http::error::end_of_stream || ec == net::error::eof) break;
    if (ec) return unavailable("the stream from llmopsd broke: " + ec.message());
  }
  return ok_status();
}

}  // namespace llmops::ctl
