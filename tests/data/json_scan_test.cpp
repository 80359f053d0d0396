// The record scanner agrees with the full JSON parser: what it accepts parses to the same
// fields and strings; what it refuses the parser refuses too, or is left to the parser.
#include <gtest/gtest.h>

#include "data/json_scan.h"
#include "json.h"

namespace llmops::data {
namespace {

TEST(DataJsonScan, LocatesTopLevelFields) {
  const std::string line = R"( {"id": 7, "text": "caf\u00e9 \"q\"\n", "tags": ["a", {"b": null}], "ok": true, "x": -1.5e3} )";
  ScannedObject s;
  ASSERT_TRUE(scan_object(line, 64, &s));
  ASSERT_EQ(s.fields.size(), 5u);
  EXPECT_EQ(s.fields[0].name, "id");
  EXPECT_EQ(s.fields[0].type, JsonType::kNumber);
  const ScannedField* t = s.find("text");
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->escaped);
  EXPECT_EQ(decode_json_string(std::string_view(line).substr(t->begin, t->end - t->begin)), "caf\xC3\xA9 \"q\"\n");
  EXPECT_EQ(s.find("tags")->type, JsonType::kArray);
  EXPECT_EQ(s.find("ok")->type, JsonType::kBoolean);
  EXPECT_EQ(s.find("missing"), nullptr);
}

TEST(DataJsonScan, RefusesWhatTheParserRefuses) {
  for (const char* bad : {"", "[]", "\"s\"", "{", "{\"a\":}", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "{\"a\":01}", "{\"a\":1.}",
                          "{\"a\":tru}", "{\"a\":\"\\x\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00x\"}", "{\"a\":\"tab\there\"}",
                          "{\"a\":\"\xC3\"}", "{\"a\":1} x", "{\"a\":[1,2}", "{\"a\":\"\xED\xA0\x80\"}"}) {
    ScannedObject s;
    EXPECT_FALSE(scan_object(bad, 64, &s)) << bad;
  }
  ScannedObject s;
  EXPECT_FALSE(scan_object(R"({"a":1,"a":2})", 64, &s)) << "repeated names go to the full parser";
  std::string deep = std::string(70, '[') + std::string(70, ']');
  EXPECT_FALSE(scan_object("{\"a\":" + deep + "}", 64, &s));
  EXPECT_TRUE(scan_object("{\"a\":" + std::string(10, '[') + std::string(10, ']') + "}", 64, &s));
}

TEST(DataJsonScan, AgreesWithTheParserOnStringsAndEncoding) {
  for (const std::string text : {std::string("plain"), std::string("quote \" slash \\ / nl \n tab \t cr \r"), std::string("\x01\x1f ctl"),
                                 std::string("\xF0\x9F\x98\x80 emoji \xC3\xA9"), std::string()}) {
    std::string enc;
    append_json_string(enc, text);
    EXPECT_EQ(enc, dump_json(Json(text))) << "the same bytes as the serialiser";
    std::string line = "{\"t\":" + enc + "}";
    ScannedObject s;
    ASSERT_TRUE(scan_object(line, 64, &s)) << line;
    EXPECT_EQ(decode_json_string(std::string_view(line).substr(s.fields[0].begin, s.fields[0].end - s.fields[0].begin)), text);
  }
  std::string line = R"({"a":"x","b":"y"})";
  ScannedObject s;
  ASSERT_TRUE(scan_object(line, 64, &s));
  EXPECT_EQ(splice_string(line, s.fields[1].begin, s.fields[1].end, "new \"v\""), R"({"a":"x","b":"new \"v\""})");
}

}  // namespace
}  // namespace llmops::data
