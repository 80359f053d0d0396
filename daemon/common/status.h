// Errors as values: one fixed list of codes, mapped to HTTP statuses and process exit codes in
// status.cpp and nowhere else. Thread-safe: Status and Result are plain values.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace llmops {

// Values equal the C codes of llmops_code in <llmops/module.h> (checked by a static_assert).
enum class Code : int {
  kOk = 0,
  kInvalidArgument = 1,    // the caller sent something malformed; retrying the same will fail
  kNotFound = 2,
  kAlreadyExists = 3,
  kPermissionDenied = 4,   // the caller is known but not allowed
  kUnauthenticated = 5,    // the caller is not known (missing or bad key)
  kResourceExhausted = 6,  // a limit or quota: too big, too many, out of space
  kFailedPrecondition = 7, // the system is not in the state the call needs
  kAborted = 8,
  kCancelled = 9,
  kDeadlineExceeded = 10,
  kUnavailable = 11,       // transient: draining, not ready; retry later
  kUnimplemented = 12,
  kDataLoss = 13,          // stored data is corrupt
  kInternal = 14,
};

const char* code_name(Code code);          // "invalid_argument", ...
int http_status_for(Code code);            // 400, 404, ...
int exit_code_for(Code code);              // llmopsctl exit code: 0 ok, 2 usage, 3.. see status.cpp
const char* openai_error_type(Code code);  // "invalid_request_error", ...
std::optional<Code> code_from_name(std::string_view name);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string to_string() const;  // "not_found: no job 7"

  // Prepends context: "opening store: " + message.
  Status with_context(std::string_view context) const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status ok_status() { return Status(); }
inline Status invalid_argument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Status not_found(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status already_exists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
inline Status permission_denied(std::string m) { return {Code::kPermissionDenied, std::move(m)}; }
inline Status unauthenticated(std::string m) { return {Code::kUnauthenticated, std::move(m)}; }
inline Status resource_exhausted(std::string m) { return {Code::kResourceExhausted, std::move(m)}; }
inline Status failed_precondition(std::string m) { return {Code::kFailedPrecondition, std::move(m)}; }
inline Status aborted(std::string m) { return {Code::kAborted, std::move(m)}; }
inline Status cancelled(std::string m) { return {Code::kCancelled, std::move(m)}; }
inline Status deadline_exceeded(std::string m) { return {Code::kDeadlineExceeded, std::move(m)}; }
inline Status unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
inline Status unimplemented(std::string m) { return {Code::kUnimplemented, std::move(m)}; }
inline Status data_loss(std::string m) { return {Code::kDataLoss, std::move(m)}; }
inline Status internal_error(std::string m) { return {Code::kInternal, std::move(m)}; }
// errno → Status, with what was being done: errno_status("opening /x", ENOENT).
Status errno_status(std::string_view what, int err);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Status status) : v_(std::move(status)) {}

  bool ok() const { return v_.index() == 0; }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<1>(v_);
  }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace llmops

#define LLMOPS_CONCAT_INNER(a, b) a##b
#define LLMOPS_CONCAT(a, b) LLMOPS_CONCAT_INNER(a, b)

#define LLMOPS_RETURN_IF_ERROR(expr)              \
  do {                                            \
    ::llmops::Status llmops_status_ = (expr);     \
    if (!llmops_status_.ok()) return llmops_status_; \
  } while (0)

#define LLMOPS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

#define LLMOPS_ASSIGN_OR_RETURN(lhs, expr) \
  LLMOPS_ASSIGN_OR_RETURN_IMPL(LLMOPS_CONCAT(llmops_result_, __LINE__), lhs, expr)
