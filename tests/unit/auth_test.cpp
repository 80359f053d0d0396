#include "auth.h"
#include "sha256.h"

#include <gtest/gtest.h>

#include "unit/test_util.h"

namespace llmops {
namespace {

TEST(Auth, KeysAreShownOnceAndStoredHashed) {
  test::TempDir dir;
  auto store = std::move(Store::open(dir.path(), StoreOptions{})).value();
  auto keys = std::move(KeyStore::open(store.get())).value();
  EXPECT_FALSE(keys->auth_required());
  const std::string secret = keys->create("ci-bot", "root")->second;
  EXPECT_EQ(secret.rfind("llmops-", 0), 0u);
  EXPECT_EQ(secret.size(), 7u + 43u);
  EXPECT_TRUE(keys->auth_required());
  EXPECT_EQ(keys->verify(secret)->name, "ci-bot");
  EXPECT_FALSE(keys->verify(secret + "x").has_value());
  EXPECT_FALSE(keys->verify("").has_value());
  // The secret is nowhere in the store.
  Dbi db = *store->database("api_keys");
  ASSERT_TRUE(store->read([&](Txn& t) {
    return t.scan(db, {}, [&](std::string_view, std::string_view v) {
      EXPECT_EQ(std::string(v).find(secret), std::string::npos);
      EXPECT_NE(std::string(v).find(sha256_hex(secret)), std::string::npos);
      return true;
    });
  }).ok());
}

TEST(Auth, RevokeTakesEffectAtOnceAndSurvivesReopen) {
  test::TempDir dir;
  std::string secret;
  {
    auto store = std::move(Store::open(dir.path(), StoreOptions{})).value();
    auto keys = std::move(KeyStore::open(store.get())).value();
    secret = keys->create("a", "root")->second;
    (void)keys->create("b", "root");
    EXPECT_EQ(keys->create("a", "root").status().code(), Code::kAlreadyExists);
    ASSERT_TRUE(keys->revoke("a").ok());
    EXPECT_FALSE(keys->verify(secret).has_value());
    EXPECT_EQ(keys->revoke("1").status().code(), Code::kFailedPrecondition);
    EXPECT_EQ(keys->revoke("nobody").status().code(), Code::kNotFound);
    EXPECT_TRUE(keys->create("a", "root").ok()) << "the name is free again once revoked";
  }
  auto store = std::move(Store::open(dir.path(), StoreOptions{})).value();
  auto keys = std::move(KeyStore::open(store.get())).value();
  EXPECT_FALSE(keys->verify(secret).has_value());
  EXPECT_EQ(keys->list()->size(), 3u);
  ASSERT_TRUE(keys->revoke("a").ok());
  ASSERT_TRUE(keys->revoke("b").ok());
  EXPECT_TRUE(keys->auth_required()) << "revoking every key keeps the endpoint closed";
}

TEST(Auth, NamesAreChecked) {
  test::TempDir dir;
  auto store = std::move(Store::open(dir.path(), StoreOptions{})).value();
  auto keys = std::move(KeyStore::open(store.get())).value();
  EXPECT_FALSE(keys->create("", "r").ok());
  EXPECT_FALSE(keys->create("has space", "r").ok());
  EXPECT_FALSE(keys->create("123", "r").ok()) << "all-digit names would be ambiguous with ids";
}

}  // namespace
}  // namespace llmops
