// The admin client: HTTP/1.1 + JSON over llmopsd's Unix socket. One connection per call.
// Not thread-safe; llmopsctl is single-threaded.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "json.h"
#include "status.h"

namespace llmops::ctl {

// The socket to use: --socket, else $LLMOPS_SOCKET, else /run/llmops/admin.sock, else the
// development default ./llmops-data/run/admin.sock when that exists.
std::string default_socket_path();

class AdminClient {
 public:
  explicit AdminClient(std::string socket_path) : socket_(std::move(socket_path)) {}

  // Sends one request; a 4xx/5xx answer becomes the Status it encodes (the daemon's message).
  Result<Json> call(const std::string& method, const std::string& target, const Json* body = nullptr);
  // Streams an NDJSON response line by line until on_line returns false or the stream ends.
  // Server-Sent Events work too: "data: " is stripped, blank lines skipped, "[DONE]" ends it.
  Status stream(const std::string& target, const std::function<bool(const Json&)>& on_line);
  Status stream(const std::string& method, const std::string& target, const Json* body, const std::function<bool(const Json&)>& on_line);
  // A request with a body that is not JSON (an upload chunk), answered with JSON.
  Result<Json> call_raw(const std::string& method, const std::string& target, const std::string* body, const char* content_type);
  // A streamed (chunked) answer handed over as it arrives, until on_data returns false.
  Status stream_raw(const std::string& method, const std::string& target, const Json* body,
                    const std::function<bool(std::string_view)>& on_data);
  const std::string& socket_path() const { return socket_; }

 private:
  std::string socket_;
};

// Maps an error response body (OpenAI shape) and HTTP status to a Status.
Status status_from_error(int http_status, std::string_view body);

}  // namespace llmops::ctl
