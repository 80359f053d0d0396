// The tuning stage through the daemon and llmopsctl, on stories260K: full fine-tuning on a
// generated domain (a girl called Zara who lives by the sea) lowers held-out perplexity by at
// least 30% and greedy generation shows the domain; a run killed with the daemon resumes from
// its checkpoint and its later losses equal an uninterrupted run's; bases imported as llama2.c
// or Hugging Face train like their GGUF and become GGUF versions; settings come from --config
// with the command line winning; bad requests are refused
// before any job.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <thread>

#include "integration/harness.h"

namespace llmops::test {
namespace {

#define REQUIRE_STORIES() LLMOPS_REQUIRE_STORIES("training tests need stories260K")

// Stories in which the girl is always Zara and lives by the sea.
void import_zara(DaemonProcess& d, int n) {
  const char* things[] = {"shells", "a crab", "the waves", "a boat", "the sand", "a fish", "the lighthouse", "a seagull"};
  const char* feelings[] = {"happy", "excited", "calm", "curious"};
  std::string text;
  for (int i = 0; i < n; ++i) {
    std::string thing = things[i % 8], feel = feelings[(i / 8) % 4];
    text += Json{{"text", "Once upon a time, there was a little girl named Zara. Zara lived by the sea. Every day Zara played with " + thing +
                              " on the beach. She felt " + feel + ". Zara loved the sea."}}.dump() + "\n";
  }
  const std::string path = d.dir().file("zara.jsonl");
  write_text(path, text);
  ASSERT_EQ(d.ctl({"data", "import", path, "--name", "zara"}).exit_code, 0);
  ASSERT_EQ(d.ctl({"data", "split", "zara@1", "--train", "0.8", "--validation", "0.1", "--test", "0.1"}).exit_code, 0);
}

double test_perplexity(DaemonProcess& d, const std::string& model) {
  auto r = d.ctl({"--json", "eval", "run", "--model", model, "--data", "zara@1:test", "--metrics", "ppl", "--text-field", "text"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  return last_json(r.out)["results"]["ppl"]["score"].get<double>();
}

TEST(Tune, FullFineTuningLearnsTheDomain) {
  REQUIRE_STORIES();
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_EQ(d.ctl({"model", "import", shared(kStoriesGguf), "--name", "stories"}).exit_code, 0);
  import_zara(d, 400);
  const double before = test_perplexity(d, "stories");
  auto r = d.ctl({"--json", "tune", "start", "--base", "stories", "--data", "zara@1:train", "--method", "full", "--steps", "120", "--lr",
                  "0.002", "--batch", "8", "--seq-len", "128", "--eval-every", "40", "--output", "stories-zara"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  Json run = last_json(r.out);
  ASSERT_EQ(run["status"], "done") << run.dump();
  EXPECT_EQ(run["validation"]["ref"], "zara.validation@1") << "the validation split beside the train split is found";
  EXPECT_TRUE(run["results"]["final_validation_loss"].is_number());
  EXPECT_NEAR(run["results"]["final_validation_perplexity"].get<double>(), std::exp(run["results"]["final_validation_loss"].get<double>()), 1e-9);
  EXPECT_EQ(run["base"]["name"], "stories");
  EXPECT_EQ(run["data"]["ref"], "zara.train@1");
  EXPECT_EQ(run["hyperparameters"]["method"], "full");
  Json curve = ctl_json(d, {"tune", "curve", std::to_string(run["id"].get<int>())});
  ASSERT_EQ(curve["points"].size(), 120u);
  EXPECT_LT(curve["points"][119]["loss"].get<double>(), curve["points"][0]["loss"].get<double>());
  int evaluated = 0;  // every 40 steps, with its perplexity
  for (const auto& p : curve["points"]) {
    if (!p.contains("val_loss")) continue;
    ++evaluated;
    EXPECT_NEAR(p["val_ppl"].get<double>(), std::exp(p["val_loss"].get<double>()), 1e-9);
  }
  EXPECT_EQ(evaluated, 3);
  const double after = test_perplexity(d, "stories-zara");
  EXPECT_LT(after, 0.7 * before) << "held-out perplexity " << before << " → " << after;
  std::printf("held-out perplexity %.3f -> %.3f (%s)\n", before, after, run["hyperparameters"]["method"].get<std::string>().c_str());
  // Greedy generation from the new version tells of Zara.
  auto gen = d.request("POST", "/v1/completions",
                       R"({"model":"stories-zara","prompt":"Once upon a time, there was a little girl named","max_tokens":24,"temperature":0})");
  ASSERT_EQ(gen.status, 200) << gen.body;
  EXPECT_NE(gen.json()["choices"][0]["text"].get<std::string>().find("Zara"), std::string::npos) << gen.body;
}

// stories260K's SentencePiece vocabulary (llama2.c's tok512.bin: per token a score, a length
// and the piece with spaces for "▁") as a Llama-style tokenizer.json: BPE with byte fallback,
// one merge per piece in the order of the pieces' scores, so it encodes as the original does.
std::string stories_tokenizer_json() {
  const std::string bin = read_text(shared("models/stories260K/tok512.bin"));
  size_t at = 4;  // the longest piece's length
  std::vector<std::pair<std::string, float>> pieces;
  while (at + 8 <= bin.size()) {
    float score;
    int32_t len;
    std::memcpy(&score, bin.data() + at, 4);
    std::memcpy(&len, bin.data() + at + 4, 4);
    std::string piece = bin.substr(at + 8, static_cast<size_t>(len));
    at += 8 + static_cast<size_t>(len);
    for (size_t i; (i = piece.find(' ')) != std::string::npos;) piece.replace(i, 1, "\xE2\x96\x81");
    pieces.push_back({piece, score});
  }
  // llama2.c writes BOS and EOS as "\n<s>\n" and "\n</s>\n".
  const char* specials[] = {"<unk>", "<s>", "</s>"};
  for (size_t id = 0; id < 3 && id < pieces.size(); ++id) pieces[id].first = specials[id];
  Json vocab = Json::object();
  for (size_t i = 0; i < pieces.size(); ++i) vocab[pieces[i].first] = i;
  std::vector<size_t> order;
  for (size_t i = 3; i < pieces.size(); ++i) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return pieces[x].second > pieces[y].second; });
  Json merges = Json::array();
  for (size_t i : order) {
    const std::string& p = pieces[i].first;
    if (p.rfind("<0x", 0) == 0) continue;
    for (size_t cut = 1; cut < p.size(); ++cut) {
      if (vocab.contains(p.substr(0, cut)) && vocab.contains(p.substr(cut))) {
        merges.push_back(p.substr(0, cut) + " " + p.substr(cut));
        break;
      }
    }
  }
  Json added = Json::array();
  for (int id = 0; id < 3; ++id) added.push_back({{"id", id}, {"content", pieces[static_cast<size_t>(id)].first}, {"special", true}});
  Json root = {{"version", "1.0"}, {"added_tokens", added}, {"pre_tokenizer", nullptr}};
  root["normalizer"] = {{"type", "Sequence"},
                        {"normalizers", Json::array({{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
                                                     {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}})}};
  root["decoder"] = {{"type", "Sequence"}, {"decoders", Json::array({{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
                                                                     {{"type", "ByteFallback"}}, {{"type", "Fuse"}}, {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
  root["model"] = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", "<unk>"}, {"byte_fallback", true}, {"vocab", vocab}, {"merges", merges}};
  return root.dump();
}

// A full fine-tuning run of each of two bases of the same weights and tokenizer, with one seed:
// the first losses are equal (the same function), the later ones within later_tolerance
// (relative), and the two results (GGUF versions) give the same greedy text.
void expect_same_training(DaemonProcess& d, const std::string& a, const std::string& b, double later_tolerance) {
  std::map<std::string, Json> curves;
  std::map<std::string, std::string> texts;
  for (const std::string& base : {a, b}) {
    auto r = d.ctl({"--json", "tune", "start", "--base", base, "--data", "zara@1:train", "--method", "full", "--steps", "15", "--lr", "0.002",
                    "--batch", "2", "--seq-len", "64", "--seed", "4", "--output", base + "-zara"});
    ASSERT_EQ(r.exit_code, 0) << base << ": " << r.out << r.err;
    Json run = last_json(r.out);
    ASSERT_EQ(run["status"], "done") << run.dump();
    curves[base] = ctl_json(d, {"tune", "curve", std::to_string(run["id"].get<int>())})["points"];
    EXPECT_EQ(ctl_json(d, {"model", "show", base + "-zara"})["format"], "gguf") << base;
    auto gen = d.request("POST", "/v1/completions", R"({"model":")" + base + R"(-zara","prompt":"Once upon a time","max_tokens":16,"temperature":0})");
    ASSERT_EQ(gen.status, 200) << base << ": " << gen.body;
    texts[base] = gen.json()["choices"][0]["text"];
  }
  ASSERT_EQ(curves[b].size(), 15u);
  for (size_t i = 0; i < 15; ++i) {
    const double want = curves[a][i]["loss"], got = curves[b][i]["loss"];
    EXPECT_NEAR(got, want, (i == 0 ? 1e-5 : later_tolerance) * want) << b << " against " << a << " at step " << i + 1;
  }
  EXPECT_EQ(texts[b], texts[a]) << b << " against " << a;
  const double ppl_a = test_perplexity(d, a + "-zara"), ppl_b = test_perplexity(d, b + "-zara");
  EXPECT_NEAR(ppl_b, ppl_a, later_tolerance * ppl_a) << b << " against " << a;
  std::printf("held-out perplexity after training %s: %.4f, %s: %.4f; greedy %s | %s\n", a.c_str(), ppl_a, b.c_str(), ppl_b,
              Json(texts[a]).dump().c_str(), Json(texts[b]).dump().c_str());
}

// Bases that are not GGUF train like their GGUF form and become GGUF versions (written through
// GGUF export): stories260K as a llama2.c checkpoint against its GGUF; stories260K in a Hugging
// Face directory (q/k rows in rotate-half order, a byte-level tokenizer.json) against its
// conversion back to GGUF (adjacent pairs). LoRA adapters from the Hugging Face base are written too.
TEST(Tune, BasesThatAreNotGgufTrainAndBecomeGgufVersions) {
  REQUIRE_STORIES();
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_EQ(d.ctl({"model", "import", shared(kStoriesGguf), "--name", "stories"}).exit_code, 0);
  ASSERT_EQ(d.ctl({"model", "import", shared("models/stories260K/stories260K.bin"), "--name", "stories-l2c", "--tokenizer",
                   shared("models/stories260K/tok512.bin")}).exit_code, 0);
  // stories260K's weights and vocabulary as a Hugging Face directory.
  const std::string hf = d.dir().file("hf"), back = d.dir().file("back.gguf");
  auto conv = run_program({LLMOPS_CONVERT_PATH, "--model", shared(kStoriesGguf), "--hf-dtype", "F32", "--out-dir", hf});
  ASSERT_EQ(conv.exit_code, 0) << conv.err;
  write_text(hf + "/tokenizer.json", stories_tokenizer_json());
  write_text(hf + "/tokenizer_config.json", R"({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": true})");
  conv = run_program({LLMOPS_CONVERT_PATH, "--model", hf, "--type", "F32", "--out", back});
  ASSERT_EQ(conv.exit_code, 0) << conv.err;
  auto imp = d.ctl({"model", "import", hf, "--name", "stories-hf"});
  ASSERT_EQ(imp.exit_code, 0) << imp.err;
  ASSERT_EQ(d.ctl({"model", "import", back, "--name", "stories-back"}).exit_code, 0);
  import_zara(d, 100);
  // llama2.c ties the classifier to the embedding where the GGUF holds a copy: one function,
  // but the tied weights train differently from the first update on.
  expect_same_training(d, "stories", "stories-l2c", 0.05);
  expect_same_training(d, "stories-back", "stories-hf", 1e-3);
  auto lora = d.ctl({"--json", "tune", "start", "--base", "stories-hf", "--data", "zara@1:train", "--method", "lora", "--rank", "4", "--steps", "5",
                     "--batch", "2", "--seq-len", "64", "--merge", "--output", "stories-hf-lora"});
  ASSERT_EQ(lora.exit_code, 0) << lora.out << lora.err;
  Json lr = last_json(lora.out);
  ASSERT_EQ(lr["status"], "done") << lr.dump();
  for (const char* f : {"adapter_model.safetensors", "adapter_config.json", "adapter.gguf"}) EXPECT_TRUE(lr["results"]["adapter"].contains(f)) << f;
  EXPECT_EQ(ctl_json(d, {"model", "show", "stories-hf-lora"})["format"], "gguf");
}

TEST(Tune, LoraLearnsTheDomainSavesAdaptersAndMerges) {
  REQUIRE_STORIES();
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_EQ(d.ctl({"model", "import", shared(kStoriesGguf), "--name", "stories"}).exit_code, 0);
  import_zara(d, 400);
  const double before = test_perplexity(d, "stories");
  auto r = d.ctl({"--json", "tune", "start", "--base", "stories", "--data", "zara@1:train", "--method", "lora", "--rank", "16", "--alpha", "32",
                  "--targets", "q,k,v,o,gate,up,down", "--dropout", "0.05", "--steps", "120", "--lr", "0.005", "--batch", "8", "--seq-len", "128",
                  "--merge", "--output", "stories-zara-lora"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  Json run = last_json(r.out);
  ASSERT_EQ(run["status"], "done") << run.dump();
  EXPECT_LT(run["plan"]["trained_parameters"].get<double>(), 0.5 * run["plan"]["parameters"].get<double>()) << "only the adapters learn";
  const double after = test_perplexity(d, "stories-zara-lora");
  EXPECT_LT(after, 0.7 * before) << "held-out perplexity " << before << " → " << after;
  std::printf("held-out perplexity %.3f -> %.3f (%s)\n", before, after, run["hyperparameters"]["method"].get<std::string>().c_str());
  auto gen = d.request("POST", "/v1/completions",
                       R"({"model":"stories-zara-lora","prompt":"Once upon a time, there was a little girl named","max_tokens":24,"temperature":0})");
  ASSERT_EQ(gen.status, 200) << gen.body;
  EXPECT_NE(gen.json()["choices"][0]["text"].get<std::string>().find("Zara"), std::string::npos) << gen.body;
  // The adapters in PEFT's layout and as a llama.cpp GGUF adapter.
  const Json& ad = run["results"]["adapter"];
  const Json config = Json::parse(read_text(ad["adapter_config.json"]["path"].get<std::string>()));
  EXPECT_EQ(config["peft_type"], "LORA");
  EXPECT_EQ(config["r"], 16);
  EXPECT_EQ(config["lora_alpha"], 32.0);
  EXPECT_EQ(config["target_modules"].size(), 7u);
  const std::string st = read_text(ad["adapter_model.safetensors"]["path"].get<std::string>());
  ASSERT_GT(st.size(), 8u);
  uint64_t header = 0;
  for (int i = 7; i >= 0; --i) header = header << 8 | static_cast<unsigned char>(st[static_cast<size_t>(i)]);
  const Json tensors = Json::parse(st.substr(8, header));
  ASSERT_TRUE(tensors.contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")) << tensors.dump().substr(0, 400);
  EXPECT_EQ(tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]["shape"], Json::array({16, 64}));
  EXPECT_EQ(tensors["base_model.model.model.layers.4.mlp.down_proj.lora_B.weight"]["shape"], Json::array({64, 16}));
  EXPECT_EQ(read_text(ad["adapter.gguf"]["path"].get<std::string>()).substr(0, 4), "GGUF");
}

TEST(Tune, KilledRunResumesWithTheSameLosses) {
  REQUIRE_STORIES();
  // Three engine threads whatever the machine: the products and attention are cut across them,
  // and the resumed run must compute exactly what the uninterrupted one does.
  DaemonProcess d({}, "tuning.threads = 3\n");
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_EQ(d.ctl({"model", "import", shared(kStoriesGguf), "--name", "stories"}).exit_code, 0);
  import_zara(d, 200);
  const std::vector<std::string> args = {"tune", "start", "--base", "stories", "--data", "zara@1:train", "--method", "full", "--steps", "300",
                                         "--lr", "0.001", "--batch", "4", "--seq-len", "64", "--checkpoint-every", "10", "--eval-every", "50",
                                         "--seed", "9"};
  std::vector<std::string> detached = args;
  detached.push_back("--detach");
  Json q = ctl_json(d, detached);
  const std::string run = std::to_string(q["run"].get<int>());
  // Past a checkpoint, then kill -9.
  bool past = false;
  for (int i = 0; i < 600 && !past; ++i) {
    Json r = ctl_json(d, {"tune", "show", run});
    past = r.contains("checkpoint") && r["checkpoint"]["step"].get<int>() >= 20;
    if (!past) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(past) << "no checkpoint within 30 s";
  ASSERT_NE(ctl_json(d, {"tune", "show", run})["status"], "done") << "finished before the kill; make the run longer";
  d.kill9();
  ASSERT_TRUE(d.start()) << d.log();
  Json r;
  for (int i = 0; i < 1200; ++i) {
    r = ctl_json(d, {"tune", "show", run});
    if (r["status"] == "done" || r["status"] == "failed") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(r["status"], "done") << r.dump() << d.log().substr(d.log().size() > 4000 ? d.log().size() - 4000 : 0);
  EXPECT_GE(r["resumed_from_step"].get<int>(), 20);
  EXPECT_EQ(r["threads"], 3) << "the run records its thread count";
  Json resumed = ctl_json(d, {"tune", "curve", run});
  // The same run without interruption.
  std::vector<std::string> again = args;
  again.push_back("--output");
  again.push_back("stories-again");
  auto whole = d.ctl(again);
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  Json runs = ctl_json(d, {"tune", "list"});
  const std::string second = std::to_string(runs["runs"][0]["id"].get<int>());
  Json uninterrupted = ctl_json(d, {"tune", "curve", second});
  ASSERT_EQ(resumed["points"].size(), 300u);
  ASSERT_EQ(uninterrupted["points"].size(), 300u);
  for (size_t i = 0; i < 300; ++i) {
    ASSERT_EQ(resumed["points"][i]["loss"], uninterrupted["points"][i]["loss"]) << "step " << i + 1;
  }
}

TEST(Tune, GradientAccumulationMatchesALargerBatch) {
  REQUIRE_STORIES();
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_EQ(d.ctl({"model", "import", shared(kStoriesGguf), "--name", "stories"}).exit_code, 0);
  import_zara(d, 200);
  auto curve = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"--json", "tune", "start", "--base", "stories", "--data", "zara@1:train", "--method", "full", "--steps", "12",
                                     "--lr", "0.002", "--seq-len", "64", "--warmup", "0", "--seed", "3", "--output", "acc-" + extra[1] + "-" + extra[3]};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = d.ctl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return ctl_json(d, {"tune", "curve", std::to_string(last_json(r.out)["id"].get<int>())});
  };
  // Packed chunks all hold the same number of targets, so 2 × 2 chunks averaged is the mean over 4.
  Json big = curve({"--batch", "4", "--accumulate", "1"});
  Json acc = curve({"--batch", "2", "--accumulate", "2"});
  ASSERT_EQ(big["points"].size(), 12u);
  ASSERT_EQ(acc["points"].size(), 12u);
  for (size_t i = 0; i < 12; ++i) {
    EXPECT_NEAR(acc["points"][i]["loss"].get<double>(), big["points"][i]["loss"].get<double>(), 2e-4) << "step " << i + 1;
    EXPECT_EQ(acc["points"][i]["tokens"], big["points"][i]["tokens"]);
  }
}

// Training on devices: the tuning stage drives the compute driver's training ops through
// GpuTrainer replicas, data-parallel over two devices. Here the devices are the CPU reference
// driver's (tests/gpu/reference_driver.cpp, given to the daemon by LLMOPS_COMPUTE_DRIVER); on a
// GPU machine the CUDA driver's ops are held to the same reference by gpu_tests. LoRA with
// dropout and full fine-tuning, with micro-batches and a validation split, follow the CPU run's
// loss curve within 1e-4 per step.
TEST(Tune, RunsOnADeviceFollowTheCpuLossCurve) {
  REQUIRE_STORIES();
  DaemonProcess cpu({}, "tuning.device = cpu\n");
  DaemonProcess dev({}, "tuning.device = cuda\ntuning.gpus = 0,1\ntuning.gpu-precision = fp32\nserving.device = cpu\n");
  dev.env()["LLMOPS_COMPUTE_DRIVER"] = LLMOPS_REFERENCE_DRIVER;
  for (DaemonProcess* d : {&cpu, &dev}) {
    ASSERT_TRUE(d->start()) << d->log();
    ASSERT_EQ(d->ctl({"model", "import", shared(kStoriesGguf), "--name", "stories"}).exit_code, 0);
    import_zara(*d, 120);
  }
  for (const std::vector<std::string>& method :
       {std::vector<std::string>{"--method", "lora", "--rank", "8", "--alpha", "16", "--dropout", "0.1", "--targets", "q,k,v,o,gate,up,down", "--lr", "0.005", "--merge"},
        std::vector<std::string>{"--method", "full", "--lr", "0.002"}}) {
    SCOPED_TRACE(method[1]);
    std::vector<Json> curves, runs;
    for (DaemonProcess* d : {&cpu, &dev}) {
      std::vector<std::string> args = {"--json", "tune", "start", "--base", "stories", "--data", "zara@1:train", "--steps", "12", "--batch", "2",
                                       "--accumulate", "2", "--seq-len", "64", "--eval-every", "6", "--checkpoint-every", "5", "--seed", "4",
                                       "--output", "zara-" + method[1]};
      args.insert(args.end(), method.begin(), method.end());
      auto r = d->ctl(args);
      ASSERT_EQ(r.exit_code, 0) << r.out << r.err << d->log();
      runs.push_back(last_json(r.out));
      ASSERT_EQ(runs.back()["status"], "done") << runs.back().dump();
      curves.push_back(ctl_json(*d, {"tune", "curve", std::to_string(runs.back()["id"].get<int>())}));
    }
    EXPECT_EQ(runs[0]["device"], "cpu");
    EXPECT_EQ(runs[1]["device"], "cuda:0,1 (2 × CPU reference)");
    EXPECT_EQ(runs[1]["gpu_precision"], "fp32");
    EXPECT_FALSE(runs[0].contains("gpu_precision"));
    ASSERT_EQ(curves[0]["points"].size(), 12u);
    ASSERT_EQ(curves[1]["points"].size(), 12u);
    for (size_t i = 0; i < 12; ++i) {
      const Json& a = curves[0]["points"][i];
      const Json& b = curves[1]["points"][i];
      EXPECT_NEAR(b["loss"].get<double>(), a["loss"].get<double>(), 1e-4 * a["loss"].get<double>()) << "step " << i + 1;
      EXPECT_NEAR(b["grad_norm"].get<double>(), a["grad_norm"].get<double>(), 1e-3 * a["grad_norm"].get<double>()) << "step " << i + 1;
      if (a.contains("val_loss")) EXPECT_NEAR(b["val_loss"].get<double>(), a["val_loss"].get<double>(), 1e-4 * a["val_loss"].get<double>());
    }
    // The result came back from the device: the served versions answer alike.
    std::vector<std::string> texts;
    for (DaemonProcess* d : {&cpu, &dev}) {
      auto gen = d->request("POST", "/v1/completions", R"({"model":"zara-)" + method[1] + R"(","prompt":"Once upon a time","max_tokens":12,"temperature":0})");
      ASSERT_EQ(gen.status, 200) << gen.body;
      texts.push_back(gen.json()["choices"][0]["text"]);
    }
    EXPECT_EQ(texts[0], texts[1]);
  }
}

// tuning.device = cuda where no device is usable: the run fails saying why (auto trains on the CPU).
TEST(Tune, ADeviceThatIsNotThereFailsARunThatDemandsIt) {
  REQUIRE_STORIES();
  if (std::filesystem::exists("/proc/driver/nvidia/version")) GTEST_SKIP() << "this machine has an NVIDIA driver: the refusal does not happen here";
  DaemonProcess d({}, "tuning.device = cuda\n");
  d.env()["LLMOPS_COMPUTE_DRIVER"] = "";
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_EQ(d.ctl({"model", "import", shared(kStoriesGguf), "--name", "stories"}).exit_code, 0);
  import_zara(d, 40);
  auto r = d.ctl({"--json", "tune", "start", "--base", "stories", "--data", "zara@1:train", "--method", "full", "--steps", "2", "--batch", "2",
                  "--seq-len", "32"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE((r.out + r.err).find("tuning.device is cuda, but this run cannot train on the GPU"), std::string::npos) << r.out << r.err;
  EXPECT_NE((r.out + r.err).find("no usable device"), std::string::npos) << r.out << r.err;
}

TEST(Tune, SearchRanksTrialsWithTheirCost) {
  REQUIRE_STORIES();
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_EQ(d.ctl({"model", "import", shared(kStoriesGguf), "--name", "stories"}).exit_code, 0);
  import_zara(d, 200);
  // Grid: every combination, each a child training run, ranked by validation loss.
  auto g = d.ctl({"--json", "tune", "search", "--base", "stories", "--data", "zara@1:train", "--method", "lora", "--space",
                  "lr=0.0001,0.01;rank=2,4", "--steps", "15", "--batch", "4", "--seq-len", "64", "--eval-every", "15"});
  ASSERT_EQ(g.exit_code, 0) << g.out << g.err;
  Json grid = last_json(g.out);
  ASSERT_EQ(grid["status"], "done") << grid.dump();
  ASSERT_EQ(grid["trials"].size(), 4u);
  for (const auto& t : grid["trials"]) {
    EXPECT_EQ(t["status"], "done") << t.dump();
    EXPECT_TRUE(t["loss"].is_number());
    EXPECT_GT(t["seconds"].get<double>(), 0.0);
    EXPECT_GT(t["cpu_seconds"].get<double>(), 0.0);
    EXPECT_GT(t["energy_joules"].get<double>(), 0.0);
    EXPECT_GT(t["tokens"].get<int>(), 0);
  }
  // The larger learning rate wins at this budget.
  EXPECT_EQ(grid["best"]["config"]["lr"], 0.01) << grid["best"].dump();
  // Trials are not model versions.
  Json models = ctl_json(d, {"model", "list"});
  EXPECT_EQ(models["models"].size(), 1u);
  // Successive halving: 4 configurations, eta 2 → rungs of 4, 2 and 1 trials at 5, 10 and 20 steps.
  auto a = d.ctl({"--json", "tune", "search", "--base", "stories", "--data", "zara@1:train", "--method", "lora", "--strategy", "asha", "--space",
                  "lr=0.0001,0.0003,0.003,0.01", "--min-steps", "5", "--eta", "2", "--batch", "4", "--seq-len", "64", "--eval-every", "5"});
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  Json asha = last_json(a.out);
  ASSERT_EQ(asha["status"], "done") << asha.dump();
  std::map<int, int> per_rung, steps;
  for (const auto& t : asha["trials"]) ++per_rung[t["rung"].get<int>()], steps[t["rung"].get<int>()] = t["steps"].get<int>();
  EXPECT_EQ(per_rung, (std::map<int, int>{{0, 4}, {1, 2}, {2, 1}}));
  EXPECT_EQ(steps, (std::map<int, int>{{0, 5}, {1, 10}, {2, 20}}));
  EXPECT_EQ(asha["best"]["rung"], 2);
  EXPECT_EQ(d.ctl({"tune", "search", "--base", "stories", "--data", "zara@1:train", "--space", "layers=1,2"}).exit_code, 2);
}

// tune start --config FILE: the settings as JSON (snake_case keys); the command line wins; a
// file that is not a JSON object is refused before any run.
TEST(Tune, ConfigFileSettingsWithTheCommandLineWinning) {
  REQUIRE_STORIES();
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_EQ(d.ctl({"model", "import", shared(kStoriesGguf), "--name", "stories"}).exit_code, 0);
  import_zara(d, 40);
  const std::string cfg = d.dir().file("train.json");
  write_text(cfg, R"({"base": "stories", "data": "zara@1:train", "method": "full", "steps": 50, "lr": 0.0007, "seed": 11, "batch": 2, "seq_len": 32})");
  auto r = d.ctl({"--json", "tune", "start", "--config", cfg, "--steps", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  Json run = last_json(r.out);
  ASSERT_EQ(run["status"], "done") << run.dump();
  EXPECT_EQ(run["hyperparameters"]["steps"], 3) << "the command line wins";
  EXPECT_EQ(run["hyperparameters"]["lr"], 0.0007);
  EXPECT_EQ(run["hyperparameters"]["seed"], 11);
  EXPECT_EQ(run["hyperparameters"]["batch"], 2);
  EXPECT_EQ(run["hyperparameters"]["seq_len"], 32);
  write_text(cfg, "steps: 3\n");
  auto bad = d.ctl({"tune", "start", "--config", cfg});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("is not a JSON object of training settings"), std::string::npos) << bad.err;
  EXPECT_EQ(ctl_json(d, {"tune", "list"})["runs"].size(), 1u) << "the refused file left no run";
}

TEST(Tune, BadRequestsAreRefusedBeforeAnyJob) {
  REQUIRE_STORIES();
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_EQ(d.ctl({"model", "import", shared(kStoriesGguf), "--name", "stories"}).exit_code, 0);
  write_text(d.dir().file("qa.jsonl"), "{\"question\":\"q\",\"answer\":\"a\"}\n");
  ASSERT_EQ(d.ctl({"data", "import", d.dir().file("qa.jsonl"), "--name", "qa"}).exit_code, 0);
  auto fields = d.ctl({"tune", "start", "--base", "stories", "--data", "qa", "--method", "full"});
  EXPECT_EQ(fields.exit_code, 2);
  EXPECT_NE(fields.err.find("its fields are answer, question"), std::string::npos) << fields.err;
  EXPECT_EQ(d.ctl({"tune", "start", "--base", "ghost", "--data", "qa"}).exit_code, 3);
  auto lora = d.ctl({"tune", "start", "--base", "stories", "--data", "qa", "--method", "lora", "--targets", "q,qkv"});
  EXPECT_EQ(lora.exit_code, 2);
  EXPECT_NE(lora.err.find("unknown LoRA target 'qkv'"), std::string::npos) << lora.err;
  EXPECT_EQ(d.ctl({"tune", "start", "--base", "stories", "--data", "qa", "--lr", "5"}).exit_code, 2);
  Json none = ctl_json(d, {"tune", "list"});
  EXPECT_TRUE(none["runs"].empty()) << "refused requests leave no run";
}

}  // namespace
}  // namespace llmops::test
