// Routes of one HTTP plane: method + path pattern → handler. Patterns are literal segments,
// "{name}" segments (captured) and a final "*" (any rest). Built on the main thread before the
// server starts; read-only afterwards, so any network thread may match concurrently.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "json.h"
#include "status.h"

namespace llmops {

// Who is calling. Admin plane: the peer's credentials; data plane: the API key, if any.
struct Caller {
  std::string id = "anonymous";  // "uid:1000", "key:3", "anonymous"
  bool has_creds = false;
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  pid_t pid = 0;
  std::string user;      // user name for uid, when known
  std::string key_name;  // data plane: the key's name
};

struct HttpRequest {
  std::string method;
  std::string target;  // as sent
  std::string path;    // decoded, without query
  std::string query;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  Caller caller;
  std::map<std::string, std::string> params;  // from {name} segments

  std::string header(std::string_view lower_name) const;
  std::optional<std::string> query_param(std::string_view name) const;
};

// Writer for a streamed (chunked) response. write() blocks while too many chunks are pending
// and returns false once the client has gone; the producer should then stop. Producer thread only.
class StreamWriter {
 public:
  virtual ~StreamWriter() = default;
  virtual bool write(std::string chunk) = 0;
  virtual bool client_gone() const = 0;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // When set, the body is produced by this function on a worker thread as chunks.
  std::function<void(StreamWriter&)> stream;
  bool close = false;  // close the connection after this response
  std::string route;   // set by the plane: the matched pattern, the metrics label
};

// The OpenAI error shape: {"error":{"message","type","param","code"}}.
HttpResponse error_response(const Status& status, const std::string& param = {});
HttpResponse error_response(int http_status, const std::string& type, const std::string& message,
                            const std::string& code = {});
HttpResponse json_response(const Json& body, int status = 200);

using Handler = std::function<HttpResponse(HttpRequest&)>;

struct RouteOptions {
  bool blocking = false;      // runs on the worker pool instead of a network thread
  bool public_route = false;  // data plane: needs no API key even when keys exist (/healthz)
};

class Router {
 public:
  void add(const std::string& method, const std::string& pattern, Handler handler, RouteOptions options = {});
  bool has(const std::string& method, const std::string& pattern) const;

  struct Match {
    const Handler* handler = nullptr;
    RouteOptions options;
    std::string pattern;  // the route's pattern, used as the metrics label
    std::map<std::string, std::string> params;
    bool method_mismatch = false;  // path exists under another method → 405
  };
  Match match(const std::string& method, const std::string& path) const;

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;
    Handler handler;
    RouteOptions options;
  };
  std::vector<Route> routes_;
};

// Percent-decodes a path; kInvalidArgument for bad escapes or an encoded NUL.
Result<std::string> decode_path(std::string_view raw);

}  // namespace llmops
