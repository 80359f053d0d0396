// Stage module 'serving': OpenAI-compatible inference over HTTP. Loads the configured model,
// runs one continuous-batching scheduler per model, and answers /v1/completions,
// /v1/chat/completions, /v1/models and vLLM's /tokenize and /detokenize, streaming over SSE.
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

namespace {

using llmops::Json;
using namespace llmops::serving;
namespace engine = llmops::engine;

struct State {
  const llmops_host_api* host = nullptr;
  llmops_module_ctx* ctx = nullptr;
  std::unique_ptr<Registry> registry;
  std::unique_ptr<ModelManager> models;  // from start() on
  std::unique_ptr<RequestLog> log;       // from start() on
  int request_timeout_s = 600;
  std::mutex prio_mu;
  std::map<std::string, int> priorities;  // caller → 0 batch, 2 interactive (absent: 1 normal)
  uint32_t m_requests = 0, m_rejected = 0, m_prompt_tokens = 0, m_completion_tokens = 0;
  // The idle reaper: unloads models idle past serving.idle-unload-s.
  std::mutex reaper_mu;
  std::condition_variable reaper_cv;
  bool reaper_stop = false;
  std::thread reaper;

  llmops::sdk::Host sdk() const { return {ctx, host}; }
  int priority_of(const std::string& caller) {
    std::lock_guard lock(prio_mu);
    auto it = priorities.find(caller);
    return it == priorities.end() ? 1 : it->second;
  }
};

const char* const kPriorityNames[] = {"batch", "normal", "interactive"};

// ---- answers --------------------------------------------------------------------------------

void respond_json(State* s, llmops_response* resp, int status, const Json& body) {
  s->sdk().respond(resp, status, llmops::dump_json(body) + "\n");
}

llmops_code respond_error(State* s, llmops_response* resp, int status, const std::string& message, const std::string& param = "",
                          const std::string& code = "") {
  const char* type = status == 429 ? "rate_limit_error" : status >= 500 ? "server_error" : "invalid_request_error";
  Json err = {{"message", message}, {"type", type}, {"param", param.empty() ? Json(nullptr) : Json(param)},
              {"code", code.empty() ? Json(nullptr) : Json(code)}};
  if (status == 429) s->host->response_set_header(resp, "Retry-After", "1");
  respond_json(s, resp, status, {{"error", err}});
  return LLMOPS_OK;
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

// The served model called name ("" for the default), loaded on first use; on failure the
// 404/429/503 is written and null returned.
std::shared_ptr<Served> resolve_model(State* s, const std::string& name, llmops_response* resp) {
  if (s->models == nullptr) {
    respond_error(s, resp, 503, "the serving stage is starting; retry shortly");
    return nullptr;
  }
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
  if (s->models == nullptr) return respond_error(s, resp, 503, "the serving stage is starting; retry shortly");
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

// ---- admin: served models, the catalogue, aliases --------------------------------------------

// The last path segment: {name} in the admin routes.
std::string last_segment(const llmops_request* req) {
  std::string path = req->path;
  return path.substr(path.rfind('/') + 1);
}

llmops_code respond_status(State* s, llmops_response* resp, const llmops::Status& st) {
  int code = 500;
  switch (st.code()) {
    case llmops::Code::kInvalidArgument: code = 400; break;
    case llmops::Code::kNotFound: code = 404; break;
    case llmops::Code::kAlreadyExists:
    case llmops::Code::kFailedPrecondition: code = 409; break;
    case llmops::Code::kResourceExhausted: code = 507; break;
    default: code = http_status(st);
  }
  return respond_error(s, resp, code, st.message());
}

Json served_json(State* s, const Served& m) {
  SchedulerStats st = m.scheduler->stats();
  const std::string d = s->models->default_name();
  auto resolved = d.empty() ? llmops::Result<std::string>(std::string()) : s->registry->resolve(d);
  const bool is_default = !d.empty() && (m.name == d || (resolved.ok() && *resolved == m.name));
  return {{"name", m.name}, {"origin", m.origin}, {"path", m.path}, {"default", is_default},
          {"pinned", m.pinned}, {"context", m.scheduler->context()}, {"running", st.running}, {"waiting", st.waiting},
          {"kv_bytes_in_use", st.kv_bytes_in_use}, {"steps", st.steps}, {"tokens_generated", st.tokens_generated},
          {"prompt_tokens", st.prompt_tokens}, {"prefix_hit_tokens", st.prefix_hit_tokens}, {"cached_prefixes", st.cached_prefixes},
          {"prefix_cache_bytes", st.prefix_cache_bytes},
          {"weight_bytes", m.model->weight_bytes()}, {"packed_bytes", m.model->packed_bytes()}, {"budget_bytes", m.cost_bytes}, {"arch", m.model->config().arch_name},
          {"chat_template", m.chat_source}, {"idle_s", (unix_ms_now() - m.last_used_ms.load()) / 1000}};
}

// GET /served: the loaded models with their schedulers' state and the memory budget.
llmops_code admin_served_route(void* user, const llmops_request*, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  if (s->models == nullptr) return respond_error(s, resp, 503, "the serving stage is starting; retry shortly");
  Json list = Json::array();
  for (const auto& m : s->models->loaded()) list.push_back(served_json(s, *m));
  const auto& o = s->models->options();
  respond_json(s, resp, 200, {{"models", list}, {"memory_budget_bytes", o.memory_budget_bytes},
                              {"bytes_in_use", s->models->bytes_in_use()}, {"idle_unload_s", o.idle_unload_s}});
  return LLMOPS_OK;
}

// POST /served {"model"}: load now (llmopsctl serve load).
llmops_code admin_load_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto body = parse_body(s, req, resp);
  if (!body) return LLMOPS_OK;
  auto m = body->find("model");
  if (m == body->end() || !m->is_string()) return respond_error(s, resp, 400, "'model' (a model or alias name) is required", "model");
  if (s->models == nullptr) return respond_error(s, resp, 503, "the serving stage is starting; retry shortly");
  auto served = s->models->load(m->get<std::string>());
  if (!served.ok()) return respond_status(s, resp, served.status());
  respond_json(s, resp, 200, served_json(s, **served));
  return LLMOPS_OK;
}

// DELETE /served/{name}: unload (in-flight requests finish first).
llmops_code admin_unload_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  if (s->models == nullptr) return respond_error(s, resp, 503, "the serving stage is starting; retry shortly");
  llmops::Status st = s->models->unload(last_segment(req));
  if (!st.ok()) return respond_status(s, resp, st);
  respond_json(s, resp, 200, {{"unloaded", last_segment(req)}});
  return LLMOPS_OK;
}

Json record_json(State* s, const ModelRecord& r) {
  Json j = r.to_json();
  if (j["chat_template"].get<std::string>().size() > 64) j["chat_template"] = "(custom template text)";
  auto aliases = s->registry->aliases_of(r.name);
  j["aliases"] = aliases.ok() ? Json(*aliases) : Json::array();
  j["loaded"] = s->models != nullptr && s->models->find_loaded(r.name) != nullptr;
  return j;
}

// Whether name is the configured (pinned) model's: it answers to that name first, so a version
// or an alias of the same name could never be reached.
bool taken_by_configured_model(State* s, const std::string& name) {
  if (s->models == nullptr) return false;
  auto m = s->models->find_loaded(name);
  return m != nullptr && m->origin == "config";
}

// GET /models: the imported versions.
llmops_code admin_models_route(void* user, const llmops_request*, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto records = s->registry->models();
  if (!records.ok()) return respond_status(s, resp, records.status());
  Json list = Json::array();
  for (const auto& r : *records) list.push_back(record_json(s, r));
  respond_json(s, resp, 200, {{"models", list}});
  return LLMOPS_OK;
}

// GET /models/{name}: one version in full (an alias shows its target).
llmops_code admin_model_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto name = s->registry->resolve(last_segment(req));
  if (!name.ok()) return respond_status(s, resp, name.status());
  auto r = s->registry->model(*name);
  if (!r.ok()) return respond_status(s, resp, r.status());
  if (!r->has_value()) return respond_error(s, resp, 404, "no model '" + last_segment(req) + "' (llmopsctl model list shows them)");
  Json j = record_json(s, **r);
  if (auto loaded = s->models != nullptr ? s->models->find_loaded(*name) : nullptr) j["served"] = served_json(s, *loaded);
  respond_json(s, resp, 200, j);
  return LLMOPS_OK;
}

// POST /models {"path", "name", "tokenizer"?, "chat_template"?}: import a version.
llmops_code admin_import_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto body = parse_body(s, req, resp);
  if (!body) return LLMOPS_OK;
  ImportRequest ir;
  for (auto [key, field] : {std::pair{"path", &ir.path}, {"name", &ir.name}, {"tokenizer", &ir.tokenizer}, {"chat_template", &ir.chat_template}}) {
    auto it = body->find(key);
    if (it == body->end() || it->is_null()) continue;
    if (!it->is_string()) return respond_error(s, resp, 400, std::string("'") + key + "' must be a string", key);
    *field = it->get<std::string>();
  }
  if (ir.path.empty() || ir.name.empty()) return respond_error(s, resp, 400, "'path' and 'name' are required");
  ir.caller = req->caller;
  if (taken_by_configured_model(s, ir.name)) {
    return respond_error(s, resp, 409, "'" + ir.name + "' is the configured model's name (serving.model-name); choose another name");
  }
  auto rec = import_model(s->sdk(), *s->registry, ir);
  if (!rec.ok()) return respond_status(s, resp, rec.status());
  s->sdk().info("imported model '" + rec->name + "' (" + rec->format + ", " + std::to_string(rec->bytes() >> 20) + " MiB) from " + rec->source +
                " by " + ir.caller);
  respond_json(s, resp, 201, record_json(s, *rec));
  return LLMOPS_OK;
}

// DELETE /models/{name}: remove a version (refused while an alias points at it); unloads it
// and gives its blobs back (llmopsctl gc frees the space).
llmops_code admin_remove_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  const std::string name = last_segment(req);
  auto r = s->registry->model(name);
  if (!r.ok()) return respond_status(s, resp, r.status());
  if (!r->has_value()) return respond_error(s, resp, 404, "no model '" + name + "' (llmopsctl model list shows them)");
  llmops::Status st = s->registry->remove_model(name);
  if (!st.ok()) return respond_status(s, resp, st);
  if (s->models != nullptr) (void)s->models->unload(name);
  for (const auto& f : (*r)->files) {
    llmops_error err{};
    if (s->host->blob_ref(s->ctx, f.sha256.c_str(), -1, &err) != LLMOPS_OK) {
      s->sdk().warn("model '" + name + "' removed but its blob " + f.sha256 + " kept a reference: " + err.message);
    }
  }
  s->sdk().info("removed model '" + name + "' by " + req->caller);
  respond_json(s, resp, 200, {{"removed", name}, {"bytes", (*r)->bytes()}});
  return LLMOPS_OK;
}

// GET /aliases; PUT /aliases/{name} {"model"}: create or repoint atomically; DELETE /aliases/{name}.
llmops_code admin_aliases_route(void* user, const llmops_request*, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto all = s->registry->aliases();
  if (!all.ok()) return respond_status(s, resp, all.status());
  Json list = Json::array();
  for (const auto& a : *all) list.push_back(a.to_json());
  respond_json(s, resp, 200, {{"aliases", list}});
  return LLMOPS_OK;
}

llmops_code admin_set_alias_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto body = parse_body(s, req, resp);
  if (!body) return LLMOPS_OK;
  auto m = body->find("model");
  if (m == body->end() || !m->is_string()) return respond_error(s, resp, 400, "'model' (the version to point at) is required", "model");
  AliasRecord a;
  a.name = last_segment(req);
  a.target = m->get<std::string>();
  a.updated_ms = static_cast<uint64_t>(unix_ms_now());
  a.updated_by = req->caller;
  if (taken_by_configured_model(s, a.name)) {
    return respond_error(s, resp, 409, "'" + a.name + "' is the configured model's name (serving.model-name); choose another alias");
  }
  auto before = s->registry->alias(a.name);
  llmops::Status st = s->registry->set_alias(a);
  if (!st.ok()) return respond_status(s, resp, st);
  Json j = a.to_json();
  j["previous"] = before.ok() && before->has_value() ? Json((*before)->target) : Json(nullptr);
  s->sdk().info("alias '" + a.name + "' → '" + a.target + "'" +
                (j["previous"].is_null() ? std::string() : " (was '" + j["previous"].get<std::string>() + "')") + " by " + a.updated_by);
  respond_json(s, resp, 200, j);
  return LLMOPS_OK;
}

llmops_code admin_remove_alias_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  llmops::Status st = s->registry->remove_alias(last_segment(req));
  if (!st.ok()) return respond_status(s, resp, st);
  respond_json(s, resp, 200, {{"removed", last_segment(req)}});
  return LLMOPS_OK;
}

// GET /requests?limit=N&model=M: the request log, newest first.
llmops_code admin_requests_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  if (s->log == nullptr) return respond_error(s, resp, 503, "the serving stage is starting; retry shortly");
  size_t limit = 50;
  std::string model;
  std::string_view q = req->query;
  while (!q.empty()) {
    std::string_view part = q.substr(0, q.find('&'));
    q.remove_prefix(std::min(q.size(), part.size() + 1));
    const auto eq = part.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view k = part.substr(0, eq), v = part.substr(eq + 1);
    if (k == "limit") {
      limit = 0;
      for (char c : v) {
        if (c < '0' || c > '9' || limit > 1000000) return respond_error(s, resp, 400, "limit must be a positive number", "limit");
        limit = limit * 10 + static_cast<size_t>(c - '0');
      }
    } else if (k == "model") {
      model = std::string(v);
    }
  }
  auto rows = s->log->newest(limit, model);
  if (!rows.ok()) return respond_status(s, resp, rows.status());
  respond_json(s, resp, 200, {{"requests", *rows}, {"capacity", s->log->capacity()}});
  return LLMOPS_OK;
}

// GET /priorities; PUT /priorities/{caller} {"priority": batch|normal|interactive, "name"};
// DELETE /priorities/{caller}. Callers are "key:<id>" (llmopsctl resolves key names) or "anonymous".
llmops_code admin_priorities_route(void* user, const llmops_request*, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto all = s->registry->priorities();
  if (!all.ok()) return respond_status(s, resp, all.status());
  respond_json(s, resp, 200, {{"priorities", *all}});
  return LLMOPS_OK;
}

llmops_code admin_set_priority_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto body = parse_body(s, req, resp);
  if (!body) return LLMOPS_OK;
  const std::string caller = last_segment(req);
  if (caller != "anonymous" && (caller.rfind("key:", 0) != 0 || caller.size() == 4 || caller.find_first_not_of("0123456789", 4) != std::string::npos)) {
    return respond_error(s, resp, 400, "the caller must be key:<id> or anonymous");
  }
  auto p = body->find("priority");
  int level = -1;
  for (int i = 0; i < 3; ++i) {
    if (p != body->end() && p->is_string() && p->get<std::string>() == kPriorityNames[i]) level = i;
  }
  if (level < 0) return respond_error(s, resp, 400, "'priority' must be batch, normal or interactive", "priority");
  Json entry = {{"caller", caller}, {"priority", kPriorityNames[level]}, {"name", body->value("name", "")},
                {"updated_ms", unix_ms_now()}, {"updated_by", req->caller}};
  llmops::Status st = level == 1 ? s->registry->remove_priority(caller) : s->registry->set_priority(caller, entry);
  if (!st.ok() && st.code() != llmops::Code::kNotFound) return respond_status(s, resp, st);
  {
    std::lock_guard lock(s->prio_mu);
    if (level == 1) s->priorities.erase(caller);
    else s->priorities[caller] = level;
  }
  s->sdk().info("priority of " + caller + " is " + kPriorityNames[level] + " (by " + std::string(req->caller) + ")");
  respond_json(s, resp, 200, entry);
  return LLMOPS_OK;
}

// PATCH /models/{name} {"log_bodies": bool}: per-version settings.
llmops_code admin_model_settings_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  auto body = parse_body(s, req, resp);
  if (!body) return LLMOPS_OK;
  auto r = s->registry->model(last_segment(req));
  if (!r.ok()) return respond_status(s, resp, r.status());
  if (!r->has_value()) return respond_error(s, resp, 404, "no model '" + last_segment(req) + "' (llmopsctl model list shows them)");
  ModelRecord rec = **r;
  for (const auto& [key, value] : body->items()) {
    if (key != "log_bodies") return respond_error(s, resp, 400, "unknown setting '" + key + "' (settable: log_bodies)", key);
    if (!value.is_boolean()) return respond_error(s, resp, 400, "'log_bodies' must be true or false", "log_bodies");
    rec.log_bodies = value.get<bool>();
  }
  llmops::Status st = s->registry->update_model(rec);
  if (!st.ok()) return respond_status(s, resp, st);
  if (auto loaded = s->models != nullptr ? s->models->find_loaded(rec.name) : nullptr) loaded->log_bodies = rec.log_bodies;
  s->sdk().info("model '" + rec.name + "': log_bodies " + (rec.log_bodies ? "on" : "off") + " by " + req->caller);
  respond_json(s, resp, 200, record_json(s, rec));
  return LLMOPS_OK;
}

// ---- lifecycle ------------------------------------------------------------------------------

llmops_code init(llmops_module_ctx* ctx, const llmops_host_api* host, llmops_error* err) {
  auto* s = new State();
  s->host = host;
  s->ctx = ctx;
  host->set_state(ctx, s);
  s->registry = std::make_unique<Registry>(s->sdk());
  s->m_requests = host->metric_register(ctx, "requests_total", "Generation requests accepted", 0);
  s->m_rejected = host->metric_register(ctx, "rejected_total", "Requests refused with 429 (queue full)", 0);
  s->m_prompt_tokens = host->metric_register(ctx, "prompt_tokens_total", "Prompt tokens of accepted requests", 0);
  s->m_completion_tokens = host->metric_register(ctx, "completion_tokens_total", "Tokens generated", 0);
  llmops_code c = LLMOPS_OK;
  auto route = [&](llmops_plane plane, const char* method, const char* path, llmops_route_fn fn) {
    if (c == LLMOPS_OK) c = host->route_register(ctx, plane, method, path, fn, s, err);
  };
  route(LLMOPS_PLANE_DATA, "POST", "/v1/completions", completions_route);
  route(LLMOPS_PLANE_DATA, "POST", "/v1/chat/completions", chat_route);
  route(LLMOPS_PLANE_DATA, "POST", "/v1/embeddings", embeddings_route);
  route(LLMOPS_PLANE_DATA, "GET", "/v1/models", models_route);
  route(LLMOPS_PLANE_DATA, "GET", "/v1/models/{id}", models_route);
  route(LLMOPS_PLANE_DATA, "POST", "/tokenize", tokenize_route);
  route(LLMOPS_PLANE_DATA, "POST", "/detokenize", detokenize_route);
  // The admin plane (llmopsctl): served models, the catalogue of versions, aliases.
  route(LLMOPS_PLANE_ADMIN, "GET", "/served", admin_served_route);
  route(LLMOPS_PLANE_ADMIN, "POST", "/served", admin_load_route);
  route(LLMOPS_PLANE_ADMIN, "DELETE", "/served/{name}", admin_unload_route);
  route(LLMOPS_PLANE_ADMIN, "GET", "/models", admin_models_route);
  route(LLMOPS_PLANE_ADMIN, "POST", "/models", admin_import_route);
  route(LLMOPS_PLANE_ADMIN, "GET", "/models/{name}", admin_model_route);
  route(LLMOPS_PLANE_ADMIN, "DELETE", "/models/{name}", admin_remove_route);
  route(LLMOPS_PLANE_ADMIN, "PATCH", "/models/{name}", admin_model_settings_route);
  route(LLMOPS_PLANE_ADMIN, "GET", "/requests", admin_requests_route);
  route(LLMOPS_PLANE_ADMIN, "GET", "/priorities", admin_priorities_route);
  route(LLMOPS_PLANE_ADMIN, "PUT", "/priorities/{caller}", admin_set_priority_route);
  route(LLMOPS_PLANE_ADMIN, "GET", "/aliases", admin_aliases_route);
  route(LLMOPS_PLANE_ADMIN, "PUT", "/aliases/{name}", admin_set_alias_route);
  route(LLMOPS_PLANE_ADMIN, "DELETE", "/aliases/{name}", admin_remove_alias_route);
  // llmopsctl generate / chat: the same generation on the admin socket (audited, no API key).
  route(LLMOPS_PLANE_ADMIN, "POST", "/completions", completions_route);
  route(LLMOPS_PLANE_ADMIN, "POST", "/chat/completions", chat_route);
  return c;
}

// A loaded model's metric series, labelled model=<name>: latency and token histograms and the
// scheduler gauges. The same name gives the same series when a model loads again.
void make_series(State* s, Served& m) {
  const char* names[] = {"model"};
  const char* values[] = {m.name.c_str()};
  auto series = [&](const char* name, const char* help, llmops_metric_kind kind, const double* bounds = nullptr, size_t n = 0) {
    return s->host->metric_series(s->ctx, name, help, kind, names, values, 1, bounds, n);
  };
  static const double kTokens[] = {1, 4, 16, 64, 256, 1024, 4096, 16384, 65536};
  auto& r = m.series;
  r.queue_s = series("queue_seconds", "Time a request waited before its prompt started", LLMOPS_METRIC_HISTOGRAM);
  r.ttft_s = series("time_to_first_token_seconds", "Time from arrival to the first generated token", LLMOPS_METRIC_HISTOGRAM);
  r.itl_s = series("inter_token_latency_seconds", "Time between consecutive generated tokens", LLMOPS_METRIC_HISTOGRAM);
  r.e2e_s = series("request_duration_seconds", "Time from arrival to the last byte of the answer", LLMOPS_METRIC_HISTOGRAM);
  r.prompt_tokens = series("request_prompt_tokens", "Prompt tokens per request", LLMOPS_METRIC_HISTOGRAM, kTokens, std::size(kTokens));
  r.completion_tokens =
      series("request_completion_tokens", "Generated tokens per request (all choices)", LLMOPS_METRIC_HISTOGRAM, kTokens, std::size(kTokens));
  r.running = series("running_sequences", "Sequences in the running batch", LLMOPS_METRIC_GAUGE);
  r.waiting = series("waiting_requests", "Requests in the wait queue", LLMOPS_METRIC_GAUGE);
  r.kv_bytes = series("kv_cache_bytes", "KV-cache bytes held by running sequences", LLMOPS_METRIC_GAUGE);
}

// Scheduler gauges of the loaded models, refreshed about once a second (an unloaded model's drop to 0).
void update_gauges(State* s) {
  static thread_local std::map<std::string, Served::Series> seen;
  std::map<std::string, Served::Series> now;
  for (const auto& m : s->models->loaded()) {
    SchedulerStats st = m->scheduler->stats();
    s->host->metric_set(s->ctx, m->series.running, st.running);
    s->host->metric_set(s->ctx, m->series.waiting, st.waiting);
    s->host->metric_set(s->ctx, m->series.kv_bytes, static_cast<double>(st.kv_bytes_in_use));
    now[m->name] = m->series;
  }
  for (const auto& [name, series] : seen) {
    if (now.count(name)) continue;
    s->host->metric_set(s->ctx, series.running, 0);
    s->host->metric_set(s->ctx, series.waiting, 0);
    s->host->metric_set(s->ctx, series.kv_bytes, 0);
  }
  seen.swap(now);
}

// Memory the loaded models may hold when serving.memory-budget-mb is 0: 80% of the machine's.
uint64_t default_memory_budget() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) / 5 * 4 : 0;
}

llmops_code start(llmops_module_ctx* ctx, void* state, llmops_error* err) {
  auto* s = static_cast<State*>(state);
  llmops::sdk::Host sdk(ctx, s->host);
  s->request_timeout_s = std::stoi(sdk.config("request-timeout", "600"));
  ManagerOptions mo;
  SchedulerOptions& opt = mo.scheduler;
  opt.max_sequences = std::stoi(sdk.config("max-sequences", "16"));
  opt.max_queue = std::stoi(sdk.config("max-queue", "64"));
  opt.kv_budget_bytes = static_cast<uint64_t>(std::stoll(sdk.config("kv-budget-mb", "1024"))) << 20;
  opt.context = std::stoi(sdk.config("context", "0"));
  opt.prefill_chunk = std::stoi(sdk.config("prefill-chunk", "128"));
  opt.threads = std::stoi(sdk.config("threads", "0"));
  opt.prefix_cache = sdk.config_bool("prefix-cache", true);
  const int pinned = s->host->placement_threads(s->ctx, "inference");
  if (opt.threads == 0) opt.threads = pinned > 0 ? pinned : 1;
  if (pinned > 0) {
    // Engine threads run on the placement's inference CPUs.
    opt.on_thread_start = [s](int) {
      llmops_error e{};
      if (s->host->placement_bind(s->ctx, "inference", &e) != LLMOPS_OK) {
        s->host->log(s->ctx, LLMOPS_LOG_WARNING, (std::string("could not pin an inference thread: ") + e.message).c_str());
      }
    };
  }
  mo.memory_budget_bytes = static_cast<uint64_t>(std::stoll(sdk.config("memory-budget-mb", "0"))) << 20;
  if (mo.memory_budget_bytes == 0) mo.memory_budget_bytes = default_memory_budget();
  mo.idle_unload_s = std::stoi(sdk.config("idle-unload-s", "300"));
  mo.pack_for_batches = sdk.config_bool("pack-weights", true);
  mo.on_load = [s](Served& m) { make_series(s, m); };
  if (auto prios = s->registry->priorities(); prios.ok()) {
    std::lock_guard lock(s->prio_mu);
    for (const Json& p : *prios) {
      for (int i = 0; i < 3; ++i) {
        if (p.value("priority", "") == kPriorityNames[i]) s->priorities[p.value("caller", "")] = i;
      }
    }
  } else {
    return llmops::sdk::fail(err, static_cast<llmops_code>(prios.status().code()), prios.status().message());
  }
  s->models = std::make_unique<ModelManager>(sdk, s->registry.get(), mo);
  s->log = std::make_unique<RequestLog>(sdk, static_cast<uint64_t>(std::stoll(sdk.config("request-log-size", "10000"))));
  if (llmops::Status st = s->log->start(); !st.ok()) return llmops::sdk::fail(err, static_cast<llmops_code>(st.code()), st.message());

  const std::string path = sdk.config("model");
  if (!path.empty()) {
    ModelSource src;
    src.weights = path;
    src.tokenizer = sdk.config("tokenizer");
    src.name = sdk.config("model-name");
    if (src.name.empty()) src.name = std::filesystem::path(path).stem().string();
    const std::string tmpl = sdk.config("chat-template");
    auto names = engine::ChatTemplate::builtin_names();
    if (!tmpl.empty() && std::find(names.begin(), names.end(), tmpl) == names.end()) {
      auto text = llmops::read_file(tmpl, 1u << 20);
      if (!text.ok()) {
        llmops::Status st = text.status().with_context("serving.chat-template (a built-in name or a template file)");
        return llmops::sdk::fail(err, static_cast<llmops_code>(st.code()), st.message());
      }
      src.chat_template = std::move(text).value();
      src.chat_source = "config:" + tmpl;
    } else {
      src.chat_template = tmpl;
    }
    llmops::Status st = s->models->load_pinned(src, path);
    if (!st.ok()) {
      st = st.with_context("serving.model " + path);
      return llmops::sdk::fail(err, static_cast<llmops_code>(st.code()), st.message());
    }
  }
  if (const std::string d = sdk.config("default-model"); !d.empty()) s->models->set_default(d);
  if (path.empty() && sdk.config("default-model").empty()) {
    sdk.info("no default model: requests name one (llmopsctl model import, then alias or name it), or set serving.model");
  }
  s->reaper = std::thread([s] {
    std::unique_lock lock(s->reaper_mu);
    while (!s->reaper_cv.wait_for(lock, std::chrono::seconds(1), [s] { return s->reaper_stop; })) {
      lock.unlock();
      s->models->reap_idle();
      update_gauges(s);
      lock.lock();
    }
  });
  return LLMOPS_OK;
}

void stop(llmops_module_ctx*, void* state) {
  auto* s = static_cast<State*>(state);
  {
    std::lock_guard lock(s->reaper_mu);
    s->reaper_stop = true;
  }
  s->reaper_cv.notify_all();
  if (s->reaper.joinable()) s->reaper.join();
  // Unloading the schedulers ends every sequence; streams see their requests finish.
  if (s->models != nullptr) s->models->unload_all();
  if (s->log != nullptr) s->log->stop();
}

llmops_code health(llmops_module_ctx*, void* state, llmops_health* out) {
  auto* s = static_cast<State*>(state);
  auto loaded = s->models != nullptr ? s->models->loaded() : std::vector<std::shared_ptr<Served>>{};
  if (loaded.empty()) {
    // Not a fault: a daemon may run without serving (training box, data preparation), and
    // imported models load on their first request.
    llmops::sdk::set_health(out, LLMOPS_HEALTH_OK, "no model loaded");
  } else {
    std::string names;
    for (const auto& m : loaded) names += (names.empty() ? "" : ", ") + m->name;
    llmops::sdk::set_health(out, LLMOPS_HEALTH_OK, "serving " + names);
  }
  return LLMOPS_OK;
}

void fini(llmops_module_ctx*, void* state) { delete static_cast<State*>(state); }

const llmops_config_item kSchema[] = {
    {"model", LLMOPS_CONFIG_STRING, "", 0, -1, "model to serve: a GGUF file, a Hugging Face directory or a llama2.c checkpoint"},
    {"model-name", LLMOPS_CONFIG_STRING, "", 0, -1, "the name clients use (default: the file name without extension)"},
    {"tokenizer", LLMOPS_CONFIG_STRING, "", 0, -1, "llama2.c tokenizer.bin or a Hugging Face tokenizer directory, when the model carries none"},
    {"default-model", LLMOPS_CONFIG_STRING, "", 0, -1, "the model or alias a request without 'model' gets (default: serving.model)"},
    {"threads", LLMOPS_CONFIG_INT, "0", 0, 1024, "engine threads (0: the placement's inference pool size)"},
    {"max-sequences", LLMOPS_CONFIG_INT, "16", 1, 1024, "sequences decoded together per model"},
    {"max-queue", LLMOPS_CONFIG_INT, "64", 0, 100000, "requests waiting per model before 429"},
    {"kv-budget-mb", LLMOPS_CONFIG_INT, "1024", 1, 1 << 24, "KV-cache memory per model, MiB"},
    {"memory-budget-mb", LLMOPS_CONFIG_INT, "0", 0, 1 << 30,
     "memory all loaded models may hold (weights + KV budget), MiB; past it idle models unload (0: 80% of RAM)"},
    {"idle-unload-s", LLMOPS_CONFIG_INT, "300", 0, 1 << 30, "seconds an imported model stays loaded with no requests (0: until unloaded)"},
    {"context", LLMOPS_CONFIG_INT, "0", 0, 1 << 24, "positions per sequence at most (0: the model's context)"},
    {"pack-weights", LLMOPS_CONFIG_BOOL, "true", 0, -1,
     "repack quantised weights once for batched decode (several sequences per step run several times faster; costs their size again in memory)"},
    {"prefix-cache", LLMOPS_CONFIG_BOOL, "true", 0, -1,
     "keep finished sequences' KV cache (within kv-budget-mb) so prompts sharing a prefix skip computing it"},
    {"prefill-chunk", LLMOPS_CONFIG_INT, "128", 1, 65536, "prompt tokens per scheduler step"},
    {"request-timeout", LLMOPS_CONFIG_INT, "600", 1, 86400, "seconds a generation may run"},
    {"request-log-size", LLMOPS_CONFIG_INT, "10000", 0, 10000000, "requests kept in the request log (LMDB), newest; 0: none"},
    {"chat-template", LLMOPS_CONFIG_STRING, "", 0, -1,
     "chat template of serving.model: a built-in (chatml, llama2, llama3, zephyr) or a Jinja file; default: the model's own, else a built-in by vocabulary"},
};

const llmops_module_api kApi = {
    sizeof(llmops_module_api), LLMOPS_ABI_MAJOR, LLMOPS_ABI_MINOR, "serving", LLMOPS_VERSION, "serving",
    "OpenAI-compatible inference over HTTP", 1, kSchema, sizeof kSchema / sizeof kSchema[0], init, start, nullptr, stop, fini, health};

}  // namespace

extern "C" LLMOPS_EXPORT const llmops_module_api* llmops_module_get_api(void) { return &kApi; }
