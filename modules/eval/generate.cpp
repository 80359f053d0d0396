#include "eval/generate.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "model/logprobs.h"

namespace llmops::eval {
namespace {

struct Slot {
  size_t index = 0;
  std::unique_ptr<engine::Session> session;
  std::unique_ptr<engine::Sampler> sampler;
  std::vector<int32_t> history;  // prompt and generated tokens
  std::vector<int32_t> pending;  // tokens to run next (the prompt, then one token per step)
  std::vector<int32_t> generated;
  Generated out;
};


}  // namespace

Status generate_all(const engine::Model& model, const engine::Tokenizer& tok, engine::ThreadPool* pool,
                    const std::vector<std::string>& prompts, const GenerateOptions& opt,
                    const std::function<void(size_t, Generated)>& done, const std::function<bool()>& cancelled) {
  const int ctx = model.config().seq_len;
  const int max_tokens = std::max(1, std::min(opt.max_tokens, ctx - 1));
  engine::Runner runner(model, pool);
  std::vector<std::unique_ptr<Slot>> active;
  size_t next = 0;
  std::vector<engine::BatchToken> batch;
  while (next < prompts.size() || !active.empty()) {
    if (cancelled()) return llmops::cancelled("the eval run was cancelled");
    // Fill free slots with the next prompts.
    while (active.size() < static_cast<size_t>(std::max(1, opt.max_batch)) && next < prompts.size()) {
      auto s = std::make_unique<Slot>();
      s->index = next;
      std::vector<int32_t> ids;
      if (tok.add_bos() && tok.bos_id() >= 0) ids.push_back(tok.bos_id());
      std::vector<int32_t> body = tok.encode(prompts[next], false);
      ids.insert(ids.end(), body.begin(), body.end());
      if (ids.empty()) ids.push_back(tok.bos_id() >= 0 ? tok.bos_id() : 0);
      const int room = ctx - max_tokens;
      if (static_cast<int>(ids.size()) > room) {
        // Keep BOS and the end of the prompt: the end is what the completion continues.
        const bool bos = tok.add_bos() && tok.bos_id() >= 0;
        std::vector<int32_t> cut;
        if (bos) cut.push_back(ids[0]);
        cut.insert(cut.end(), ids.end() - (room - (bos ? 1 : 0)), ids.end());
        ids.swap(cut);
        s->out.prompt_truncated = true;
      }
      s->out.prompt_tokens = static_cast<int>(ids.size());
      s->session = std::make_unique<engine::Session>(model, static_cast<int>(ids.size()) + max_tokens, pool);
      engine::SamplingParams sp = opt.sampling;
      sp.seed = opt.sampling.seed + next;
      s->sampler = std::make_unique<engine::Sampler>(model.config().vocab_size, sp);
      s->history = ids;
      s->pending = std::move(ids);
      active.push_back(std::move(s));
      ++next;
    }
    batch.clear();
    for (auto& s : active) {
      const int start = s->session->length();
      for (size_t k = 0; k < s->pending.size(); ++k) {
        batch.push_back({s->session.get(), s->pending[k], start + static_cast<int>(k), k + 1 == s->pending.size()});
      }
    }
    LLMOPS_ASSIGN_OR_RETURN(const float* logits, runner.run(batch.data(), batch.size()));
    const int vocab = model.config().vocab_size;
    std::vector<std::unique_ptr<Slot>> still;
    for (size_t k = 0; k < active.size(); ++k) {
      Slot& s = *active[k];
      s.pending.clear();
      int32_t t = s.sampler->sample(logits + static_cast<size_t>(k) * vocab, s.history);
      bool finished = false;
      if (tok.is_eog(t)) {
        s.out.finish_reason = "stop";
        finished = true;
      } else {
        s.generated.push_back(t);
        s.history.push_back(t);
        if (!opt.stop.empty()) {
          std::string text = tok.decode(s.generated);
          size_t at = engine::find_stop(text, text.size(), opt.stop);
          if (at != std::string::npos) {
            s.out.text = text.substr(0, at);
            s.out.finish_reason = "stop";
            finished = true;
          }
        }
        if (!finished && static_cast<int>(s.generated.size()) >= max_tokens) {
          s.out.finish_reason = "length";
          finished = true;
        }
        if (!finished) s.pending.push_back(t);
      }
      if (finished) {
        if (s.out.text.empty()) s.out.text = tok.decode(s.generated);
        s.out.completion_tokens = static_cast<int>(s.generated.size());
        done(s.index, std::move(s.out));
      } else {
        still.push_back(std::move(active[k]));
      }
    }
    active.swap(still);
  }
  return ok_status();
}

Result<Likelihood> likelihood(const engine::Model& model, const engine::Tokenizer& tok, engine::ThreadPool* pool,
                              const std::string& text, int window, int stride) {
  Likelihood out;
  out.bytes = text.size();
  std::vector<int32_t> ids;
  if (tok.add_bos() && tok.bos_id() >= 0) ids.push_back(tok.bos_id());
  std::vector<int32_t> body = tok.encode(text, false);
  ids.insert(ids.end(), body.begin(), body.end());
  const int n = static_cast<int>(ids.size());
  if (n < 2) return out;
  window = std::max(2, std::min(window, model.config().seq_len));
  stride = std::max(1, std::min(stride, window));
  const int vocab = model.config().vocab_size;
  engine::Session session(model, window, pool);
  engine::Runner runner(model, pool);
  std::vector<engine::BatchToken> batch;
  int scored_to = 1;  // tokens [1, scored_to) have been scored
  for (int begin = 0; scored_to < n; begin += stride) {
    const int end = std::min(begin + window, n);
    session.reset();
    batch.clear();
    for (int p = begin; p < end; ++p) batch.push_back({&session, ids[p], p - begin, true});
    LLMOPS_ASSIGN_OR_RETURN(const float* logits, runner.run(batch.data(), batch.size()));
    // Position p's logits predict token p + 1; score the targets not scored yet.
    for (int target = std::max(scored_to, begin + 1); target < end; ++target) {
      const float* row = logits + static_cast<size_t>(target - 1 - begin) * vocab;
      out.nll -= engine::token_logprob(row, vocab, ids[target]);
      ++out.tokens;
    }
    scored_to = std::max(scored_to, end);
    if (end == n) break;
  }
  return out;
}

}  // namespace llmops::eval
