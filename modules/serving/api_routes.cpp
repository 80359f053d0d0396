// The OpenAI-compatible data plane: completions and chat (JSON or SSE), embeddings, models,
// vLLM's tokenize/detokenize; and the same generation on the admin plane for llmopsctl.
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "chat/chat_template.h"
#include "fs.h"
#include "json.h"
#include "llmops/module.hpp"
#include "serving/models.h"
#include "serving/openai.h"
#include "serving/registry.h"
#include "serving/request_log.h"
#include "serving/scheduler.h"
#include "serving/state.h"

namespace llmops::serving {

namespace engine = llmops::engine;

// ---- answers --------------------------------------------------------------------------------

void respond_json(State* s, llmops_response* resp, int status, const Json& body) {
  s->sdk().respond(resp, status, llmops::dump_json(body) + "\n");
}

llmops_code respond_error(State* s, llmops_response* resp, int status, const std::string& message, const std::string& param,
                          const std::string& code) {
  const char* type = status == 429 ? "rate_limit_error" : status >= 500 ? "server_error" : "invalid_request_error";
  Json err = {{"message", message}, {"type", type}, {"param", param.empty() ? Json(nullptr) : Json(param)},
              {"code", code.empty() ? Json(nullptr) : Json(code)}};
  if (status == 429) s->host->response_set_header(resp, "Retry-After", "1");
  respond_json(s, resp, status, {{"error", err}});
  return LLMOPS_OK;
}

bool started(State* s, llmops_response* resp) {
  if (s->models != nullptr && s->log != nullptr) return true;
  respond_error(s, resp, 503, "the serving stage is starting; retry shortly");
  return false;
}

int http_status(const llmops::Status& st) {
  switch (st.code()) {
    case llmops::Code::kInvalidArgument: return 400;
    case llmops::Code::kResourceExhausted: return 429;
    case llmops::Code::kDeadlineExceeded: return 504;
    case llmops::Code::kUnavailable: return 503;
    default: return 500;
  }
}

// ---- requests -------------------------------------------------------------------------------

// The body as a JSON object; on failure the 400 is written and nullopt returned.
std::optional<Json> parse_body(State* s, const llmops_request* req, llmops_response* resp) {
  auto body = llmops::parse_json_bounded(std::string_view(req->body, req->body_size), 64);
  if (!body.ok()) {
    respond_error(s, resp, 400, "the body is not valid JSON: " + body.status().message());
    return std::nullopt;
  }
  if (!body->is_object()) {
    respond_error(s, resp, 400, "the request body must be a JSON object");
    return std::nullopt;
  }
  return std::move(body).value();
}


namespace {

// The served model called name ("" for the default), loaded on first use; on failure the
// 404/429/503 is written and null returned.
std::shared_ptr<Served> resolve_model(State* s, const std::string& name, llmops_response* resp) {
  if (!started(s, resp)) return nullptr;
  auto served = s->models->acquire(name);
  if (served.ok()) return *served;
  const llmops::Status& st = served.status();
  if (st.code() == llmops::Code::kNotFound) {
    respond_error(s, resp, 404, st.message(), "model", "model_not_found");
  } else if (st.code() == llmops::Code::kResourceExhausted) {
    respond_error(s, resp, 503, st.message(), "model");  // memory, not the client's rate: 503, as vLLM answers when it cannot schedule
  } else {
    respond_error(s, resp, http_status(st), st.message(), "model");
  }
  return nullptr;
}

// The model a body's optional "model" field names; on failure the 400/404 is written and null returned.
std::shared_ptr<Served> model_of(State* s, const Json& body, llmops_response* resp) {
  std::string name;
  if (auto m = body.find("model"); m != body.end() && !m->is_null()) {
    if (!m->is_string()) {
      respond_error(s, resp, 400, "'model' must be a string", "model");
      return nullptr;
    }
    name = m->get<std::string>();
  }
  return resolve_model(s, name, resp);
}

// Parses a generation request and resolves its model; on failure the answer is written and null returned.
std::shared_ptr<Served> prepare(State* s, const llmops_request* req, llmops_response* resp, bool chat, ParsedRequest* out) {
  auto body = parse_body(s, req, resp);
  if (!body) return nullptr;
  if (auto e = parse_request(*body, chat, out)) {
    respond_error(s, resp, 400, e->message, e->param);
    return nullptr;
  }
  return resolve_model(s, out->model, resp);
}

// Token ids of text as a prompt: BOS first when the vocabulary wants one (and add_special).
std::vector<int32_t> prompt_ids(const engine::Tokenizer& tok, std::string_view text, bool add_special = true) {
  std::vector<int32_t> ids;
  if (add_special && tok.add_bos() && tok.bos_id() >= 0) ids.push_back(tok.bos_id());
  for (int32_t id : tok.encode(text)) ids.push_back(id);
  return ids;
}

// The prompt's token ids, or an error message for the client.
std::optional<std::string> tokenize_prompt(const Served& m, ParsedRequest& p, std::vector<int32_t>* ids) {
  const engine::Tokenizer& tok = *m.tok;
  if (p.chat) {
    engine::ChatContext ctx;
    if (tok.bos_id() >= 0) ctx.bos_token = tok.token_text(tok.bos_id());
    if (tok.eos_id() >= 0) ctx.eos_token = tok.token_text(tok.eos_id());
    ctx.add_generation_prompt = true;
    auto text = m.chat->render(p.messages, ctx);
    if (!text.ok()) return "the chat template (" + m.chat_source + ") could not render these messages: " + text.status().message();
    std::string_view rest = *text;
    // A template that writes {{ bos_token }} gets no second BOS.
    if (!ctx.bos_token.empty() && rest.substr(0, ctx.bos_token.size()) == ctx.bos_token) {
      ids->push_back(tok.bos_id());
      rest.remove_prefix(ctx.bos_token.size());
    } else if (tok.add_bos() && tok.bos_id() >= 0) {
      ids->push_back(tok.bos_id());
    }
    for (int32_t id : tok.encode(rest, /*parse_special=*/true)) ids->push_back(id);
    if (ids->empty()) return std::string("the rendered conversation is empty");
    return std::nullopt;
  }
  if (!p.prompt_ids.empty()) {
    for (int32_t id : p.prompt_ids) {
      if (id >= m.model->config().vocab_size) {
        return "prompt token id " + std::to_string(id) + " is outside the vocabulary (0.." + std::to_string(m.model->config().vocab_size - 1) + ")";
      }
    }
    *ids = p.prompt_ids;
    return std::nullopt;
  }
  *ids = prompt_ids(tok, p.prompt_text);
  if (ids->empty()) {
    if (tok.eos_id() < 0) return std::string("the prompt is empty and this vocabulary has no BOS token to start from");
    ids->push_back(tok.eos_id());
  }
  return std::nullopt;
}

// Holds a served model for one request: it is not idle, and not unloaded from under the request.
class Lease {
 public:
  Lease() = default;
  explicit Lease(std::shared_ptr<Served> m) : m_(std::move(m)) {
    if (m_) m_->in_flight.fetch_add(1);
  }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease() {
    if (m_) {
      m_->last_used_ms = unix_ms_now();
      m_->in_flight.fetch_sub(1);
    }
  }
  Served* operator->() const { return m_.get(); }
  Served& operator*() const { return *m_; }
  explicit operator bool() const { return m_ != nullptr; }

 private:
  std::shared_ptr<Served> m_;
};

struct Job {
  Job(State* state, std::shared_ptr<Served> served, ParsedRequest parsed, std::string who)
      : s(state), model(std::move(served)), p(std::move(parsed)), caller(std::move(who)) {}
  State* s;
  Lease model;
  ParsedRequest p;
  std::string caller;
  Clock::time_point started = Clock::now();
  std::string completion_text;  // kept only when the model logs bodies
  bool recorded = false;
  std::string id;
  int64_t created = 0;
  std::vector<std::shared_ptr<Request>> choices;
};

// The request's end for the monitor stage: latency histograms and token counts labelled by
// model, a counter by outcome, and a record in the bounded request log. Once per request.
void record(Job& job, int http, const std::string& outcome) {
  if (job.recorded) return;
  job.recorded = true;
  State* s = job.s;
  Served& m = *job.model;
  const auto& ser = m.series;
  const double e2e = std::chrono::duration<double>(Clock::now() - job.started).count();
  int completion = 0, prompt = 0;
  double queue = 0, ttft = 0, itl_sum = 0;
  size_t itl_n = 0;
  for (const auto& c : job.choices) {
    completion += c->completion_tokens();
    prompt = c->prompt_tokens();
    queue = std::max(queue, c->queue_seconds());
    if (c->completion_tokens() > 0) ttft = std::max(ttft, c->first_token_seconds());
    for (float g : c->token_gaps()) {
      s->host->metric_observe(s->ctx, ser.itl_s, g);
      itl_sum += g;
      ++itl_n;
    }
  }
  if (!job.choices.empty()) {
    s->host->metric_observe(s->ctx, ser.queue_s, queue);
    if (completion > 0) s->host->metric_observe(s->ctx, ser.ttft_s, ttft);
    s->host->metric_observe(s->ctx, ser.prompt_tokens, prompt);
    s->host->metric_observe(s->ctx, ser.completion_tokens, completion);
  }
  s->host->metric_observe(s->ctx, ser.e2e_s, e2e);
  const char* names[] = {"model", "status"};
  const char* values[] = {m.name.c_str(), outcome.c_str()};
  uint32_t outcomes = s->host->metric_series(s->ctx, "requests_by_status_total", "Requests that reached a model, by model and outcome",
                                             LLMOPS_METRIC_COUNTER, names, values, 2, nullptr, 0);
  s->host->metric_add(s->ctx, outcomes, 1);
  if (s->log == nullptr) return;
  Json r = {{"id", job.id},
            {"time_ms", unix_ms_now()},
            {"model", m.name},
            {"requested", job.p.model},
            {"caller", job.caller},
            {"route", job.p.chat ? "chat" : "completions"},
            {"stream", job.p.stream},
            {"status", http},
            {"outcome", outcome},
            {"n", job.p.n},
            {"prompt_tokens", prompt},
            {"completion_tokens", completion},
            {"queue_s", queue},
            {"ttft_s", completion > 0 ? Json(ttft) : Json(nullptr)},
            {"itl_mean_s", itl_n > 0 ? Json(itl_sum / static_cast<double>(itl_n)) : Json(nullptr)},
            {"e2e_s", e2e}};
  if (m.log_bodies) {
    r["prompt"] = job.p.chat ? job.p.messages : Json(job.p.prompt_text);
    r["completion"] = job.completion_text;
  }
  s->log->append(std::move(r));
}

// Submits one request per choice; on failure writes the error and returns false.
bool submit_all(Job& job, const std::vector<int32_t>& prompt, llmops_response* resp) {
  State* s = job.s;
  const int ctx = job.model->scheduler->context();
  GenerationParams g = job.p.params;
  if (!job.p.max_tokens_given && job.p.chat) g.max_tokens = std::max(1, ctx - static_cast<int>(prompt.size()));
  if (static_cast<int>(prompt.size()) >= ctx) {
    record(job, 400, "bad_request");
    respond_error(s, resp, 400,
                  "the prompt has " + std::to_string(prompt.size()) + " tokens; this model's context holds " + std::to_string(ctx) +
                      " with room for at least one generated token: shorten the prompt",
                  job.p.chat ? "messages" : "prompt", "context_length_exceeded");
    return false;
  }
  if (job.p.max_tokens_given && static_cast<int>(prompt.size()) + g.max_tokens > ctx) {
    record(job, 400, "bad_request");
    respond_error(s, resp, 400,
                  "this model's context holds " + std::to_string(ctx) + " tokens; the prompt has " + std::to_string(prompt.size()) +
                      " and max_tokens asks for " + std::to_string(g.max_tokens) + ": lower max_tokens or shorten the prompt",
                  "max_tokens", "context_length_exceeded");
    return false;
  }
  g.deadline = Clock::now() + std::chrono::seconds(s->request_timeout_s);
  g.priority = s->priority_of(job.caller);
  for (int i = 0; i < job.p.n; ++i) {
    GenerationParams gi = g;
    gi.sampling.seed += static_cast<uint64_t>(i);
    auto r = std::make_shared<Request>(prompt, gi);
    llmops::Status st = job.model->scheduler->submit(r);
    if (!st.ok()) {
      for (auto& c : job.choices) c->cancel();
      if (st.code() == llmops::Code::kResourceExhausted) s->host->metric_add(s->ctx, s->m_rejected, 1);
      record(job, http_status(st), st.code() == llmops::Code::kResourceExhausted ? "rejected" : "error");
      respond_error(s, resp, http_status(st), st.message(), st.code() == llmops::Code::kInvalidArgument ? "prompt" : "");
      return false;
    }
    job.choices.push_back(std::move(r));
  }
  s->host->metric_add(s->ctx, s->m_requests, 1);
  s->host->metric_add(s->ctx, s->m_prompt_tokens, static_cast<double>(prompt.size()));
  return true;
}

Json final_usage(const Job& job) {
  int completion = 0;
  for (const auto& c : job.choices) completion += c->completion_tokens();
  return usage_json(job.choices.front()->prompt_tokens(), completion);
}

// Non-streamed: waits for every choice, then answers in one JSON object.
void answer_whole(Job& job, llmops_response* resp) {
  Json choices = Json::array();
  for (size_t i = 0; i < job.choices.size(); ++i) {
    Request& r = *job.choices[i];
    std::vector<Piece> all;
    // The scheduler ends every request (its deadline included), so this wait is bounded.
    while (!r.wait_finished(std::chrono::milliseconds(1000))) continue;
    r.next(&all, std::chrono::milliseconds(0));
    if (r.finish_reason() == "error") {
      for (auto& c : job.choices) c->cancel();
      record(job, http_status(r.error()), r.error().code() == llmops::Code::kDeadlineExceeded ? "timeout" : "error");
      respond_error(job.s, resp, http_status(r.error()), r.error().message());
      return;
    }
    std::string text;
    for (const Piece& p : all) text += p.text;
    if (job.model->log_bodies) job.completion_text += text;
    Json choice = {{"index", i}, {"finish_reason", r.finish_reason()}};
    if (job.p.chat) {
      choice["message"] = {{"role", "assistant"}, {"content", text}};
      choice["logprobs"] = job.p.logprobs ? chat_logprobs(all, *job.model->tok) : Json(nullptr);
    } else {
      choice["text"] = text;
      choice["logprobs"] = job.p.logprobs ? completion_logprobs(all, *job.model->tok) : Json(nullptr);
    }
    choices.push_back(std::move(choice));
  }
  Json out = {{"id", job.id}, {"object", job.p.chat ? "chat.completion" : "text_completion"}, {"created", job.created},
              {"model", job.model->name}, {"choices", choices}, {"usage", final_usage(job)}};
  job.s->host->metric_add(job.s->ctx, job.s->m_completion_tokens, out["usage"]["completion_tokens"].get<double>());
  record(job, 200, "ok");
  respond_json(job.s, resp, 200, out);
}

// Streamed: Server-Sent Events, one chunk per batch of pieces, then [DONE]. A client that goes
// away cancels its sequences, which leave the batch at the next step.
void stream_job(void* user, llmops_stream* stream) {
  std::unique_ptr<Job> job(static_cast<Job*>(user));
  State* s = job->s;
  auto send = [&](const Json& chunk) {
    std::string event = "data: " + llmops::dump_json(chunk) + "\n\n";
    return s->host->stream_write(stream, event.data(), event.size()) != 0;
  };
  auto chunk = [&](size_t index, const std::string& text, const std::vector<Piece>* pieces, const Json& finish, bool first) {
    Json choice = {{"index", index}, {"finish_reason", finish}};
    if (job->p.chat) {
      Json delta = Json::object();
      if (first) delta["role"] = "assistant";
      if (!text.empty() || first) delta["content"] = text;
      choice["delta"] = delta;
      choice["logprobs"] = job->p.logprobs && pieces ? chat_logprobs(*pieces, *job->model->tok) : Json(nullptr);
    } else {
      choice["text"] = text;
      choice["logprobs"] = job->p.logprobs && pieces ? completion_logprobs(*pieces, *job->model->tok) : Json(nullptr);
    }
    Json c = {{"id", job->id}, {"object", job->p.chat ? "chat.completion.chunk" : "text_completion"}, {"created", job->created},
              {"model", job->model->name}, {"choices", Json::array({choice})}};
    if (job->p.include_usage) c["usage"] = nullptr;  // OpenAI: null on every chunk but the last
    return send(c);
  };
  bool ok = true;
  if (job->p.chat) {
    for (size_t i = 0; i < job->choices.size() && ok; ++i) ok = chunk(i, "", nullptr, nullptr, true);
  }
  std::vector<bool> open(job->choices.size(), true);
  size_t remaining = job->choices.size();
  std::vector<Piece> batch;
  // When tokens come faster than one per kLinger, the writer pauses that long after each event:
  // the pieces meanwhile gather into one event, and the generating thread, finding no reader
  // waiting, makes no system call to wake one. Slower streams get every token at once.
  constexpr auto kLinger = std::chrono::microseconds(500);
  auto last_event = Clock::now() - kLinger;
  while (ok && remaining > 0) {
    if (job->choices.size() == 1 && Clock::now() - last_event < kLinger) std::this_thread::sleep_until(last_event + kLinger);
    for (size_t i = 0; i < job->choices.size() && ok; ++i) {
      if (!open[i]) continue;
      Request& r = *job->choices[i];
      const bool more = r.next(&batch, std::chrono::milliseconds(job->choices.size() > 1 ? 5 : 200));
      if (!batch.empty()) {
        std::string text;
        for (const Piece& p : batch) text += p.text;
        if (job->model->log_bodies) job->completion_text += text;
        if (!text.empty() || job->p.logprobs) ok = chunk(i, text, &batch, nullptr, false);
        last_event = Clock::now();
      }
      if (!more && ok) {
        open[i] = false;
        --remaining;
        if (r.finish_reason() == "error") {
          record(*job, 200, r.error().code() == llmops::Code::kDeadlineExceeded ? "timeout" : "error");
          Json err = {{"error", {{"message", r.error().message()}, {"type", "server_error"}, {"code", nullptr}, {"param", nullptr}}}};
          ok = send(err);
        } else {
          ok = chunk(i, "", nullptr, r.finish_reason(), false);
        }
      }
    }
    if (ok && s->host->stream_client_gone(stream)) ok = false;
  }
  if (!ok) {
    for (auto& c : job->choices) c->cancel();
    record(*job, 200, "client_gone");
    return;
  }
  if (job->p.include_usage) {
    Json c = {{"id", job->id}, {"object", job->p.chat ? "chat.completion.chunk" : "text_completion"}, {"created", job->created},
              {"model", job->model->name}, {"choices", Json::array()}, {"usage", final_usage(*job)}};
    if (!send(c)) {
      record(*job, 200, "client_gone");
      return;
    }
  }
  s->host->metric_add(s->ctx, s->m_completion_tokens, final_usage(*job)["completion_tokens"].get<double>());
  record(*job, 200, "ok");
  static const char kDone[] = "data: [DONE]\n\n";
  s->host->stream_write(stream, kDone, sizeof kDone - 1);
}

llmops_code generate_route(State* s, const llmops_request* req, llmops_response* resp, bool chat) {
  ParsedRequest parsed;
  auto served = prepare(s, req, resp, chat, &parsed);
  if (served == nullptr) return LLMOPS_OK;
  auto job = std::make_unique<Job>(s, std::move(served), std::move(parsed), req->caller);
  std::vector<int32_t> prompt;
  if (auto e = tokenize_prompt(*job->model, job->p, &prompt)) {
    record(*job, 400, "bad_request");
    return respond_error(s, resp, 400, *e, chat ? "messages" : "prompt");
  }
  job->id = new_completion_id(chat ? "chatcmpl-" : "cmpl-");
  job->created = static_cast<int64_t>(std::time(nullptr));
  if (!submit_all(*job, prompt, resp)) return LLMOPS_OK;
  if (!job->p.stream) {
    answer_whole(*job, resp);
    return LLMOPS_OK;
  }
  s->host->response_set_status(resp, 200);
  s->host->response_set_header(resp, "Content-Type", "text/event-stream");
  s->host->response_set_header(resp, "Cache-Control", "no-cache");
  s->host->response_stream(resp, stream_job, job.release());
  return LLMOPS_OK;
}

llmops_code completions_route(void* user, const llmops_request* req, llmops_response* resp) {
  return generate_route(static_cast<State*>(user), req, resp, false);
}
llmops_code chat_route(void* user, const llmops_request* req, llmops_response* resp) {
  return generate_route(static_cast<State*>(user), req, resp, true);
}

// OpenAI's model object, with vLLM's max_model_len and root (what an alias points at).
Json model_json(const std::string& id, int64_t created, int64_t context, const std::string& root) {
  return {{"id", id}, {"object", "model"}, {"created", created}, {"owned_by", "llmops"}, {"max_model_len", context}, {"root", root}};
}

// GET /v1/models: every model a request may name: the configured one, the imported versions
// and the aliases (loaded or not; the first request loads it). GET /v1/models/{id}: one.
llmops_code models_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  if (!started(s, resp)) return LLMOPS_OK;
  std::map<std::string, Json> all;
  for (const auto& m : s->models->loaded()) {
    if (m->origin == "config") all[m->name] = model_json(m->name, m->created, m->scheduler->context(), m->name);
  }
  auto records = s->registry->models();
  auto aliases = s->registry->aliases();
  if (!records.ok()) return respond_error(s, resp, 500, records.status().message());
  if (!aliases.ok()) return respond_error(s, resp, 500, aliases.status().message());
  std::map<std::string, const ModelRecord*> by_name;
  for (const auto& r : *records) {
    by_name[r.name] = &r;
    all[r.name] = model_json(r.name, static_cast<int64_t>(r.imported_ms / 1000), r.context, r.name);
  }
  for (const auto& a : *aliases) {
    auto t = by_name.find(a.target);
    if (t == by_name.end()) continue;
    all[a.name] = model_json(a.name, static_cast<int64_t>(a.updated_ms / 1000), t->second->context, a.target);
  }
  const std::string path = req->path;
  const std::string prefix = "/v1/models/";
  if (path.rfind(prefix, 0) == 0) {
    auto it = all.find(path.substr(prefix.size()));
    if (it == all.end()) {
      return respond_error(s, resp, 404, "the model '" + path.substr(prefix.size()) + "' does not exist", "model", "model_not_found");
    }
    respond_json(s, resp, 200, it->second);
    return LLMOPS_OK;
  }
  Json data = Json::array();
  for (auto& [_, m] : all) data.push_back(std::move(m));
  respond_json(s, resp, 200, {{"object", "list"}, {"data", data}});
  return LLMOPS_OK;
}

std::string base64_of(const void* data, size_t size) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* p = static_cast<const unsigned char*>(data);
  std::string out;
  out.reserve((size + 2) / 3 * 4);
  for (size_t i = 0; i < size; i += 3) {
    uint32_t v = static_cast<uint32_t>(p[i]) << 16;
    if (i + 1 < size) v |= static_cast<uint32_t>(p[i + 1]) << 8;
    if (i + 2 < size) v |= p[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < size ? kAlphabet[(v >> 6) & 63] : '=';
    out += i + 2 < size ? kAlphabet[v & 63] : '=';
  }
  return out;
}

// OpenAI's /v1/embeddings: input as a string, strings, token ids or lists of token ids; each
// embedding is the mean of the model's final hidden states, L2-normalised; float or base64.
llmops_code embeddings_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto body = parse_body(s, req, resp);
  if (!body) return LLMOPS_OK;
  auto served = model_of(s, *body, resp);
  if (served == nullptr) return LLMOPS_OK;
  std::string format = "float";
  if (auto f = body->find("encoding_format"); f != body->end() && !f->is_null()) {
    if (!f->is_string() || (f->get<std::string>() != "float" && f->get<std::string>() != "base64")) {
      return respond_error(s, resp, 400, "'encoding_format' must be \"float\" or \"base64\"", "encoding_format");
    }
    format = f->get<std::string>();
  }
  const int dim = served->model->config().dim;
  if (auto d = body->find("dimensions"); d != body->end() && !d->is_null() && (!d->is_number_integer() || d->get<int64_t>() != dim)) {
    return respond_error(s, resp, 400, "this model's embeddings have " + std::to_string(dim) + " dimensions", "dimensions");
  }
  auto in = body->find("input");
  if (in == body->end()) return respond_error(s, resp, 400, "'input' is required: a string, an array of strings or of token ids", "input");
  // Normalise to a list of token sequences.
  const engine::Tokenizer& tok = *served->tok;
  auto tokens_of = [&](const std::string& text) { return prompt_ids(tok, text); };
  std::vector<std::vector<int32_t>> inputs;
  auto ids_of = [&](const Json& arr, std::vector<int32_t>* out) {
    for (const Json& id : arr) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= tok.size()) return false;
      out->push_back(static_cast<int32_t>(id.get<int64_t>()));
    }
    return true;
  };
  if (in->is_string()) {
    inputs.push_back(tokens_of(in->get<std::string>()));
  } else if (in->is_array() && !in->empty() && in->size() <= 256) {
    if ((*in)[0].is_number_integer()) {
      inputs.emplace_back();
      if (!ids_of(*in, &inputs.back())) return respond_error(s, resp, 400, "'input' token ids must lie in the vocabulary", "input");
    } else {
      for (const Json& x : *in) {
        if (x.is_string()) {
          inputs.push_back(tokens_of(x.get<std::string>()));
        } else if (x.is_array()) {
          inputs.emplace_back();
          if (!ids_of(x, &inputs.back())) return respond_error(s, resp, 400, "'input' token ids must lie in the vocabulary", "input");
        } else {
          return respond_error(s, resp, 400, "'input' must be a string, an array of strings or of token ids", "input");
        }
      }
    }
  } else {
    return respond_error(s, resp, 400, "'input' must be a string or a non-empty array of at most 256 inputs", "input");
  }
  Json data = Json::array();
  size_t prompt_tokens = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].empty()) return respond_error(s, resp, 400, "input " + std::to_string(i) + " is empty", "input");
    auto e = served->scheduler->embed(inputs[i]);
    if (!e.ok()) return respond_error(s, resp, http_status(e.status()), e.status().message(), "input");
    prompt_tokens += inputs[i].size();
    Json item = {{"object", "embedding"}, {"index", i}};
    if (format == "base64") item["embedding"] = base64_of(e->data(), e->size() * sizeof(float));
    else item["embedding"] = *e;
    data.push_back(std::move(item));
  }
  respond_json(s, resp, 200, {{"object", "list"}, {"data", data}, {"model", served->name},
                              {"usage", {{"prompt_tokens", prompt_tokens}, {"total_tokens", prompt_tokens}}}});
  return LLMOPS_OK;
}

// vLLM's /tokenize: {"model", "prompt", "add_special_tokens"} → {"tokens", "count", "max_model_len"}.
llmops_code tokenize_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto body = parse_body(s, req, resp);
  if (!body) return LLMOPS_OK;
  auto served = model_of(s, *body, resp);
  if (served == nullptr) return LLMOPS_OK;
  auto p = body->find("prompt");
  if (p == body->end() || !p->is_string()) return respond_error(s, resp, 400, "'prompt' must be a string", "prompt");
  auto special = body->find("add_special_tokens");
  if (special != body->end() && !special->is_boolean()) {
    return respond_error(s, resp, 400, "'add_special_tokens' must be true or false", "add_special_tokens");
  }
  const auto ids = prompt_ids(*served->tok, p->get<std::string>(), special == body->end() || special->get<bool>());
  respond_json(s, resp, 200, {{"tokens", ids}, {"count", ids.size()}, {"max_model_len", served->scheduler->context()}});
  return LLMOPS_OK;
}

// vLLM's /detokenize: {"model", "tokens"} → {"prompt"}.
llmops_code detokenize_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto body = parse_body(s, req, resp);
  if (!body) return LLMOPS_OK;
  auto served = model_of(s, *body, resp);
  if (served == nullptr) return LLMOPS_OK;
  auto t = body->find("tokens");
  if (t == body->end() || !t->is_array()) return respond_error(s, resp, 400, "'tokens' must be an array of token ids", "tokens");
  std::vector<int32_t> ids;
  for (const Json& id : *t) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= served->tok->size()) {
      return respond_error(s, resp, 400, "'tokens' holds an id outside the vocabulary (0.." + std::to_string(served->tok->size() - 1) + ")",
                           "tokens");
    }
    ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
  respond_json(s, resp, 200, {{"prompt", served->tok->decode(ids)}});
  return LLMOPS_OK;
}

}  // namespace

void add_api_routes(const RouteAdder& add) {
  add(LLMOPS_PLANE_DATA, "POST", "/v1/completions", completions_route);
  add(LLMOPS_PLANE_DATA, "POST", "/v1/chat/completions", chat_route);
  add(LLMOPS_PLANE_DATA, "POST", "/v1/embeddings", embeddings_route);
  add(LLMOPS_PLANE_DATA, "GET", "/v1/models", models_route);
  add(LLMOPS_PLANE_DATA, "GET", "/v1/models/{id}", models_route);
  add(LLMOPS_PLANE_DATA, "POST", "/tokenize", tokenize_route);
  add(LLMOPS_PLANE_DATA, "POST", "/detokenize", detokenize_route);
  // llmopsctl generate / chat: the same generation on the admin socket (audited, no API key).
  add(LLMOPS_PLANE_ADMIN, "POST", "/completions", completions_route);
  add(LLMOPS_PLANE_ADMIN, "POST", "/chat/completions", chat_route);
}

}  // namespace llmops::serving
