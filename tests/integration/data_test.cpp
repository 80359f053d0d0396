// The data stage through the daemon and llmopsctl: imports with bad input reported and nothing
// half-written on failure, uploads through the socket, operations chained with lineage,
// deterministic splits, export matching the content hash, statistics, and 4xx for bad requests.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "integration/harness.h"
#include "sha256.h"

namespace llmops::test {
namespace {

// A corpus with good records, bad ones of each kind and PII, as a directory of files.
std::string make_corpus(const TempDir& t) {
  const std::string dir = t.file("corpus");
  std::filesystem::create_directories(dir + "/more");
  write_text(dir + "/a.jsonl",
             "{\"text\":\"Alpha record about trains.\",\"id\":1}\n"
             "{\"text\":\"Mail bob@example.com or call +44 20 7946 0958.\",\"id\":2}\n"
             "this line is not json\n"
             "{\"text\":\"alpha   RECORD about trains.\",\"id\":3}\n"
             "[\"an\",\"array\"]\n");
  write_text(dir + "/b.csv", "question,answer\n\"What is 2+2?\",4\n\"a,b\",\"say \"\"x\"\"\"\nonly-one-field\n");
  write_text(dir + "/more/c.txt", "First paragraph.\n\nSecond paragraph, card 4111 1111 1111 1111.\n");
  write_text(dir + "/more/d.txt", std::string("\x7f" "ELF\0\0binary", 11));
  write_text(dir + "/more/ignored.bin", "no known format");
  return dir;
}

TEST(Data, ImportReportsBadRecordsAndExportMatchesTheContentHash) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  const std::string corpus = make_corpus(d.dir());
  auto r = d.ctl({"data", "import", corpus, "--name", "docs", "--split", "paragraph"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("made docs@1"), std::string::npos) << r.out;
  Json v = ctl_json(d, {"data", "show", "docs@1"});
  EXPECT_EQ(v["records"], 7) << v.dump();  // 3 JSONL + 2 CSV + 2 paragraphs
  const Json& rep = v["report"];
  EXPECT_EQ(rep["files"], 4);
  EXPECT_EQ(rep["skipped_by_reason"]["malformed_json"], 1);
  EXPECT_EQ(rep["skipped_by_reason"]["not_an_object"], 1);
  EXPECT_EQ(rep["skipped_by_reason"]["wrong_field_count"], 1);
  EXPECT_EQ(rep["skipped_by_reason"]["binary_file"], 1);
  EXPECT_EQ(rep["skipped_files"].size(), 1u);
  bool line_named = false;
  for (const auto& i : rep["issues"]) line_named |= i["file"] == corpus + "/a.jsonl" && i["line"] == 3;
  EXPECT_TRUE(line_named) << rep.dump();
  EXPECT_EQ(v["lineage"]["operation"], "import");
  EXPECT_EQ(v["schema"]["question"]["present"], 2);

  const std::string out = d.dir().file("docs.jsonl");
  ASSERT_EQ(d.ctl({"data", "export", "docs@1", "--output", out}).exit_code, 0);
  const std::string exported = read_text(out);
  EXPECT_EQ(sha256_hex(exported), v["content_hash"].get<std::string>());
  EXPECT_EQ(std::count(exported.begin(), exported.end(), '\n'), 7);

  Json head = ctl_json(d, {"data", "head", "docs", "--limit", "2", "--offset", "1"});
  ASSERT_EQ(head["records"].size(), 2u);
  EXPECT_EQ(head["records"][0]["id"], 2);
  Json s1 = ctl_json(d, {"data", "sample", "docs", "--n", "3", "--seed", "5"});
  Json s2 = ctl_json(d, {"data", "sample", "docs", "--n", "3", "--seed", "5"});
  EXPECT_EQ(s1["records"].size(), 3u);
  EXPECT_EQ(s1, s2) << "the same seed gives the same sample";
}

TEST(Data, AFailedImportLeavesNoVersionAndNoShard) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  const std::string corpus = make_corpus(d.dir());
  auto r = d.ctl({"data", "import", corpus + "/a.jsonl", "--name", "strict", "--strict"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("a.jsonl:3"), std::string::npos) << r.out << r.err;
  EXPECT_TRUE(ctl_json(d, {"data", "list"})["datasets"].empty());
  Json blobs = ctl_json(d, {"blobs", "list"});
  ASSERT_TRUE(blobs.contains("blobs")) << blobs.dump();
  for (const auto& b : blobs["blobs"]) EXPECT_EQ(b["refs"], 0) << b.dump();
  EXPECT_EQ(d.ctl({"data", "import", "/no/such/file.jsonl", "--name", "x"}).exit_code, 3);
  EXPECT_EQ(d.ctl({"data", "import", corpus + "/more/ignored.bin", "--name", "x"}).exit_code, 2) << "format unknown: a 400";
  EXPECT_EQ(d.ctl({"data", "import", corpus + "/a.jsonl", "--name", "-bad"}).exit_code, 2);
  // A request the module refuses is a 4xx and the daemon keeps serving.
  EXPECT_EQ(d.admin("POST", "/v1/modules/data/ops/nonsense", "{}").status, 400);
  EXPECT_EQ(d.admin("POST", "/v1/modules/data/ops/dedup", "{not json").status, 400);
  EXPECT_EQ(d.admin("GET", "/v1/modules/data/versions/missing@1").status, 404);
  EXPECT_EQ(d.admin("GET", "/v1/modules/data/versions/bad!name").status, 400);
  EXPECT_EQ(d.get("/healthz").status, 200);
}

TEST(Data, UploadThroughTheSocketGivesTheSameVersionAsAServerPath) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  const std::string corpus = make_corpus(d.dir());
  ASSERT_EQ(d.ctl({"data", "import", corpus + "/a.jsonl", corpus + "/b.csv", "--name", "server"}).exit_code, 0);
  auto up = d.ctl({"data", "import", corpus + "/a.jsonl", corpus + "/b.csv", "--name", "uploaded", "--upload"});
  ASSERT_EQ(up.exit_code, 0) << up.out << up.err;
  EXPECT_NE(up.out.find("uploaded a.jsonl"), std::string::npos) << up.out;
  Json a = ctl_json(d, {"data", "show", "server"}), b = ctl_json(d, {"data", "show", "uploaded"});
  EXPECT_EQ(a["content_hash"], b["content_hash"]);
  EXPECT_EQ(a["records"], 5);
  // The uploads were given back once imported: only the shared shard is referenced.
  int referenced = 0;
  Json blobs = ctl_json(d, {"blobs", "list"});
  for (const auto& blob : blobs["blobs"]) referenced += blob["refs"].get<int>() > 0;
  EXPECT_EQ(referenced, 1) << blobs.dump();
}

TEST(Data, OperationsChainWithLineageAndReports) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  const std::string corpus = make_corpus(d.dir());
  ASSERT_EQ(d.ctl({"data", "import", corpus + "/a.jsonl", corpus + "/more/c.txt", "--name", "docs", "--split", "paragraph"}).exit_code, 0);
  ASSERT_EQ(d.ctl({"data", "clean", "docs", "--normalize", "nfkc"}).exit_code, 0);
  ASSERT_EQ(d.ctl({"data", "dedup", "docs"}).exit_code, 0);
  ASSERT_EQ(d.ctl({"data", "pii", "docs"}).exit_code, 0);
  Json dedup = ctl_json(d, {"data", "show", "docs@3"});
  EXPECT_EQ(dedup["lineage"]["parents"], Json::array({"docs@2"}));
  EXPECT_EQ(dedup["report"]["by_reason"]["dropped_exact_duplicate"], 1) << dedup["report"].dump();
  EXPECT_EQ(dedup["records"], 4);
  Json pii = ctl_json(d, {"data", "show", "docs@4"});
  EXPECT_EQ(pii["report"]["pii_by_type"]["email"], 1);
  EXPECT_EQ(pii["report"]["pii_by_type"]["phone"], 1);
  EXPECT_EQ(pii["report"]["pii_by_type"]["credit_card"], 1);
  const std::string all = read_text([&] {
    std::string f = d.dir().file("pii.jsonl");
    d.ctl({"data", "export", "docs@4", "--output", f});
    return f;
  }());
  EXPECT_EQ(all.find("bob@example.com"), std::string::npos);
  EXPECT_NE(all.find("<EMAIL>"), std::string::npos);
  EXPECT_NE(all.find("<CREDIT_CARD>"), std::string::npos);

  Json diff = ctl_json(d, {"data", "diff", "docs@2", "docs@3"});
  EXPECT_EQ(diff["removed"], 1);
  EXPECT_EQ(diff["added"], 0);
  EXPECT_TRUE(diff["b_derived_from_a"].get<bool>());

  ASSERT_EQ(d.ctl({"data", "schema", "docs", "--required", "id", "--types", "id=number"}).exit_code, 0);
  Json q = ctl_json(d, {"data", "show", "docs.quarantine"});
  EXPECT_EQ(q["records"], 2) << "the two paragraphs have no id";
  EXPECT_EQ(ctl_json(d, {"data", "show", "docs@5"})["records"], 2);

  // The split depends only on each record's content: twice the same, and no record in two parts.
  ASSERT_EQ(d.ctl({"data", "split", "docs@4", "--train", "0.5", "--validation", "0.25", "--test", "0.25"}).exit_code, 0);
  ASSERT_EQ(d.ctl({"data", "split", "docs@4", "--train", "0.5", "--validation", "0.25", "--test", "0.25", "--output", "again"}).exit_code, 0);
  uint64_t total = 0;
  for (const char* part : {"train", "validation", "test"}) {
    auto a = d.ctl({"--json", "data", "show", std::string("docs.") + part});
    auto b = d.ctl({"--json", "data", "show", std::string("again.") + part});
    EXPECT_EQ(a.exit_code, b.exit_code);
    if (a.exit_code != 0) continue;
    EXPECT_EQ(Json::parse(a.out)["content_hash"], Json::parse(b.out)["content_hash"]);
    total += Json::parse(a.out)["records"].get<uint64_t>();
  }
  EXPECT_EQ(total, 4u);

  ASSERT_EQ(d.ctl({"data", "map", "docs@5", "--to", "chat", "--user", "Record {id}", "--assistant", "{text}"}).exit_code, 0);
  Json ex = ctl_json(d, {"data", "head", "docs.examples"});
  ASSERT_FALSE(ex["records"].empty());
  EXPECT_EQ(ex["records"][0]["messages"][0]["content"], "Record 1");
  EXPECT_EQ(ex["records"][0]["messages"][1]["role"], "assistant");

  EXPECT_EQ(d.ctl({"data", "rm", "docs"}).exit_code, 2) << "removing every version needs --all";
  EXPECT_EQ(d.ctl({"data", "rm", "docs@1"}).exit_code, 0);
  EXPECT_EQ(d.ctl({"data", "show", "docs@1"}).exit_code, 3);
  EXPECT_EQ(ctl_json(d, {"data", "show", "docs@2"})["lineage"]["parents"], Json::array({"docs@1"})) << "lineage keeps the name";
}

TEST(Data, StatsDescribeTheDataset) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  const std::string corpus = make_corpus(d.dir());
  ASSERT_EQ(d.ctl({"data", "import", corpus + "/a.jsonl", "--name", "docs"}).exit_code, 0);
  ASSERT_EQ(d.ctl({"data", "near-dedup", "docs", "--threshold", "0.5"}).exit_code, 0);
  Json s = ctl_json(d, {"data", "stats", "docs@1"});
  EXPECT_EQ(s["records"], 3);
  EXPECT_EQ(s["chars"]["count"], 3);
  EXPECT_EQ(s["exact_duplicates"]["records_beyond_first"], 1);
  EXPECT_EQ(s["pii"]["email"], 1);
  EXPECT_EQ(s["languages"]["en"], 3);
  EXPECT_EQ(s["fields"]["id"]["fill_rate"], 1.0);
  EXPECT_FALSE(s["top_ngrams"]["1"].empty());
  auto text = d.ctl({"data", "stats", "docs@1"});
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("length in characters"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("#"), std::string::npos) << "a terminal histogram";
}

}  // namespace
}  // namespace llmops::test

namespace llmops::test {
namespace {

// An import reading a FIFO that a test thread feeds: it can be caught mid-way, with shards
// (1 MiB each here) already written.
struct FifoFeed {
  std::string path;
  std::thread writer;
  std::atomic<bool> release{false};
  explicit FifoFeed(const std::string& p) : path(p) {
    ::signal(SIGPIPE, SIG_IGN);
    EXPECT_EQ(::mkfifo(path.c_str(), 0644), 0);
    writer = std::thread([this] {
      int fd = ::open(path.c_str(), O_WRONLY);
      if (fd < 0) return;
      const std::string line = "{\"text\":\"" + std::string(1000, 'x') + "\"}\n";
      auto write_records = [&](int n) {
        for (int i = 0; i < n; ++i) {
          if (::write(fd, line.data(), line.size()) < 0) return;
        }
      };
      write_records(4000);  // ~4 MB: some shards are written, then the import waits for more
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      write_records(3000);
      ::close(fd);
    });
  }
  ~FifoFeed() {
    release = true;
    writer.join();
  }
};

int submit_import(DaemonProcess& d, const std::string& path) {
  auto r = d.ctl({"--json", "data", "import", path, "--name", "streamed", "--detach"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return Json::parse(r.out, nullptr, false).value("job", -1);
}

Json job_of(DaemonProcess& d, int id) { return Json::parse(d.ctl({"--json", "jobs", "show", std::to_string(id)}).out, nullptr, false); }

// The import has read past its third 1 MiB shard and waits on the FIFO for more.
bool mid_import(DaemonProcess& d, int id) {
  return eventually([&] { return job_of(d, id).value("message", std::string()).find("3072 records") != std::string::npos; }, 20000);
}

void expect_nothing_left(DaemonProcess& d) {
  EXPECT_TRUE(ctl_json(d, {"data", "list"})["datasets"].empty());
  Json blobs = ctl_json(d, {"blobs", "list"});
  EXPECT_FALSE(blobs["blobs"].empty()) << "shards were written before the stop";
  for (const auto& b : blobs["blobs"]) EXPECT_EQ(b["refs"], 0) << b.dump();
}

TEST(Data, ACancelledImportLeavesNoVersionAndGivesItsShardsBack) {
  DaemonProcess d({}, "data.shard-mb = 1\n");
  ASSERT_TRUE(d.start()) << d.log();
  FifoFeed feed(d.dir().file("feed.jsonl"));
  int id = submit_import(d, feed.path);
  ASSERT_TRUE(mid_import(d, id)) << job_of(d, id).dump();
  EXPECT_EQ(d.ctl({"jobs", "cancel", std::to_string(id)}).exit_code, 0);
  feed.release = true;  // the import reads on and sees the cancel
  ASSERT_TRUE(eventually([&] { return job_of(d, id)["state"] == "cancelled"; }, 20000)) << job_of(d, id).dump();
  expect_nothing_left(d);
}

TEST(Data, AnImportKilledMidWayIsInterruptedAndItsShardsAreGivenBackAtTheNextStart) {
  DaemonProcess d({}, "data.shard-mb = 1\n");
  ASSERT_TRUE(d.start()) << d.log();
  FifoFeed feed(d.dir().file("feed.jsonl"));
  int id = submit_import(d, feed.path);
  ASSERT_TRUE(mid_import(d, id)) << job_of(d, id).dump();
  d.kill9();
  feed.release = true;
  ASSERT_TRUE(d.start()) << d.log();
  EXPECT_EQ(job_of(d, id)["state"], "interrupted");
  expect_nothing_left(d);
}

}  // namespace
}  // namespace llmops::test

namespace llmops::test {
namespace {

// A corpus of several thousand records (several pipeline batches) with duplicates, messy
// whitespace and PII.
std::string make_big_corpus(const TempDir& t) {
  std::string text;
  for (int i = 0; i < 3000; ++i) {
    const int k = i % 2200;  // records 2200.. repeat the first 800, with other whitespace
    std::string body = "Record " + std::to_string(k) + " talks about   topic " + std::to_string(k % 37);
    if (k % 11 == 0) body += " mail user" + std::to_string(k) + "@example.org";
    if (i % 13 == 0) body = "  " + body + "\r\n";
    text += Json{{"text", body}, {"n", i % 2200}}.dump() + "\n";
  }
  const std::string path = t.file("big.jsonl");
  write_text(path, text);
  return path;
}

TEST(Data, APipelineInOnePassEqualsTheStepsOneAfterAnother) {
  DaemonProcess d({}, "data.threads = 2\n");
  ASSERT_TRUE(d.start()) << d.log();
  const std::string corpus = make_big_corpus(d.dir());
  ASSERT_EQ(d.ctl({"data", "import", corpus, "--name", "big"}).exit_code, 0);
  ASSERT_EQ(d.ctl({"data", "clean", "big@1", "--output", "seq"}).exit_code, 0);
  ASSERT_EQ(d.ctl({"data", "dedup", "seq@1"}).exit_code, 0);
  ASSERT_EQ(d.ctl({"data", "pii", "seq@2"}).exit_code, 0);
  auto piped = d.ctl({"data", "pipeline", "big@1", "--steps", "clean,dedup,pii", "--output", "piped"});
  ASSERT_EQ(piped.exit_code, 0) << piped.out << piped.err;
  Json seq = ctl_json(d, {"data", "show", "seq@3"}), one = ctl_json(d, {"data", "show", "piped"});
  EXPECT_EQ(seq["records"], 2200);
  EXPECT_EQ(one["content_hash"], seq["content_hash"]) << "same records, same order";
  const Json& steps = one["report"]["steps"];
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[1]["by_reason"]["dropped_exact_duplicate"], 800);
  EXPECT_EQ(steps[2]["pii_by_type"]["email"], ctl_json(d, {"data", "show", "seq@3"})["report"]["pii_by_type"]["email"]);
  EXPECT_EQ(one["lineage"]["parents"], Json::array({"big@1"}));

  // The same steps on the way in.
  auto in = d.ctl({"data", "import", corpus, "--name", "direct", "--then", "clean,dedup,pii"});
  ASSERT_EQ(in.exit_code, 0) << in.out << in.err;
  EXPECT_EQ(ctl_json(d, {"data", "show", "direct"})["content_hash"], seq["content_hash"]);
  EXPECT_EQ(d.ctl({"data", "pipeline", "big@1", "--steps", "clean,nonsense"}).exit_code, 2);
  EXPECT_EQ(d.ctl({"data", "pipeline", "big@1", "--steps-json", R"([{"op":"clean","normalize":"nfx"}])"}).exit_code, 2);
}

}  // namespace
}  // namespace llmops::test

namespace llmops::test {
namespace {

TEST(Data, FilterByLengthTokensAndLanguageAndDecontaminate) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  const std::string model = synthetic_model("tiny", "F32");
  ASSERT_FALSE(model.empty());
  write_text(d.dir().file("mixed.jsonl"),
             Json{{"text", "The quick brown fox jumps over the lazy dog and then runs far away into the forest."}}.dump() + "\n" +
                 Json{{"text", "Der schnelle braune Fuchs springt über den faulen Hund und läuft dann weit weg in den Wald."}}.dump() + "\n" +
                 Json{{"text", "tiny"}}.dump() + "\n" +
                 Json{{"text", "A benchmark question: what is the capital of France and why is it Paris in every atlas?"}}.dump() + "\n");
  write_text(d.dir().file("eval.jsonl"),
             Json{{"text", "Q: what is the capital of France and why is it Paris in every atlas? A: history."}}.dump() + "\n");
  ASSERT_EQ(d.ctl({"data", "import", d.dir().file("mixed.jsonl"), "--name", "mixed"}).exit_code, 0);
  ASSERT_EQ(d.ctl({"data", "import", d.dir().file("eval.jsonl"), "--name", "evalset"}).exit_code, 0);

  ASSERT_EQ(d.ctl({"data", "filter", "mixed@1", "--min-chars", "10", "--languages", "en", "--tag-language", "--output", "en"}).exit_code, 0);
  Json en = ctl_json(d, {"data", "show", "en"});
  EXPECT_EQ(en["records"], 2);
  EXPECT_EQ(en["report"]["by_reason"]["dropped_too_few_chars"], 1);
  EXPECT_EQ(en["report"]["by_reason"]["dropped_language"], 1);
  EXPECT_EQ(en["report"]["languages_seen"]["de"], 1);
  EXPECT_EQ(en["schema"]["language"]["present"], 2);

  // Token lengths with a model's own tokenizer: the same limit in characters and in tokens
  // keeps different records (a token is several characters).
  auto tok = d.ctl({"data", "filter", "mixed@1", "--max-tokens", "30", "--tokenizer", model, "--output", "short"});
  ASSERT_EQ(tok.exit_code, 0) << tok.out << tok.err;
  Json shortv = ctl_json(d, {"data", "show", "short"});
  EXPECT_GE(shortv["report"]["by_reason"]["dropped_too_many_tokens"].get<int>(), 1) << shortv["report"].dump();
  EXPECT_EQ(d.ctl({"data", "filter", "mixed@1", "--max-tokens", "30"}).exit_code, 2) << "token limits need a tokenizer";

  ASSERT_EQ(d.ctl({"data", "decontaminate", "mixed@1", "--eval", "evalset", "--ngram", "8", "--output", "clean"}).exit_code, 0);
  Json dec = ctl_json(d, {"data", "show", "clean"});
  EXPECT_EQ(dec["records"], 3);
  EXPECT_EQ(dec["report"]["by_reason"]["dropped_shares_ngram_with_eval"], 1);
  EXPECT_EQ(dec["lineage"]["parents"], Json::array({"mixed@1", "evalset@1"}));
}

}  // namespace
}  // namespace llmops::test
