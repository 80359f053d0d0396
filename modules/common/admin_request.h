// What a stage's admin routes read from a request and how they answer: path segments after the
// stage's mount point, query parameters, and errors through the project's one code table
// (status.h) with the code's name, so llmopsctl maps an answer back to the same exit code.
// Header-only; any thread.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>

#include "json.h"
#include "llmops/module.hpp"
#include "status.h"

namespace llmops::admin {

inline std::string url_decode(std::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() && std::isxdigit(static_cast<unsigned char>(in[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(in[i] == '+' ? ' ' : in[i]);
    }
  }
  return out;
}

// A query parameter, decoded; def when absent.
inline std::string query(const llmops_request* req, const std::string& key, const std::string& def = "") {
  std::string_view q = req->query;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    size_t eq = pair.find('=');
    if (url_decode(pair.substr(0, eq)) == key) return eq == std::string_view::npos ? "" : url_decode(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return def;
}

inline Result<uint64_t> query_number(const llmops_request* req, const std::string& key, uint64_t def, uint64_t max) {
  std::string v = query(req, key);
  if (v.empty()) return def;
  if (v.size() > 12 || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return invalid_argument("'" + key + "' must be a whole number");
  }
  uint64_t n = std::stoull(v);
  if (n > max) return invalid_argument("'" + key + "' is at most " + std::to_string(max));
  return n;
}

// Path segment k (0-based) after /modules/<stage>/: for /versions/{ref}/records, 1 is the ref.
inline std::string segment(const llmops_request* req, std::string_view stage, size_t k) {
  std::string_view p = req->path;
  const std::string mount = "/modules/" + std::string(stage) + "/";
  size_t at = p.find(mount);
  if (at == std::string_view::npos) return "";
  p.remove_prefix(at + mount.size());
  for (size_t i = 0; i < k; ++i) {
    size_t slash = p.find('/');
    if (slash == std::string_view::npos) return "";
    p.remove_prefix(slash + 1);
  }
  return url_decode(p.substr(0, p.find('/')));
}

inline void respond(sdk::Host host, llmops_response* resp, int status, const Json& body) { host.respond(resp, status, dump_json(body)); }

inline llmops_code respond_error(sdk::Host host, llmops_response* resp, const Status& st) {
  respond(host, resp, http_status_for(st.code()),
          {{"error", {{"message", st.message()}, {"type", openai_error_type(st.code())}, {"code", code_name(st.code())}}}});
  return LLMOPS_OK;
}

}  // namespace llmops::admin
