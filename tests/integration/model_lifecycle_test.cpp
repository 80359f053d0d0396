// The serving stage's model lifecycle end to end, through the real llmopsctl: import into the
// blob store (all or nothing), list/show/rm, load on first use, serve load|unload, aliases
// repointed under continuous load without a failed request, the memory budget and the idle TTL.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "integration/harness.h"

namespace llmops::test {
namespace {

const std::string kGguf = kStoriesGguf;

#define REQUIRE_STORIES() LLMOPS_REQUIRE_STORIES("model lifecycle tests need stories260K")

std::set<std::string> loaded_names(DaemonProcess& d) {
  std::set<std::string> names;
  const Json list = ctl_json(d, {"serve", "list"});
  for (const Json& m : list["models"]) names.insert(m["name"].get<std::string>());
  return names;
}

HttpResult complete(DaemonProcess& d, const std::string& model, int max_tokens = 20) {
  return d.request("POST", "/v1/completions",
                   Json{{"model", model}, {"prompt", "Once upon a time"}, {"max_tokens", max_tokens}, {"temperature", 0}}.dump());
}

TEST(ModelLifecycle, ImportListShowRemoveAndFailedImportsLeaveNothing) {
  REQUIRE_STORIES();
  DaemonProcess d({}, "");
  ASSERT_TRUE(d.start()) << d.log();
  // Before any import: requests name a model, and there is none.
  auto none = d.request("POST", "/v1/completions", R"({"prompt": "Once", "max_tokens": 2})");
  EXPECT_EQ(none.status, 404) << none.body;

  auto imp = d.ctl({"model", "import", shared(kGguf), "--name", "stories:v1"});
  ASSERT_EQ(imp.exit_code, 0) << imp.err;
  EXPECT_NE(imp.out.find("imported stories:v1: gguf llama"), std::string::npos) << imp.out;
  auto bin = d.ctl({"model", "import", shared("models/stories260K/stories260K.bin"), "--name", "stories:v2", "--tokenizer",
                    shared("models/stories260K/tok512.bin")});
  ASSERT_EQ(bin.exit_code, 0) << bin.err;

  // Refusals, each with its exit code, and nothing written by any of them.
  const Json blobs_before = ctl_json(d, {"blobs", "list"});
  EXPECT_EQ(d.ctl({"model", "import", shared(kGguf), "--name", "stories:v1"}).exit_code, 6) << "a taken name";
  auto no_tok = d.ctl({"model", "import", shared("models/stories260K/stories260K.bin"), "--name", "x"});
  EXPECT_EQ(no_tok.exit_code, 2);
  EXPECT_NE(no_tok.err.find("--tokenizer"), std::string::npos) << no_tok.err;
  TempDir files;
  std::ofstream(files.file("notes.txt")) << "not a model";
  auto junk = d.ctl({"model", "import", files.file("notes.txt"), "--name", "junk"});
  EXPECT_EQ(junk.exit_code, 2) << junk.err;
  EXPECT_EQ(d.ctl({"model", "import", files.file("missing.gguf"), "--name", "gone"}).exit_code, 3);
  EXPECT_EQ(d.ctl({"model", "import", shared(kGguf), "--name", "bad name"}).exit_code, 2);
  // A Hugging Face directory whose tokenizer is missing fails its check before any copy.
  const std::string hf = files.file("hf");
  auto conv = run_program({LLMOPS_CONVERT_PATH, "--model", shared(kGguf), "--hf-dtype", "F32", "--out-dir", hf});
  ASSERT_EQ(conv.exit_code, 0) << conv.err;
  auto hf_imp = d.ctl({"model", "import", hf, "--name", "hf-no-tokenizer"});
  EXPECT_NE(hf_imp.exit_code, 0);
  EXPECT_NE(hf_imp.err.find("tokenizer"), std::string::npos) << hf_imp.err;
  EXPECT_EQ(ctl_json(d, {"blobs", "list"}), blobs_before) << "a refused import left blobs behind";

  Json list = ctl_json(d, {"model", "list"})["models"];
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["name"], "stories:v1");
  EXPECT_EQ(list[0]["format"], "gguf");
  EXPECT_EQ(list[1]["format"], "llama2c");
  EXPECT_EQ(list[0]["loaded"], false) << "imported models load on first use";
  Json show = ctl_json(d, {"model", "show", "stories:v1"});
  EXPECT_EQ(show["files"][0]["size"], std::filesystem::file_size(shared(kGguf)));
  EXPECT_EQ(show["files"][0]["sha256"].get<std::string>().size(), 64u);
  EXPECT_EQ(show["layers"], 5);
  auto human = d.ctl({"model", "show", "stories:v1"});
  EXPECT_NE(human.out.find("model.gguf"), std::string::npos) << human.out;

  // Both versions answer, with the same greedy text (same weights, two formats).
  auto a = complete(d, "stories:v1");
  auto b = complete(d, "stories:v2");
  ASSERT_EQ(a.status, 200) << a.body;
  ASSERT_EQ(b.status, 200) << b.body;
  EXPECT_EQ(a.json()["choices"][0]["text"], b.json()["choices"][0]["text"]);
  EXPECT_EQ(a.json()["model"], "stories:v1");
  EXPECT_EQ(loaded_names(d), (std::set<std::string>{"stories:v1", "stories:v2"}));
  Json models = d.get("/v1/models").json()["data"];
  EXPECT_EQ(models.size(), 2u);

  // rm unloads and gives the blobs back; gc frees them.
  ASSERT_EQ(d.ctl({"model", "rm", "stories:v1"}).exit_code, 0);
  EXPECT_EQ(loaded_names(d), (std::set<std::string>{"stories:v2"}));
  EXPECT_EQ(complete(d, "stories:v1").status, 404);
  EXPECT_EQ(d.ctl({"model", "rm", "stories:v1"}).exit_code, 3);
  Json gc = ctl_json(d, {"gc"});
  EXPECT_EQ(gc["blobs_removed"], 1);
  EXPECT_EQ(complete(d, "stories:v2").status, 200) << "the other version is untouched";
}

TEST(ModelLifecycle, AHuggingFaceDirectoryImportsAndServesWhatTheEngineGives) {
  TempDir files;
  const std::string gguf = files.file("g.gguf"), hf = files.file("hf");
  ASSERT_EQ(run_program({LLMOPS_SYNTH_PATH, "--arch", "gpt2", "--shape", "gpt2-tiny", "--type", "F32", "--out", gguf}).exit_code, 0);
  ASSERT_EQ(run_program({LLMOPS_CONVERT_PATH, "--model", gguf, "--hf-dtype", "F32", "--out-dir", hf}).exit_code, 0);
  std::ofstream(hf + "/tokenizer.json") << byte_level_tokenizer_json(1024);  // gpt2-tiny's vocabulary
  std::ofstream(hf + "/README.md") << "not imported";
  DaemonProcess d({}, "");
  ASSERT_TRUE(d.start()) << d.log();
  auto imp = d.ctl({"model", "import", hf, "--name", "gpt2-hf"});
  ASSERT_EQ(imp.exit_code, 0) << imp.err;
  Json show = ctl_json(d, {"model", "show", "gpt2-hf"});
  EXPECT_EQ(show["format"], "hf");
  EXPECT_EQ(show["arch"], "gpt2");
  std::set<std::string> names;
  for (const Json& f : show["files"]) names.insert(f["name"].get<std::string>());
  EXPECT_EQ(names, (std::set<std::string>{"config.json", "model.safetensors", "tokenizer.json"}));
  auto r = d.request("POST", "/v1/completions",
                     Json{{"model", "gpt2-hf"}, {"prompt", "Hello there"}, {"max_tokens", 12}, {"temperature", 0}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  // The engine's own tool on the original directory gives the same greedy text.
  auto infer = run_program({LLMOPS_INFER_PATH, "--model", hf, "--prompt", "Hello there", "--max-tokens", "12", "--temperature", "0", "--json"});
  ASSERT_EQ(infer.exit_code, 0) << infer.err;
  const Json engine = Json::parse(infer.out);
  EXPECT_EQ(engine["generated_ids"].size(), 12u);
  EXPECT_FALSE(engine["text"].get<std::string>().empty()) << "a vacuous comparison";
  EXPECT_EQ(r.json()["choices"][0]["text"], engine["text"]);
}

TEST(ModelLifecycle, AliasRepointUnderLoadDropsNoRequest) {
  REQUIRE_STORIES();
  DaemonProcess d({}, "[serving]\nmax-sequences = 8\n");
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_EQ(d.ctl({"model", "import", shared(kGguf), "--name", "bot-v1"}).exit_code, 0);
  ASSERT_EQ(d.ctl({"model", "import", shared("models/stories260K/stories260K.bin"), "--name", "bot-v2", "--tokenizer",
                   shared("models/stories260K/tok512.bin")})
                .exit_code,
            0);
  EXPECT_EQ(d.ctl({"alias", "set", "production", "nope"}).exit_code, 3);
  EXPECT_EQ(d.ctl({"alias", "set", "bot-v1", "bot-v2"}).exit_code, 6) << "aliases and model names share one namespace";
  ASSERT_EQ(d.ctl({"alias", "set", "production", "bot-v1"}).exit_code, 0);
  const std::string expected = complete(d, "bot-v1").json()["choices"][0]["text"];

  // Four clients send requests to "production" without pause while it is repointed back and forth.
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::mutex mu;
  std::set<std::string> versions;
  std::string first_failure;
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&] {
      while (!stop) {
        auto r = complete(d, "production");
        std::lock_guard lock(mu);
        if (r.status == 200 && r.json()["choices"][0]["text"] == expected) {
          ++ok;
          versions.insert(r.json()["model"].get<std::string>());
        } else {
          if (failed++ == 0) first_failure = std::to_string(r.status) + " " + r.body;
        }
      }
    });
  }
  for (int i = 0; i < 6; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    auto r = d.ctl({"alias", "set", "production", i % 2 == 0 ? "bot-v2" : "bot-v1"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed.load(), 0) << first_failure;
  EXPECT_GT(ok.load(), 12);
  EXPECT_EQ(versions, (std::set<std::string>{"bot-v1", "bot-v2"})) << "both versions answered";

  // A version an alias points at cannot be removed; the alias shows in list and /v1/models.
  auto rm = d.ctl({"model", "rm", "bot-v1"});
  EXPECT_EQ(rm.exit_code, 6);
  EXPECT_NE(rm.err.find("production"), std::string::npos) << rm.err;
  Json aliases = ctl_json(d, {"alias", "list"})["aliases"];
  ASSERT_EQ(aliases.size(), 1u);
  EXPECT_EQ(aliases[0]["target"], "bot-v1");
  auto m = d.get("/v1/models/production");
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.json()["root"], "bot-v1");
  ASSERT_EQ(d.ctl({"alias", "rm", "production"}).exit_code, 0);
  EXPECT_EQ(complete(d, "production").status, 404);
  EXPECT_EQ(d.ctl({"model", "rm", "bot-v1"}).exit_code, 0);
}

TEST(ModelLifecycle, LoadUnloadMemoryBudgetAndIdleTtl) {
  REQUIRE_STORIES();
  // Each stories260K holds ~1 MiB of weights + a 1 MiB KV budget: a 3 MiB budget fits one.
  DaemonProcess d({}, "[serving]\nkv-budget-mb = 1\nmemory-budget-mb = 3\nidle-unload-s = 2\n");
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_EQ(d.ctl({"model", "import", shared(kGguf), "--name", "a"}).exit_code, 0);
  ASSERT_EQ(d.ctl({"model", "import", shared(kGguf), "--name", "b"}).exit_code, 0);
  Json blobs = ctl_json(d, {"blobs", "list"})["blobs"];
  ASSERT_EQ(blobs.size(), 1u) << "two versions of one file share its blob";
  EXPECT_EQ(blobs[0]["refs"], 2);

  auto load = d.ctl({"serve", "load", "a"});
  ASSERT_EQ(load.exit_code, 0) << load.err;
  EXPECT_EQ(loaded_names(d), std::set<std::string>{"a"});
  ASSERT_EQ(complete(d, "b").status, 200);
  EXPECT_EQ(loaded_names(d), std::set<std::string>{"b"}) << "the idle 'a' made room for 'b'";
  ASSERT_EQ(d.ctl({"serve", "unload", "b"}).exit_code, 0);
  EXPECT_TRUE(loaded_names(d).empty());
  EXPECT_EQ(d.ctl({"serve", "unload", "b"}).exit_code, 3);
  // Past the idle TTL a loaded model goes by itself.
  ASSERT_EQ(complete(d, "a").status, 200);
  EXPECT_EQ(loaded_names(d), std::set<std::string>{"a"});
  EXPECT_TRUE(eventually([&] { return loaded_names(d).empty(); }, 8000)) << "not unloaded after idle-unload-s";
  EXPECT_EQ(complete(d, "a").status, 200) << "and it loads again on the next request";
}

TEST(ModelLifecycle, ImportedModelsSurviveARestart) {
  REQUIRE_STORIES();
  DaemonProcess d({}, "[serving]\ndefault-model = production\n");
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_EQ(d.ctl({"model", "import", shared(kGguf), "--name", "v1"}).exit_code, 0);
  ASSERT_EQ(d.ctl({"alias", "set", "production", "v1"}).exit_code, 0);
  const std::string before = d.request("POST", "/v1/completions", R"({"prompt": "Once", "max_tokens": 10, "temperature": 0})").body;
  d.signal(SIGTERM);
  ASSERT_EQ(d.wait_exit(20000), 0) << d.log();
  ASSERT_TRUE(d.start()) << d.log();
  auto after = d.request("POST", "/v1/completions", R"({"prompt": "Once", "max_tokens": 10, "temperature": 0})");
  ASSERT_EQ(after.status, 200) << after.body;
  EXPECT_EQ(after.json()["choices"], Json::parse(before)["choices"]) << "the default alias serves the same version after a restart";
  Json served = ctl_json(d, {"serve", "list"})["models"];
  ASSERT_EQ(served.size(), 1u);
  EXPECT_EQ(served[0]["default"], true) << "the version the default alias points at";
}

}  // namespace
}  // namespace llmops::test

namespace llmops::test {
namespace {

// The value of one Prometheus sample line ("name{labels} value"), or -1 when absent.
double metric_value(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

TEST(ModelLifecycle, EveryRequestIsMeasuredByModelAndLoggedBounded) {
  REQUIRE_STORIES();
  DaemonProcess d({}, "[serving]\nmodel = " + shared(kGguf) + "\nrequest-log-size = 4\n");
  ASSERT_TRUE(d.start()) << d.log();
  for (int i = 0; i < 3; ++i) ASSERT_EQ(complete(d, "stories260K", 10).status, 200);
  auto streamed = d.request("POST", "/v1/chat/completions",
                            R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 6, "stream": true})");
  ASSERT_EQ(streamed.status, 200);
  ASSERT_EQ(d.request("POST", "/v1/completions", R"({"prompt": "x", "max_tokens": 100000})").status, 400);

  const std::string m = d.get("/metrics").body;
  const std::string model = "model=\"stories260K\"";
  EXPECT_EQ(metric_value(m, "llmops_serving_requests_by_status_total{" + model + ",status=\"ok\"}"), 4) << m;
  EXPECT_EQ(metric_value(m, "llmops_serving_requests_by_status_total{" + model + ",status=\"bad_request\"}"), 1);
  EXPECT_EQ(metric_value(m, "llmops_serving_time_to_first_token_seconds_count{" + model + "}"), 4);
  EXPECT_EQ(metric_value(m, "llmops_serving_queue_seconds_count{" + model + "}"), 4);
  // 3 × 10 tokens and 6: one gap fewer than tokens per request.
  EXPECT_EQ(metric_value(m, "llmops_serving_inter_token_latency_seconds_count{" + model + "}"), 3 * 9 + 5);
  EXPECT_EQ(metric_value(m, "llmops_serving_request_completion_tokens_sum{" + model + "}"), 36);
  EXPECT_GT(metric_value(m, "llmops_serving_time_to_first_token_seconds_bucket{" + model + ",le=\"+Inf\"}"), 0);
  EXPECT_NE(m.find("llmops_serving_running_sequences{" + model + "}"), std::string::npos);

  // The log keeps the newest 4 of the 5, newest first, without bodies by default.
  Json log;
  ASSERT_TRUE(eventually([&] {
    log = ctl_json(d, {"serve", "log"})["requests"];
    return log.size() == 4 && log[0]["status"] == 400;
  }, 5000)) << log.dump();
  EXPECT_EQ(log[0]["outcome"], "bad_request");
  EXPECT_EQ(log[1]["route"], "chat");
  EXPECT_EQ(log[1]["stream"], true);
  EXPECT_EQ(log[1]["completion_tokens"], 6);
  EXPECT_EQ(log[2]["model"], "stories260K");
  EXPECT_EQ(log[2]["caller"], "anonymous");
  EXPECT_GT(log[2]["ttft_s"].get<double>(), 0);
  EXPECT_GE(log[2]["e2e_s"].get<double>(), log[2]["ttft_s"].get<double>());
  EXPECT_FALSE(log[2].contains("prompt"));
  auto table = d.ctl({"serve", "log"});
  EXPECT_NE(table.out.find("TTFT MS"), std::string::npos);

  // The configured model's name is taken: a version or an alias of that name could never answer.
  EXPECT_EQ(d.ctl({"model", "import", shared(kGguf), "--name", "stories260K"}).exit_code, 6);
  // A version whose admin turned bodies on logs them; a restart keeps the log.
  ASSERT_EQ(d.ctl({"model", "import", shared(kGguf), "--name", "audited"}).exit_code, 0);
  ASSERT_EQ(d.ctl({"model", "set", "audited", "--log-bodies", "on"}).exit_code, 0);
  EXPECT_EQ(d.ctl({"alias", "set", "stories260K", "audited"}).exit_code, 6);
  ASSERT_EQ(complete(d, "audited", 5).status, 200);
  ASSERT_TRUE(eventually([&] {
    log = ctl_json(d, {"serve", "log", "--model", "audited"})["requests"];
    return log.size() == 1;
  }, 5000));
  EXPECT_EQ(log[0]["prompt"], "Once upon a time");
  EXPECT_FALSE(log[0]["completion"].get<std::string>().empty());
  d.signal(SIGTERM);
  ASSERT_EQ(d.wait_exit(20000), 0);
  ASSERT_TRUE(d.start()) << d.log();
  EXPECT_EQ(ctl_json(d, {"serve", "log"})["requests"].size(), 4u);
}

TEST(ModelLifecycle, LlmopsctlChatKeepsTheConversation) {
  REQUIRE_STORIES();
  DaemonProcess d({}, "[serving]\nmodel = " + shared(kGguf) + "\n");
  ASSERT_TRUE(d.start()) << d.log();
  auto r = run_program({"/bin/sh", "-c",
                        std::string("printf 'Tell me a story\\nAnd then?\\n/exit\\nnot read\\n' | ") + LLMOPSCTL_PATH + " --socket " +
                            d.socket_path() + " chat --max-tokens 8 --temperature 0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The first answer is what the HTTP API gives for the same first turn.
  auto first = d.request("POST", "/v1/chat/completions",
                         R"({"messages": [{"role": "user", "content": "Tell me a story"}], "max_tokens": 8, "temperature": 0})");
  const std::string a1 = first.json()["choices"][0]["message"]["content"];
  ASSERT_EQ(r.out.rfind(a1 + "\n", 0), 0u) << r.out;
  // The second turn carries the history: the same as sending it whole.
  Json second_body = {{"messages", {{{"role", "user"}, {"content", "Tell me a story"}}, {{"role", "assistant"}, {"content", a1}},
                                    {{"role", "user"}, {"content", "And then?"}}}},
                      {"max_tokens", 8}, {"temperature", 0}};
  auto second = d.request("POST", "/v1/chat/completions", second_body.dump());
  EXPECT_EQ(r.out, a1 + "\n" + second.json()["choices"][0]["message"]["content"].get<std::string>() + "\n");
}

}  // namespace
}  // namespace llmops::test
