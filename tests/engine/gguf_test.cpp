// The GGUF reader on real files and on crafted bad ones: every malformed header must give a
// typed error, never a crash or a huge allocation.
#include "formats/gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "engine_test_util.h"

namespace llmops::engine {
namespace {

// Writes GGUF bytes field by field so tests can build valid files and break them on purpose.
class Builder {
 public:
  Builder& u32(uint32_t v) { return raw(&v, 4); }
  Builder& u64(uint64_t v) { return raw(&v, 8); }
  Builder& f32(float v) { return raw(&v, 4); }
  Builder& str(const std::string& s) {
    u64(s.size());
    return raw(s.data(), s.size());
  }
  Builder& raw(const void* p, size_t n) {
    bytes.append(static_cast<const char*>(p), n);
    return *this;
  }
  Builder& header(uint64_t tensors, uint64_t kvs, uint32_t version = 3) { return u32(0x46554747).u32(version).u64(tensors).u64(kvs); }
  Builder& kv_u32(const std::string& k, uint32_t v) { return str(k).u32(4).u32(v); }
  Builder& kv_str(const std::string& k, const std::string& v) { return str(k).u32(8).str(v); }
  Builder& tensor_info(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(ne.size()));
    for (auto d : ne) u64(d);
    return u32(type).u64(offset);
  }
  Builder& pad(size_t align = 32) {
    while (bytes.size() % align != 0) bytes.push_back('\0');
    return *this;
  }
  Result<std::unique_ptr<GgufFile>> parse() const {
    return GgufFile::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
  std::string bytes;
};

Builder valid() {
  Builder b;
  b.header(2, 3).kv_str("general.architecture", "llama").kv_u32("llama.block_count", 1);
  b.str("tokenizer.ggml.tokens").u32(9).u32(8).u64(2).str("<s>").str("hi");
  b.tensor_info("a", {4, 2}, 0, 0).tensor_info("b", {32}, 8, 32).pad();
  for (int i = 0; i < 8; ++i) b.f32(static_cast<float>(i));
  uint16_t one = 0x3C00;  // Q8_0 block: d = 1.0, values 0..31
  b.raw(&one, 2);
  for (int8_t i = 0; i < 32; ++i) b.raw(&i, 1);
  return b;
}

std::string error_of(const Builder& b) {
  auto r = b.parse();
  return r.ok() ? std::string("(parsed)") : r.status().message();
}

TEST(Gguf, ParsesMetadataAndTensors) {
  Builder bytes = valid();  // parse() keeps views into these bytes
  auto g = bytes.parse();
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  EXPECT_EQ((*g)->version(), 3u);
  EXPECT_EQ(*(*g)->get_string("general.architecture"), "llama");
  EXPECT_EQ(*(*g)->get_uint("llama.block_count"), 1u);
  auto toks = (*g)->get_strings("tokenizer.ggml.tokens");
  ASSERT_TRUE(toks.ok());
  EXPECT_EQ(toks->at(1), "hi");
  EXPECT_EQ((*g)->get_uint("general.architecture").status().code(), Code::kInvalidArgument);
  EXPECT_EQ((*g)->get_uint("nope").status().code(), Code::kNotFound);
  const GgufTensor* a = (*g)->tensor("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->rows(), 2u);
  float v[8];
  dequantize_row(a->type, a->data, v, 8);
  EXPECT_EQ(v[7], 7.0f);
  const GgufTensor* b = (*g)->tensor("b");
  float q[32];
  dequantize_row(b->type, b->data, q, 32);
  EXPECT_EQ(q[31], 31.0f);
}

TEST(Gguf, MalformedFilesGiveTypedErrors) {
  Builder b = valid();
  EXPECT_NE(error_of(Builder{b.bytes.substr(0, 3)}).find("truncated"), std::string::npos);
  for (size_t cut : {size_t{20}, size_t{60}, b.bytes.size() - 10}) {
    EXPECT_NE(error_of(Builder{b.bytes.substr(0, cut)}), "(parsed)") << "cut at " << cut;
  }
  Builder bad_magic = b;
  bad_magic.bytes[0] = 'X';
  EXPECT_NE(error_of(bad_magic).find("bad magic"), std::string::npos);
  EXPECT_NE(error_of(Builder().header(0, 0, 1)).find("version 1"), std::string::npos);
  EXPECT_NE(error_of(Builder().header(1ull << 40, 0)).find("more than the file can hold"), std::string::npos);
  EXPECT_NE(error_of(Builder().header(0, 1ull << 40)).find("more than the file can hold"), std::string::npos);
  // A string whose length runs past the end.
  Builder long_key;
  long_key.header(0, 1).u64(1ull << 62).bytes.append(64, 'k');
  EXPECT_NE(error_of(long_key).find("past the end"), std::string::npos);
  // An array of a billion elements in a tiny file.
  EXPECT_NE(error_of(Builder().header(0, 1).str("k").u32(9).u32(4).u64(1000000000)), "(parsed)");
  EXPECT_NE(error_of(Builder().header(0, 1).str("k").u32(9).u32(8).u64(1ull << 60)), "(parsed)");
  // Duplicate keys.
  EXPECT_NE(error_of(Builder().header(0, 2).kv_u32("k", 1).kv_u32("k", 2)).find("duplicate metadata key"), std::string::npos);
  // Alignment 0 and not a power of two.
  EXPECT_NE(error_of(Builder().header(0, 1).kv_u32("general.alignment", 0)).find("power of two"), std::string::npos);
  EXPECT_NE(error_of(Builder().header(0, 1).kv_u32("general.alignment", 48)).find("power of two"), std::string::npos);
  // Unknown value type.
  EXPECT_NE(error_of(Builder().header(0, 1).str("k").u32(99)).find("unknown value type"), std::string::npos);
}

TEST(Gguf, MalformedTensorsGiveTypedErrors) {
  auto one = [](const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset, size_t data = 64) {
    Builder b;
    b.header(1, 0).tensor_info(name, std::move(ne), type, offset).pad();
    b.bytes.append(data, '\0');
    return error_of(b);
  };
  EXPECT_EQ(one("t", {4, 4}, 0, 0), "(parsed)");
  EXPECT_NE(one("t", {4, 4}, 0, 32).find("past the end"), std::string::npos);
  EXPECT_NE(one("t", {4, 4}, 0, 8).find("not aligned"), std::string::npos);
  EXPECT_NE(one("t", {4, 4}, 77, 0).find("unknown type 77"), std::string::npos);
  EXPECT_NE(one("t", {1ull << 40, 1ull << 40}, 0, 0).find("impossible shape"), std::string::npos);
  EXPECT_NE(one("t", {0}, 0, 0).find("impossible shape"), std::string::npos);
  EXPECT_NE(one("t", {33}, 8, 0).find("whole number"), std::string::npos);
  EXPECT_NE(one("t", {1, 1, 1, 1, 1}, 0, 0).find("dimensions"), std::string::npos);
  Builder dup;
  dup.header(2, 0).tensor_info("t", {4}, 0, 0).tensor_info("t", {4}, 0, 32).pad();
  dup.bytes.append(64, '\0');
  EXPECT_NE(error_of(dup).find("duplicate tensor name"), std::string::npos);
  Builder overlap;
  overlap.header(2, 0).tensor_info("a", {16}, 0, 0).tensor_info("b", {16}, 0, 32).pad();
  overlap.bytes.append(128, '\0');
  EXPECT_NE(error_of(overlap).find("overlap"), std::string::npos);
}

TEST(Gguf, OpensTheSharedModels) {
  LLMOPS_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  auto g = GgufFile::open(test::shared_path("models/stories260K/stories260K.gguf"));
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  EXPECT_EQ((*g)->tensors().size(), 48u);
  EXPECT_EQ(*(*g)->get_string("general.architecture"), "llama");
  auto tiny = GgufFile::open(test::shared_path("models/llama-2-tiny-random/llama-2-tiny-random.gguf"));
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ((*tiny)->get_strings("tokenizer.ggml.tokens")->size(), 32000u);
  EXPECT_EQ(GgufFile::open(test::shared_path("models/stories260K/stories260K.bin")).status().code(), Code::kInvalidArgument);
}

TEST(GgmlTypes, HalfPrecisionConversions) {
  EXPECT_EQ(fp16_to_fp32(0x3C00), 1.0f);
  EXPECT_EQ(fp16_to_fp32(0xC000), -2.0f);
  EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_TRUE(std::isinf(fp16_to_fp32(0x7C00)));
  for (uint32_t h = 0; h < 0x7C00; ++h) {
    ASSERT_EQ(fp32_to_fp16(fp16_to_fp32(static_cast<uint16_t>(h))), h) << h;
  }
  EXPECT_EQ(fp32_to_fp16(1e9f), 0x7C00);
  EXPECT_EQ(bf16_to_fp32(0x3F80), 1.0f);
}

TEST(GgmlTypes, LegacyQuantBlocksDequantiseByHand) {
  uint8_t q4[18] = {};
  uint16_t d = fp32_to_fp16(0.5f);
  std::memcpy(q4, &d, 2);
  q4[2] = 0x9F;  // low nibble 15 -> (15-8)*0.5 = 3.5 at index 0; high nibble 9 -> 0.5 at index 16
  float y[32];
  dequantize_row(GgmlType::kQ4_0, q4, y, 32);
  EXPECT_EQ(y[0], 3.5f);
  EXPECT_EQ(y[16], 0.5f);
  EXPECT_EQ(y[1], -4.0f);
  uint8_t q5[22] = {};
  std::memcpy(q5, &d, 2);
  q5[2] = 0x01;  // qh bit 0 set: element 0 gets +16
  q5[6] = 0x0F;
  dequantize_row(GgmlType::kQ5_0, q5, y, 32);
  EXPECT_EQ(y[0], (31 - 16) * 0.5f);
  EXPECT_EQ(y[16], (0 - 16) * 0.5f);
}

TEST(GgmlTypes, KQuantScalesDecode) {
  // Q4_K: d = 1, dmin = 0.5, sub-block 0 scale 2 min 4: element = 2*q - 2.
  uint8_t b[144] = {};
  uint16_t one = fp32_to_fp16(1.0f), half = fp32_to_fp16(0.5f);
  std::memcpy(b, &one, 2);
  std::memcpy(b + 2, &half, 2);
  b[4] = 2;      // scale of sub-block 0
  b[4 + 4] = 4;  // min of sub-block 0
  b[16] = 0x35;  // first byte: low nibble 5 (sub-block 0), high nibble 3 (sub-block 1)
  float y[256];
  dequantize_row(GgmlType::kQ4_K, b, y, 256);
  EXPECT_EQ(y[0], 2 * 5 - 2.0f);
  EXPECT_EQ(y[1], -2.0f);
  EXPECT_EQ(y[32], 0.0f) << "sub-block 1 has scale 0 and min 0";
  // Q6_K: d = 1, scale[0] = 3, element 0 = 3 * (q - 32) with q = 0x3F -> 93.
  uint8_t k6[210] = {};
  std::memcpy(k6 + 208, &one, 2);
  k6[192] = 3;
  k6[0] = 0x0F;
  k6[128] = 0x03;
  dequantize_row(GgmlType::kQ6_K, k6, y, 256);
  EXPECT_EQ(y[0], 3 * (63 - 32));
  EXPECT_EQ(y[1], 3 * (0 - 32));
}

}  // namespace
}  // namespace llmops::engine

#include "formats/detect.h"
#include "unit/test_util.h"

namespace llmops::engine {
namespace {

TEST(Detect, RecognisesFormatsAndRefusesPickles) {
  llmops::test::TempDir dir;
  llmops::test::write_text(dir.file("m.gguf"), "GGUF\x03\0\0\0");
  EXPECT_EQ(*detect_model_format(dir.file("m.gguf")), ModelFormat::kGguf);
  llmops::test::write_text(dir.file("model.pt"), std::string("PK\x03\x04", 4) + "archive/data.pkl");
  auto pt = detect_model_format(dir.file("model.pt"));
  ASSERT_FALSE(pt.ok());
  EXPECT_NE(pt.status().message().find("never opens them"), std::string::npos);
  EXPECT_NE(pt.status().message().find("safetensors"), std::string::npos);
  llmops::test::write_text(dir.file("old.ckpt"), std::string("\x80\x02}q\x00", 5));
  EXPECT_FALSE(detect_model_format(dir.file("old.ckpt")).ok());
  std::string st_header = "{\"a\":{}}";
  std::string st(8, '\0');
  st[0] = static_cast<char>(st_header.size());
  llmops::test::write_text(dir.file("w.safetensors"), st + st_header + "xxxx");
  EXPECT_EQ(*detect_model_format(dir.file("w.safetensors")), ModelFormat::kSafetensors);
  std::filesystem::create_directories(dir.file("hf"));
  llmops::test::write_text(dir.file("hf/config.json"), "{}");
  EXPECT_FALSE(detect_model_format(dir.file("hf")).ok());  // config.json without weights
  llmops::test::write_text(dir.file("hf/model.safetensors"), st + st_header + "xxxx");
  EXPECT_EQ(*detect_model_format(dir.file("hf")), ModelFormat::kHuggingFaceDir);
  std::filesystem::create_directories(dir.file("torchdir"));
  llmops::test::write_text(dir.file("torchdir/pytorch_model.bin"), "PK");
  EXPECT_NE(detect_model_format(dir.file("torchdir")).status().message().find("pickle"), std::string::npos);
  EXPECT_EQ(detect_model_format(dir.file("missing")).status().code(), Code::kNotFound);
  llmops::test::write_text(dir.file("text.txt"), "hello world, this is not a model at all!!");
  EXPECT_FALSE(detect_model_format(dir.file("text.txt")).ok());
}

TEST(Detect, SharedModels) {
  LLMOPS_REQUIRE_SHARED("models/stories260K/stories260K.bin");
  EXPECT_EQ(*detect_model_format(test::shared_path("models/stories260K/stories260K.bin")), ModelFormat::kLlama2c);
  EXPECT_EQ(*detect_model_format(test::shared_path("models/stories260K/stories260K.gguf")), ModelFormat::kGguf);
}

}  // namespace
}  // namespace llmops::engine
