// Chat templates: how a model wants a conversation laid out as one prompt. A model brings its
// own (GGUF tokenizer.chat_template, or tokenizer_config.json "chat_template"), written in
// Jinja2; it is rendered here the way Hugging Face's apply_chat_template renders it, in the
// sandbox of jinja.h. A model without one falls back to a built-in template by name.
//
// Messages are OpenAI's: {"role", "content", optional "name", "tool_calls", "tool_call_id"}.
// Content may be a string, null, or a list of parts; a list of {"type": "text", "text": ...}
// parts is joined with "\n" into one string (templates expect strings); any other part type is
// kInvalidArgument. A tool call's "function.arguments" given as a JSON string (OpenAI's wire
// form) is parsed into an object, which is what templates that print it with tojson expect.
//
// Json objects keep their keys sorted, so a template printing tools or arguments with tojson
// lists keys alphabetically, where transformers keeps the order the client sent.
//
// The rendered prompt usually starts with the BOS token's text when the template writes
// {{ bos_token }}: the caller tokenizes it with special tokens parsed and adds no second BOS.
//
// Threads: a ChatTemplate is immutable; any number of threads may render it at once.
#pragma once

#include <ctime>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/jinja.h"
#include "formats/gguf.h"
#include "json.h"
#include "status.h"

namespace llmops::engine {

struct ChatContext {
  std::string bos_token;  // the vocabulary's BOS and EOS text ("<s>", "<|begin_of_text|>", ...)
  std::string eos_token;
  bool add_generation_prompt = true;  // end with the header of the assistant's turn
  Json tools;  // null: no tools (templates see none); else OpenAI's list of tool definitions
  // A JSON object of more template variables (date_string, enable_thinking, ...), or null.
  // They can't replace messages, tools, bos_token, eos_token or add_generation_prompt.
  Json extra_vars;
  // The local time strftime_now() sees; empty: the system clock.
  std::function<std::tm()> now;
};

class ChatTemplate {
 public:
  // A Jinja2 template's text; syntax errors are kInvalidArgument naming the line. The limits
  // bound every render (jinja.h; the defaults allow a 1 MiB prompt).
  static Result<ChatTemplate> parse(std::string source, const jinja::Limits& limits = {});
  // One of builtin_names(); another name is kNotFound.
  static Result<ChatTemplate> builtin(std::string_view name);
  static std::vector<std::string> builtin_names();  // chatml, llama2, llama3, zephyr

  // messages: a JSON array of OpenAI messages. Errors: kInvalidArgument for malformed messages,
  // template errors ("template line N: ...") and the template's own raise_exception() (whose
  // message comes back as the template wrote it); kResourceExhausted past the sandbox's limits.
  Result<std::string> render(const Json& messages, const ChatContext& ctx) const;

  const std::string& source() const { return source_; }

 private:
  std::string source_;
  jinja::Template template_;
};

// GGUF metadata tokenizer.chat_template; kNotFound when the file has none.
Result<ChatTemplate> chat_template_from_gguf(const GgufFile& gguf);
// tokenizer_config.json's "chat_template": a string, or a list of {"name", "template"} from
// which `name` is taken ("default" unless the caller wants e.g. "tool_use"). kNotFound when
// absent (or the name isn't in the list).
Result<ChatTemplate> chat_template_from_tokenizer_config(const Json& config, std::string_view name = "default");

// The built-in template whose special tokens a vocabulary has, for a model that brings no
// template: "llama3" (<|start_header_id|>), "chatml" (<|im_start|>), "zephyr" (<|user|> and
// <|assistant|>), "llama2" ([INST]-style SentencePiece Llama vocabularies); "" when unsure.
// has_token answers whether the vocabulary has a token with that exact text.
std::string detect_builtin_template(const std::function<bool(std::string_view)>& has_token, bool sentencepiece);

}  // namespace llmops::engine
