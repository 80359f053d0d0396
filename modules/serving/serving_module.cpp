// Stage module 'serving': OpenAI-compatible inference over HTTP. Loads the configured model,
// runs one continuous-batching scheduler per model, and answers /v1/completions,
// /v1/chat/completions, /v1/models and vLLM's /tokenize and /detokenize, streaming over SSE.
#include <algorithm>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "chat/chat_template.h"
#include "fs.h"
#include "json.h"
#include "llmops/module.hpp"
#include "serving/openai.h"
#include "serving/scheduler.h"

namespace {

using llmops::Json;
using namespace llmops::serving;
namespace engine = llmops::engine;

struct Served {
  std::string name;
  std::string path;
  int64_t created = 0;
  std::shared_ptr<const engine::Model> model;
  std::shared_ptr<const engine::Tokenizer> tok;
  std::shared_ptr<const engine::ChatTemplate> chat;
  std::string chat_source;  // where the template came from: "model", "config", "builtin:<name>"
  std::unique_ptr<Scheduler> scheduler;
};

struct State {
  const llmops_host_api* host = nullptr;
  llmops_module_ctx* ctx = nullptr;
  std::mutex mu;
  std::map<std::string, std::shared_ptr<Served>> models;
  std::string default_model;
  int request_timeout_s = 600;
  uint32_t m_requests = 0, m_rejected = 0, m_prompt_tokens = 0, m_completion_tokens = 0, m_running = 0, m_waiting = 0;

  llmops::sdk::Host sdk() const { return {ctx, host}; }
  std::shared_ptr<Served> find(const std::string& name) {
    std::lock_guard lock(mu);
    auto it = models.find(name.empty() ? default_model : name);
    return it == models.end() ? nullptr : it->second;
  }
};

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

// The model called name ("" for the default); on failure the 404 is written and null returned.
std::shared_ptr<Served> resolve_model(State* s, const std::string& name, llmops_response* resp) {
  auto served = s->find(name);
  if (served != nullptr) return served;
  if (name.empty()) {
    respond_error(s, resp, 404, "no model is loaded: set serving.model in llmopsd.conf", "model", "model_not_found");
  } else {
    respond_error(s, resp, 404, "the model '" + name + "' does not exist; GET /v1/models lists the loaded ones", "model", "model_not_found");
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

struct Job {
  State* s;
  std::shared_ptr<Served> model;
  ParsedRequest p;
  std::string id;
  int64_t created;
  std::vector<std::shared_ptr<Request>> choices;
};

// Submits one request per choice; on failure writes the error and returns false.
bool submit_all(Job& job, const std::vector<int32_t>& prompt, llmops_response* resp) {
  State* s = job.s;
  const int ctx = job.model->scheduler->context();
  GenerationParams g = job.p.params;
  if (!job.p.max_tokens_given && job.p.chat) g.max_tokens = std::max(1, ctx - static_cast<int>(prompt.size()));
  if (static_cast<int>(prompt.size()) >= ctx) {
    respond_error(s, resp, 400,
                  "the prompt has " + std::to_string(prompt.size()) + " tokens; this model's context holds " + std::to_string(ctx) +
                      " with room for at least one generated token: shorten the prompt",
                  job.p.chat ? "messages" : "prompt", "context_length_exceeded");
    return false;
  }
  if (job.p.max_tokens_given && static_cast<int>(prompt.size()) + g.max_tokens > ctx) {
    respond_error(s, resp, 400,
                  "this model's context holds " + std::to_string(ctx) + " tokens; the prompt has " + std::to_string(prompt.size()) +
                      " and max_tokens asks for " + std::to_string(g.max_tokens) + ": lower max_tokens or shorten the prompt",
                  "max_tokens", "context_length_exceeded");
    return false;
  }
  g.deadline = Clock::now() + std::chrono::seconds(s->request_timeout_s);
  for (int i = 0; i < job.p.n; ++i) {
    GenerationParams gi = g;
    gi.sampling.seed += static_cast<uint64_t>(i);
    auto r = std::make_shared<Request>(prompt, gi);
    llmops::Status st = job.model->scheduler->submit(r);
    if (!st.ok()) {
      for (auto& c : job.choices) c->cancel();
      if (st.code() == llmops::Code::kResourceExhausted) s->host->metric_add(s->ctx, s->m_rejected, 1);
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
    std::vector<Piece> all, batch;
    for (bool more = true; more;) {
      more = r.next(&batch, std::chrono::milliseconds(100));
      all.insert(all.end(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
    }
    if (r.finish_reason() == "error") {
      for (auto& c : job.choices) c->cancel();
      respond_error(job.s, resp, http_status(r.error()), r.error().message());
      return;
    }
    std::string text;
    for (const Piece& p : all) text += p.text;
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
  while (ok && remaining > 0) {
    for (size_t i = 0; i < job->choices.size() && ok; ++i) {
      if (!open[i]) continue;
      Request& r = *job->choices[i];
      const bool more = r.next(&batch, std::chrono::milliseconds(job->choices.size() > 1 ? 5 : 200));
      if (!batch.empty()) {
        std::string text;
        for (const Piece& p : batch) text += p.text;
        if (!text.empty() || job->p.logprobs) ok = chunk(i, text, &batch, nullptr, false);
      }
      if (!more && ok) {
        open[i] = false;
        --remaining;
        if (r.finish_reason() == "error") {
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
    return;
  }
  if (job->p.include_usage) {
    Json c = {{"id", job->id}, {"object", job->p.chat ? "chat.completion.chunk" : "text_completion"}, {"created", job->created},
              {"model", job->model->name}, {"choices", Json::array()}, {"usage", final_usage(*job)}};
    if (!send(c)) return;
  }
  s->host->metric_add(s->ctx, s->m_completion_tokens, final_usage(*job)["completion_tokens"].get<double>());
  static const char kDone[] = "data: [DONE]\n\n";
  s->host->stream_write(stream, kDone, sizeof kDone - 1);
}

llmops_code generate_route(State* s, const llmops_request* req, llmops_response* resp, bool chat) {
  auto job = std::make_unique<Job>();
  job->s = s;
  job->model = prepare(s, req, resp, chat, &job->p);
  if (job->model == nullptr) return LLMOPS_OK;
  std::vector<int32_t> prompt;
  if (auto e = tokenize_prompt(*job->model, job->p, &prompt)) return respond_error(s, resp, 400, *e, chat ? "messages" : "prompt");
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

Json model_json(const Served& m) {
  return {{"id", m.name}, {"object", "model"}, {"created", m.created}, {"owned_by", "llmops"},
          {"max_model_len", m.scheduler->context()}};
}

llmops_code models_route(void* user, const llmops_request* req, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  std::string path = req->path;
  const std::string prefix = "/v1/models/";
  std::lock_guard lock(s->mu);
  if (path.rfind(prefix, 0) == 0) {
    auto it = s->models.find(path.substr(prefix.size()));
    if (it == s->models.end()) {
      return respond_error(s, resp, 404, "the model '" + path.substr(prefix.size()) + "' does not exist", "model", "model_not_found");
    }
    respond_json(s, resp, 200, model_json(*it->second));
    return LLMOPS_OK;
  }
  Json data = Json::array();
  for (const auto& [name, m] : s->models) data.push_back(model_json(*m));
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

// Admin: the loaded models with their schedulers' state.
llmops_code admin_models_route(void* user, const llmops_request*, llmops_response* resp) {
  auto* s = static_cast<State*>(user);
  Json list = Json::array();
  std::lock_guard lock(s->mu);
  for (const auto& [name, m] : s->models) {
    SchedulerStats st = m->scheduler->stats();
    list.push_back({{"name", name}, {"path", m->path}, {"default", name == s->default_model}, {"context", m->scheduler->context()},
                    {"running", st.running}, {"waiting", st.waiting}, {"kv_bytes_in_use", st.kv_bytes_in_use},
                    {"steps", st.steps}, {"tokens_generated", st.tokens_generated},
                    {"weight_bytes", m->model->weight_bytes()}, {"arch", m->model->config().arch_name},
                    {"chat_template", m->chat_source}});
  }
  respond_json(s, resp, 200, {{"models", list}});
  return LLMOPS_OK;
}

// ---- lifecycle ------------------------------------------------------------------------------

// The chat template: serving.chat-template (a built-in name or a file), else the model's own
// (GGUF metadata or tokenizer_config.json), else the built-in its vocabulary suggests.
llmops::Result<std::pair<engine::ChatTemplate, std::string>> load_chat_template(State* s, const engine::Model& m, const engine::Tokenizer& tok) {
  auto sdk = s->sdk();
  const std::string configured = sdk.config("chat-template");
  if (!configured.empty()) {
    auto names = engine::ChatTemplate::builtin_names();
    if (std::find(names.begin(), names.end(), configured) != names.end()) {
      LLMOPS_ASSIGN_OR_RETURN(auto t, engine::ChatTemplate::builtin(configured));
      return std::make_pair(std::move(t), "builtin:" + configured);
    }
    auto text = llmops::read_file(configured, 1u << 20);
    if (!text.ok()) return text.status().with_context("serving.chat-template (a built-in name or a template file)");
    auto t = engine::ChatTemplate::parse(std::move(text).value());
    if (!t.ok()) return t.status().with_context("serving.chat-template " + configured);
    return std::make_pair(std::move(t).value(), "config:" + configured);
  }
  llmops::Result<engine::ChatTemplate> own = llmops::not_found("no template");
  if (m.gguf() != nullptr) {
    own = engine::chat_template_from_gguf(*m.gguf());
  } else if (!m.hf_dir().empty()) {
    auto text = llmops::read_file(m.hf_dir() + "/tokenizer_config.json", 16u << 20);
    if (text.ok()) {
      auto j = llmops::parse_json_bounded(*text, 64);
      if (j.ok()) own = engine::chat_template_from_tokenizer_config(*j);
    }
  }
  if (own.ok()) return std::make_pair(std::move(own).value(), std::string("model"));
  if (own.status().code() != llmops::Code::kNotFound) {
    sdk.warn("the model's chat template is unusable (" + own.status().message() + "); using a built-in one");
  }
  auto has_token = [&](std::string_view text) {
    for (int32_t id = 0; id < tok.size(); ++id) {
      if (tok.token_text(id) == text) return true;
    }
    return false;
  };
  std::string name = engine::detect_builtin_template(has_token, !tok.is_byte_level());
  if (name.empty()) name = "chatml";
  LLMOPS_ASSIGN_OR_RETURN(auto t, engine::ChatTemplate::builtin(name));
  return std::make_pair(std::move(t), "builtin:" + name);
}

llmops::Status load_model(State* s, const std::string& path, std::string name, const std::string& tokenizer_path) {
  auto sdk = s->sdk();
  auto model = engine::Model::load(path);
  if (!model.ok()) return model.status().with_context("serving.model " + path);
  std::shared_ptr<const engine::Model> m(std::move(model).value());
  llmops::Result<engine::Tokenizer> tok = llmops::invalid_argument("a llama2.c model needs serving.tokenizer (its tokenizer.bin)");
  if (!tokenizer_path.empty()) {
    tok = std::filesystem::is_directory(tokenizer_path) ? engine::Tokenizer::from_hf_dir(tokenizer_path)
                                                         : engine::Tokenizer::from_llama2c(tokenizer_path, m->config().vocab_size);
  } else if (m->gguf() != nullptr) {
    tok = engine::Tokenizer::from_gguf(*m->gguf());
  } else if (!m->hf_dir().empty()) {
    tok = engine::Tokenizer::from_hf_dir(m->hf_dir());
  }
  if (!tok.ok()) return tok.status().with_context("serving.tokenizer");
  if (tok->size() > m->config().vocab_size) {
    return llmops::invalid_argument("the tokenizer has more tokens (" + std::to_string(tok->size()) + ") than the model (" +
                                    std::to_string(m->config().vocab_size) + "); set serving.tokenizer to the model's own");
  }
  if (name.empty()) name = std::filesystem::path(path).stem().string();
  auto tokenizer = std::make_shared<engine::Tokenizer>(std::move(tok).value());
  LLMOPS_ASSIGN_OR_RETURN(auto chat, load_chat_template(s, *m, *tokenizer));
  SchedulerOptions opt;
  opt.max_sequences = std::stoi(sdk.config("max-sequences", "16"));
  opt.max_queue = std::stoi(sdk.config("max-queue", "64"));
  opt.kv_budget_bytes = static_cast<uint64_t>(std::stoll(sdk.config("kv-budget-mb", "1024"))) << 20;
  opt.context = std::stoi(sdk.config("context", "0"));
  opt.prefill_chunk = std::stoi(sdk.config("prefill-chunk", "128"));
  opt.threads = std::stoi(sdk.config("threads", "0"));
  const int pinned = s->host->placement_threads(s->ctx, "inference");
  if (opt.threads == 0) opt.threads = pinned > 0 ? pinned : 1;
  if (pinned > 0) {
    // Engine threads run on the placement's inference CPUs.
    opt.on_thread_start = [s](int) {
      llmops_error err{};
      if (s->host->placement_bind(s->ctx, "inference", &err) != LLMOPS_OK) {
        s->host->log(s->ctx, LLMOPS_LOG_WARNING, (std::string("could not pin an inference thread: ") + err.message).c_str());
      }
    };
  }
  auto served = std::make_shared<Served>();
  served->name = name;
  served->path = path;
  served->created = static_cast<int64_t>(std::time(nullptr));
  served->model = m;
  served->tok = tokenizer;
  served->chat = std::make_shared<const engine::ChatTemplate>(std::move(chat.first));
  served->chat_source = chat.second;
  served->scheduler = std::make_unique<Scheduler>(m, served->tok, opt);
  sdk.info("serving '" + name + "' from " + path + " (" + m->config().arch_name + ", " + std::to_string(m->weight_bytes() >> 20) +
           " MiB of weights, context " + std::to_string(served->scheduler->context()) + ", " + std::to_string(opt.threads) +
           " threads, chat template " + served->chat_source + ")");
  std::lock_guard lock(s->mu);
  s->models[name] = served;
  if (s->default_model.empty()) s->default_model = name;
  return llmops::ok_status();
}

llmops_code init(llmops_module_ctx* ctx, const llmops_host_api* host, llmops_error* err) {
  auto* s = new State();
  s->host = host;
  s->ctx = ctx;
  host->set_state(ctx, s);
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
  route(LLMOPS_PLANE_ADMIN, "GET", "/models", admin_models_route);
  // llmopsctl generate / chat: the same generation on the admin socket (audited, no API key).
  route(LLMOPS_PLANE_ADMIN, "POST", "/completions", completions_route);
  route(LLMOPS_PLANE_ADMIN, "POST", "/chat/completions", chat_route);
  return c;
}

llmops_code start(llmops_module_ctx* ctx, void* state, llmops_error* err) {
  auto* s = static_cast<State*>(state);
  llmops::sdk::Host sdk(ctx, s->host);
  s->request_timeout_s = std::stoi(sdk.config("request-timeout", "600"));
  const std::string path = sdk.config("model");
  if (path.empty()) {
    sdk.info("no model to serve: set serving.model in llmopsd.conf to a GGUF file, a Hugging Face directory or a llama2.c checkpoint");
    return LLMOPS_OK;
  }
  llmops::Status st = load_model(s, path, sdk.config("model-name"), sdk.config("tokenizer"));
  if (!st.ok()) return llmops::sdk::fail(err, static_cast<llmops_code>(st.code()), st.message());
  return LLMOPS_OK;
}

void stop(llmops_module_ctx*, void* state) {
  // Unloading the schedulers ends every sequence; streams see their requests finish.
  auto* s = static_cast<State*>(state);
  std::map<std::string, std::shared_ptr<Served>> models;
  {
    std::lock_guard lock(s->mu);
    models.swap(s->models);
  }
  models.clear();
}

llmops_code health(llmops_module_ctx*, void* state, llmops_health* out) {
  auto* s = static_cast<State*>(state);
  std::lock_guard lock(s->mu);
  if (s->models.empty()) {
    // Not a fault: a daemon may run without serving (training box, data preparation).
    llmops::sdk::set_health(out, LLMOPS_HEALTH_OK, "no model loaded (serving.model is empty)");
  } else {
    std::string names;
    for (const auto& [name, m] : s->models) names += (names.empty() ? "" : ", ") + name;
    llmops::sdk::set_health(out, LLMOPS_HEALTH_OK, "serving " + names);
  }
  return LLMOPS_OK;
}

void fini(llmops_module_ctx*, void* state) { delete static_cast<State*>(state); }

const llmops_config_item kSchema[] = {
    {"model", LLMOPS_CONFIG_STRING, "", 0, -1, "model to serve: a GGUF file, a Hugging Face directory or a llama2.c checkpoint"},
    {"model-name", LLMOPS_CONFIG_STRING, "", 0, -1, "the name clients use (default: the file name without extension)"},
    {"tokenizer", LLMOPS_CONFIG_STRING, "", 0, -1, "llama2.c tokenizer.bin or a Hugging Face tokenizer directory, when the model carries none"},
    {"threads", LLMOPS_CONFIG_INT, "0", 0, 1024, "engine threads (0: the placement's inference pool size)"},
    {"max-sequences", LLMOPS_CONFIG_INT, "16", 1, 1024, "sequences decoded together per model"},
    {"max-queue", LLMOPS_CONFIG_INT, "64", 0, 100000, "requests waiting per model before 429"},
    {"kv-budget-mb", LLMOPS_CONFIG_INT, "1024", 1, 1 << 24, "KV-cache memory per model, MiB"},
    {"context", LLMOPS_CONFIG_INT, "0", 0, 1 << 24, "positions per sequence at most (0: the model's context)"},
    {"prefill-chunk", LLMOPS_CONFIG_INT, "128", 1, 65536, "prompt tokens per scheduler step"},
    {"request-timeout", LLMOPS_CONFIG_INT, "600", 1, 86400, "seconds a generation may run"},
    {"chat-template", LLMOPS_CONFIG_STRING, "", 0, -1,
     "chat template: a built-in (chatml, llama2, llama3, zephyr) or a Jinja file; default: the model's own, else a built-in by vocabulary"},
};

const llmops_module_api kApi = {
    sizeof(llmops_module_api), LLMOPS_ABI_MAJOR, LLMOPS_ABI_MINOR, "serving", LLMOPS_VERSION, "serving",
    "OpenAI-compatible inference over HTTP", 1, kSchema, sizeof kSchema / sizeof kSchema[0], init, start, nullptr, stop, fini, health};

}  // namespace

extern "C" LLMOPS_EXPORT const llmops_module_api* llmops_module_get_api(void) { return &kApi; }
