#include "audit.h"

#include <gtest/gtest.h>

#include "unit/test_util.h"

namespace llmops {
namespace {

TEST(Audit, AppendsInOrderAndPagesBackwards) {
  test::TempDir dir;
  auto store = std::move(Store::open(dir.path(), StoreOptions{})).value();
  auto log = std::move(AuditLog::open(store.get())).value();
  for (int i = 0; i < 10; ++i) {
    AuditEntry e;
    e.who = "uid:" + std::to_string(i);
    e.action = "GET /v1/status";
    e.status = 200;
    ASSERT_TRUE(log->append(e).ok());
  }
  auto newest = *log->recent(3);
  ASSERT_EQ(newest.size(), 3u);
  EXPECT_EQ(newest[0].seq, 10u);
  EXPECT_EQ(newest[0].who, "uid:9");
  EXPECT_GT(newest[0].time_ms, 0u);
  auto older = *log->recent(100, newest.back().seq);
  ASSERT_EQ(older.size(), 7u);
  EXPECT_EQ(older[0].seq, 7u);
}

TEST(Audit, LongFieldsAreBounded) {
  test::TempDir dir;
  auto store = std::move(Store::open(dir.path(), StoreOptions{})).value();
  auto log = std::move(AuditLog::open(store.get())).value();
  AuditEntry e;
  e.action = std::string(100000, 'a');
  e.detail = std::string(100000, 'd');
  ASSERT_TRUE(log->append(e).ok());
  auto got = *log->recent(1);
  EXPECT_EQ(got[0].action.size(), 512u);
  EXPECT_EQ(got[0].detail.size(), 1024u);
}

}  // namespace
}  // namespace llmops
