#include "serving/openai.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <random>

#include "tokenizer/unicode.h"

namespace llmops::serving {

namespace {

// Reads an optional number field within [lo, hi]; returns an error for a wrong type or range.
template <typename T>
std::optional<FieldError> number(const Json& body, const char* field, T lo, T hi, T* out, bool* given = nullptr) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::nullopt;
  const bool integral = std::is_integral_v<T>;
  if (!it->is_number() || (integral && !it->is_number_integer())) {
    return FieldError{field, std::string("'") + field + "' must be " + (integral ? "an integer" : "a number")};
  }
  double v = it->get<double>();
  if (!(v >= static_cast<double>(lo) && v <= static_cast<double>(hi))) {
    return FieldError{field, std::string("'") + field + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi)};
  }
  *out = integral ? static_cast<T>(it->get<int64_t>()) : static_cast<T>(v);
  if (given != nullptr) *given = true;
  return std::nullopt;
}

std::optional<FieldError> boolean(const Json& body, const char* field, bool* out) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) return FieldError{field, std::string("'") + field + "' must be true or false"};
  *out = it->get<bool>();
  return std::nullopt;
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    i += engine::decode_utf8(s, i, cp);
    if (cp == engine::kInvalidCodePoint) return false;
  }
  return true;
}

std::optional<FieldError> parse_messages(const Json& body, Json* out) {
  auto it = body.find("messages");
  if (it == body.end()) return FieldError{"messages", "'messages' is required: a non-empty array of {role, content}"};
  if (!it->is_array() || it->empty()) return FieldError{"messages", "'messages' must be a non-empty array of {role, content}"};
  if (it->size() > 4096) return FieldError{"messages", "'messages' has more than 4096 entries"};
  Json msgs = Json::array();
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& m = (*it)[i];
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return FieldError{at, "'" + at + "' must be an object with role and content"};
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) return FieldError{at + ".role", "'" + at + ".role' must be a string"};
    const std::string r = role->get<std::string>();
    if (r != "system" && r != "developer" && r != "user" && r != "assistant" && r != "tool") {
      return FieldError{at + ".role", "'" + at + ".role' must be system, developer, user, assistant or tool, not '" + r + "'"};
    }
    std::string content;
    auto c = m.find("content");
    if (c != m.end() && c->is_string()) {
      content = c->get<std::string>();
    } else if (c != m.end() && c->is_array()) {
      // Content parts: text parts are joined; other kinds (images, audio) are refused.
      for (const Json& part : *c) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string()) {
          return FieldError{at + ".content", "'" + at + ".content' parts must be {\"type\": \"text\", \"text\": ...}; this model reads text only"};
        }
        content += part["text"].get<std::string>();
      }
    } else if (c != m.end() && !c->is_null()) {
      return FieldError{at + ".content", "'" + at + ".content' must be a string or an array of text parts"};
    } else if (r != "assistant") {
      return FieldError{at + ".content", "'" + at + ".content' is required"};
    }
    if (!valid_utf8(content)) return FieldError{at + ".content", "'" + at + ".content' is not valid UTF-8"};
    Json clean = {{"role", r == "developer" ? "system" : r}, {"content", content}};
    if (auto name = m.find("name"); name != m.end() && name->is_string()) clean["name"] = *name;
    msgs.push_back(std::move(clean));
  }
  *out = std::move(msgs);
  return std::nullopt;
}

}  // namespace

std::optional<FieldError> parse_request(const Json& body, bool chat, ParsedRequest* out) {
  if (!body.is_object()) return FieldError{"", "the request body must be a JSON object"};
  ParsedRequest& r = *out;
  r.chat = chat;
  if (auto m = body.find("model"); m != body.end() && !m->is_null()) {
    if (!m->is_string()) return FieldError{"model", "'model' must be a string"};
    r.model = m->get<std::string>();
  }
  if (chat) {
    if (auto e = parse_messages(body, &r.messages)) return e;
  } else {
    auto p = body.find("prompt");
    if (p == body.end()) return FieldError{"prompt", "'prompt' is required: a string or an array of token ids"};
    if (p->is_string()) {
      r.prompt_text = p->get<std::string>();
    } else if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
      r.prompt_text = (*p)[0].get<std::string>();
    } else if (p->is_array() && !p->empty() && (*p)[0].is_number_integer()) {
      for (const Json& id : *p) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
          return FieldError{"prompt", "'prompt' token ids must be non-negative integers"};
        }
        r.prompt_ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
      }
    } else if (p->is_array() && p->size() > 1 && (*p)[0].is_string()) {
      return FieldError{"prompt", "'prompt' holds several strings; send one prompt per request (or use n for several completions)"};
    } else {
      return FieldError{"prompt", "'prompt' must be a string or an array of token ids"};
    }
    if (!valid_utf8(r.prompt_text)) return FieldError{"prompt", "'prompt' is not valid UTF-8"};
  }
  GenerationParams& g = r.params;
  g.max_tokens = chat ? 0 : 16;  // chat: 0 until resolved against the context by the caller
  if (auto e = number<int>(body, "max_tokens", 1, 1 << 20, &g.max_tokens, &r.max_tokens_given)) return e;
  if (auto e = number<int>(body, "max_completion_tokens", 1, 1 << 20, &g.max_tokens, &r.max_tokens_given)) return e;
  engine::SamplingParams& sp = g.sampling;
  sp.temperature = 1.0f;
  if (auto e = number<float>(body, "temperature", 0.0f, 2.0f, &sp.temperature)) return e;
  if (auto e = number<float>(body, "top_p", 0.0f, 1.0f, &sp.top_p)) return e;
  if (body.contains("top_p") && !body["top_p"].is_null() && sp.top_p <= 0.0f) return FieldError{"top_p", "'top_p' must be above 0"};
  if (auto e = number<int>(body, "top_k", -1, 1 << 20, &sp.top_k)) return e;
  if (sp.top_k < 0) sp.top_k = 0;
  if (auto e = number<float>(body, "min_p", 0.0f, 1.0f, &sp.min_p)) return e;
  if (auto e = number<float>(body, "presence_penalty", -2.0f, 2.0f, &sp.presence_penalty)) return e;
  if (auto e = number<float>(body, "frequency_penalty", -2.0f, 2.0f, &sp.frequency_penalty)) return e;
  if (auto e = number<float>(body, "repetition_penalty", 0.01f, 10.0f, &sp.repetition_penalty)) return e;
  bool seeded = false;
  int64_t seed = 0;
  if (auto e = number<int64_t>(body, "seed", INT64_MIN, INT64_MAX, &seed, &seeded)) return e;
  if (seeded) {
    sp.seed = static_cast<uint64_t>(seed);
  } else {
    static std::atomic<uint64_t> counter{std::random_device{}()};
    sp.seed = counter.fetch_add(0x9E3779B97F4A7C15ull) ^ static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  if (auto s = body.find("stop"); s != body.end() && !s->is_null()) {
    std::vector<std::string> stops;
    if (s->is_string()) {
      stops.push_back(s->get<std::string>());
    } else if (s->is_array()) {
      for (const Json& x : *s) {
        if (!x.is_string()) return FieldError{"stop", "'stop' must be a string or an array of strings"};
        stops.push_back(x.get<std::string>());
      }
    } else {
      return FieldError{"stop", "'stop' must be a string or an array of strings"};
    }
    if (stops.size() > static_cast<size_t>(kMaxStops)) return FieldError{"stop", "'stop' holds at most 4 strings"};
    for (const auto& st : stops) {
      if (st.empty() || st.size() > 256) return FieldError{"stop", "each 'stop' string must be 1 to 256 bytes"};
    }
    g.stop = std::move(stops);
  }
  if (auto e = number<int>(body, "n", 1, kMaxN, &r.n)) return e;
  if (auto e = boolean(body, "stream", &r.stream)) return e;
  if (auto so = body.find("stream_options"); so != body.end() && !so->is_null()) {
    if (!so->is_object()) return FieldError{"stream_options", "'stream_options' must be an object"};
    if (auto e = boolean(*so, "include_usage", &r.include_usage)) return e;
  }
  if (auto e = boolean(body, "ignore_eos", &g.ignore_eos)) return e;
  if (chat) {
    if (auto e = boolean(body, "logprobs", &r.logprobs)) return e;
    int top = 0;
    bool top_given = false;
    if (auto e = number<int>(body, "top_logprobs", 0, kMaxTopLogprobs, &top, &top_given)) return e;
    if (top_given && !r.logprobs) return FieldError{"top_logprobs", "'top_logprobs' needs 'logprobs': true"};
    g.top_logprobs = r.logprobs ? top : -1;
  } else {
    int lp = 0;
    if (auto e = number<int>(body, "logprobs", 0, kMaxTopLogprobs, &lp, &r.logprobs)) return e;
    g.top_logprobs = r.logprobs ? lp : -1;
    if (auto e = boolean(body, "echo", &r.echo)) return e;
    if (r.echo) return FieldError{"echo", "'echo' is not supported by this server"};
  }
  if (auto u = body.find("user"); u != body.end() && !u->is_null() && !u->is_string()) return FieldError{"user", "'user' must be a string"};
  return std::nullopt;
}

std::string new_completion_id(const char* prefix) {
  static std::atomic<uint64_t> next{static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count())};
  uint64_t v = next.fetch_add(0x9E3779B97F4A7C15ull);
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return std::string(prefix) + buf;
}

namespace {

Json bytes_of(const std::string& s) {
  Json b = Json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

}  // namespace

Json completion_logprobs(const std::vector<Piece>& pieces, const engine::Tokenizer& tok) {
  Json tokens = Json::array(), lps = Json::array(), tops = Json::array(), offsets = Json::array();
  size_t offset = 0;
  for (const Piece& p : pieces) {
    std::string text = tok.decode_piece(p.id, false);
    tokens.push_back(text);
    lps.push_back(p.logprob);
    Json top = Json::object();
    for (const auto& t : p.top) top[tok.decode_piece(t.id, false)] = t.logprob;
    tops.push_back(std::move(top));
    offsets.push_back(offset);
    offset += p.text.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

Json chat_logprobs(const std::vector<Piece>& pieces, const engine::Tokenizer& tok) {
  Json content = Json::array();
  for (const Piece& p : pieces) {
    std::string text = tok.decode_piece(p.id, false);
    Json top = Json::array();
    for (const auto& t : p.top) {
      std::string tt = tok.decode_piece(t.id, false);
      top.push_back({{"token", tt}, {"logprob", t.logprob}, {"bytes", bytes_of(tt)}});
    }
    content.push_back({{"token", text}, {"logprob", p.logprob}, {"bytes", bytes_of(text)}, {"top_logprobs", top}});
  }
  return {{"content", content}};
}

Json usage_json(int prompt_tokens, int completion_tokens) {
  return {{"prompt_tokens", prompt_tokens}, {"completion_tokens", completion_tokens}, {"total_tokens", prompt_tokens + completion_tokens}};
}

}  // namespace llmops::serving
