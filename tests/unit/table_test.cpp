#include "table.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "client.h"

namespace llmops::ctl {
namespace {

TEST(Table, AlignsColumnsByDisplayWidth) {
  Table t({"ID", "NAME"});
  t.add({"1", "alpha"});
  t.add({"100", "β"});
  char* buf = nullptr;
  size_t len = 0;
  FILE* f = open_memstream(&buf, &len);
  t.print(f);
  std::fclose(f);
  std::string out(buf, len);
  free(buf);
  EXPECT_EQ(out, "ID   NAME\n1    alpha\n100  β\n");
}

TEST(Table, HumanUnits) {
  EXPECT_EQ(human_bytes(512), "512 B");
  EXPECT_EQ(human_bytes(1536), "1.5 KiB");
  EXPECT_EQ(human_duration(42), "42s");
  EXPECT_EQ(human_duration(3725), "1h02m");
  EXPECT_EQ(human_time_ms(0), "-");
  EXPECT_EQ(progress_bar(1, 4, 8), "[##......]");
  EXPECT_EQ(progress_bar(5, 0, 4), "[....]");
}

TEST(Client, ErrorBodiesBecomeStatuses) {
  Status st = status_from_error(404, R"({"error":{"message":"no job 9","type":"not_found_error","code":"not_found"}})");
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_EQ(st.message(), "no job 9");
  EXPECT_EQ(status_from_error(503, "not json").code(), Code::kUnavailable);
  EXPECT_EQ(status_from_error(403, R"({"error":{"message":"m","code":"weird"}})").code(), Code::kPermissionDenied);
}

}  // namespace
}  // namespace llmops::ctl
