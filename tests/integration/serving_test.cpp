// The serving stage end to end: a real llmopsd serving ../shared's stories260K over HTTP.
// Greedy output equals the references of two independent implementations; concurrent
// requests give what each gives alone; streaming, the queue limit, a client that disconnects
// mid-stream, seeds and bad input.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "integration/harness.h"

namespace llmops::test {
namespace {


#define REQUIRE_STORIES()                                                                                                 \
  do {                                                                                                                     \
    if (!std::filesystem::exists(shared("models/stories260K/stories260K.gguf"))) {                                         \
      GTEST_SKIP() << "../shared is absent (" << shared("models/stories260K") << " not found): serving tests need stories260K"; \
    }                                                                                                                      \
  } while (0)

std::string gguf_config(const std::string& extra = "") {
  return "[serving]\nmodel = " + shared("models/stories260K/stories260K.gguf") + "\n" + extra;
}

std::string detokenize(DaemonProcess& d, const std::vector<int32_t>& ids) {
  auto r = d.request("POST", "/detokenize", Json{{"tokens", ids}}.dump());
  EXPECT_EQ(r.status, 200) << r.body;
  return r.json()["prompt"].get<std::string>();
}

HttpResult complete(DaemonProcess& d, const Json& body) { return d.request("POST", "/v1/completions", body.dump()); }

TEST(Serving, GreedyOverHttpEqualsTheReferences) {
  REQUIRE_STORIES();
  const std::string ref = read_text(shared("models/stories260K/reference_greedy.txt"));
  auto prompt = ints_after(ref, "PROMPT ids: ");
  auto case1 = ints_after(ref, "B generated (60): ");
  ASSERT_EQ(case1.size(), 60u);
  {
    DaemonProcess d({}, gguf_config());
    ASSERT_TRUE(d.start()) << d.log();
    auto r = complete(d, {{"prompt", prompt}, {"max_tokens", 60}, {"temperature", 0}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json()["choices"][0]["text"].get<std::string>(), detokenize(d, case1));
    EXPECT_EQ(r.json()["usage"]["completion_tokens"], 60);
    EXPECT_EQ(r.json()["usage"]["prompt_tokens"], 5);
    // The same prompt as text (BOS added by the vocabulary's rule).
    auto t = complete(d, {{"prompt", "Once upon a time"}, {"max_tokens", 60}, {"temperature", 0}});
    EXPECT_EQ(t.json()["choices"][0]["text"], r.json()["choices"][0]["text"]);
  }
  // Case 2 from BOS alone, 255 tokens: the llama2.c checkpoint, whose context is longer.
  auto case2 = ints_after(ref.substr(ref.find("== Case 2")), "A generated (255 ids):\n");
  ASSERT_GE(case2.size(), 255u);
  case2.resize(255);
  DaemonProcess d({}, "[serving]\nmodel = " + shared("models/stories260K/stories260K.bin") + "\ntokenizer = " +
                          shared("models/stories260K/tok512.bin") + "\n");
  ASSERT_TRUE(d.start()) << d.log();
  auto r = complete(d, {{"prompt", std::vector<int>{1}}, {"max_tokens", 255}, {"temperature", 0}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["choices"][0]["text"].get<std::string>(), detokenize(d, case2));
}

TEST(Serving, ConcurrentRequestsGiveWhatEachGivesAlone) {
  REQUIRE_STORIES();
  DaemonProcess d({}, gguf_config("max-sequences = 8\n"));
  ASSERT_TRUE(d.start()) << d.log();
  const std::vector<std::string> prompts = {"Once upon a time", "Lily went to the park", "The cat", "One day, a big dog"};
  std::vector<std::string> alone;
  for (const auto& p : prompts) {
    auto r = complete(d, {{"prompt", p}, {"max_tokens", 40}, {"temperature", 0}});
    ASSERT_EQ(r.status, 200) << r.body;
    alone.push_back(r.json()["choices"][0]["text"].get<std::string>());
  }
  std::vector<std::string> together(prompts.size() * 2);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < together.size(); ++i) {
    threads.emplace_back([&, i] {
      auto r = complete(d, {{"prompt", prompts[i % prompts.size()]}, {"max_tokens", 40}, {"temperature", 0}});
      together[i] = r.status == 200 ? r.json()["choices"][0]["text"].get<std::string>() : r.body;
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < together.size(); ++i) EXPECT_EQ(together[i], alone[i % prompts.size()]) << "request " << i;
}

TEST(Serving, StreamsServerSentEventsWithUsage) {
  REQUIRE_STORIES();
  DaemonProcess d({}, gguf_config());
  ASSERT_TRUE(d.start()) << d.log();
  auto whole = complete(d, {{"prompt", "Once upon a time"}, {"max_tokens", 20}, {"temperature", 0}});
  auto r = complete(d, {{"prompt", "Once upon a time"}, {"max_tokens", 20}, {"temperature", 0}, {"stream", true},
                        {"stream_options", {{"include_usage", true}}}});
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.headers["content-type"].find("text/event-stream"), std::string::npos);
  std::string text, finish;
  int usage_chunks = 0;
  bool done = false;
  std::istringstream lines(r.body);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    ASSERT_EQ(line.rfind("data: ", 0), 0u) << line;
    std::string data = line.substr(6);
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    Json c = Json::parse(data);
    if (!c["usage"].is_null()) {
      ++usage_chunks;
      EXPECT_EQ(c["usage"]["completion_tokens"], 20);
      continue;
    }
    text += c["choices"][0]["text"].get<std::string>();
    if (!c["choices"][0]["finish_reason"].is_null()) finish = c["choices"][0]["finish_reason"];
  }
  EXPECT_TRUE(done);
  EXPECT_EQ(usage_chunks, 1);
  EXPECT_EQ(finish, "length");
  EXPECT_EQ(text, whole.json()["choices"][0]["text"].get<std::string>());
}

TEST(Serving, SameSeedSameTextAndStopStrings) {
  REQUIRE_STORIES();
  DaemonProcess d({}, gguf_config());
  ASSERT_TRUE(d.start()) << d.log();
  auto sample = [&](int seed) {
    auto r = complete(d, {{"prompt", "Once upon a time"}, {"max_tokens", 30}, {"temperature", 1.0}, {"seed", seed}});
    return r.json()["choices"][0]["text"].get<std::string>();
  };
  EXPECT_EQ(sample(42), sample(42));
  EXPECT_NE(sample(42), sample(43));
  auto stopped = complete(d, {{"prompt", "Once upon a time"}, {"max_tokens", 40}, {"temperature", 0}, {"stop", {" girl", "Lily"}}});
  EXPECT_EQ(stopped.json()["choices"][0]["text"], ", there was a little");
  EXPECT_EQ(stopped.json()["choices"][0]["finish_reason"], "stop");
  auto n = complete(d, {{"prompt", "Once"}, {"max_tokens", 8}, {"n", 3}, {"seed", 1}});
  EXPECT_EQ(n.json()["choices"].size(), 3u);
  auto lp = complete(d, {{"prompt", "Once"}, {"max_tokens", 3}, {"temperature", 0}, {"logprobs", 2}});
  EXPECT_EQ(lp.json()["choices"][0]["logprobs"]["top_logprobs"][0].size(), 2u);
}

// Opens a streamed request on a raw socket and returns the fd after the first bytes arrive.
int open_stream(int port, const std::string& body, const std::string& extra_headers = "") {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
  std::string req = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra_headers + "Content-Type: application/json\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body;
  (void)::write(fd, req.data(), req.size());
  char buf[4096];
  (void)::read(fd, buf, sizeof buf);
  return fd;
}

Json served_model(DaemonProcess& d) {
  auto r = d.admin("GET", "/v1/modules/serving/served");
  return r.status == 200 ? r.json()["models"][0] : Json();
}

TEST(Serving, QueueLimitAnswers429AndADisconnectFreesTheSlot) {
  // A synthetic llama-110M decodes slowly enough (milliseconds per token) to hold the only slot.
  const std::string path = synthetic_model("llama-110M", "Q8_0");
  ASSERT_FALSE(path.empty());
  DaemonProcess d({}, "[serving]\nmodel = " + path + "\nmax-sequences = 1\nmax-queue = 0\nthreads = 1\n");
  ASSERT_TRUE(d.start()) << d.log();
  const int max_tokens = 240;  // the prompt takes 8 of the 256 positions
  const std::string body = Json{{"prompt", "Once"}, {"max_tokens", max_tokens}, {"stream", true}, {"ignore_eos", true}}.dump();
  int fd = open_stream(d.port(), body);
  ASSERT_GE(fd, 0);
  // The response's headers go out before the scheduler admits the sequence at its next step.
  EXPECT_TRUE(eventually([&] { return served_model(d)["running"] == 1; }, 5000));
  auto refused = complete(d, {{"prompt", "Once"}, {"max_tokens", 5}});
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_EQ(refused.headers["retry-after"], "1");
  EXPECT_EQ(refused.json()["error"]["type"], "rate_limit_error");
  // The client goes away: its sequence leaves the batch long before its max_tokens, and the
  // slot serves others.
  ::close(fd);
  Json m;
  for (int i = 0; i < 300; ++i) {
    m = served_model(d);
    if (m["running"] == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(m["running"], 0);
  EXPECT_LT(m["tokens_generated"].get<int>(), max_tokens) << "the sequence ran to its end instead of being cancelled";
  EXPECT_EQ(m["kv_bytes_in_use"], 0);
  EXPECT_EQ(complete(d, {{"prompt", "Once"}, {"max_tokens", 5}}).status, 200);
}

// serving.request-timeout: a generation still running (or still waiting) when its time is up
// ends with an error event naming the timeout, counted as such on /metrics; the others are
// served, and so is the next request.
TEST(Serving, ARequestPastItsTimeoutEndsSayingSoAndTheDaemonKeepsServing) {
  // Three 240-token streams through one slot on one thread: llama-110M takes milliseconds a
  // token, so the last one admitted cannot be done within the 1-second timeout.
  const std::string path = synthetic_model("llama-110M", "Q8_0");
  ASSERT_FALSE(path.empty());
  DaemonProcess d({}, "[serving]\nmodel = " + path + "\nmax-sequences = 1\nthreads = 1\nrequest-timeout = 1\n");
  ASSERT_TRUE(d.start()) << d.log();
  const std::string body = Json{{"prompt", "Once"}, {"max_tokens", 240}, {"stream", true}, {"ignore_eos", true}}.dump();
  std::vector<int> fds;
  for (int i = 0; i < 3; ++i) {
    fds.push_back(open_stream(d.port(), body, "Connection: close\r\n"));  // each read below ends with its stream
    ASSERT_GE(fds.back(), 0);
  }
  int timed_out = 0;
  for (int fd : fds) {
    const std::string rest = read_until_close(fd, 120000);
    ::close(fd);
    EXPECT_NE(rest.find("data: [DONE]"), std::string::npos) << "a stream was cut without its end";
    const bool late = rest.find("the request ran past its timeout") != std::string::npos;
    EXPECT_TRUE(late || rest.find("\"finish_reason\":\"length\"") != std::string::npos) << rest.substr(rest.size() > 400 ? rest.size() - 400 : 0);
    timed_out += late ? 1 : 0;
  }
  EXPECT_GE(timed_out, 1);
  const std::string metrics = d.get("/metrics").body;
  EXPECT_NE(metrics.find("status=\"timeout\"} " + std::to_string(timed_out)), std::string::npos) << metrics;
  auto next = complete(d, {{"prompt", "Once"}, {"max_tokens", 5}});
  EXPECT_EQ(next.status, 200) << next.body;
}

TEST(Serving, SigtermLetsStreamsInFlightFinishAndRefusesNewOnes) {
  const std::string path = synthetic_model("llama-110M", "Q8_0");  // milliseconds per token: in flight at the signal
  ASSERT_FALSE(path.empty());
  DaemonProcess d({"--drain-timeout=300"}, "[serving]\nmodel = " + path + "\nthreads = 1\n");
  ASSERT_TRUE(d.start()) << d.log();
  const int max_tokens = 64;
  const std::string body = Json{{"prompt", "Once"}, {"max_tokens", max_tokens}, {"stream", true}, {"ignore_eos", true},
                                {"stream_options", {{"include_usage", true}}}}.dump();
  int a = open_stream(d.port(), body), b = open_stream(d.port(), body);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  d.signal(SIGTERM);
  // New requests are refused while the streams drain.
  ASSERT_TRUE(eventually([&] { return complete(d, {{"prompt", "Once"}, {"max_tokens", 2}}).status == 503; }, 5000));
  for (int fd : {a, b}) {
    const std::string rest = read_until_close(fd, 300000);
    ::close(fd);
    EXPECT_NE(rest.find("data: [DONE]"), std::string::npos) << "a stream was cut by the shutdown";
    EXPECT_NE(rest.find("\"completion_tokens\":" + std::to_string(max_tokens)), std::string::npos) << rest.substr(rest.size() > 400 ? rest.size() - 400 : 0);
  }
  EXPECT_EQ(d.wait_exit(30000), 0) << d.log();
}

TEST(Serving, InteractiveKeysGoBeforeBatchKeys) {
  // llama-110M decodes slowly enough on one thread that the held slot outlasts the setup.
  const std::string path = synthetic_model("llama-110M", "Q8_0");
  ASSERT_FALSE(path.empty());
  DaemonProcess d({}, "[serving]\nmodel = " + path + "\nmax-sequences = 1\nmax-queue = 2\nthreads = 1\n");
  ASSERT_TRUE(d.start()) << d.log();
  auto secret = [&](const std::string& name) {
    auto k = d.ctl({"keys", "create", name, "--json"});
    EXPECT_EQ(k.exit_code, 0) << k.err;
    return Json::parse(k.out)["key"].get<std::string>();
  };
  const std::string batch = secret("nightly-eval"), chat = secret("support-chat");
  ASSERT_EQ(d.ctl({"serve", "priority", "nightly-eval", "batch"}).exit_code, 0);
  ASSERT_EQ(d.ctl({"serve", "priority", "support-chat", "interactive"}).exit_code, 0);
  EXPECT_EQ(d.ctl({"serve", "priority", "nobody", "batch"}).exit_code, 3);
  Json listed = Json::parse(d.ctl({"serve", "priority", "--json"}).out)["priorities"];
  ASSERT_EQ(listed.size(), 2u);

  // A batch stream holds the only slot; two batch requests fill the queue.
  const std::string hold = Json{{"prompt", "Once"}, {"max_tokens", 240}, {"stream", true}, {"ignore_eos", true}}.dump();
  int fd = open_stream(d.port(), hold, "Authorization: Bearer " + batch + "\r\n");
  ASSERT_GE(fd, 0);
  auto waiting = [&] { return served_model(d)["waiting"].get<int>(); };
  std::mutex mu;
  std::vector<std::string> finished;  // in completion order
  std::vector<int> statuses(3, 0);
  std::vector<std::string> bodies(3);
  auto send = [&](int i, const std::string& key, const std::string& who) {
    auto r = d.request("POST", "/v1/completions", Json{{"prompt", "Once"}, {"max_tokens", 4}}.dump(), {{"Authorization", "Bearer " + key}});
    std::lock_guard lock(mu);
    statuses[i] = r.status;
    bodies[i] = r.body;
    if (r.status == 200) finished.push_back(who);
  };
  std::vector<std::thread> clients;
  clients.emplace_back(send, 0, batch, "batch-1");
  ASSERT_TRUE(eventually([&] { return waiting() == 1; }, 5000));
  clients.emplace_back(send, 1, batch, "batch-2");
  ASSERT_TRUE(eventually([&] { return waiting() == 2; }, 5000));
  // The queue is full: the interactive request takes the newest batch request's place.
  clients.emplace_back(send, 2, chat, "interactive");
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mu);
    return statuses[1] != 0;
  }, 5000));
  EXPECT_EQ(statuses[1], 429) << bodies[1];
  EXPECT_NE(bodies[1].find("higher-priority"), std::string::npos) << bodies[1];
  ::close(fd);  // the slot frees: the interactive request goes before the batch one that came first
  for (auto& t : clients) t.join();
  EXPECT_EQ(statuses[0], 200) << bodies[0];
  EXPECT_EQ(statuses[2], 200) << bodies[2];
  EXPECT_EQ(finished, (std::vector<std::string>{"interactive", "batch-1"}));
}

TEST(Serving, ASharedPromptPrefixIsComputedOnceWithTheSameAnswers) {
  REQUIRE_STORIES();
  const std::string system = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends.";
  std::vector<std::string> answers[2];
  Json stats[2];
  for (int cached = 0; cached < 2; ++cached) {
    DaemonProcess d({}, gguf_config(cached ? "" : "prefix-cache = false\n"));
    ASSERT_TRUE(d.start()) << d.log();
    for (const char* tail : {" One day", " The sun", " One day"}) {
      auto r = complete(d, {{"prompt", system + tail}, {"max_tokens", 12}, {"temperature", 0}});
      ASSERT_EQ(r.status, 200) << r.body;
      answers[cached].push_back(r.json()["choices"][0]["text"].get<std::string>());
    }
    // The answer goes out as its last token is made; the scheduler's counters follow at the step's end.
    EXPECT_TRUE(eventually([&] {
      stats[cached] = served_model(d);
      return stats[cached]["running"] == 0 && stats[cached]["kv_bytes_in_use"] == 0;
    }, 5000)) << "the cache is counted as in use: " << stats[cached].dump();
  }
  EXPECT_EQ(answers[0], answers[1]) << "reusing the cached prefix changed the greedy text";
  EXPECT_EQ(stats[0]["prefix_hit_tokens"], 0);
  // The second and third prompts find the first's tokens cached (all but the differing tail).
  const int prompt = stats[1]["prompt_tokens"].get<int>() / 3;
  EXPECT_GT(stats[1]["prefix_hit_tokens"].get<int>(), prompt) << stats[1].dump();
  EXPECT_GE(stats[1]["cached_prefixes"].get<int>(), 1);
}

TEST(Serving, BadInputGets400AndTheDaemonKeepsServing) {
  REQUIRE_STORIES();
  DaemonProcess d({}, gguf_config());
  ASSERT_TRUE(d.start()) << d.log();
  struct Case {
    std::string body;
    int status;
    std::string param;
  };
  const std::vector<Case> cases = {
      {"{not json", 400, ""},
      {std::string(10000, '[') + std::string(10000, ']'), 400, ""},
      {R"({"prompt": 5})", 400, "prompt"},
      {R"({"prompt": "x", "max_tokens": -3})", 400, "max_tokens"},
      {R"({"prompt": "x", "max_tokens": 100000000})", 400, "max_tokens"},
      {R"({"prompt": "x", "max_tokens": 1000})", 400, "max_tokens"},
      {R"({"prompt": "x", "logprobs": 21})", 400, "logprobs"},
      {R"({"prompt": "x", "n": 99})", 400, "n"},
      {R"({"prompt": "x", "temperature": "hot"})", 400, "temperature"},
      {R"({"prompt": "x", "stop": [1, 2]})", 400, "stop"},
      {R"({"prompt": [1, 99999]})", 400, "prompt"},
      {R"({"prompt": "x", "model": "nope"})", 404, "model"},
      {"{\"prompt\": \"bad \xff\xfe utf8\"}", 400, ""},
      {Json{{"prompt", std::string(2000, 'a')}, {"max_tokens", 4}}.dump(), 400, "prompt"},
  };
  for (const auto& c : cases) {
    auto r = d.request("POST", "/v1/completions", c.body);
    EXPECT_EQ(r.status, c.status) << c.body.substr(0, 80) << " → " << r.body;
    if (r.status >= 400 && !r.body.empty() && r.body[0] == '{') {
      EXPECT_FALSE(r.json()["error"]["message"].get<std::string>().empty());
      if (!c.param.empty()) {
        EXPECT_EQ(r.json()["error"]["param"], c.param) << r.body;
      }
    }
  }
  auto chat = d.request("POST", "/v1/chat/completions", R"({"messages": "hi"})");
  EXPECT_EQ(chat.status, 400);
  EXPECT_EQ(chat.json()["error"]["param"], "messages");
  EXPECT_EQ(complete(d, {{"prompt", "Once"}, {"max_tokens", 3}}).status, 200);
  EXPECT_EQ(d.request("POST", "/tokenize", R"({"model": 5, "prompt": "x"})").status, 400);
  EXPECT_EQ(d.request("POST", "/detokenize", R"({"tokens": [1], "model": []})").status, 400);
  EXPECT_EQ(d.get("/v1/models/nope").status, 404);
  EXPECT_EQ(d.get("/v1/models/stories260K").json()["id"], "stories260K");
}

TEST(Serving, ChatRendersTheTemplateAndStreamsTheSameText) {
  REQUIRE_STORIES();
  DaemonProcess d({}, gguf_config());
  ASSERT_TRUE(d.start()) << d.log();
  const Json messages = {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Tell me a story"}}};
  auto whole = d.request("POST", "/v1/chat/completions", Json{{"messages", messages}, {"max_tokens", 20}, {"temperature", 0}}.dump());
  ASSERT_EQ(whole.status, 200) << whole.body;
  Json w = whole.json();
  EXPECT_EQ(w["object"], "chat.completion");
  EXPECT_EQ(w["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(w["usage"]["completion_tokens"], 20);
  // stories260K carries no template: the built-in its SentencePiece vocabulary suggests renders
  // the system prompt into the first user turn, so the prompt is longer than the user text.
  EXPECT_GT(w["usage"]["prompt_tokens"].get<int>(), 10);
  auto streamed = d.request("POST", "/v1/chat/completions",
                            Json{{"messages", messages}, {"max_tokens", 20}, {"temperature", 0}, {"stream", true}}.dump());
  std::string content;
  std::istringstream lines(streamed.body);
  bool role = false;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("data: {", 0) != 0) continue;
    Json c = Json::parse(line.substr(6));
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    const Json& delta = c["choices"][0]["delta"];
    if (delta.contains("role")) role = true;
    if (delta.contains("content")) content += delta["content"].get<std::string>();
  }
  EXPECT_TRUE(role);
  EXPECT_EQ(content, w["choices"][0]["message"]["content"].get<std::string>());
  auto list = d.admin("GET", "/v1/modules/serving/served");
  EXPECT_EQ(list.json()["models"][0]["chat_template"], "builtin:llama2");
}

TEST(Serving, AChatTemplateThatReachesForInternalsIsRefused) {
  REQUIRE_STORIES();
  TempDir files;
  const std::string evil = files.file("evil.jinja");
  std::ofstream(evil) << "{{ messages.__class__.__mro__ }}{% for m in messages %}{{ m.content }}{% endfor %}";
  DaemonProcess d({}, gguf_config("chat-template = " + evil + "\n"));
  ASSERT_TRUE(d.start()) << d.log();
  auto r = d.request("POST", "/v1/chat/completions", R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.json()["error"]["message"].get<std::string>().find("chat template"), std::string::npos) << r.body;
  EXPECT_EQ(complete(d, {{"prompt", "Once"}, {"max_tokens", 3}}).status, 200);
  // A built-in chosen by name.
  DaemonProcess d2({}, gguf_config("chat-template = chatml\n"));
  ASSERT_TRUE(d2.start()) << d2.log();
  auto ok = d2.request("POST", "/v1/chat/completions", R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})");
  EXPECT_EQ(ok.status, 200) << ok.body;
}

// The device path through the daemon: serving.device = cuda on the CPU reference driver's
// second device (serving.gpu = 1; LLMOPS_COMPUTE_DRIVER gives the daemon that driver) answers as
// the CPU does, greedy and with logprobs; serve list and topology name the device; a GPU the
// driver does not have fails the stage saying so.
TEST(Serving, ADeviceServesWhatTheCpuServes) {
  REQUIRE_STORIES();
  DaemonProcess cpu({}, gguf_config("device = cpu\n"));
  DaemonProcess dev({}, gguf_config("device = cuda\ngpu = 1\n"));
  dev.env()["LLMOPS_COMPUTE_DRIVER"] = LLMOPS_REFERENCE_DRIVER;
  ASSERT_TRUE(cpu.start()) << cpu.log();
  ASSERT_TRUE(dev.start()) << dev.log();
  for (const Json& body : {Json{{"prompt", "Once upon a time"}, {"max_tokens", 40}, {"temperature", 0}},
                           Json{{"prompt", "The cat"}, {"max_tokens", 20}, {"temperature", 0}, {"logprobs", 2}}}) {
    auto a = complete(cpu, body), b = complete(dev, body);
    ASSERT_EQ(a.status, 200) << a.body;
    ASSERT_EQ(b.status, 200) << b.body << dev.log();
    EXPECT_EQ(b.json()["choices"][0]["text"], a.json()["choices"][0]["text"]);
  }
  auto served = Json::parse(dev.ctl({"--json", "serve", "list"}).out);
  ASSERT_EQ(served["models"].size(), 1u);
  EXPECT_EQ(served["models"][0]["device"], "cuda:1 CPU reference (none)");
  auto topo = Json::parse(dev.ctl({"--json", "topology"}).out);
  EXPECT_EQ(topo["work"][0]["device"], "cuda:1 CPU reference (none)");
  // Two MiB for weights and KV together (one of them the KV budget): layers stream from host
  // memory at each step, and the answer is the same.
  DaemonProcess tight({}, gguf_config("device = cuda\ngpu-memory-mb = 2\nkv-budget-mb = 1\n"));
  tight.env()["LLMOPS_COMPUTE_DRIVER"] = LLMOPS_REFERENCE_DRIVER;
  ASSERT_TRUE(tight.start()) << tight.log();
  const Json greedy = {{"prompt", "Once upon a time"}, {"max_tokens", 40}, {"temperature", 0}};
  auto streamed = complete(tight, greedy);
  ASSERT_EQ(streamed.status, 200) << streamed.body << tight.log();
  EXPECT_EQ(streamed.json()["choices"][0]["text"], complete(cpu, greedy).json()["choices"][0]["text"]);
  EXPECT_NE(tight.log().find("layers stream from host memory"), std::string::npos) << tight.log();
  DaemonProcess missing({}, gguf_config("device = cuda\ngpu = 7\n"));
  missing.env()["LLMOPS_COMPUTE_DRIVER"] = LLMOPS_REFERENCE_DRIVER;
  ASSERT_TRUE(missing.start()) << missing.log();
  EXPECT_NE(complete(missing, {{"prompt", "Once"}, {"max_tokens", 3}}).status, 200);
  EXPECT_NE(missing.log().find("serving.gpu is 7, and the cpu-reference driver sees 2 GPU(s)"), std::string::npos) << missing.log();
}

// serving.device: auto serves on the CPU where no GPU is usable and says why; cuda fails the
// serving stage (the daemon keeps running, its health says why) rather than fall back; anything
// else is a configuration error.
TEST(Serving, DeviceChoiceFallsBackOnlyWhenAllowedAndSaysWhy) {
  REQUIRE_STORIES();
  DaemonProcess strict({}, gguf_config("device = cuda\n"));
  ASSERT_TRUE(strict.start()) << strict.log();
  if (complete(strict, {{"prompt", "Once"}, {"max_tokens", 3}}).status == 200) {
    GTEST_SKIP() << "a GPU is usable here, so serving.device=cuda serves: the GPU tests cover that";
  }
  EXPECT_NE(strict.log().find("serving.device is cuda, but 'stories260K' cannot run on the GPU"), std::string::npos) << strict.log();
  auto modules = strict.ctl({"modules"});
  EXPECT_NE(modules.out.find("cannot run on the GPU"), std::string::npos) << modules.out << modules.err;
  DaemonProcess bad({}, gguf_config("device = tpu\n"));
  ASSERT_TRUE(bad.start()) << bad.log();
  EXPECT_NE(bad.log().find("use auto, cpu or cuda"), std::string::npos) << bad.log();
  DaemonProcess fallback({}, gguf_config("device = auto\n"));
  ASSERT_TRUE(fallback.start()) << fallback.log();
  EXPECT_EQ(complete(fallback, {{"prompt", "Once"}, {"max_tokens", 3}}).status, 200);
  EXPECT_NE(fallback.log().find("'stories260K' runs on the CPU: "), std::string::npos) << fallback.log();
}

// serving.kv-cache-type: fp16 by default (as llama.cpp), fp32 on request; both give llama2.c's
// greedy text, and a type the engine does not have stops the stage saying which it has.
TEST(Serving, KvCacheTypeIsConfiguredAndBothTypesGiveTheReferences) {
  REQUIRE_STORIES();
  const std::string ref = read_text(shared("models/stories260K/reference_greedy.txt"));
  auto prompt = ints_after(ref, "PROMPT ids: ");
  auto case1 = ints_after(ref, "B generated (60): ");
  for (const std::string type : {"", "f16", "f32"}) {
    DaemonProcess d({}, gguf_config(type.empty() ? "" : "kv-cache-type = " + type + "\n"));
    ASSERT_TRUE(d.start()) << d.log();
    EXPECT_EQ(served_model(d)["kv_cache_type"], type.empty() ? "f16" : type);
    auto r = complete(d, {{"prompt", prompt}, {"max_tokens", 60}, {"temperature", 0}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json()["choices"][0]["text"].get<std::string>(), detokenize(d, case1)) << type;
  }
  DaemonProcess bad({}, gguf_config("kv-cache-type = q4_0\n"));
  ASSERT_TRUE(bad.start()) << bad.log();
  EXPECT_NE(bad.log().find("serving.kv-cache-type: KV cache type 'q4_0': use f16 or f32"), std::string::npos) << bad.log();
}

TEST(Serving, EmbeddingsAreNormalisedAndDeterministic) {
  REQUIRE_STORIES();
  DaemonProcess d({}, gguf_config());
  ASSERT_TRUE(d.start()) << d.log();
  auto r = d.request("POST", "/v1/embeddings", Json{{"input", {"Once upon a time", "The cat sat", "Once upon a time"}}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  Json j = r.json();
  ASSERT_EQ(j["data"].size(), 3u);
  std::vector<std::vector<float>> e;
  for (const Json& item : j["data"]) e.push_back(item["embedding"].get<std::vector<float>>());
  EXPECT_EQ(e[0].size(), 64u);  // stories260K's dim
  double norm = 0;
  for (float v : e[0]) norm += v * v;
  EXPECT_NEAR(norm, 1.0, 1e-4);
  EXPECT_EQ(e[0], e[2]);
  EXPECT_NE(e[0], e[1]);
  EXPECT_GT(j["usage"]["prompt_tokens"].get<int>(), 6);
  auto b64 = d.request("POST", "/v1/embeddings", Json{{"input", "Once upon a time"}, {"encoding_format", "base64"}}.dump());
  EXPECT_TRUE(b64.json()["data"][0]["embedding"].is_string());
  EXPECT_EQ(d.request("POST", "/v1/embeddings", R"({"input": 5})").status, 400);
  EXPECT_EQ(d.request("POST", "/v1/embeddings", R"({"input": "x", "encoding_format": "hex"})").status, 400);
  EXPECT_EQ(d.request("POST", "/v1/embeddings", R"({"input": [1, 99999]})").status, 400);
}

TEST(Serving, LlmopsctlGeneratesAndListsServedModels) {
  REQUIRE_STORIES();
  DaemonProcess d({}, gguf_config());
  ASSERT_TRUE(d.start()) << d.log();
  auto g = d.ctl({"generate", "--prompt", "Once upon a time", "--max-tokens", "20", "--temperature", "0"});
  EXPECT_EQ(g.exit_code, 0) << g.err;
  auto whole = complete(d, {{"prompt", "Once upon a time"}, {"max_tokens", 20}, {"temperature", 0}});
  EXPECT_EQ(g.out, whole.json()["choices"][0]["text"].get<std::string>() + "\n");
  Json models;
  EXPECT_TRUE(eventually([&] {  // the counters follow the answer at the scheduler step's end
    auto list = d.ctl({"serve", "list", "--json"});
    models = list.exit_code == 0 ? Json::parse(list.out)["models"] : Json::array();
    return models.size() == 1 && models[0]["running"] == 0 && models[0]["kv_bytes_in_use"] == 0;
  }, 5000)) << models.dump();
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0]["name"], "stories260K");
  // Where it runs: "cpu" here, "cuda:N <name> (<pci>)" on a GPU (the address llmopsctl topology lists).
  const std::string device = models[0].value("device", "");
  EXPECT_TRUE(device == "cpu" || device.rfind("cuda:", 0) == 0) << device;
  auto table = d.ctl({"serve", "list"});
  EXPECT_NE(table.out.find("DEVICE"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(device), std::string::npos) << table.out;
  // topology says which device serves it.
  auto topo = Json::parse(d.ctl({"--json", "topology"}).out);
  ASSERT_EQ(topo["work"].size(), 1u) << topo.dump();
  EXPECT_EQ(topo["work"][0]["kind"], "model");
  EXPECT_EQ(topo["work"][0]["name"], "stories260K");
  EXPECT_EQ(topo["work"][0]["device"], device);
  EXPECT_NE(d.ctl({"topology"}).out.find("WORK"), std::string::npos);
  auto bad = d.ctl({"generate", "--prompt", "x", "--model", "nope"});
  EXPECT_EQ(bad.exit_code, 3);
  EXPECT_NE(bad.err.find("does not exist"), std::string::npos);
}

}  // namespace
}  // namespace llmops::test
