#include "eval/judge.h"

#include <cctype>
#include <cmath>

#include "data/record.h"

namespace llmops::eval {
namespace {

// The token's text as a whole number of the scale ("4", " 4", "4."), else nullopt.
std::optional<int> scale_number(std::string text, int low, int high) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.erase(0, 1);
  while (!text.empty() && (std::isspace(static_cast<unsigned char>(text.back())) || text.back() == '.')) text.pop_back();
  if (text.empty() || text.size() > 3 || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
  int v = std::stoi(text);
  if (v < low || v > high) return std::nullopt;
  return v;
}

}  // namespace

std::string JudgeConfig::signature() const {
  return "judge:" + model + "|rubric:" + rubric_version + "|scale:" + std::to_string(low) + "-" + std::to_string(high) + "|first-token-logprobs";
}

Verdict verdict_from_response(const Json& response, int low, int high) {
  Verdict v;
  v.method = "none";
  if (!response.is_object() || !response.contains("choices") || !response["choices"].is_array() || response["choices"].empty()) return v;
  const Json& choice = response["choices"][0];
  if (choice.contains("message") && choice["message"].is_object()) v.reply = choice["message"].value("content", "");
  // First token's alternatives: weight each number of the scale by its probability.
  if (choice.contains("logprobs") && choice["logprobs"].is_object() && choice["logprobs"].contains("content") &&
      choice["logprobs"]["content"].is_array() && !choice["logprobs"]["content"].empty()) {
    const Json& first = choice["logprobs"]["content"][0];
    double mass = 0, sum = 0;
    for (const auto& alt : first.value("top_logprobs", Json::array())) {
      auto n = scale_number(alt.value("token", ""), low, high);
      if (!n || !alt.contains("logprob") || !alt["logprob"].is_number()) continue;
      const double p = std::exp(alt["logprob"].get<double>());
      mass += p;
      sum += p * *n;
    }
    if (mass > 0) {
      v.score = sum / mass;
      v.method = "logprobs";
      return v;
    }
  }
  // Else the first whole number of the scale in the reply.
  for (size_t i = 0; i < v.reply.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(v.reply[i]))) continue;
    size_t j = i;
    while (j < v.reply.size() && std::isdigit(static_cast<unsigned char>(v.reply[j]))) ++j;
    auto n = scale_number(v.reply.substr(i, j - i), low, high);
    if (n) {
      v.score = *n;
      v.method = "text";
      return v;
    }
    i = j;
  }
  return v;
}

Result<Verdict> judge_example(sdk::Host host, const JudgeConfig& cfg, const std::string& prompt, const std::string& prediction,
                              const std::vector<std::string>& references) {
  Json fields = {{"prompt", prompt}, {"prediction", prediction}, {"reference", references.empty() ? std::string() : references[0]}};
  LLMOPS_ASSIGN_OR_RETURN(std::string message, data::fill_template(cfg.rubric, fields));
  Json req = {{"model", cfg.model},    {"messages", {{{"role", "user"}, {"content", message}}}}, {"max_tokens", 8},
              {"temperature", 0},      {"logprobs", true},                                    {"top_logprobs", 20}};
  int status = 0;
  std::string body;
  llmops_error err{};
  if (host.peer(LLMOPS_PLANE_DATA, "POST", "/v1/chat/completions", dump_json(req), &status, &body, &err) != LLMOPS_OK) {
    return unavailable("the judge '" + cfg.model + "' could not be asked: " + err.message);
  }
  auto j = parse_json_bounded(body, 64);
  if (status >= 400 || !j.ok()) {
    std::string msg = j.ok() && j->contains("error") ? (*j)["error"].value("message", body) : body.substr(0, 300);
    return unavailable("the judge '" + cfg.model + "' answered " + std::to_string(status) + ": " + msg);
  }
  return verdict_from_response(*j, cfg.low, cfg.high);
}

}  // namespace llmops::eval
