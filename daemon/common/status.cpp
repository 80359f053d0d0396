#include "status.h"

#include <array>
#include <cerrno>
#include <cstring>

namespace llmops {
namespace {

struct CodeInfo {
  Code code;
  const char* name;
  int http;
  int exit_code;
  const char* openai_type;
};

// The one table that maps codes outward. Exit codes: 0 ok, 1 internal, 2 usage/invalid,
// 3 not found, 4 permission, 5 unavailable (daemon not running / draining), 6 conflict,
// 7 limit, 8 cancelled or aborted, 9 data loss.
constexpr std::array<CodeInfo, 15> kCodes = {{
    {Code::kOk, "ok", 200, 0, ""},
    {Code::kInvalidArgument, "invalid_argument", 400, 2, "invalid_request_error"},
    {Code::kNotFound, "not_found", 404, 3, "not_found_error"},
    {Code::kAlreadyExists, "already_exists", 409, 6, "conflict_error"},
    {Code::kPermissionDenied, "permission_denied", 403, 4, "permission_error"},
    {Code::kUnauthenticated, "unauthenticated", 401, 4, "authentication_error"},
    {Code::kResourceExhausted, "resource_exhausted", 429, 7, "rate_limit_error"},
    {Code::kFailedPrecondition, "failed_precondition", 409, 6, "invalid_request_error"},
    {Code::kAborted, "aborted", 409, 8, "conflict_error"},
    {Code::kCancelled, "cancelled", 499, 8, "cancelled_error"},
    {Code::kDeadlineExceeded, "deadline_exceeded", 504, 1, "timeout_error"},
    {Code::kUnavailable, "unavailable", 503, 5, "service_unavailable_error"},
    {Code::kUnimplemented, "unimplemented", 501, 1, "not_implemented_error"},
    {Code::kDataLoss, "data_loss", 500, 9, "server_error"},
    {Code::kInternal, "internal", 500, 1, "server_error"},
}};

const CodeInfo& info(Code code) {
  auto i = static_cast<size_t>(code);
  return i < kCodes.size() ? kCodes[i] : kCodes[static_cast<size_t>(Code::kInternal)];
}

}  // namespace

const char* code_name(Code code) { return info(code).name; }
int http_status_for(Code code) { return info(code).http; }
int exit_code_for(Code code) { return info(code).exit_code; }
const char* openai_error_type(Code code) { return info(code).openai_type; }

std::optional<Code> code_from_name(std::string_view name) {
  for (const auto& c : kCodes) {
    if (name == c.name) return c.code;
  }
  return std::nullopt;
}

std::string Status::to_string() const {
  if (ok()) return "ok";
  return std::string(code_name(code_)) + ": " + message_;
}

Status Status::with_context(std::string_view context) const {
  if (ok()) return *this;
  return Status(code_, std::string(context) + ": " + message_);
}

Status errno_status(std::string_view what, int err) {
  Code code = Code::kInternal;
  switch (err) {
    case ENOENT: code = Code::kNotFound; break;
    case EEXIST: code = Code::kAlreadyExists; break;
    case EACCES:
    case EPERM: code = Code::kPermissionDenied; break;
    case ENOSPC:
    case EDQUOT:
    case EMFILE:
    case ENFILE:
    case ENOMEM: code = Code::kResourceExhausted; break;
    case EINVAL:
    case ENOTDIR:
    case EISDIR:
    case ENAMETOOLONG: code = Code::kInvalidArgument; break;
    case EIO: code = Code::kDataLoss; break;
    default: break;
  }
  return Status(code, std::string(what) + ": " + std::strerror(err));
}

}  // namespace llmops
