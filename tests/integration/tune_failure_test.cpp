// The tuning stage's other paths: training from scratch with a shape and a learned vocabulary
// (no base model, no ../shared), early stopping, and the ways a run ends badly — a NaN loss, a
// cancel, a disk that fills during a checkpoint — each keeping the last good checkpoint; an
// empty dataset refused before any job.
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "integration/harness.h"
#include "sha256.h"

namespace llmops::test {
namespace {

// A corpus a small model can learn: a little grammar of who did what where.
void import_grammar(DaemonProcess& d, const std::string& name, int n) {
  const char* who[] = {"The cat", "A little dog", "Old Tom", "The girl"};
  const char* did[] = {"sat on", "ran to", "looked at", "sang near"};
  const char* what[] = {"the mat", "the red door", "the big tree", "the river"};
  std::mt19937 rng(11);
  std::string text;
  for (int i = 0; i < n; ++i) {
    text += Json{{"text", std::string(who[rng() % 4]) + " " + did[rng() % 4] + " " + what[rng() % 4] + ". Then it was time for bed."}}.dump() + "\n";
  }
  write_text(d.dir().file(name + ".jsonl"), text);
  ASSERT_EQ(d.ctl({"data", "import", d.dir().file(name + ".jsonl"), "--name", name}).exit_code, 0);
}

Json wait_run(DaemonProcess& d, const std::string& run, int seconds) {
  Json r;
  for (int i = 0; i < seconds * 10; ++i) {
    r = ctl_json(d, {"tune", "show", run});
    const std::string st = r.value("status", "");
    if (st == "done" || st == "failed" || st == "cancelled") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return r;
}

bool wait_checkpoint(DaemonProcess& d, const std::string& run, int step) {
  for (int i = 0; i < 600; ++i) {
    Json r = ctl_json(d, {"tune", "show", run});
    if (r.contains("checkpoint") && r["checkpoint"]["step"].get<int>() >= step) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// The stored file of a blob, found by its name under the state directory ("" when absent).
std::string blob_file(const DaemonProcess& d, const std::string& hex) {
  for (const auto& e : std::filesystem::recursive_directory_iterator(d.dir().file("state"))) {
    if (e.is_regular_file() && e.path().filename() == hex.substr(2) && e.path().parent_path().filename() == hex.substr(0, 2)) return e.path();
  }
  return "";
}

void expect_checkpoint_intact(const DaemonProcess& d, const Json& run) {
  ASSERT_TRUE(run.contains("checkpoint")) << run.dump();
  const std::string hex = run["checkpoint"]["blob"];
  const std::string path = blob_file(d, hex);
  ASSERT_FALSE(path.empty()) << "checkpoint blob " << hex << " is gone";
  EXPECT_EQ(sha256_hex(read_text(path)), hex) << "checkpoint blob " << hex << " is damaged";
}

// llmopsctl --json tune start of a tiny scratch model with a learned vocabulary, and more flags.
std::vector<std::string> scratch_args(const std::string& data, std::initializer_list<const char*> more) {
  std::vector<std::string> args = {"--json", "tune", "start", "--method", "scratch", "--shape", "dim=64,layers=2,heads=4,context=128",
                                   "--vocab", "320", "--data", data, "--seq-len", "64", "--batch", "8", "--seed", "5"};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

TEST(Tune, ScratchLearnsAGeneratedCorpusWithItsOwnVocabulary) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  import_grammar(d, "grammar", 600);
  auto args = scratch_args("grammar", {"--steps", "150", "--lr", "0.003", "--warmup", "10", "--output", "tiny-grammar"});
  auto r = d.ctl(args);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  Json run = last_json(r.out);
  ASSERT_EQ(run["status"], "done") << run.dump();
  EXPECT_EQ(run["tokenizer"]["size"], 320);
  EXPECT_GT(run["results"]["energy_joules"].get<double>(), 0.0);
  if (!std::filesystem::exists("/dev/nvidiactl")) {
    EXPECT_TRUE(run["results"]["gpu_energy_joules"].is_null()) << "no GPU, no GPU energy";
  }
  EXPECT_EQ(run["shape"]["dim"], 64);
  Json curve = ctl_json(d, {"tune", "curve", std::to_string(run["id"].get<int>())});
  ASSERT_EQ(curve["points"].size(), 150u);
  const double first = curve["points"][0]["loss"], last = curve["points"][149]["loss"];
  EXPECT_NEAR(first, std::log(320.0), 0.5) << "random weights start near ln(vocabulary)";
  // The grammar holds about 4 bits of choice per sentence; a learned model gets well under 1 nat.
  EXPECT_LT(last, 1.0) << "loss " << first << " → " << last;
  std::printf("scratch loss %.3f -> %.3f\n", first, last);
  // The model is served with its own tokenizer and writes the corpus's words.
  auto gen = d.request("POST", "/v1/completions", R"({"model":"tiny-grammar","prompt":"The cat","max_tokens":12,"temperature":0})");
  ASSERT_EQ(gen.status, 200) << gen.body;
  const std::string text = gen.json()["choices"][0]["text"];
  EXPECT_TRUE(text.find("the") != std::string::npos || text.find("Then") != std::string::npos) << text;
  // A shape that cannot work is refused before any job.
  auto bad = d.ctl({"tune", "start", "--method", "scratch", "--shape", "dim=65,layers=2,heads=4", "--vocab", "320", "--data", "grammar"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("does not split into 4 heads"), std::string::npos) << bad.err;
  EXPECT_EQ(d.ctl({"tune", "start", "--method", "scratch", "--shape", "dim=64,layers=2,heads=4", "--data", "grammar"}).exit_code, 2)
      << "without a base, a vocabulary size is needed";
}

TEST(Tune, ChatRecordsLearnOnlyTheAssistantTurns) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  std::string text;
  for (int i = 0; i < 100; ++i) {
    Json msgs = Json::array({{{"role", "system"}, {"content", "You answer in a few words."}},
                             {{"role", "user"}, {"content", "Where does Zara live?"}},
                             {{"role", "assistant"}, {"content", "By the sea."}},
                             {{"role", "user"}, {"content", "And Tom, number " + std::to_string(i) + "?"}},
                             {{"role", "assistant"}, {"content", "In the old mill."}}});
    text += Json{{"messages", msgs}}.dump() + "\n";
  }
  write_text(d.dir().file("chats.jsonl"), text);
  ASSERT_EQ(d.ctl({"data", "import", d.dir().file("chats.jsonl"), "--name", "chats"}).exit_code, 0);
  auto r = d.ctl({"--json", "tune", "start", "--method", "scratch", "--shape", "dim=64,layers=2,heads=4", "--vocab", "300", "--data", "chats",
                  "--steps", "3", "--batch", "2", "--seq-len", "64"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  Json run = last_json(r.out);
  ASSERT_EQ(run["status"], "done") << run.dump();
  const Json& rep = run["data"]["report"];
  EXPECT_EQ(rep["chat"], 100) << rep.dump();
  EXPECT_EQ(rep["unusable"], 0) << rep.dump();
  // The system and user turns and ChatML's headers are context; only the two answers are learned.
  EXPECT_GT(rep["learned_tokens"].get<double>(), 0.0);
  EXPECT_LT(rep["learned_tokens"].get<double>(), 0.5 * rep["tokens"].get<double>()) << rep.dump();
}

// The model ./scripts/run.sh serves by default (trained by scripts/train-default-model.sh) loads,
// completes and chats from the repository alone.
TEST(Tune, TheShippedDefaultModelServesFortuneText) {
  DaemonProcess d({}, "[serving]\nmodel = " + std::string(LLMOPS_SOURCE_DIR) + "/etc/default-model.gguf\n");
  ASSERT_TRUE(d.start()) << d.log();
  auto gen = d.request("POST", "/v1/completions", R"({"model":"default-model","prompt":"","max_tokens":40,"temperature":0.8,"seed":1})");
  ASSERT_EQ(gen.status, 200) << gen.body;
  EXPECT_GT(gen.json()["usage"]["completion_tokens"].get<int>(), 5) << gen.body;
  auto chat = d.request("POST", "/v1/chat/completions",
                        R"({"model":"default-model","messages":[{"role":"user","content":"Tell me a fortune."}],"max_tokens":40,"seed":2})");
  ASSERT_EQ(chat.status, 200) << chat.body;
  EXPECT_FALSE(chat.json()["choices"][0]["message"]["content"].get<std::string>().empty()) << chat.body;
  // Its recipe's shape and learned vocabulary.
  Json m = d.get("/v1/models").json();
  EXPECT_EQ(m["data"][0]["max_model_len"], 256) << m.dump();
}

TEST(Tune, Gpt2FullFineTuningMakesAServedVersion) {
  const std::string gguf = synthetic_model("gpt2-tiny", "F32");
  ASSERT_FALSE(gguf.empty());
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_EQ(d.ctl({"model", "import", gguf, "--name", "g2"}).exit_code, 0);
  import_grammar(d, "grammar", 200);
  auto r = d.ctl({"--json", "tune", "start", "--base", "g2", "--data", "grammar", "--method", "full", "--steps", "30", "--lr", "0.003",
                  "--batch", "4", "--seq-len", "64", "--output", "g2-grammar"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  Json run = last_json(r.out);
  ASSERT_EQ(run["status"], "done") << run.dump();
  Json curve = ctl_json(d, {"tune", "curve", std::to_string(run["id"].get<int>())});
  ASSERT_EQ(curve["points"].size(), 30u);
  EXPECT_LT(curve["points"][29]["loss"].get<double>(), 0.7 * curve["points"][0]["loss"].get<double>());
  // The version keeps its lineage.
  Json version = ctl_json(d, {"model", "show", "g2-grammar"});
  EXPECT_EQ(version["lineage"]["run"], run["id"]) << version.dump();
  EXPECT_EQ(version["lineage"]["base"], "g2");
  EXPECT_EQ(version["lineage"]["data"]["ref"], "grammar@1");
  EXPECT_EQ(version["lineage"]["method"], "full");
  EXPECT_EQ(version["lineage"]["hyperparameters"]["steps"], 30);
  EXPECT_TRUE(version["lineage"]["final_train_loss"].is_number());
  EXPECT_FALSE(version["lineage"]["code_version"].get<std::string>().empty());
  // The result keeps GPT-2's layout (fused q/k/v, biases, positions) and serves.
  auto gen = d.request("POST", "/v1/completions", R"({"model":"g2-grammar","prompt":"The cat","max_tokens":8,"temperature":0})");
  ASSERT_EQ(gen.status, 200) << gen.body;
  EXPECT_GT(gen.json()["usage"]["completion_tokens"].get<int>(), 0) << gen.body;
  // LoRA: q, k and v adapt the fused projection, so their adapters are saved as one of rank 3r
  // (bench/tune/verify_adapter.sh gpt2 checks the GGUF one in llama.cpp).
  auto l = d.ctl({"--json", "tune", "start", "--base", "g2", "--data", "grammar", "--method", "lora", "--rank", "4", "--targets", "q,k,v,o,down",
                  "--steps", "5", "--batch", "2", "--seq-len", "32", "--merge", "--output", "g2-lora"});
  ASSERT_EQ(l.exit_code, 0) << l.out << l.err;
  Json lora = last_json(l.out);
  ASSERT_EQ(lora["status"], "done") << lora.dump();
  const Json& ad = lora["results"]["adapter"];
  const Json config = Json::parse(read_text(ad["adapter_config.json"]["path"].get<std::string>()));
  EXPECT_EQ(config["target_modules"], Json::array({"attn.c_attn", "attn.c_proj", "mlp.c_proj"})) << config.dump();
  EXPECT_EQ(config["rank_pattern"]["attn.c_attn"], 12);
  EXPECT_TRUE(config["fan_in_fan_out"].get<bool>());
  const std::string st = read_text(ad["adapter_model.safetensors"]["path"].get<std::string>());
  uint64_t header = 0;
  for (int i = 7; i >= 0; --i) header = header << 8 | static_cast<unsigned char>(st[static_cast<size_t>(i)]);
  const Json tensors = Json::parse(st.substr(8, header));
  EXPECT_EQ(tensors["base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"]["shape"], Json::array({12, 128})) << tensors.dump().substr(0, 300);
  EXPECT_EQ(tensors["base_model.model.transformer.h.0.attn.c_attn.lora_B.weight"]["shape"], Json::array({384, 12}));
  EXPECT_EQ(tensors["base_model.model.transformer.h.1.mlp.c_proj.lora_A.weight"]["shape"], Json::array({4, 512}));
  EXPECT_EQ(d.ctl({"tune", "start", "--base", "g2", "--data", "grammar", "--method", "lora", "--targets", "gate"}).exit_code, 2)
      << "GPT-2 has no gate projection";
}

TEST(Tune, EarlyStoppingEndsARunThatStopsImproving) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  import_grammar(d, "grammar", 300);
  ASSERT_EQ(d.ctl({"data", "split", "grammar@1", "--train", "0.8", "--validation", "0.1", "--test", "0.1"}).exit_code, 0);
  // A learning rate far too high: validation loss stops improving and the run ends early.
  auto args = scratch_args("grammar@1:train", {"--steps", "400", "--lr", "0.3", "--warmup", "0", "--clip", "0", "--eval-every", "5", "--patience", "3"});
  auto r = d.ctl(args);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  Json run = last_json(r.out);
  ASSERT_EQ(run["status"], "done") << run.dump();
  EXPECT_TRUE(run["results"]["stopped_early"].get<bool>()) << run.dump();
  EXPECT_LT(run["stopped_early_at_step"].get<int>(), 400);
  EXPECT_EQ(run["stopped_early_at_step"].get<int>() % 5, 0) << "stops at an evaluation";
}

TEST(Tune, NanLossFailsTheRunAndKeepsTheLastCheckpoint) {
  DaemonProcess d;
  d.env()["LLMOPS_FAILPOINTS"] = "tune.nan_loss=25";
  ASSERT_TRUE(d.start()) << d.log();
  import_grammar(d, "grammar", 200);
  auto args = scratch_args("grammar", {"--steps", "100", "--lr", "0.003", "--checkpoint-every", "10"});
  auto r = d.ctl(args);
  EXPECT_NE(r.exit_code, 0);
  Json run = ctl_json(d, {"tune", "show", "1"});
  ASSERT_EQ(run["status"], "failed") << run.dump();
  const std::string why = run["error"].is_string() ? run["error"].get<std::string>() : run.dump();
  EXPECT_NE(why.find("NaN at step 25"), std::string::npos) << why;
  EXPECT_NE(why.find("checkpoint (step 20) is kept"), std::string::npos) << why;
  EXPECT_EQ(run["checkpoint"]["step"], 20);
  expect_checkpoint_intact(d, run);
}

TEST(Tune, CancelKeepsTheLastCheckpoint) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  import_grammar(d, "grammar", 200);
  auto args = scratch_args("grammar", {"--steps", "100000", "--checkpoint-every", "10", "--detach"});
  auto q = d.ctl(args);
  ASSERT_EQ(q.exit_code, 0) << q.err;
  Json queued = last_json(q.out);
  const std::string run = std::to_string(queued["run"].get<int>()), job = std::to_string(queued["job"].get<int>());
  ASSERT_TRUE(wait_checkpoint(d, run, 10));
  ASSERT_EQ(d.ctl({"jobs", "cancel", job}).exit_code, 0);
  Json r = wait_run(d, run, 60);
  ASSERT_EQ(r["status"], "cancelled") << r.dump();
  EXPECT_NE(r.value("error", "").find("is kept"), std::string::npos) << r.dump();
  expect_checkpoint_intact(d, r);
}

// The state directory on a small tmpfs that the test fills after the first checkpoint.
class SmallDisk {
 public:
  explicit SmallDisk(const std::string& dir) : dir_(dir) {
    std::filesystem::create_directories(dir);
    mounted_ = ::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=48m") == 0;
  }
  ~SmallDisk() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  // Writes a file until the disk is full, then gives back `leave` bytes.
  void fill(uint64_t leave) {
    const std::string path = dir_ + "/filler";
    {
      std::ofstream f(path, std::ios::binary);
      std::string block(1 << 16, 'x');
      while (f.write(block.data(), static_cast<std::streamsize>(block.size()))) {
      }
    }
    const uint64_t size = std::filesystem::file_size(path);
    std::filesystem::resize_file(path, size > leave ? size - leave : 0);
  }

 private:
  std::string dir_;
  bool mounted_ = false;
};

TEST(Tune, FullDiskDuringACheckpointFailsTheRunAndKeepsThePreviousOne) {
  DaemonProcess d;
  SmallDisk disk(d.dir().file("state"));
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN); the full-disk path is not exercised";
  ASSERT_TRUE(d.start()) << d.log();
  import_grammar(d, "grammar", 200);
  // A wider model, so a checkpoint (weights + two moments) is a few MB.
  std::vector<std::string> args = {"--json", "tune", "start", "--method", "scratch", "--shape", "dim=256,layers=2,heads=4", "--vocab", "320",
                                   "--data", "grammar", "--seq-len", "32", "--batch", "2", "--steps", "100000", "--checkpoint-every", "5",
                                   "--detach"};
  auto q = d.ctl(args);
  ASSERT_EQ(q.exit_code, 0) << q.err;
  const std::string run = std::to_string(last_json(q.out)["run"].get<int>());
  ASSERT_TRUE(wait_checkpoint(d, run, 5));
  Json before = ctl_json(d, {"tune", "show", run});
  disk.fill(1 << 20);
  Json r = wait_run(d, run, 120);
  ASSERT_EQ(r["status"], "failed") << r.dump();
  EXPECT_NE(r.value("error", "").find("the previous checkpoint is kept"), std::string::npos) << r.dump();
  ASSERT_TRUE(r.contains("checkpoint"));
  expect_checkpoint_intact(d, r);
  EXPECT_GE(r["checkpoint"]["step"].get<int>(), before["checkpoint"]["step"].get<int>());
  d.signal(SIGTERM);
  d.wait_exit(10000);
}

// Records longer than the context: split across chunks or cut, as asked, and counted.
TEST(Tune, LongRecordsAreSplitOrTruncatedAndCounted) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  std::string text, story;
  for (int w = 0; w < 120; ++w) story += std::string(w % 3 == 0 ? "the cat " : w % 3 == 1 ? "sat on " : "a mat ");
  for (int i = 0; i < 20; ++i) text += Json{{"text", i % 2 == 0 ? std::string("The cat sat.") : story}}.dump() + "\n";
  write_text(d.dir().file("long.jsonl"), text);
  ASSERT_EQ(d.ctl({"data", "import", d.dir().file("long.jsonl"), "--name", "long"}).exit_code, 0);
  auto run = [&](std::initializer_list<const char*> more) {
    auto r = d.ctl(scratch_args("long", more));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return last_json(r.out);
  };
  Json cut = run({"--steps", "1", "--seq-len", "32", "--no-packing", "--long", "truncate", "--output", "long-cut"});
  Json split = run({"--steps", "1", "--seq-len", "32", "--no-packing", "--long", "split", "--output", "long-split"});
  Json packed = run({"--steps", "1", "--seq-len", "32", "--output", "long-packed"});
  for (const Json* r : {&cut, &split, &packed}) {
    ASSERT_EQ((*r)["status"], "done") << r->dump();
    EXPECT_EQ((*r)["data"]["report"]["longer_than_context"], 10) << (*r)["data"]["report"].dump();
  }
  EXPECT_EQ(cut["plan"]["chunks"], 20) << "one chunk per record, the long ones cut";
  EXPECT_GT(cut["data"]["report"]["truncated_tokens"].get<int>(), 10 * 32) << cut["data"]["report"].dump();
  EXPECT_GT(split["plan"]["chunks"].get<int>(), 20) << "the long ones split over several chunks";
  EXPECT_EQ(split["data"]["report"]["truncated_tokens"], 0);
  const int tokens = packed["data"]["report"]["tokens"].get<int>();
  EXPECT_EQ(packed["plan"]["chunks"], (tokens + 31) / 32) << "packed end to end";
}

TEST(Tune, EmptyDatasetIsRefusedBeforeAnyJob) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  import_grammar(d, "grammar", 10);
  // A filter that keeps nothing gives a version with no records.
  auto f = d.ctl({"data", "filter", "grammar@1", "--max-chars", "5"});
  ASSERT_EQ(f.exit_code, 0) << f.out << f.err;
  auto r = d.ctl({"tune", "start", "--method", "scratch", "--shape", "dim=64,layers=2,heads=4", "--vocab", "320", "--data", "grammar@2"});
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.err.find("holds no records"), std::string::npos) << r.err;
  EXPECT_TRUE(ctl_json(d, {"tune", "list"})["runs"].empty());
}

}  // namespace
}  // namespace llmops::test
