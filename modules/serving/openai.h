// OpenAI's request and response shapes for completions and chat completions: parsing with
// every field checked (type, range, size) into what the scheduler runs, and the JSON of
// answers, stream chunks and errors. Pure functions; any thread.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "json.h"
#include "serving/scheduler.h"
#include "status.h"

namespace llmops::serving {

inline constexpr int kMaxTopLogprobs = 20;
inline constexpr int kMaxN = 8;
inline constexpr int kMaxStops = 4;

struct ParsedRequest {
  std::string model;           // "" when the client named none
  bool chat = false;
  std::string prompt_text;     // completions: the prompt as text (empty when given as ids)
  std::vector<int32_t> prompt_ids;  // completions: the prompt as token ids, when given so
  Json messages;               // chat: the messages array, validated
  GenerationParams params;
  bool max_tokens_given = false;
  int n = 1;
  bool stream = false;
  bool include_usage = false;
  bool logprobs = false;       // chat: logprobs: true; completions: logprobs: N given
  bool echo = false;
};

// Parses and validates a body. kInvalidArgument names the field and the accepted range; the
// message is the one the client sees (HTTP 400, type invalid_request_error, param = field).
struct FieldError {
  std::string param;
  std::string message;
};
std::optional<FieldError> parse_request(const Json& body, bool chat, ParsedRequest* out);

// A unique id with the given prefix ("cmpl-", "chatcmpl-").
std::string new_completion_id(const char* prefix);

// The logprobs object of one choice, OpenAI's completions or chat shape.
Json completion_logprobs(const std::vector<Piece>& pieces, const engine::Tokenizer& tok);
Json chat_logprobs(const std::vector<Piece>& pieces, const engine::Tokenizer& tok);

Json usage_json(int prompt_tokens, int completion_tokens);

}  // namespace llmops::serving
