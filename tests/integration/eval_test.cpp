// The eval stage through the daemon and llmopsctl: scoring predictions a dataset already holds
// (sacreBLEU's README example must give its published BLEU), eval runs that generate with
// stories260K and compute perplexity, comparisons that find a real difference significant and
// identical runs not, cancellation keeping finished examples, and errors that name what is
// missing.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <thread>

#include "integration/harness.h"

namespace llmops::test {
namespace {

const std::string kGguf = kStoriesGguf;

#define REQUIRE_STORIES() LLMOPS_REQUIRE_STORIES("eval runs need stories260K")

Json run_json(DaemonProcess& d, const std::string& id) { return ctl_json(d, {"eval", "show", id}); }

void import_jsonl(DaemonProcess& d, const std::string& name, const std::string& text) {
  const std::string path = d.dir().file(name + ".jsonl");
  write_text(path, text);
  auto r = d.ctl({"data", "import", path, "--name", name});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
}

TEST(Eval, ScoreReproducesSacreBleusReadmeExample) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  // sacreBLEU's README / test_bleu.py corpus: two reference streams → BLEU 48.530827.
  import_jsonl(d, "mt",
               "{\"hyp\":\"The dog bit the man.\",\"refs\":[\"The dog bit the man.\",\"The dog had bit the man.\"]}\n"
               "{\"hyp\":\"It wasn't surprising.\",\"refs\":[\"It was not unexpected.\",\"No one was surprised.\"]}\n"
               "{\"hyp\":\"The man had just bitten him.\",\"refs\":[\"The man bit him first.\",\"The man had bitten the dog.\"]}\n");
  auto r = d.ctl({"--json", "eval", "score", "--data", "mt", "--prediction-field", "hyp", "--reference-field", "refs", "--metrics",
                  "bleu,chrf,rouge1,rougeL,em,f1"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  Json run = last_json(r.out);
  ASSERT_EQ(run["status"], "done") << run.dump();
  EXPECT_NEAR(run["results"]["bleu"]["score"].get<double>(), 48.530827, 1e-6);
  EXPECT_EQ(run["results"]["bleu"]["signature"], "nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:2.4.3");
  EXPECT_EQ(run["results"]["em"]["score"].get<double>(), 100.0 / 3) << "one of three is an exact match";
  EXPECT_EQ(run["examples"]["done"], 3);
  // Every example is stored with its own scores.
  Json ex = ctl_json(d, {"eval", "examples", std::to_string(run["id"].get<int>()), "--limit", "5"});
  ASSERT_EQ(ex["examples"].size(), 3u);
  EXPECT_NEAR(ex["examples"][0]["scores"]["bleu"].get<double>(), 100.0, 1e-9);
  EXPECT_FALSE(ex["examples"][0].contains("stats"));
  // The plain-text view names the metrics and the signature.
  auto shown = d.ctl({"eval", "show", std::to_string(run["id"].get<int>())});
  EXPECT_NE(shown.out.find("48.53"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("tok:13a"), std::string::npos) << shown.out;
}

TEST(Eval, BadInputIsNamedAndEdgeCasesScoreAsTheReferencesDo) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  import_jsonl(d, "edge",
               "{\"p\":\"\",\"r\":\"a reference\"}\n"
               "{\"p\":\"something\",\"r\":\"\"}\n"
               "{\"p\":\"我爱北京天安门\",\"r\":\"我爱北京天安门\"}\n"
               "{\"p\":\"مرحبا بالعالم\",\"r\":\"مرحبا بالعالم\"}\n"
               "{\"p\":\"🙂🙂\",\"r\":\"🙂🙂\"}\n");
  // A field that is not there: the message lists what is missing and what exists.
  auto missing = d.ctl({"eval", "score", "--data", "edge", "--prediction-field", "prediction", "--reference-field", "r"});
  EXPECT_EQ(missing.exit_code, 2) << missing.out << missing.err;
  EXPECT_NE(missing.err.find("no field prediction"), std::string::npos) << missing.err;
  EXPECT_NE(missing.err.find("its fields are p, r"), std::string::npos) << missing.err;
  EXPECT_EQ(d.ctl({"eval", "score", "--data", "edge", "--prediction-field", "p", "--reference-field", "r", "--metrics", "bleurt"}).exit_code, 2);
  EXPECT_EQ(d.ctl({"eval", "score", "--data", "nothere", "--prediction-field", "p", "--reference-field", "r"}).exit_code, 3);
  EXPECT_EQ(d.ctl({"eval", "score", "--data", "edge", "--prediction-field", "p", "--reference-field", "r", "--metrics", "ppl"}).exit_code, 2)
      << "perplexity needs a model";

  auto r = d.ctl({"--json", "eval", "score", "--data", "edge", "--prediction-field", "p", "--reference-field", "r", "--metrics",
                  "bleu,chrf,rouge1,em,f1"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  Json run = last_json(r.out);
  ASSERT_EQ(run["status"], "done") << run.dump();
  // sacreBLEU refuses a segment whose only reference is empty: BLEU and chrF leave it out and
  // say so; rouge-score and SQuAD score it (0, and EM 0).
  EXPECT_EQ(run["results"]["bleu"]["examples"], 4);
  EXPECT_EQ(run["results"]["bleu"]["skipped"], 1);
  EXPECT_EQ(run["results"]["rouge1"]["examples"], 5);
  Json ex = ctl_json(d, {"eval", "examples", std::to_string(run["id"].get<int>())});
  ASSERT_EQ(ex["examples"].size(), 5u);
  EXPECT_EQ(ex["examples"][0]["scores"]["bleu"].get<double>(), 0.0) << "an empty hypothesis scores 0";
  // Chinese without spaces is one 13a token: identical → BLEU 100 is not reachable with one
  // token under 4-gram BLEU without effective order, but sentence BLEU (effective order) is 100.
  EXPECT_NEAR(ex["examples"][2]["scores"]["bleu"].get<double>(), 100.0, 1e-9);
  EXPECT_EQ(ex["examples"][2]["scores"]["chrf"].get<double>(), 100.0);
  // rouge-score's default tokenizer keeps only a-z0-9: non-Latin text has no tokens and scores 0.
  EXPECT_EQ(ex["examples"][2]["scores"]["rouge1"].get<double>(), 0.0);
  EXPECT_EQ(ex["examples"][3]["scores"]["em"].get<double>(), 100.0);
  EXPECT_EQ(ex["examples"][4]["scores"]["em"].get<double>(), 100.0);
}

// Stories prompts with references the model's own continuation resembles.
std::string story_prompts(int n) {
  const char* names[] = {"Lily", "Tom", "Ben", "Sue", "Max", "Anna", "Tim", "Mia"};
  const char* things[] = {"a ball", "a cat", "a big tree", "a red car", "a little bird", "a toy", "the park", "a cake"};
  std::string out;
  for (int i = 0; i < n; ++i) {
    std::string name = names[i % 8], thing = things[(i / 8) % 8];
    out += "{\"prompt\":\"Once upon a time, there was a little girl named " + name + ". She saw " + thing +
           "\",\"reference\":\"She was very happy. She wanted to play with it. She said, I love it.\",\"text\":\"Once upon a time, there was a little girl named " +
           name + ". She liked to play with " + thing + ". One day, she went to the park with her mom.\"}\n";
  }
  return out;
}

TEST(Eval, RunGeneratesScoresAndComparesWithSignificance) {
  REQUIRE_STORIES();
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_EQ(d.ctl({"model", "import", shared(kGguf), "--name", "stories"}).exit_code, 0);
  import_jsonl(d, "tales", story_prompts(64));
  auto run = [&](const std::string& max_tokens, const std::string& metrics) {
    auto r = d.ctl({"--json", "eval", "run", "--model", "stories", "--data", "tales", "--metrics", metrics, "--max-tokens", max_tokens,
                    "--batch", "8"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return last_json(r.out);
  };
  Json a = run("40", "bleu,rougeL,chrf,ppl");
  ASSERT_EQ(a["status"], "done") << a.dump();
  EXPECT_EQ(a["examples"]["done"], 64);
  EXPECT_EQ(a["model"]["name"], "stories");
  EXPECT_GT(a["results"]["bleu"]["score"].get<double>(), 0.0);
  const double ppl = a["results"]["ppl"]["score"].get<double>();
  EXPECT_GT(ppl, 1.0);
  EXPECT_LT(ppl, 50.0) << "stories260K knows these simple sentences";
  EXPECT_GT(a["results"]["ppl"]["details"]["bits_per_byte"].get<double>(), 0.0);
  Json ex = ctl_json(d, {"eval", "examples", std::to_string(a["id"].get<int>()), "--limit", "1"});
  ASSERT_EQ(ex["examples"].size(), 1u);
  EXPECT_FALSE(ex["examples"][0]["prediction"].get<std::string>().empty());
  EXPECT_EQ(ex["examples"][0]["generation"]["prompt_tokens"].get<int>() > 5, true);

  // Greedy decoding is deterministic: the same run again is identical, and not significant.
  Json a2 = run("40", "bleu,rougeL,chrf,ppl");
  ASSERT_EQ(a2["status"], "done");
  EXPECT_EQ(a2["results"]["bleu"]["score"], a["results"]["bleu"]["score"]);
  Json same = ctl_json(d, {"eval", "compare", std::to_string(a["id"].get<int>()), std::to_string(a2["id"].get<int>())});
  for (const auto& m : same["metrics"]) {
    EXPECT_EQ(m["delta"].get<double>(), 0.0) << m.dump();
    EXPECT_FALSE(m["significant"].get<bool>()) << m.dump();
    EXPECT_EQ(m["p_value"].get<double>(), 1.0);
  }
  EXPECT_TRUE(same["most_changed"].empty());

  // Two tokens instead of forty: far shorter outputs, a clearly significant drop.
  Json b = run("2", "bleu,rougeL,chrf");
  ASSERT_EQ(b["status"], "done");
  Json diff = ctl_json(d, {"eval", "compare", std::to_string(a["id"].get<int>()), std::to_string(b["id"].get<int>()), "--metric", "rougeL"});
  ASSERT_EQ(diff["metrics"].size(), 3u) << diff.dump() << " (ppl is only in A)";
  for (const auto& m : diff["metrics"]) {
    EXPECT_LT(m["delta"].get<double>(), 0.0) << m.dump();
    EXPECT_TRUE(m["significant"].get<bool>()) << m.dump();
    EXPECT_EQ(m["better"], "A") << m.dump();
    EXPECT_LT(m["ci95"][1].get<double>(), 0.0) << m.dump();
  }
  EXPECT_FALSE(diff["most_changed"].empty());
  auto text = d.ctl({"eval", "compare", std::to_string(a["id"].get<int>()), std::to_string(b["id"].get<int>())});
  EXPECT_NE(text.out.find("95% CI"), std::string::npos) << text.out;
  // Runs on other data cannot be paired.
  import_jsonl(d, "other", story_prompts(3));
  Json c = run("2", "bleu");
  (void)c;
  auto list = ctl_json(d, {"eval", "list"});
  EXPECT_GE(list["runs"].size(), 4u);
  // A model that is not in the catalogue is named.
  auto nomodel = d.ctl({"eval", "run", "--model", "ghost", "--data", "tales", "--metrics", "bleu"});
  EXPECT_EQ(nomodel.exit_code, 3) << nomodel.out << nomodel.err;
}

TEST(Eval, CancelledRunKeepsItsFinishedExamples) {
  REQUIRE_STORIES();
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_EQ(d.ctl({"model", "import", shared(kGguf), "--name", "stories"}).exit_code, 0);
  import_jsonl(d, "many", story_prompts(3000));
  Json q = ctl_json(d, {"eval", "run", "--model", "stories", "--data", "many", "--metrics", "rougeL", "--max-tokens", "200", "--batch", "1",
                        "--detach"});
  const std::string run = std::to_string(q["run"].get<int>()), job = std::to_string(q["job"].get<int>());
  // Wait for some examples to be stored, then cancel.
  bool some = false;
  for (int i = 0; i < 600 && !some; ++i) {
    Json ex = ctl_json(d, {"eval", "examples", run, "--limit", "1"});
    some = !ex["examples"].empty();
    if (!some) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(some) << "no example finished within a minute";
  ASSERT_EQ(d.ctl({"jobs", "cancel", job}).exit_code, 0);
  Json r;
  for (int i = 0; i < 300; ++i) {
    r = run_json(d, run);
    if (r["status"] != "running" && r["status"] != "queued") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(r["status"], "cancelled") << r.dump();
  EXPECT_GT(r["examples"]["done"].get<int>(), 0);
  EXPECT_LT(r["examples"]["done"].get<int>(), 3000);
  EXPECT_TRUE(r["results"]["rougeL"]["score"].is_number()) << "the finished examples are scored";
  EXPECT_EQ(d.ctl({"eval", "rm", run}).exit_code, 0);
  EXPECT_EQ(d.ctl({"eval", "show", run}).exit_code, 3);
}

TEST(Eval, KilledRunResumesAndEqualsAnUninterruptedOne) {
  REQUIRE_STORIES();
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_EQ(d.ctl({"model", "import", shared(kGguf), "--name", "stories"}).exit_code, 0);
  import_jsonl(d, "resume", story_prompts(400));
  Json q = ctl_json(d, {"eval", "run", "--model", "stories", "--data", "resume", "--metrics", "bleu,rougeL", "--max-tokens", "60", "--batch",
                        "2", "--detach"});
  const std::string run = std::to_string(q["run"].get<int>());
  bool some = false;
  for (int i = 0; i < 600 && !some; ++i) {
    Json ex = ctl_json(d, {"eval", "examples", run, "--limit", "1"});
    some = !ex["examples"].empty();
    if (!some) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(some);
  ASSERT_NE(run_json(d, run)["status"], "done") << "the run finished before the kill; make it longer";
  d.kill9();
  ASSERT_TRUE(d.start()) << d.log();
  Json r;
  for (int i = 0; i < 1200; ++i) {
    r = run_json(d, run);
    if (r["status"] == "done" || r["status"] == "failed") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(r["status"], "done") << r.dump();
  EXPECT_EQ(r["examples"]["done"], 400);
  // Greedy and per-example: the resumed run scores exactly as one that ran through.
  auto again = d.ctl({"--json", "eval", "run", "--model", "stories", "--data", "resume", "--metrics", "bleu,rougeL", "--max-tokens", "60",
                      "--batch", "2"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  Json whole = last_json(again.out);
  EXPECT_EQ(whole["results"]["bleu"]["score"], r["results"]["bleu"]["score"]);
  EXPECT_EQ(whole["results"]["rougeL"]["score"], r["results"]["rougeL"]["score"]);
}

TEST(Eval, ScoresASplitOfAVersion) {
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  std::string text;
  for (int i = 0; i < 40; ++i) text += "{\"p\":\"answer " + std::to_string(i) + "\",\"r\":\"answer " + std::to_string(i % 3) + "\"}\n";
  import_jsonl(d, "qa", text);
  auto missing = d.ctl({"eval", "score", "--data", "qa@1:test", "--prediction-field", "p", "--reference-field", "r"});
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_NE(missing.err.find("data split qa@1"), std::string::npos) << missing.err;
  ASSERT_EQ(d.ctl({"data", "split", "qa@1", "--train", "0.5", "--validation", "0.25", "--test", "0.25"}).exit_code, 0);
  auto r = d.ctl({"--json", "eval", "score", "--data", "qa@1:test", "--prediction-field", "p", "--reference-field", "r", "--metrics", "em"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  Json run = last_json(r.out);
  EXPECT_EQ(run["data"]["ref"], "qa.test@1");
  EXPECT_EQ(run["data"]["split"], "test");
  Json v = ctl_json(d, {"data", "show", "qa.test@1"});
  EXPECT_EQ(run["examples"]["done"], v["records"]);
}

TEST(Eval, ProbesMeasureDisparityAndBlockRateAndAJudgeGrades) {
  REQUIRE_STORIES();
  DaemonProcess d;
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_EQ(d.ctl({"model", "import", shared(kGguf), "--name", "stories"}).exit_code, 0);
  const std::string probes = d.dir().file("probes.json");
  write_text(probes, R"({"name": "names", "version": "2",
    "groups": {"girl": ["Lily", "Sue"], "boy": ["Tom", "Ben"]},
    "templates": ["{term} went to the park.", "{term} liked to play with a ball."],
    "pairs": [{"prompt": "Once upon a time, there was a little girl named", "continuations": {"girl": " Lily", "boy": " Tom"}},
              {"prompt": "Once upon a time, there was a little boy named", "continuations": {"girl": " Lily", "boy": " Tom"}}],
    "triggers": ["Once upon a time", "One day, a little girl"],
    "block_list": ["re:\\bplay(ed)?\\b", "zebra"],
    "max_tokens": 40})");
  auto r = d.ctl({"--json", "eval", "probe", "--model", "stories", "--probes", probes});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  Json run = last_json(r.out);
  ASSERT_EQ(run["status"], "done") << run.dump();
  const Json& res = run["results"];
  EXPECT_GE(res["template_logprob"]["score"].get<double>(), 0.0);
  EXPECT_EQ(res["template_logprob"]["texts"], 8);
  EXPECT_TRUE(res["template_logprob"]["groups"].contains("girl"));
  double wins = 0;
  for (const auto& [g, w] : res["pair_preference"]["wins"].items()) wins += w.get<double>();
  EXPECT_NEAR(wins, 1.0, 1e-12);
  const double rate = res["block_rate"]["score"].get<double>();
  EXPECT_GE(rate, 0.0);
  EXPECT_LE(rate, 1.0);
  EXPECT_EQ(run["probe_set"]["version"], "2");
  Json ex = ctl_json(d, {"eval", "examples", std::to_string(run["id"].get<int>()), "--limit", "20"});
  EXPECT_EQ(ex["examples"].size(), 12u) << "8 template texts, 2 pairs, 2 triggers";
  // The model's evaluations, the inputs of an approval gate.
  Json gates = ctl_json(d, {"eval", "model", "stories"});
  ASSERT_EQ(gates["evaluations"].size(), 1u) << gates.dump();
  EXPECT_EQ(gates["evaluations"][0]["data"], "probes:names@2");
  // A bad probe set is refused before any job, naming the problem.
  write_text(probes, R"({"name": "x", "triggers": ["hi"]})");
  auto bad = d.ctl({"eval", "probe", "--model", "stories", "--probes", probes});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("block_list"), std::string::npos) << bad.err;

  // The judge: a served model grades each prediction; its model and rubric are recorded.
  import_jsonl(d, "answers", "{\"q\":\"What is 2+2?\",\"a\":\"4\",\"ref\":\"4\"}\n{\"q\":\"Capital of France?\",\"a\":\"Paris\",\"ref\":\"Paris\"}\n");
  const std::string rubric = d.dir().file("rubric.txt");
  write_text(rubric, "Grade the answer from 1 (wrong) to 5 (right).\nAnswer: {prediction}\nCorrect answer: {reference}\nGrade:");
  auto j = d.ctl({"--json", "eval", "score", "--data", "answers", "--prediction-field", "a", "--reference-field", "ref", "--metrics", "em,judge",
                  "--judge-model", "stories", "--rubric", rubric, "--rubric-version", "r1"});
  ASSERT_EQ(j.exit_code, 0) << j.out << j.err;
  Json jr = last_json(j.out);
  ASSERT_EQ(jr["status"], "done") << jr.dump();
  EXPECT_EQ(jr["results"]["judge"]["signature"], "judge:stories|rubric:r1|scale:1-5|first-token-logprobs");
  EXPECT_EQ(jr["params"]["judge_model"], "stories");
  Json jex = ctl_json(d, {"eval", "examples", std::to_string(jr["id"].get<int>())});
  ASSERT_EQ(jex["examples"].size(), 2u);
  for (const auto& e : jex["examples"]) {
    ASSERT_TRUE(e.contains("judge")) << e.dump();
    // stories260K is no grader: it either puts a number of the scale among its first tokens or
    // is left out of the metric, never scored outside the scale.
    if (e["scores"].contains("judge")) {
      EXPECT_GE(e["scores"]["judge"].get<double>(), 1.0);
      EXPECT_LE(e["scores"]["judge"].get<double>(), 5.0);
    } else {
      EXPECT_TRUE(e["skipped"].contains("judge")) << e.dump();
    }
  }
  EXPECT_EQ(d.ctl({"eval", "score", "--data", "answers", "--prediction-field", "a", "--metrics", "judge", "--judge-model", "ghost", "--rubric", rubric})
                .exit_code,
            3);
  EXPECT_EQ(d.ctl({"eval", "score", "--data", "answers", "--prediction-field", "a", "--metrics", "judge"}).exit_code, 2) << "the judge needs a model and a rubric";
}

}  // namespace
}  // namespace llmops::test
