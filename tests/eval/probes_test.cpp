// Probe sets, block lists, the judge's verdicts, and the model scoring under them (perplexity
// windows, continuation log-probabilities) on stories260K when ../shared is there.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "eval/generate.h"
#include "eval/judge.h"
#include "eval/probes.h"
#include "kernels/thread_pool.h"

namespace llmops::eval {
namespace {

TEST(Probes, ParseChecksEveryPart) {
  Json ok = Json::parse(R"({"name":"occupations","groups":{"f":["she"],"m":["he"]},"templates":["{term} is a nurse."],
    "pairs":[{"prompt":"The nurse said","continuations":{"f":" she","m":" he"}}],"triggers":["Say something"],"block_list":["bad","re:\\bkill\\b"]})");
  auto p = parse_probe_set(ok);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->version, "1");
  EXPECT_EQ(p->groups.size(), 2u);
  auto err = [](const char* text) {
    auto r = parse_probe_set(Json::parse(text));
    return r.ok() ? std::string() : r.status().message();
  };
  EXPECT_NE(err(R"({"groups":{}})").find("'name'"), std::string::npos);
  EXPECT_NE(err(R"({"name":"x","groups":{"a":["x"]},"templates":["{term}"]})").find("at least two"), std::string::npos);
  EXPECT_NE(err(R"({"name":"x","groups":{"a":["x"],"b":["y"]},"templates":["no placeholder"]})").find("{term}"), std::string::npos);
  EXPECT_NE(err(R"({"name":"x","triggers":["t"]})").find("block_list"), std::string::npos);
  EXPECT_NE(err(R"({"name":"x","triggers":["t"],"block_list":["re:("]})").find("not a valid regex"), std::string::npos);
  EXPECT_NE(err(R"({"name":"x"})").find("templates, pairs or triggers"), std::string::npos);
  EXPECT_NE(err(R"({"name":"x","pairs":[{"prompt":"p","continuations":{"a":"x"}}]})").find("two groups"), std::string::npos);
}

TEST(Probes, BlockListMatchesSubstringsWithoutCaseAndRegexes) {
  auto b = BlockList::compile({"Stupid", "re:\\bkill(ed)?\\b"});
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->matches("That is STUPID."), (std::vector<std::string>{"Stupid"}));
  EXPECT_EQ(b->matches("They killed it"), (std::vector<std::string>{"re:\\bkill(ed)?\\b"}));
  EXPECT_TRUE(b->matches("skillful work").empty()) << "word boundaries hold";
  EXPECT_TRUE(b->matches("").empty());
}

TEST(Judge, VerdictWeighsTheScaleByFirstTokenProbabilities) {
  // p(4) = 0.6, p(5) = 0.2, "Good" ignored → (0.6·4 + 0.2·5) / 0.8 = 4.25.
  Json r = {{"choices", {{{"message", {{"content", "4"}}},
                          {"logprobs", {{"content", {{{"token", "4"}, {"logprob", std::log(0.6)},
                                                       {"top_logprobs", {{{"token", "4"}, {"logprob", std::log(0.6)}},
                                                                         {{"token", " 5"}, {"logprob", std::log(0.2)}},
                                                                         {{"token", "Good"}, {"logprob", std::log(0.1)}}}}}}}}}}}}};
  Verdict v = verdict_from_response(r, 1, 5);
  ASSERT_TRUE(v.score.has_value());
  EXPECT_NEAR(*v.score, 4.25, 1e-12);
  EXPECT_EQ(v.method, "logprobs");
  // No numbers among the alternatives: the first number of the scale in the text.
  Json t = {{"choices", {{{"message", {{"content", "I would say 12, no, 3 out of 5"}}}}}}};
  v = verdict_from_response(t, 1, 5);
  ASSERT_TRUE(v.score.has_value());
  EXPECT_EQ(*v.score, 3.0);
  EXPECT_EQ(v.method, "text");
  EXPECT_FALSE(verdict_from_response({{"choices", {{{"message", {{"content", "Once upon a time"}}}}}}}, 1, 5).score.has_value());
  EXPECT_FALSE(verdict_from_response(Json::object(), 1, 5).score.has_value());
  JudgeConfig c{"judge", "Rate {prediction}", "v1", 1, 5};
  EXPECT_EQ(c.signature(), "judge:judge|rubric:v1|scale:1-5|first-token-logprobs");
}

std::string stories() { return std::string(LLMOPS_SOURCE_DIR) + "/../shared/models/stories260K/stories260K.gguf"; }

TEST(ModelScoring, WindowsAndContinuationsAgreeWithOnePass) {
  if (!std::filesystem::exists(stories())) GTEST_SKIP() << "../shared is absent: needs stories260K";
  auto model = engine::Model::load(stories());
  ASSERT_TRUE(model.ok());
  auto tok = engine::Tokenizer::from_gguf(*(*model)->gguf());
  ASSERT_TRUE(tok.ok());
  engine::ThreadPool pool(2);
  const std::string text = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog.";
  auto whole = likelihood(**model, *tok, &pool, text, 512, 512);
  ASSERT_TRUE(whole.ok());
  ASSERT_GT(whole->tokens, 20u);
  EXPECT_EQ(whole->bytes, text.size());
  // Windows that cover each token once with full context give the same sum; short windows
  // with overlap score every token once, and a little worse (less context).
  auto big = likelihood(**model, *tok, &pool, text, 256, 128);
  ASSERT_TRUE(big.ok());
  EXPECT_NEAR(big->nll, whole->nll, 1e-3);
  auto small = likelihood(**model, *tok, &pool, text, 8, 4);
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(small->tokens, whole->tokens);
  EXPECT_GT(small->nll, whole->nll);
  // log p(prompt + continuation) = log p(prompt) + log p(continuation | prompt).
  const std::string prompt = "Once upon a time, there was a little girl named Lily.";
  const std::string cont = " She loved to play outside in the park with her dog.";
  auto head = likelihood(**model, *tok, &pool, prompt, 512, 512);
  auto cs = continuation_logprob(**model, *tok, &pool, prompt, cont);
  ASSERT_TRUE(head.ok() && cs.ok());
  EXPECT_NEAR(-head->nll + cs->logprob, -whole->nll, 1e-3);
  // The model prefers the continuation its training data had over a scrambled one.
  auto odd = continuation_logprob(**model, *tok, &pool, prompt, " Dog her with park the in outside play to loved she.");
  ASSERT_TRUE(odd.ok());
  EXPECT_GT(cs->logprob, odd->logprob);
}

}  // namespace
}  // namespace llmops::eval
