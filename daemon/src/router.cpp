#include "router.h"

#include <algorithm>

namespace llmops {
namespace {

std::vector<std::string> split_segments(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    out.emplace_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string url_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && s[i] == '+' ? ' ' : s[i]);
  }
  return out;
}

}  // namespace

std::string HttpRequest::header(std::string_view lower_name) const {
  for (const auto& [k, v] : headers) {
    if (k == lower_name) return v;
  }
  return {};
}

std::optional<std::string> HttpRequest::query_param(std::string_view name) const {
  std::string_view q = query;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    size_t eq = pair.find('=');
    if (url_decode(pair.substr(0, eq), true) == name) {
      return eq == std::string_view::npos ? std::string() : url_decode(pair.substr(eq + 1), true);
    }
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

Result<std::string> decode_path(std::string_view raw) {
  std::string out;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '%') {
      if (i + 2 >= raw.size()) return invalid_argument("bad percent-escape in path");
      int hi = hex_value(raw[i + 1]), lo = hex_value(raw[i + 2]);
      if (hi < 0 || lo < 0) return invalid_argument("bad percent-escape in path");
      char c = static_cast<char>(hi * 16 + lo);
      if (c == '\0') return invalid_argument("encoded NUL in path");
      out.push_back(c);
      i += 2;
    } else {
      out.push_back(raw[i]);
    }
  }
  return out;
}

HttpResponse json_response(const Json& body, int status) {
  HttpResponse r;
  r.status = status;
  r.body = dump_json(body);
  r.body.push_back('\n');
  return r;
}

HttpResponse error_response(int http_status, const std::string& type, const std::string& message,
                            const std::string& code) {
  Json err = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", code.empty() ? Json(nullptr) : Json(code)}};
  return json_response({{"error", err}}, http_status);
}

HttpResponse error_response(const Status& status, const std::string& param) {
  Json err = {{"message", status.message()},
              {"type", openai_error_type(status.code())},
              {"param", param.empty() ? Json(nullptr) : Json(param)},
              {"code", code_name(status.code())}};
  return json_response({{"error", err}}, http_status_for(status.code()));
}

void Router::add(const std::string& method, const std::string& pattern, Handler handler, RouteOptions options) {
  routes_.push_back(Route{method, pattern, split_segments(pattern), std::move(handler), options});
}

bool Router::has(const std::string& method, const std::string& pattern) const {
  return std::any_of(routes_.begin(), routes_.end(),
                     [&](const Route& r) { return r.method == method && r.pattern == pattern; });
}

Router::Match Router::match(const std::string& method, const std::string& path) const {
  Match result;
  auto segs = split_segments(path);
  for (const auto& r : routes_) {
    std::map<std::string, std::string> params;
    bool ok = true;
    size_t i = 0;
    for (; i < r.segments.size(); ++i) {
      const std::string& want = r.segments[i];
      if (want == "*") {
        std::string rest;
        for (size_t k = i; k < segs.size(); ++k) rest += (k > i ? "/" : "") + segs[k];
        params["*"] = rest;
        i = segs.size();
        break;
      }
      if (i >= segs.size()) {
        ok = false;
        break;
      }
      if (want.size() > 2 && want.front() == '{' && want.back() == '}') {
        params[want.substr(1, want.size() - 2)] = segs[i];
      } else if (want != segs[i]) {
        ok = false;
        break;
      }
    }
    if (!ok || i != segs.size()) continue;
    if (r.method != method && !(method == "HEAD" && r.method == "GET")) {
      result.method_mismatch = true;
      continue;
    }
    result.handler = &r.handler;
    result.options = r.options;
    result.pattern = r.pattern;
    result.params = std::move(params);
    result.method_mismatch = false;
    return result;
  }
  return result;
}

}  // namespace llmops
