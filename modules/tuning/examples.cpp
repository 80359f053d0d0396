#include "tuning/examples.h"

#include <algorithm>
#include <numeric>
#include <random>

namespace llmops::tuning {

Json ExampleReport::to_json() const {
  return {{"records", records}, {"prompt_completion", prompt_completion}, {"text", text}, {"chat", chat}, {"unusable", unusable},
          {"longer_than_context", longer_than_context}, {"truncated_tokens", truncated_tokens}, {"tokens", tokens},
          {"learned_tokens", learned_tokens}};
}

namespace {

// The record's field k when it is a string, else null.
const std::string* string_field(const Json& record, const std::string& k) {
  auto it = record.find(k);
  return it != record.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
}

}  // namespace

std::optional<std::string> example_text(const Json& record, const ExampleOptions& opt) {
  auto str = [&](const std::string& k) { return string_field(record, k); };
  if (const std::string *p = str("prompt"), *c = str("completion"); p != nullptr && c != nullptr) return *p + *c;
  if (auto m = record.find("messages"); m != record.end() && m->is_array()) {
    std::string all;
    for (const auto& msg : *m) {
      if (msg.is_object() && msg.contains("content") && msg["content"].is_string()) all += msg["content"].get<std::string>() + "\n";
    }
    if (!all.empty()) return all;
  }
  if (const std::string* t = str(opt.text_field); t != nullptr && !t->empty()) return *t;
  return std::nullopt;
}

// Renders the chat turn by turn: the text up to each assistant turn's start (the template's
// generation prompt) is context, the turn itself is learned. A template whose renders do not
// extend each other cannot be split this way (false).
bool ExampleSet::add_chat(const Json& messages, const engine::Tokenizer& tok, const engine::ChatTemplate& chat, std::vector<int32_t>& seq,
                          std::vector<int32_t>& learn) {
  engine::ChatContext ctx;
  ctx.bos_token = tok.bos_id() >= 0 ? tok.token_text(tok.bos_id()) : "";
  ctx.eos_token = tok.eos_id() >= 0 ? tok.token_text(tok.eos_id()) : "";
  auto push = [&](std::string_view text, bool learned) {
    for (int32_t id : tok.encode(text, true)) {
      if (seq.size() == 1 && id == tok.bos_id() && seq[0] == id) continue;  // the template's own BOS
      seq.push_back(id), learn.push_back(learned ? 1 : 0);
    }
  };
  std::string done;  // rendered and pushed so far
  bool any = false;
  Json upto = Json::array();
  for (const auto& m : messages) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) return false;
    if (m["role"] == "assistant") {
      ctx.add_generation_prompt = true;
      auto head = chat.render(upto, ctx);
      upto.push_back(m);
      ctx.add_generation_prompt = false;
      auto whole = chat.render(upto, ctx);
      if (!head.ok() || !whole.ok() || head->compare(0, done.size(), done) != 0 || whole->compare(0, head->size(), *head) != 0) return false;
      push(std::string_view(*head).substr(done.size()), false);
      push(std::string_view(*whole).substr(head->size()), true);
      done = std::move(*whole);
      any = true;
    } else {
      upto.push_back(m);
    }
  }
  return any;
}

void ExampleSet::add(const Json& record, const engine::Tokenizer& tok, const ExampleOptions& opt) {
  ++report_.records;
  std::vector<int32_t> seq, learn;  // tokens, and whether each is a learned target
  auto push = [&](const std::vector<int32_t>& ids, bool learned) {
    for (int32_t id : ids) seq.push_back(id), learn.push_back(learned ? 1 : 0);
  };
  if (tok.bos_id() >= 0) push({tok.bos_id()}, false);
  auto str = [&](const std::string& k) { return string_field(record, k); };
  auto messages = record.find("messages");
  if (const std::string *p = str("prompt"), *c = str("completion"); p != nullptr && c != nullptr) {
    push(tok.encode(*p, false), false);
    push(tok.encode(*c, false), true);
    ++report_.prompt_completion;
  } else if (messages != record.end() && messages->is_array()) {
    if (opt.chat == nullptr || !add_chat(*messages, tok, *opt.chat, seq, learn)) {
      ++report_.unusable;
      return;
    }
    ++report_.chat;
  } else if (const std::string* t = str(opt.text_field); t != nullptr && !t->empty()) {
    push(tok.encode(*t, false), true);
    ++report_.text;
  } else {
    ++report_.unusable;
    return;
  }
  if (tok.eos_id() >= 0 && (seq.empty() || seq.back() != tok.eos_id())) push({tok.eos_id()}, true);
  if (seq.size() < 2) {
    ++report_.unusable;
    return;
  }
  // Inputs are the sequence but its last token; the target of input i is token i + 1.
  std::vector<int32_t> in(seq.begin(), seq.end() - 1), tg(seq.size() - 1);
  for (size_t i = 0; i + 1 < seq.size(); ++i) tg[i] = learn[i + 1] ? seq[i + 1] : -1;
  report_.tokens += in.size();
  for (int32_t t : tg) report_.learned_tokens += t >= 0 ? 1 : 0;
  const size_t len = static_cast<size_t>(opt.seq_len);
  if (in.size() > len) ++report_.longer_than_context;
  if (opt.packing) {
    stream_in_.insert(stream_in_.end(), in.begin(), in.end());
    stream_tg_.insert(stream_tg_.end(), tg.begin(), tg.end());
    return;
  }
  for (size_t at = 0; at < in.size(); at += len) {
    std::vector<int32_t> ci(in.begin() + at, in.begin() + std::min(in.size(), at + len));
    std::vector<int32_t> ct(tg.begin() + at, tg.begin() + std::min(tg.size(), at + len));
    inputs_.push_back(std::move(ci));
    targets_.push_back(std::move(ct));
    if (opt.long_records == "truncate") {
      if (in.size() > len) report_.truncated_tokens += in.size() - len;
      break;
    }
  }
}

void ExampleSet::finish(const ExampleOptions& opt, int32_t pad_token) {
  const size_t len = static_cast<size_t>(opt.seq_len);
  if (opt.packing) {
    for (size_t at = 0; at < stream_in_.size(); at += len) {
      inputs_.emplace_back(stream_in_.begin() + at, stream_in_.begin() + std::min(stream_in_.size(), at + len));
      targets_.emplace_back(stream_tg_.begin() + at, stream_tg_.begin() + std::min(stream_tg_.size(), at + len));
    }
    stream_in_.clear();
    stream_tg_.clear();
  }
  // Every chunk is seq_len long: the short ones are padded with masked targets.
  for (size_t k = 0; k < inputs_.size(); ++k) {
    inputs_[k].resize(len, pad_token);
    targets_[k].resize(len, -1);
  }
}

size_t ExampleSet::chunk_at(uint64_t k, uint64_t seed) const {
  const uint64_t n = inputs_.size();
  const uint64_t epoch = k / n;
  if (epoch != cached_epoch_) {
    order_.resize(n);
    std::iota(order_.begin(), order_.end(), size_t{0});
    std::mt19937_64 rng(seed * 1000003ULL + epoch);
    for (size_t i = n; i > 1; --i) std::swap(order_[i - 1], order_[std::uniform_int_distribution<size_t>(0, i - 1)(rng)]);
    cached_epoch_ = epoch;
  }
  return order_[k % n];
}

}  // namespace llmops::tuning
