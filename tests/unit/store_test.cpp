#include "store.h"

#include <gtest/gtest.h>

#include <thread>

#include "keys.h"
#include "unit/test_util.h"

namespace llmops {
namespace {

std::unique_ptr<Store> open_store(const std::string& dir, uint64_t map = 1 << 20, uint64_t max = 64 << 20) {
  StoreOptions o;
  o.initial_map_bytes = map;
  o.max_map_bytes = max;
  auto s = Store::open(dir, o);
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  return std::move(s).value();
}

TEST(Store, WriteCommitsOnlyWhenTheCallbackSucceeds) {
  test::TempDir dir;
  auto store = open_store(dir.path());
  Dbi db = *store->database("t");
  ASSERT_TRUE(store->write([&](Txn& t) { return t.put(db, "a", "1"); }).ok());
  Status failed = store->write([&](Txn& t) -> Status {
    LLMOPS_RETURN_IF_ERROR(t.put(db, "b", "2"));
    return aborted("changed my mind");
  });
  EXPECT_EQ(failed.code(), Code::kAborted);
  ASSERT_TRUE(store->read([&](Txn& t) -> Status {
    EXPECT_EQ(**t.get(db, "a"), "1");
    EXPECT_FALSE(t.get(db, "b")->has_value());  // aborted, not half-written
    return ok_status();
  }).ok());
}

TEST(Store, InsertRefusesDuplicatesAndDelReportsMissing) {
  test::TempDir dir;
  auto store = open_store(dir.path());
  Dbi db = *store->database("t");
  ASSERT_TRUE(store->write([&](Txn& t) { return t.insert(db, "k", "v"); }).ok());
  EXPECT_EQ(store->write([&](Txn& t) { return t.insert(db, "k", "w"); }).code(), Code::kAlreadyExists);
  EXPECT_EQ(store->write([&](Txn& t) { return t.del(db, "nope"); }).code(), Code::kNotFound);
}

TEST(Store, ScansInNumericOrderBothWays) {
  test::TempDir dir;
  auto store = open_store(dir.path());
  Dbi db = *store->database("t");
  ASSERT_TRUE(store->write([&](Txn& t) -> Status {
    for (uint64_t v : {300ull, 2ull, 70000ull, 1ull}) LLMOPS_RETURN_IF_ERROR(t.put(db, KeyBuilder().str("job").u64(v).take(), "x"));
    return t.put(db, KeyBuilder().str("jobz").u64(5).take(), "other prefix");
  }).ok());
  std::vector<uint64_t> fwd, back;
  std::string prefix = KeyBuilder().str("job").take();
  ASSERT_TRUE(store->read([&](Txn& t) -> Status {
    LLMOPS_RETURN_IF_ERROR(t.scan(db, prefix, [&](std::string_view k, std::string_view) {
      KeyReader r(k);
      r.str();
      fwd.push_back(*r.u64());
      return true;
    }));
    LLMOPS_RETURN_IF_ERROR(t.scan_reverse(db, prefix, [&](std::string_view k, std::string_view) {
      KeyReader r(k);
      r.str();
      back.push_back(*r.u64());
      return true;
    }));
    auto last = t.last_key(db, prefix);
    EXPECT_EQ(KeyReader(**last).str(), "job");
    return ok_status();
  }).ok());
  EXPECT_EQ(fwd, (std::vector<uint64_t>{1, 2, 300, 70000}));
  EXPECT_EQ(back, (std::vector<uint64_t>{70000, 300, 2, 1}));
}

TEST(Store, MapGrowsOnMapFull) {
  test::TempDir dir;
  auto store = open_store(dir.path(), 256 << 10, 64 << 20);
  Dbi db = *store->database("big");
  std::string value(64 << 10, 'v');
  for (int i = 0; i < 200; ++i) {  // ~12.5 MiB through a 256 KiB initial map
    ASSERT_TRUE(store->write([&](Txn& t) { return t.put(db, u64_key(static_cast<uint64_t>(i)), value); }).ok()) << i;
  }
  EXPECT_GT(store->stats().map_growths, 0u);
  EXPECT_GE(store->stats().map_bytes, 12u << 20);
  ASSERT_TRUE(store->read([&](Txn& t) -> Status {
    EXPECT_EQ(*t.count(db), 200u);
    return ok_status();
  }).ok());
}

TEST(Store, FullAtTheLimitSaysWhatToDo) {
  test::TempDir dir;
  auto store = open_store(dir.path(), 256 << 10, 512 << 10);
  Dbi db = *store->database("big");
  std::string value(64 << 10, 'v');
  Status last;
  for (int i = 0; i < 64 && last.ok(); ++i) {
    last = store->write([&](Txn& t) { return t.put(db, u64_key(static_cast<uint64_t>(i)), value); });
  }
  ASSERT_FALSE(last.ok());
  EXPECT_EQ(last.code(), Code::kResourceExhausted);
  EXPECT_NE(last.message().find("store.max-map-size-mb"), std::string::npos) << last.message();
}

TEST(Store, ConcurrentReadersAndWritersWhileGrowing) {
  test::TempDir dir;
  auto store = open_store(dir.path(), 256 << 10, 256 << 20);
  Dbi db = *store->database("c");
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0};
  std::thread reader([&] {
    while (!stop) {
      (void)store->read([&](Txn& t) { return t.scan(db, {}, [](auto, auto) { return true; }); });
      ++reads;
    }
  });
  std::string value(16 << 10, 'z');
  for (int i = 0; i < 400; ++i) {
    ASSERT_TRUE(store->write([&](Txn& t) { return t.put(db, u64_key(static_cast<uint64_t>(i)), value); }).ok());
  }
  stop = true;
  reader.join();
  EXPECT_GT(reads.load(), 0);
}

TEST(Store, ReopenKeepsDataAndAdoptsGrownMap) {
  test::TempDir dir;
  {
    auto store = open_store(dir.path(), 256 << 10);
    Dbi db = *store->database("p");
    std::string value(64 << 10, 'p');
    for (int i = 0; i < 30; ++i) ASSERT_TRUE(store->write([&](Txn& t) { return t.put(db, u64_key(static_cast<uint64_t>(i)), value); }).ok());
  }
  auto store = open_store(dir.path(), 256 << 10);
  Dbi db = *store->database("p");
  ASSERT_TRUE(store->read([&](Txn& t) -> Status {
    EXPECT_EQ(*t.count(db), 30u);
    return ok_status();
  }).ok());
  EXPECT_GT(store->stats().map_bytes, 256u << 10);
}

}  // namespace
}  // namespace llmops
