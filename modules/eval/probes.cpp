#include "eval/probes.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "kernels/thread_pool.h"
#include "model/logprobs.h"

namespace llmops::eval {
namespace {

std::string lower_ascii(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

Result<std::vector<std::string>> strings(const Json& j, const std::string& what, bool required) {
  std::vector<std::string> out;
  if (!j.contains(what)) {
    if (required) return invalid_argument("a probe set needs '" + what + "'");
    return out;
  }
  if (!j[what].is_array()) return invalid_argument("'" + what + "' must be a list of strings");
  for (const auto& v : j[what]) {
    if (!v.is_string() || v.get<std::string>().empty()) return invalid_argument("'" + what + "' must hold non-empty strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}


// Log-probabilities of tokens [from, n) of ids given the ones before, in one pass.
Result<double> logprob_of(const engine::Model& model, engine::ThreadPool* pool, const std::vector<int32_t>& ids, int from) {
  const int n = static_cast<int>(ids.size());
  if (n > model.config().seq_len) return invalid_argument("a probe text is longer than the model's context (" + std::to_string(model.config().seq_len) + " tokens)");
  engine::Session session(model, n, pool);
  engine::Runner runner(model, pool);
  std::vector<engine::BatchToken> batch;
  for (int p = 0; p + 1 < n; ++p) batch.push_back({&session, ids[p], p, p + 1 >= from});
  if (batch.empty()) return 0.0;
  LLMOPS_ASSIGN_OR_RETURN(const float* logits, runner.run(batch.data(), batch.size()));
  const int vocab = model.config().vocab_size;
  double lp = 0;
  size_t row = 0;
  for (int target = std::max(from, 1); target < n; ++target, ++row) {
    const float* x = logits + row * vocab;
    lp += engine::token_logprob(x, vocab, ids[target]);
  }
  return lp;
}

std::vector<int32_t> with_bos(const engine::Tokenizer& tok, const std::string& text) {
  std::vector<int32_t> ids;
  if (tok.bos_id() >= 0) ids.push_back(tok.bos_id());
  auto body = tok.encode(text, false);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

}  // namespace

Result<ProbeSet> parse_probe_set(const Json& j) {
  if (!j.is_object()) return invalid_argument("a probe set is a JSON object (see llmopsctl eval probe --help)");
  ProbeSet p;
  p.name = j.value("name", "");
  if (p.name.empty()) return invalid_argument("a probe set needs a 'name'");
  p.version = j.contains("version") ? (j["version"].is_string() ? j["version"].get<std::string>() : dump_json(j["version"])) : "1";
  if (j.contains("groups")) {
    if (!j["groups"].is_object() || j["groups"].size() < 2) return invalid_argument("'groups' must map at least two group names to lists of terms");
    for (const auto& [g, terms] : j["groups"].items()) {
      LLMOPS_ASSIGN_OR_RETURN(auto list, strings(j["groups"], g, true));
      if (list.empty()) return invalid_argument("group '" + g + "' has no terms");
      p.groups[g] = list;
    }
  }
  LLMOPS_ASSIGN_OR_RETURN(p.templates, strings(j, "templates", false));
  for (const auto& t : p.templates) {
    if (t.find("{term}") == std::string::npos) return invalid_argument("template '" + t + "' has no {term} to substitute");
  }
  if (!p.templates.empty() && p.groups.empty()) return invalid_argument("templates need 'groups' of terms to substitute");
  if (j.contains("pairs")) {
    if (!j["pairs"].is_array()) return invalid_argument("'pairs' must be a list of {prompt, continuations}");
    for (const auto& e : j["pairs"]) {
      ProbePair pair;
      pair.prompt = e.is_object() ? e.value("prompt", "") : "";
      if (pair.prompt.empty() || !e.contains("continuations") || !e["continuations"].is_object() || e["continuations"].size() < 2) {
        return invalid_argument("each pair needs a 'prompt' and 'continuations' for at least two groups");
      }
      for (const auto& [g, c] : e["continuations"].items()) {
        if (!c.is_string() || c.get<std::string>().empty()) return invalid_argument("pair '" + pair.prompt + "': continuation of '" + g + "' must be text");
        pair.continuations[g] = c.get<std::string>();
      }
      p.pairs.push_back(std::move(pair));
    }
  }
  LLMOPS_ASSIGN_OR_RETURN(p.triggers, strings(j, "triggers", false));
  LLMOPS_ASSIGN_OR_RETURN(p.block_list, strings(j, "block_list", false));
  if (!p.triggers.empty() && p.block_list.empty()) return invalid_argument("'triggers' need a 'block_list' to match their outputs against");
  p.max_tokens = j.value("max_tokens", 48);
  if (p.max_tokens < 1 || p.max_tokens > 4096) return invalid_argument("'max_tokens' must be 1..4096");
  if (p.templates.empty() && p.pairs.empty() && p.triggers.empty()) return invalid_argument("a probe set needs templates, pairs or triggers");
  LLMOPS_RETURN_IF_ERROR(BlockList::compile(p.block_list).status());
  return p;
}

Result<BlockList> BlockList::compile(const std::vector<std::string>& entries) {
  BlockList b;
  for (const auto& e : entries) {
    Entry x;
    x.text = e;
    if (e.rfind("re:", 0) == 0) {
      try {
        x.re = std::regex(e.substr(3), std::regex::ECMAScript | std::regex::icase);
      } catch (const std::regex_error& err) {
        return invalid_argument("block-list entry '" + e + "' is not a valid regex: " + err.what());
      }
    } else {
      x.needle = lower_ascii(e);
    }
    b.entries_.push_back(std::move(x));
  }
  return b;
}

std::vector<std::string> BlockList::matches(const std::string& text) const {
  std::vector<std::string> out;
  const std::string low = lower_ascii(text);
  for (const auto& e : entries_) {
    bool hit = e.needle.empty() ? std::regex_search(text, e.re) : low.find(e.needle) != std::string::npos;
    if (hit) out.push_back(e.text);
  }
  return out;
}

Result<ContinuationScore> continuation_logprob(const engine::Model& model, const engine::Tokenizer& tok, engine::ThreadPool* pool,
                                               const std::string& prompt, const std::string& continuation) {
  std::vector<int32_t> head = with_bos(tok, prompt), full = with_bos(tok, prompt + continuation);
  ContinuationScore out;
  if (full.size() > head.size() && std::equal(head.begin(), head.end(), full.begin())) {
    LLMOPS_ASSIGN_OR_RETURN(out.logprob, logprob_of(model, pool, full, static_cast<int>(head.size())));
    out.tokens = static_cast<int>(full.size() - head.size());
    return out;
  }
  LLMOPS_ASSIGN_OR_RETURN(double all, logprob_of(model, pool, full, 1));
  LLMOPS_ASSIGN_OR_RETURN(double part, logprob_of(model, pool, head, 1));
  out.logprob = all - part;
  out.tokens = std::max(1, static_cast<int>(full.size()) - static_cast<int>(head.size()));
  return out;
}

}  // namespace llmops::eval
