// Collection: each input format, compressed input, and bad input that is skipped and reported
// with file, line and reason (or fails the whole read under strict), never a crash.
#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include "data/readers.h"

namespace llmops::data {
namespace {

struct Read {
  std::vector<Json> records;
  ImportReport report;
  Status status;
};

Read read(const std::string& data, const std::string& format, ImportOptions opt = {}) {
  Read r;
  auto src = ByteSource::from_string(data);
  r.status = read_records(*src, format, "input", opt, [&](Json&& j) { r.records.push_back(std::move(j)); return ok_status(); }, r.report);
  return r;
}

std::string gzip(const std::string& s) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(compressBound(s.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(s.data()));
  z.avail_in = static_cast<uInt>(s.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string zstd(const std::string& s) {
  std::string out(ZSTD_compressBound(s.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), s.data(), s.size(), 3));
  return out;
}

TEST(DataReaders, JsonLinesWithBadLinesReported) {
  Read r = read("{\"text\":\"a\"}\n\nnot json\n\"plain\"\n[1]\n{\"text\":\"b\"}\r\n{\"text\":\"no newline at end\"}", "jsonl");
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  ASSERT_EQ(r.records.size(), 4u);
  EXPECT_EQ(r.records[1], Json({{"text", "plain"}}));
  EXPECT_EQ(r.records[2]["text"], "b");
  EXPECT_EQ(r.report.skipped, 2u);
  EXPECT_EQ(r.report.skipped_by_reason["malformed_json"], 1u);
  EXPECT_EQ(r.report.skipped_by_reason["not_an_object"], 1u);
  ASSERT_EQ(r.report.issues.size(), 2u);
  EXPECT_EQ(r.report.issues[0].file, "input");
  EXPECT_EQ(r.report.issues[0].line, 3u);
  EXPECT_EQ(r.report.issues[1].line, 5u);
}

TEST(DataReaders, StrictFailsOnTheFirstBadRecord) {
  ImportOptions opt;
  opt.strict = true;
  Read r = read("{\"text\":\"a\"}\nnot json\n{\"text\":\"b\"}\n", "jsonl", opt);
  EXPECT_EQ(r.status.code(), Code::kInvalidArgument);
  EXPECT_NE(r.status.message().find("input:2"), std::string::npos) << r.status.message();
}

TEST(DataReaders, InvalidUtf8IsRepairedOrDroppedAndNulBytesSkipped) {
  std::string data = "{\"text\":\"caf\xC3\"}\n{\"text\":\"ok\"}\n";
  Read repaired = read(data, "jsonl");
  ASSERT_EQ(repaired.records.size(), 2u);
  EXPECT_EQ(repaired.records[0]["text"], "caf\xEF\xBF\xBD");
  EXPECT_EQ(repaired.report.utf8_repaired, 1u);
  ImportOptions drop;
  drop.drop_invalid_utf8 = true;
  Read dropped = read(data, "jsonl", drop);
  EXPECT_EQ(dropped.records.size(), 1u);
  EXPECT_EQ(dropped.report.skipped_by_reason["invalid_utf8"], 1u);
  Read nul = read(std::string("{\"text\":\"a\"}\n{\"te\0xt\":1}\n", 24), "jsonl");
  EXPECT_EQ(nul.records.size(), 1u);
  EXPECT_EQ(nul.report.skipped_by_reason["nul_byte"], 1u);
}

TEST(DataReaders, AnOverlongLineIsSkippedWithoutBeingHeld) {
  ImportOptions opt;
  opt.max_record_bytes = 1024;
  std::string big = "{\"text\":\"" + std::string(5 << 20, 'x') + "\"}\n{\"text\":\"after\"}\n";
  Read r = read(big, "jsonl", opt);
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0]["text"], "after");
  EXPECT_EQ(r.report.skipped_by_reason["too_large"], 1u);
  EXPECT_EQ(r.report.issues[0].line, 1u);
}

TEST(DataReaders, JsonArrayIsSplitIntoRecords) {
  Read r = read("\xEF\xBB\xBF [ {\"text\": \"a, [b]\"},\n {\"n\": {\"x\": [1,2]}}, \"s\", 3 ]", "json");
  ASSERT_TRUE(r.status.ok());
  ASSERT_EQ(r.records.size(), 3u);
  EXPECT_EQ(r.records[0]["text"], "a, [b]");
  EXPECT_EQ(r.records[1]["n"]["x"][1], 2);
  EXPECT_EQ(r.report.skipped_by_reason["not_an_object"], 1u);
  EXPECT_EQ(read("[{\"a\":1}, {\"b\":", "json").report.skipped_by_reason["malformed_json"], 1u);  // truncated
  EXPECT_EQ(read("{\"a\":1}", "json").report.skipped_by_reason["not_an_array"], 1u);
  EXPECT_EQ(read("", "json").report.skipped_by_reason["empty_file"], 1u);
}

TEST(DataReaders, CsvFollowsRfc4180) {
  Read r = read("name,quote\r\nann,\"said \"\"hi\"\"\"\r\n\"bob, jr\",\"two\nlines\"\r\nshort\r\ncarl,ok\r\n", "csv");
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  ASSERT_EQ(r.records.size(), 3u);
  EXPECT_EQ(r.records[0], Json({{"name", "ann"}, {"quote", "said \"hi\""}}));
  EXPECT_EQ(r.records[1], Json({{"name", "bob, jr"}, {"quote", "two\nlines"}}));
  EXPECT_EQ(r.records[2]["name"], "carl");
  EXPECT_EQ(r.report.skipped_by_reason["wrong_field_count"], 1u);
  EXPECT_EQ(r.report.issues[0].line, 5u);  // the row's first line, counting the quoted newline
  Read bad = read("a,b\n\"open,1\n2,3\n", "csv");
  EXPECT_EQ(bad.report.skipped_by_reason["malformed_csv"], 1u);
  Read tsv = read("a\tb\n1\t2\n", "tsv");
  ASSERT_EQ(tsv.records.size(), 1u);
  EXPECT_EQ(tsv.records[0], Json({{"a", "1"}, {"b", "2"}}));
  EXPECT_EQ(read("", "csv").report.skipped_by_reason["empty_file"], 1u);
}

TEST(DataReaders, TextByFileLineOrParagraph) {
  const std::string text = "one\ntwo\n\n\nthree\n";
  ImportOptions opt;
  EXPECT_EQ(read(text, "text", opt).records.size(), 1u);
  EXPECT_EQ(read(text, "text", opt).records[0]["text"], "one\ntwo\n\n\nthree");
  opt.split = "line";
  EXPECT_EQ(read(text, "text", opt).records.size(), 3u);
  opt.split = "paragraph";
  Read p = read(text, "markdown", opt);
  ASSERT_EQ(p.records.size(), 2u);
  EXPECT_EQ(p.records[0]["text"], "one\ntwo");
  EXPECT_EQ(p.records[1]["source"], "input");
  Read bin = read(std::string("\x7f" "ELF\0\0\0", 7), "text");
  EXPECT_TRUE(bin.records.empty());
  EXPECT_EQ(bin.report.skipped_by_reason["binary_file"], 1u);
}

TEST(DataReaders, GzipAndZstdAreToldByMagicBytes) {
  std::string lines;
  for (int i = 0; i < 5000; ++i) lines += "{\"i\":" + std::to_string(i) + "}\n";
  EXPECT_EQ(read(gzip(lines), "jsonl").records.size(), 5000u);
  EXPECT_EQ(read(gzip("{\"a\":1}\n") + gzip("{\"a\":2}\n"), "jsonl").records.size(), 2u);  // concatenated members
  EXPECT_EQ(read(zstd(lines), "jsonl").records.size(), 5000u);
  std::string cut = gzip(lines);
  cut.resize(cut.size() / 2);
  Read r = read(cut, "jsonl");
  EXPECT_TRUE(r.status.ok());  // the records before the damage are kept, the file reported
  EXPECT_EQ(r.report.skipped_by_reason["damaged_file"], 1u);
  EXPECT_GT(r.records.size(), 0u);
}

TEST(DataReaders, FormatFromName) {
  EXPECT_EQ(format_from_name("/x/data.JSONL.gz"), "jsonl");
  EXPECT_EQ(format_from_name("a.ndjson"), "jsonl");
  EXPECT_EQ(format_from_name("a.json.zst"), "json");
  EXPECT_EQ(format_from_name("a.tsv"), "tsv");
  EXPECT_EQ(format_from_name("README.md"), "markdown");
  EXPECT_EQ(format_from_name("a.bin"), "");
}

}  // namespace
}  // namespace llmops::data
