#include "sha256.h"

#include <gtest/gtest.h>

#include "unit/test_util.h"

namespace llmops {
namespace {

// FIPS 180-2 test vectors.
TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  Sha256 h;
  std::string chunk(1000, 'a');
  for (int i = 0; i < 1000; ++i) h.update(chunk);
  EXPECT_EQ(to_hex(h.finish()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, FileMatchesMemory) {
  test::TempDir dir;
  std::string data(3 << 20, 'x');
  data[12345] = 'y';
  test::write_text(dir.file("f"), data);
  auto d = sha256_file(dir.file("f"));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(to_hex(*d), sha256_hex(data));
  EXPECT_EQ(sha256_file(dir.file("missing")).status().code(), Code::kNotFound);
}

TEST(Sha256, HexCheck) {
  EXPECT_TRUE(is_sha256_hex(sha256_hex("x")));
  EXPECT_FALSE(is_sha256_hex("ABCDEF"));
  EXPECT_FALSE(is_sha256_hex(std::string(64, 'g')));
  EXPECT_FALSE(is_sha256_hex("../../etc/passwd"));
}

}  // namespace
}  // namespace llmops
