#include "blob_store.h"

#include <sys/stat.h>
#include <utime.h>

#include <gtest/gtest.h>

#include <filesystem>

#include "unit/test_util.h"

namespace llmops {
namespace {

struct Fixture {
  test::TempDir dir;
  std::unique_ptr<Store> store;
  std::unique_ptr<BlobStore> blobs;
  Fixture() {
    store = std::move(Store::open(dir.file("store"), StoreOptions{})).value();
    blobs = std::move(BlobStore::open(store.get(), dir.file("blobs"))).value();
  }
};

TEST(BlobStore, ContentAddressedAndDeduplicated) {
  Fixture f;
  auto a = f.blobs->put_bytes("weights", 1);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a->hex, sha256_hex("weights"));
  EXPECT_EQ(test::read_text(f.blobs->path_of(a->hex)), "weights");
  auto b = f.blobs->put_bytes("weights", 2);
  EXPECT_EQ(b->refs, 3u);
  EXPECT_EQ(f.blobs->list()->size(), 1u);
  struct stat st{};
  ASSERT_EQ(::stat(f.blobs->path_of(a->hex).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0222, 0u) << "blobs are read-only once published";
}

TEST(BlobStore, PutFileStreamsLargeFiles) {
  Fixture f;
  std::string big(5 << 20, 'q');
  big[7] = 'r';
  test::write_text(f.dir.file("in"), big);
  auto info = f.blobs->put_file(f.dir.file("in"), 1);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->size, big.size());
  EXPECT_EQ(info->hex, sha256_hex(big));
  EXPECT_TRUE(f.blobs->verify(info->hex).ok());
  EXPECT_EQ(f.blobs->put_file(f.dir.file("missing"), 1).status().code(), Code::kNotFound);
}

TEST(BlobStore, RefCountsNeverGoNegative) {
  Fixture f;
  auto a = *f.blobs->put_bytes("x", 1);
  EXPECT_EQ(f.blobs->ref(a.hex, -1)->refs, 0u);
  EXPECT_EQ(f.blobs->ref(a.hex, -1).status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(f.blobs->ref(std::string(64, 'a'), 1).status().code(), Code::kNotFound);
  EXPECT_EQ(f.blobs->ref("../etc", 1).status().code(), Code::kInvalidArgument);
}

TEST(BlobStore, GcRemovesUnreferencedOrphansAndStaleTemps) {
  Fixture f;
  auto keep = *f.blobs->put_bytes("keep", 1);
  auto drop = *f.blobs->put_bytes("drop me", 1);
  ASSERT_TRUE(f.blobs->ref(drop.hex, -1).ok());
  // An orphan: a published file whose record never got written (crash between the two).
  std::string orphan_hex = sha256_hex("orphan");
  std::filesystem::create_directories(std::filesystem::path(f.blobs->path_of(orphan_hex)).parent_path());
  test::write_text(f.blobs->path_of(orphan_hex), "orphan");
  // A temp file from a writer that died an hour ago, and a fresh one that must stay.
  test::write_text(f.dir.file("blobs/tmp/999.1"), "half");
  utimbuf old{::time(nullptr) - 3600, ::time(nullptr) - 3600};
  ::utime(f.dir.file("blobs/tmp/999.1").c_str(), &old);
  test::write_text(f.dir.file("blobs/tmp/999.2"), "in progress");

  auto rep = f.blobs->gc();
  ASSERT_TRUE(rep.ok());
  EXPECT_EQ(rep->blobs_removed, 1u);
  EXPECT_EQ(rep->orphan_files_removed, 1u);
  EXPECT_EQ(rep->temp_files_removed, 1u);
  EXPECT_EQ(rep->blobs_kept, 1u);
  EXPECT_TRUE(f.blobs->verify(keep.hex).ok());
  EXPECT_FALSE(std::filesystem::exists(f.blobs->path_of(drop.hex)));
  EXPECT_FALSE(std::filesystem::exists(f.blobs->path_of(orphan_hex)));
  EXPECT_TRUE(std::filesystem::exists(f.dir.file("blobs/tmp/999.2")));
}

TEST(BlobStore, VerifyDetectsChangedAndMissingFiles) {
  Fixture f;
  auto a = *f.blobs->put_bytes("original", 1);
  std::string p = f.blobs->path_of(a.hex);
  ::chmod(p.c_str(), 0644);
  test::write_text(p, "tampered");
  EXPECT_EQ(f.blobs->verify(a.hex).code(), Code::kDataLoss);
  ::unlink(p.c_str());
  EXPECT_EQ(f.blobs->verify(a.hex).code(), Code::kDataLoss);
}

TEST(BlobStore, AbandonedWriterLeavesNothing) {
  Fixture f;
  {
    auto w = f.blobs->begin();
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(w->write("partial", 7).ok());
  }
  EXPECT_TRUE(std::filesystem::is_empty(f.dir.file("blobs/tmp")));
  EXPECT_TRUE(f.blobs->list()->empty());
}

}  // namespace
}  // namespace llmops
