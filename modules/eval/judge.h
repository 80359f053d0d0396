// LLM as judge: a served model grades an output against a rubric. The rubric is text with
// {prompt}, {prediction} and {reference} placeholders ("{{" and "}}" for braces); the judge is
// asked through the serving stage's /v1/chat/completions (a peer call, so it runs on the
// serving stage's scheduler and model), greedy, with the top log-probabilities of its first
// token. The score is the probability-weighted mean of the scale's numbers among those first-
// token alternatives (G-Eval's weighting), else the first whole number of the scale in the
// reply, else none (the example is left out of the metric and counted).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "json.h"
#include "llmops/module.hpp"
#include "status.h"

namespace llmops::eval {

struct JudgeConfig {
  std::string model;           // a model the serving stage answers for
  std::string rubric;          // the prompt template
  std::string rubric_version;  // given, else the first 12 hex digits of the rubric's sha256
  int low = 1, high = 5;       // the scale
  std::string signature() const;
};

struct Verdict {
  std::optional<double> score;
  std::string method;  // "logprobs" | "text" | "none"
  std::string reply;
};

// The score in a chat completion (OpenAI shape) for a low..high scale.
Verdict verdict_from_response(const Json& response, int low, int high);

// Asks the judge about one example. kUnavailable when the serving stage cannot answer.
Result<Verdict> judge_example(sdk::Host host, const JudgeConfig& cfg, const std::string& prompt, const std::string& prediction,
                              const std::vector<std::string>& references);

}  // namespace llmops::eval
