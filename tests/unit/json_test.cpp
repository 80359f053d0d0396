#include "json.h"

#include <gtest/gtest.h>

namespace llmops {
namespace {

TEST(Json, DepthCountsOnlyStructureOutsideStrings) {
  EXPECT_EQ(json_nesting_depth("{}", 100), 1u);
  EXPECT_EQ(json_nesting_depth("[[[]]]", 100), 3u);
  EXPECT_EQ(json_nesting_depth(R"({"a":"[[[[[[","b":[1]})", 100), 2u);
  EXPECT_EQ(json_nesting_depth(R"({"a":"\"[[[["})", 100), 1u);
  EXPECT_EQ(json_nesting_depth("42", 100), 0u);
}

TEST(Json, DeepInputIsRefusedBeforeParsing) {
  std::string deep(10000, '[');
  deep += std::string(10000, ']');
  auto r = parse_json_bounded(deep, 64);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("deeper than 64"), std::string::npos);
}

TEST(Json, InvalidJsonSaysWhere) {
  auto r = parse_json_bounded(R"({"a": tru})", 64);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("invalid JSON"), std::string::npos);
  EXPECT_FALSE(parse_json_bounded("", 64).ok());
  EXPECT_FALSE(parse_json_bounded("\xff\xfe", 64).ok());
}

TEST(Json, TypedAccessorsNameTheField) {
  Json j = {{"name", "x"}, {"n", 5}, {"s", "5"}};
  EXPECT_EQ(*json_string(j, "name"), "x");
  EXPECT_EQ(json_string(j, "n").status().message(), "field 'n' must be a string");
  EXPECT_EQ(json_string(j, "missing").status().message(), "missing field 'missing'");
  EXPECT_EQ(*json_int(j, "n", 0, 10), 5);
  EXPECT_FALSE(json_int(j, "n", 6, 10).ok());
  EXPECT_FALSE(json_int(j, "s", 0, 10).ok());
}

TEST(Json, DumpSurvivesInvalidUtf8) {
  Json j = std::string("ok\xff");
  EXPECT_NO_THROW(dump_json(j));
}

}  // namespace
}  // namespace llmops
