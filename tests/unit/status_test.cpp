#include "status.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace llmops {
namespace {

Result<int> half(int v) {
  if (v % 2 != 0) return invalid_argument(std::to_string(v) + " is odd");
  return v / 2;
}

Result<int> quarter(int v) {
  LLMOPS_ASSIGN_OR_RETURN(int h, half(v));
  LLMOPS_ASSIGN_OR_RETURN(int q, half(h));
  return q;
}

TEST(Status, CodesMapOutwardInOnePlace) {
  EXPECT_EQ(http_status_for(Code::kInvalidArgument), 400);
  EXPECT_EQ(http_status_for(Code::kNotFound), 404);
  EXPECT_EQ(http_status_for(Code::kUnauthenticated), 401);
  EXPECT_EQ(http_status_for(Code::kResourceExhausted), 429);
  EXPECT_EQ(http_status_for(Code::kUnavailable), 503);
  EXPECT_EQ(exit_code_for(Code::kOk), 0);
  EXPECT_EQ(exit_code_for(Code::kInvalidArgument), 2);
  EXPECT_EQ(exit_code_for(Code::kNotFound), 3);
  EXPECT_EQ(exit_code_for(Code::kUnavailable), 5);
  EXPECT_STREQ(openai_error_type(Code::kInvalidArgument), "invalid_request_error");
  for (int c = 0; c <= static_cast<int>(Code::kInternal); ++c) {
    auto code = static_cast<Code>(c);
    ASSERT_EQ(code_from_name(code_name(code)), code) << code_name(code);
  }
  EXPECT_FALSE(code_from_name("no_such_code").has_value());
}

TEST(Status, ResultPropagatesErrorsAndValues) {
  EXPECT_EQ(*quarter(12), 3);
  auto bad = quarter(6);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "3 is odd");
  EXPECT_EQ(bad.status().with_context("quartering").to_string(), "invalid_argument: quartering: 3 is odd");
}

TEST(Status, ErrnoMapping) {
  EXPECT_EQ(errno_status("open", ENOENT).code(), Code::kNotFound);
  EXPECT_EQ(errno_status("write", ENOSPC).code(), Code::kResourceExhausted);
  EXPECT_EQ(errno_status("open", EACCES).code(), Code::kPermissionDenied);
  EXPECT_NE(errno_status("open", ENOENT).message().find("open: "), std::string::npos);
}

}  // namespace
}  // namespace llmops
