// The data plane's own routes (/healthz, /readyz, /metrics, /v1/models until the serving stage
// provides it) and its policy: Host check against DNS rebinding, JSON depth, API keys.
#include "daemon.h"

namespace llmops {
namespace {

bool is_loopback_host(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// "example.com:8642" → "example.com"; "[::1]:80" → "::1".
std::string host_without_port(const std::string& host) {
  if (!host.empty() && host.front() == '[') {
    auto close = host.find(']');
    return close == std::string::npos ? host : host.substr(1, close - 1);
  }
  auto colon = host.find(':');
  return colon == std::string::npos ? host : host.substr(0, colon);
}

}  // namespace

PlanePolicy data_policy(Daemon& d) {
  Config c = d.config();
  bool check_host = is_loopback_host(c.http.listen_host);
  std::vector<std::string> allowed = {"localhost", "127.0.0.1", "::1"};
  for (const auto& h : c.http.allowed_hosts) allowed.push_back(h);
  uint64_t max_depth = c.http.max_json_depth;
  PlanePolicy p;
  p.admit = [&d, check_host, allowed, max_depth](HttpRequest& req, const Router::Match& match) -> std::optional<HttpResponse> {
    if (check_host) {
      std::string host = host_without_port(req.header("host"));
      for (auto& ch : host) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (std::find(allowed.begin(), allowed.end(), host) == allowed.end() && !is_loopback_host(host)) {
        return error_response(permission_denied("Host '" + host.substr(0, 100) +
                                                "' is not allowed on a loopback listener (DNS-rebinding guard); add it to http.allowed-hosts"));
      }
    }
    if (!req.body.empty() && json_nesting_depth(req.body, max_depth) > max_depth) {
      return error_response(invalid_argument("JSON nested deeper than " + std::to_string(max_depth) + " levels (http.max-json-depth)"));
    }
    if (d.keys().auth_required() && !(match.handler != nullptr && match.options.public_route)) {
      std::string auth = req.header("authorization");
      static const std::string kBearer = "Bearer ";
      if (auth.size() <= kBearer.size() || strncasecmp(auth.c_str(), kBearer.c_str(), kBearer.size()) != 0) {
        HttpResponse r = error_response(401, "invalid_request_error",
                                        "this endpoint needs an API key: send 'Authorization: Bearer <key>' (llmopsctl keys create NAME makes one)",
                                        "missing_api_key");
        r.headers.emplace_back("WWW-Authenticate", "Bearer");
        return r;
      }
      auto key = d.keys().verify(std::string_view(auth).substr(kBearer.size()));
      if (!key) {
        HttpResponse r = error_response(401, "invalid_request_error", "the API key is not valid or has been revoked", "invalid_api_key");
        r.headers.emplace_back("WWW-Authenticate", "Bearer error=\"invalid_token\"");
        return r;
      }
      req.caller.id = "key:" + std::to_string(key->id);
      req.caller.key_name = key->name;
    }
    return std::nullopt;
  };
  return p;
}

void add_data_routes(Router& r, Daemon& d) {
  r.add("GET", "/healthz", [](HttpRequest&) {
    HttpResponse resp;
    resp.body = "{\"status\":\"ok\"}\n";
    return resp;
  }, {.public_route = true});

  r.add("GET", "/readyz", [&d](HttpRequest&) {
    std::string health = d.modules().overall_health();
    bool ready = d.ready() && health != "failing";
    Json mods = Json::object();
    for (const auto& m : d.modules().describe()) mods[m["name"].get<std::string>()] = m["health"]["state"];
    return json_response({{"status", ready ? "ready" : "not_ready"}, {"health", health}, {"modules", mods}}, ready ? 200 : 503);
  });

  r.add("GET", "/metrics", [&d](HttpRequest&) {
    HttpResponse resp;
    resp.content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp.body = d.metrics().render();
    return resp;
  });

  if (!r.has("GET", "/v1/models")) {
    // Until the serving stage registers its own: no model is served, so the list is empty.
    r.add("GET", "/v1/models", [](HttpRequest&) {
      static const std::string kEmpty = "{\"object\":\"list\",\"data\":[]}\n";
      HttpResponse resp;
      resp.body = kEmpty;
      return resp;
    });
  }
}

}  // namespace llmops
