// safetensors: writer → reader round trips, hand-written files as the specification lays them
// out, sharded models, and one crafted file per refusal: each must give a typed error naming
// the problem, never a crash, a huge allocation or a silently wrong tensor.
#include "formats/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <optional>

#include "formats/detect.h"
#include "formats/ggml_types.h"
#include "unit/test_util.h"

namespace llmops::engine {
namespace {

using test::TempDir;

// A safetensors file from header JSON and a data section. The header is padded with spaces to
// a multiple of 8 unless pad is false; length overrides the 8-byte header length.
std::string st_file(std::string header, const std::string& data, bool pad = true, std::optional<uint64_t> length = {}) {
  if (pad) header.append((8 - header.size() % 8) % 8, ' ');
  uint64_t n = length.value_or(header.size());
  std::string out(8, '\0');
  for (int k = 0; k < 8; ++k) out[k] = static_cast<char>(n >> (8 * k));
  return out + header + data;
}

Result<std::unique_ptr<SafetensorsFile>> parse(const std::string& bytes, const SafetensorsLimits& limits = {}) {
  return SafetensorsFile::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), limits);
}

// The error message of a file that must be refused with kInvalidArgument.
std::string refusal(const std::string& bytes, const SafetensorsLimits& limits = {}) {
  auto r = parse(bytes, limits);
  if (r.ok()) return "(parsed)";
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().to_string();
  return r.status().message();
}

std::string f32_entry(const std::string& name, const std::string& shape, uint64_t begin, uint64_t end) {
  return "\"" + name + "\":{\"dtype\":\"F32\",\"shape\":" + shape + ",\"data_offsets\":[" + std::to_string(begin) + "," +
         std::to_string(end) + "]}";
}

uint16_t bf16_of(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return static_cast<uint16_t>(bits >> 16);  // exact for the values used here
}

#define EXPECT_CONTAINS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

TEST(Safetensors, RoundTripsF32F16Bf16WithMetadata) {
  TempDir dir;
  const std::vector<float> f32 = {1.5f, -2.0f, 0.0f, 3.25f, 1e-3f, -7.0f};
  const std::vector<float> halves = {0.5f, -2.0f, 1024.0f, 3.25f};
  std::vector<uint16_t> f16, bf16;
  for (float v : halves) f16.push_back(fp32_to_fp16(v));
  for (float v : halves) bf16.push_back(bf16_of(v));
  const int32_t ints[3] = {-1, 0, 7};
  const std::string path = dir.file("model.safetensors");
  ASSERT_TRUE(write_safetensors(path,
                                {{"w.f32", SafetensorsDtype::kF32, {2, 3}, f32.data()},
                                 {"w.f16", SafetensorsDtype::kF16, {4}, f16.data()},
                                 {"a.bf16", SafetensorsDtype::kBF16, {2, 1, 2}, bf16.data()},
                                 {"ints", SafetensorsDtype::kI32, {3}, ints},
                                 {"scalar", SafetensorsDtype::kF32, {}, &f32[3]},
                                 {"empty", SafetensorsDtype::kF16, {0, 5}, nullptr}},
                                {{"format", "pt"}, {"note", "h\xC3\xA9llo \"quoted\""}})
                  .ok());
  auto f = SafetensorsFile::open(path);
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  EXPECT_EQ((*f)->path(), path);
  EXPECT_EQ((*f)->metadata().at("format"), "pt");
  EXPECT_EQ((*f)->metadata().at("note"), "h\xC3\xA9llo \"quoted\"");
  // Data in the order written.
  std::vector<std::string> order;
  for (const auto& t : (*f)->tensors()) order.push_back(t.name);
  EXPECT_EQ(order, (std::vector<std::string>{"w.f32", "w.f16", "a.bf16", "ints", "scalar", "empty"}));

  const SafetensorsTensor* w = (*f)->tensor("w.f32");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->dtype, SafetensorsDtype::kF32);
  EXPECT_EQ(w->shape, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(w->bytes, 24u);
  std::vector<float> out(6);
  ASSERT_TRUE(safetensors_to_f32(*w, out.data()).ok());
  EXPECT_EQ(out, f32);
  for (const char* name : {"w.f16", "a.bf16"}) {
    const SafetensorsTensor* h = (*f)->tensor(name);
    ASSERT_NE(h, nullptr) << name;
    EXPECT_EQ(h->elements(), 4u);
    std::vector<float> got(4);
    ASSERT_TRUE(safetensors_to_f32(*h, got.data()).ok()) << name;
    EXPECT_EQ(got, halves) << name;
  }
  EXPECT_EQ((*f)->tensor("a.bf16")->shape, (std::vector<uint64_t>{2, 1, 2}));
  const SafetensorsTensor* i = (*f)->tensor("ints");
  EXPECT_EQ(i->dtype, SafetensorsDtype::kI32);
  EXPECT_EQ(std::memcmp(i->data, ints, sizeof ints), 0);
  EXPECT_EQ((*f)->tensor("scalar")->elements(), 1u);
  EXPECT_TRUE((*f)->tensor("scalar")->shape.empty());
  EXPECT_EQ((*f)->tensor("empty")->bytes, 0u);
  EXPECT_EQ((*f)->tensor("missing"), nullptr);

  // Only the file itself is left in the directory: the temp file was renamed.
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) entries += e.is_regular_file();
  EXPECT_EQ(entries, 1u);
}

TEST(Safetensors, WriterAlignsTheDataSectionWithSpaces) {
  TempDir dir;
  const float v[4] = {1, 2, 3, 4};
  for (size_t len = 1; len <= 17; ++len) {
    const std::string path = dir.file("a.safetensors");
    ASSERT_TRUE(write_safetensors(path, {{std::string(len, 'x'), SafetensorsDtype::kF32, {4}, v}}).ok());
    const std::string bytes = test::read_text(path);
    auto f = parse(bytes);
    ASSERT_TRUE(f.ok()) << f.status().to_string();
    EXPECT_EQ((*f)->data_start() % 8, 0u) << "name length " << len;
    EXPECT_EQ(bytes.size(), (*f)->data_start() + sizeof v);
    EXPECT_EQ(bytes[8], '{');
    // Padding is spaces after the closing brace, as the reference writer does.
    const std::string header = bytes.substr(8, (*f)->header_bytes());
    EXPECT_EQ(header.find_last_not_of(' '), header.rfind('}'));
    EXPECT_EQ(reinterpret_cast<uintptr_t>((*f)->tensors()[0].data) % 8, reinterpret_cast<uintptr_t>(bytes.data()) % 8);
  }
}

TEST(Safetensors, ReadsHandWrittenFilesAsTheSpecLaysThemOut) {
  // Keys in any order, __metadata__ anywhere, no padding (so the data is unaligned), and every
  // whole-byte dtype of the specification.
  std::string header = "{\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[4,8]},\"__metadata__\":{\"k\":\"v\"},"
                       "\"a\":{\"shape\":[1],\"data_offsets\":[0,4],\"dtype\":\"F32\"}";
  const char* dtypes[] = {"BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "I32", "U32", "F64", "I64", "U64"};
  uint64_t offset = 8;
  for (const char* d : dtypes) {
    uint64_t size = safetensors_dtype_bytes(*safetensors_dtype_from_name(d));
    header += ",\"t_" + std::string(d) + "\":{\"dtype\":\"" + d + "\",\"shape\":[3],\"data_offsets\":[" + std::to_string(offset) +
              "," + std::to_string(offset + 3 * size) + "]}";
    offset += 3 * size;
  }
  header += "}";
  float one = 1.0f;
  uint16_t b[2] = {bf16_of(-3.0f), bf16_of(0.25f)};
  std::string data(reinterpret_cast<const char*>(&one), 4);
  data.append(reinterpret_cast<const char*>(b), 4);
  data.append(offset - 8, '\x01');
  const std::string bytes = st_file(header + " ", data, /*pad=*/false);
  auto f = parse(bytes);
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  EXPECT_EQ((*f)->metadata().at("k"), "v");
  EXPECT_EQ((*f)->tensors().size(), 2 + std::size(dtypes));
  float got[2];
  ASSERT_TRUE(safetensors_to_f32(*(*f)->tensor("a"), got).ok());
  EXPECT_EQ(got[0], 1.0f);
  ASSERT_TRUE(safetensors_to_f32(*(*f)->tensor("b"), got).ok());
  EXPECT_EQ(got[0], -3.0f);
  EXPECT_EQ(got[1], 0.25f);
  for (const char* d : dtypes) {
    const SafetensorsTensor* t = (*f)->tensor("t_" + std::string(d));
    ASSERT_NE(t, nullptr) << d;
    EXPECT_STREQ(safetensors_dtype_name(t->dtype), d);
    EXPECT_EQ(t->bytes, 3u * safetensors_dtype_bytes(t->dtype));
    if (!safetensors_dtype_converts_to_f32(t->dtype)) {
      EXPECT_EQ(safetensors_to_f32(*t, got).code(), Code::kUnimplemented) << d;
    }
  }
  // A file with no tensors at all (the reference writes "{}" for an empty dict).
  EXPECT_TRUE(parse(st_file("{}", "")).ok());
}

TEST(Safetensors, ConvertsRangesAndRefusesRangesPastTheTensor) {
  const std::vector<float> v = {0, 1, 2, 3, 4, 5};
  const std::string bytes = st_file("{" + f32_entry("v", "[2,3]", 0, 24) + "}", std::string(reinterpret_cast<const char*>(v.data()), 24));
  auto f = parse(bytes);
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  const SafetensorsTensor& t = (*f)->tensors()[0];
  float row[3];
  ASSERT_TRUE(safetensors_to_f32(t, 3, 3, row).ok());
  EXPECT_EQ(row[0], 3.0f);
  EXPECT_EQ(row[2], 5.0f);
  EXPECT_TRUE(safetensors_to_f32(t, 6, 0, row).ok());
  EXPECT_EQ(safetensors_to_f32(t, 4, 3, row).code(), Code::kInvalidArgument);
  EXPECT_EQ(safetensors_to_f32(t, 7, 0, row).code(), Code::kInvalidArgument);
  EXPECT_EQ(safetensors_to_f32(t, 1, UINT64_MAX, row).code(), Code::kInvalidArgument);
}

TEST(Safetensors, RefusesMalformedHeaders) {
  const std::string good = st_file("{" + f32_entry("a", "[2]", 0, 8) + "}", std::string(8, '\0'));
  ASSERT_TRUE(parse(good).ok());
  // Header length: at or past the file's size, huge, and a file shorter than the length itself.
  EXPECT_CONTAINS(refusal(st_file("{}", "", true, 8 + 2)), "runs past the end");
  EXPECT_CONTAINS(refusal(st_file("{" + f32_entry("a", "[2]", 0, 8) + "}", std::string(8, '\0'), true, good.size())),
                  "runs past the end");
  EXPECT_CONTAINS(refusal(st_file("{}", "", true, 1ull << 62)), "larger than");
  EXPECT_CONTAINS(refusal(st_file("{}", "", true, UINT64_MAX)), "larger than");
  EXPECT_CONTAINS(refusal(good.substr(0, 5)), "shorter than its 8-byte header length");
  EXPECT_CONTAINS(refusal(""), "shorter than");
  // Truncated anywhere: every cut is refused, and says the file is corrupt or truncated.
  for (size_t cut = 0; cut < good.size(); ++cut) EXPECT_CONTAINS(refusal(good.substr(0, cut)), "corrupt or truncated");
  // Not JSON, not an object, not UTF-8, nested too deep.
  EXPECT_CONTAINS(refusal(st_file("{\"a\":{\"dtype\":\"F32\",", "")), "invalid JSON");
  EXPECT_CONTAINS(refusal(st_file("[1,2]", "")), "not a JSON object");
  EXPECT_CONTAINS(refusal(st_file("", "")), "not a JSON object");
  EXPECT_CONTAINS(refusal(st_file("{\"__metadata__\":{\"k\":\"\xFF\"}}", "")), "invalid");
  EXPECT_CONTAINS(refusal(st_file("{\"__metadata__\":{\"k\":{\"x\":[1]}}}", "")), "nested deeper");
  EXPECT_CONTAINS(refusal(st_file("{} trailing", "")), "invalid JSON");
}

TEST(Safetensors, RefusesBadEntries) {
  auto one = [](const std::string& entry, size_t data = 8) { return refusal(st_file("{" + entry + "}", std::string(data, '\0'))); };
  EXPECT_CONTAINS(one("\"a\":{\"dtype\":\"F4\",\"shape\":[2],\"data_offsets\":[0,8]}"), "does not know");
  EXPECT_CONTAINS(one("\"a\":{\"dtype\":\"float32\",\"shape\":[2],\"data_offsets\":[0,8]}"), "'a' has dtype 'float32'");
  EXPECT_CONTAINS(one("\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}"), "\"dtype\" is missing");
  EXPECT_CONTAINS(one("\"a\":{\"dtype\":1,\"shape\":[2],\"data_offsets\":[0,8]}"), "\"dtype\" is missing or not a string");
  EXPECT_CONTAINS(one("\"a\":[1]"), "tensor 'a': its entry is not an object");
  EXPECT_CONTAINS(one("\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}"), "\"shape\" is missing");
  EXPECT_CONTAINS(one("\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}"), "not a non-negative integer");
  EXPECT_CONTAINS(one("\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}"), "not a non-negative integer");
  EXPECT_CONTAINS(one("\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}"), "not a non-negative integer");
  EXPECT_CONTAINS(one("\"a\":{\"dtype\":\"F32\",\"shape\":[2]}"), "\"data_offsets\" is missing");
  EXPECT_CONTAINS(one("\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}"), "two non-negative integers");
  EXPECT_CONTAINS(one("\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}"), "two non-negative integers");
  EXPECT_CONTAINS(one("\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,1e1]}"), "two non-negative integers");
  EXPECT_CONTAINS(one("\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,18446744073709551616]}"), "two non-negative");
  // Out of order: the end before the beginning.
  EXPECT_CONTAINS(one(f32_entry("a", "[2]", 8, 0)), "tensor 'a': data_offsets [8, 0] end before they begin");
  // Bytes that do not match the shape and dtype.
  EXPECT_CONTAINS(one(f32_entry("a", "[3]", 0, 8)), "tensor 'a': data_offsets [0, 8] hold 8 bytes but shape [3] of F32 needs 12");
  EXPECT_CONTAINS(one(f32_entry("a", "[0]", 0, 8)), "needs 0");
  // Past the data section.
  EXPECT_CONTAINS(one(f32_entry("a", "[4]", 0, 16)), "run past the end of the 8-byte data section");
  EXPECT_CONTAINS(one(f32_entry("a", "[2]", UINT64_MAX - 7, UINT64_MAX)), "run past the end");
  // Shape products that overflow: in the element count, and in the byte count.
  EXPECT_CONTAINS(one(f32_entry("a", "[4294967296,4294967296,2]", 0, 8)), "tensor 'a': the size of shape [4294967296, 4294967296, 2] overflows");
  EXPECT_CONTAINS(one(f32_entry("a", "[4611686018427387904]", 0, 8)), "overflows");
  EXPECT_CONTAINS(one(f32_entry("a", "[18446744073709551615,2,0]", 0, 0), 0), "overflows");
  EXPECT_TRUE(parse(st_file("{" + f32_entry("a", "[18446744073709551615,0]", 0, 0) + "}", "")).ok());  // as the reference: no overflow
  // Too many dimensions.
  std::string dims = "[1";
  for (int k = 0; k < 40; ++k) dims += ",1";
  EXPECT_CONTAINS(one(f32_entry("a", dims + "]", 0, 4), 4), "dimensions, more than");
  // Metadata must map strings to strings.
  EXPECT_CONTAINS(refusal(st_file("{\"__metadata__\":{\"k\":1}}", "")), "__metadata__ 'k' is not a string");
  EXPECT_CONTAINS(refusal(st_file("{\"__metadata__\":[\"k\"]}", "")), "__metadata__ is not an object");
}

TEST(Safetensors, RefusesOverlapsHolesAndDuplicates) {
  auto two = [](const std::string& a, const std::string& b, size_t data) {
    return refusal(st_file("{" + a + "," + b + "}", std::string(data, '\0')));
  };
  EXPECT_CONTAINS(two(f32_entry("a", "[2]", 0, 8), f32_entry("b", "[2]", 4, 12), 12), "tensors 'a' and 'b' overlap");
  EXPECT_CONTAINS(two(f32_entry("a", "[2]", 0, 8), f32_entry("b", "[2]", 0, 8), 8), "overlap");
  EXPECT_CONTAINS(two(f32_entry("a", "[2]", 0, 8), f32_entry("e", "[0]", 4, 4), 8), "overlap");
  EXPECT_CONTAINS(two(f32_entry("a", "[1]", 0, 4), f32_entry("b", "[1]", 8, 12), 12), "hole of 4 bytes between 'a' and 'b'");
  EXPECT_CONTAINS(two(f32_entry("a", "[1]", 4, 8), f32_entry("b", "[1]", 8, 12), 12), "hole of 4 bytes before 'a'");
  EXPECT_CONTAINS(refusal(st_file("{" + f32_entry("a", "[1]", 0, 4) + "}", std::string(8, '\0'))), "4 bytes after the last tensor");
  EXPECT_CONTAINS(refusal(st_file("{}", std::string(3, '\0'))), "3 bytes after the last tensor");
  // Adjacent and zero-size tensors are fine.
  auto ok = parse(st_file("{" + f32_entry("b", "[1]", 4, 8) + "," + f32_entry("a", "[1]", 0, 4) + "," + f32_entry("z", "[0,3]", 8, 8) + "}",
                          std::string(8, '\0')));
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_EQ((*ok)->tensors()[0].name, "a");
  // Duplicate names (a JSON DOM keeps only the last), duplicate fields, duplicate metadata keys.
  EXPECT_CONTAINS(two(f32_entry("a", "[1]", 0, 4), f32_entry("a", "[1]", 4, 8), 8), "header names 'a' twice");
  EXPECT_CONTAINS(refusal(st_file("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}", std::string(4, '\0'))),
                  "header entry 'a' has key 'dtype' twice");
  EXPECT_CONTAINS(refusal(st_file("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", "")), "'__metadata__' has key 'k' twice");
  EXPECT_CONTAINS(refusal(st_file("{\"__metadata__\":{},\"__metadata__\":{}}", "")), "names '__metadata__' twice");
  // The tensor-count limit.
  SafetensorsLimits limits;
  limits.max_tensors = 1;
  EXPECT_CONTAINS(refusal(st_file("{" + f32_entry("a", "[1]", 0, 4) + "," + f32_entry("b", "[1]", 4, 8) + "}", std::string(8, '\0')), limits),
                  "lists 2 tensors, more than the 1 allowed");
}

TEST(Safetensors, WriterRefusesBadInputAndLeavesNoFile) {
  TempDir dir;
  const float v[2] = {1, 2};
  const std::string path = dir.file("w.safetensors");
  auto write = [&](std::vector<SafetensorsTensorSource> tensors, std::map<std::string, std::string> meta = {}) {
    return write_safetensors(path, tensors, meta);
  };
  EXPECT_CONTAINS(write({{"a", SafetensorsDtype::kF32, {2}, v}, {"a", SafetensorsDtype::kF32, {2}, v}}).message(), "given twice");
  EXPECT_EQ(write({{"", SafetensorsDtype::kF32, {2}, v}}).code(), Code::kInvalidArgument);
  EXPECT_EQ(write({{"__metadata__", SafetensorsDtype::kF32, {2}, v}}).code(), Code::kInvalidArgument);
  EXPECT_CONTAINS(write({{"bad\xC0\xAF", SafetensorsDtype::kF32, {2}, v}}).message(), "not valid UTF-8");
  EXPECT_CONTAINS(write({{"a", SafetensorsDtype::kF32, {2}, v}}, {{"k", "\xED\xA0\x80"}}).message(), "not valid UTF-8");
  EXPECT_CONTAINS(write({{"a", SafetensorsDtype::kF32, {1ull << 62}, v}}).message(), "overflows");
  EXPECT_CONTAINS(write({{"a", SafetensorsDtype::kF32, {2}, nullptr}}).message(), "has no data");
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_NE(write_safetensors(dir.file("no/such/dir/w.safetensors"), {}).code(), Code::kOk);
  // Names that need escaping survive the round trip.
  const std::string odd = "q\"uote\\back\nslash\x01 \xE2\x82\xAC";
  ASSERT_TRUE(write({{odd, SafetensorsDtype::kF32, {2}, v}}).ok());
  auto f = SafetensorsFile::open(path);
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  EXPECT_NE((*f)->tensor(odd), nullptr);
}

// A sharded model: two shards and an index, as transformers' save_pretrained lays them out.
class SafetensorsModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(write_safetensors(dir_.file("model-00001-of-00002.safetensors"),
                                  {{"embed", SafetensorsDtype::kF32, {2, 2}, a_}, {"norm", SafetensorsDtype::kF32, {2}, a_}})
                    .ok());
    ASSERT_TRUE(write_safetensors(dir_.file("model-00002-of-00002.safetensors"), {{"out", SafetensorsDtype::kF32, {4}, b_}}).ok());
  }
  void write_index(const std::string& weight_map, const std::string& name = "model.safetensors.index.json") {
    test::write_text(dir_.file(name), "{\"metadata\":{\"total_size\":40},\"weight_map\":{" + weight_map + "}}");
  }
  static std::string standard_map() {
    return "\"embed\":\"model-00001-of-00002.safetensors\",\"norm\":\"model-00001-of-00002.safetensors\","
           "\"out\":\"model-00002-of-00002.safetensors\"";
  }
  std::string refusal_of(const std::string& path) {
    auto m = SafetensorsModel::open(path);
    return m.ok() ? std::string("(opened)") : m.status().message();
  }
  TempDir dir_;
  const float a_[4] = {1, 2, 3, 4};
  const float b_[4] = {5, 6, 7, 8};
};

TEST_F(SafetensorsModelTest, OpensShardedIndexAndLooksUpAcrossShards) {
  write_index(standard_map());
  for (const std::string& path : {dir_.path(), dir_.file("model.safetensors.index.json")}) {
    auto m = SafetensorsModel::open(path);
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    EXPECT_EQ((*m)->shards().size(), 2u);
    EXPECT_EQ((*m)->tensors().size(), 3u);
    const SafetensorsTensor* out = (*m)->tensor("out");
    ASSERT_NE(out, nullptr);
    float got[4];
    ASSERT_TRUE(safetensors_to_f32(*out, got).ok());
    EXPECT_EQ(got[3], 8.0f);
    EXPECT_EQ((*m)->tensor("embed")->shape, (std::vector<uint64_t>{2, 2}));
    EXPECT_EQ((*m)->tensor("nope"), nullptr);
  }
}

TEST_F(SafetensorsModelTest, OpensSingleFilesAndDirectories) {
  auto file = SafetensorsModel::open(dir_.file("model-00002-of-00002.safetensors"));
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  EXPECT_NE((*file)->tensor("out"), nullptr);
  EXPECT_EQ((*file)->tensor("embed"), nullptr);
  // Two shards and no index: which to load is ambiguous.
  EXPECT_CONTAINS(refusal_of(dir_.path()), "several safetensors files");
  // model.safetensors wins over the other files.
  ASSERT_TRUE(write_safetensors(dir_.file("model.safetensors"), {{"only", SafetensorsDtype::kF32, {4}, a_}}).ok());
  auto dir = SafetensorsModel::open(dir_.path());
  ASSERT_TRUE(dir.ok()) << dir.status().to_string();
  EXPECT_EQ((*dir)->tensors().size(), 1u);
  EXPECT_NE((*dir)->tensor("only"), nullptr);
  // A directory with exactly one *.safetensors file (an adapter, say).
  TempDir adapter;
  ASSERT_TRUE(write_safetensors(adapter.file("adapter_model.safetensors"), {{"lora_A", SafetensorsDtype::kF32, {4}, a_}}).ok());
  auto one = SafetensorsModel::open(adapter.path());
  ASSERT_TRUE(one.ok()) << one.status().to_string();
  EXPECT_NE((*one)->tensor("lora_A"), nullptr);
  TempDir empty;
  EXPECT_EQ(SafetensorsModel::open(empty.path()).status().code(), Code::kNotFound);
  EXPECT_EQ(SafetensorsModel::open(empty.file("missing")).status().code(), Code::kNotFound);
}

TEST_F(SafetensorsModelTest, RefusesBadIndexes) {
  const std::string index = dir_.file("model.safetensors.index.json");
  // A shard the index names that is not on disk.
  write_index(standard_map() + ",\"extra\":\"model-00003-of-00003.safetensors\"");
  auto missing = SafetensorsModel::open(index);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_CONTAINS(missing.status().message(), "shard 'model-00003-of-00003.safetensors'");
  // A tensor the index places in a shard that does not hold it.
  write_index("\"embed\":\"model-00001-of-00002.safetensors\",\"out\":\"model-00001-of-00002.safetensors\"");
  EXPECT_CONTAINS(refusal_of(index), "places tensor 'out' in shard 'model-00001-of-00002.safetensors', which does not hold it");
  // Shard names that leave the directory.
  for (const char* shard : {"../model-00001-of-00002.safetensors", "sub/model.safetensors", "/etc/passwd", "..", ""}) {
    write_index("\"embed\":\"" + std::string(shard) + "\"");
    EXPECT_CONTAINS(refusal_of(index), "not a plain file name");
  }
  // A tensor in two shards.
  ASSERT_TRUE(write_safetensors(dir_.file("model-00002-of-00002.safetensors"),
                                {{"out", SafetensorsDtype::kF32, {4}, b_}, {"norm", SafetensorsDtype::kF32, {2}, b_}})
                  .ok());
  write_index(standard_map());
  EXPECT_CONTAINS(refusal_of(index), "tensor 'norm' is in two shards");
  // A tensor listed twice in the weight map (a JSON DOM would keep only the last).
  write_index("\"out\":\"model-00001-of-00002.safetensors\",\"out\":\"model-00002-of-00002.safetensors\"");
  EXPECT_CONTAINS(refusal_of(index), "'weight_map' lists 'out' twice");
  // Not an index at all, or one with the wrong types.
  test::write_text(index, "{\"metadata\":{}}");
  EXPECT_CONTAINS(refusal_of(index), "no \"weight_map\"");
  write_index("");
  EXPECT_CONTAINS(refusal_of(index), "no \"weight_map\"");
  write_index("\"out\":2");
  EXPECT_CONTAINS(refusal_of(index), "not a file name");
  test::write_text(index, "{\"weight_map\":");
  EXPECT_CONTAINS(refusal_of(index), "invalid JSON");
  // A corrupt shard is reported with its name.
  write_index(standard_map());
  test::write_text(dir_.file("model-00002-of-00002.safetensors"), std::string(8, '\xFF'));
  EXPECT_CONTAINS(refusal_of(dir_.path()), "shard 'model-00002-of-00002.safetensors'");
}

TEST(SafetensorsDetect, RecognisesFilesAndHuggingFaceDirectories) {
  TempDir dir;
  const float v[2] = {1, 2};
  ASSERT_TRUE(write_safetensors(dir.file("w.safetensors"), {{"a", SafetensorsDtype::kF32, {2}, v}}).ok());
  EXPECT_EQ(*detect_model_format(dir.file("w.safetensors")), ModelFormat::kSafetensors);
  ASSERT_TRUE(write_safetensors(dir.file("empty.bin"), {}).ok());  // "{}" and nothing else
  EXPECT_EQ(*detect_model_format(dir.file("empty.bin")), ModelFormat::kSafetensors);
  // A header length past the file is not a safetensors file.
  test::write_text(dir.file("short.bin"), st_file("{}", "", true, 64));
  EXPECT_FALSE(detect_model_format(dir.file("short.bin")).ok());

  std::filesystem::create_directories(dir.file("hf"));
  test::write_text(dir.file("hf/config.json"), "{}");
  EXPECT_CONTAINS(detect_model_format(dir.file("hf")).status().message(), "no *.safetensors weights");
  ASSERT_TRUE(write_safetensors(dir.file("hf/model.safetensors"), {{"a", SafetensorsDtype::kF32, {2}, v}}).ok());
  EXPECT_EQ(*detect_model_format(dir.file("hf")), ModelFormat::kHuggingFaceDir);
  std::filesystem::create_directories(dir.file("sharded"));
  test::write_text(dir.file("sharded/config.json"), "{}");
  test::write_text(dir.file("sharded/model.safetensors.index.json"), "{\"weight_map\":{}}");
  EXPECT_EQ(*detect_model_format(dir.file("sharded")), ModelFormat::kHuggingFaceDir);
}

}  // namespace
}  // namespace llmops::engine
