#include "chat/chat_template.h"

#include <utility>

namespace llmops::engine {
namespace {

// Our own templates for the published prompt formats, used when a model brings none. A message
// whose content isn't a string (an assistant turn that only calls tools) renders as empty text.
struct Builtin {
  const char* name;
  const char* source;
};

constexpr Builtin kBuiltins[] = {
    // ChatML (OpenAI; Qwen, SmolLM, Hermes...): <|im_start|>role\ncontent<|im_end|>\n
    {"chatml", R"({%- for message in messages %}
{{- '<|im_start|>' + message.role + '\n' + (message.content if message.content is string else '') + '<|im_end|>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|im_start|>assistant\n' }}
{%- endif %})"},
    // Llama 2 chat (Meta): <s>[INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] answer </s>
    {"llama2", R"({%- if messages and messages[0].role == 'system' %}
{%- set system = messages[0].content %}
{%- set turns = messages[1:] %}
{%- else %}
{%- set system = none %}
{%- set turns = messages %}
{%- endif %}
{%- for message in turns %}
{%- set text = message.content if message.content is string else '' %}
{%- if message.role == 'user' %}
{%- if loop.first and system is string %}
{%- set text = '<<SYS>>\n' + system + '\n<</SYS>>\n\n' + text %}
{%- endif %}
{{- bos_token + '[INST] ' + text | trim + ' [/INST]' }}
{%- elif message.role == 'assistant' %}
{{- ' ' + text | trim + ' ' + eos_token }}
{%- endif %}
{%- endfor %})"},
    // Llama 3 (Meta): <|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
    {"llama3", R"({{- bos_token }}
{%- for message in messages %}
{{- '<|start_header_id|>' + message.role + '<|end_header_id|>\n\n' + (message.content if message.content is string else '') | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %})"},
    // Zephyr (Hugging Face H4; TinyLlama chat): <|role|>\ncontent</s>\n
    {"zephyr", R"({%- for message in messages %}
{{- '<|' + message.role + '|>\n' + (message.content if message.content is string else '') + eos_token + '\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|assistant|>\n' }}
{%- endif %})"},
};

// Nested JSON in tool-call arguments deeper than this is left as the string it came as.
constexpr size_t kMaxArgumentsDepth = 64;

Result<Json> flatten_content(const Json& content, size_t index) {
  if (!content.is_array()) return content;
  std::string text;
  bool first = true;
  for (const auto& part : content) {
    const auto type = part.is_object() ? part.find("type") : part.end();
    if (!part.is_object() || type == part.end() || !type->is_string()) {
      return invalid_argument("message " + std::to_string(index) + ": a content part must be an object with a type");
    }
    if (*type != "text") {
      return invalid_argument("message " + std::to_string(index) + ": content parts of type '" +
                              type->get<std::string>() + "' are not supported (text only)");
    }
    const auto part_text = part.find("text");
    if (part_text == part.end() || !part_text->is_string()) {
      return invalid_argument("message " + std::to_string(index) + ": a text part needs a string 'text'");
    }
    if (!first) text += '\n';
    first = false;
    text += part_text->get<std::string>();
  }
  return Json(std::move(text));
}

Result<Json> normalize_messages(const Json& messages) {
  if (!messages.is_array()) return invalid_argument("messages must be a JSON array");
  Json out = Json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const Json& m = messages[i];
    if (!m.is_object()) return invalid_argument("message " + std::to_string(i) + " must be an object");
    const auto role = m.find("role");
    if (role == m.end() || !role->is_string()) {
      return invalid_argument("message " + std::to_string(i) + " needs a string 'role'");
    }
    Json copy = m;
    if (auto content = copy.find("content"); content != copy.end()) {
      LLMOPS_ASSIGN_OR_RETURN(*content, flatten_content(*content, i));
    }
    if (auto calls = copy.find("tool_calls"); calls != copy.end() && calls->is_array()) {
      for (auto& call : *calls) {
        if (!call.is_object()) continue;
        auto fn = call.find("function");
        if (fn == call.end() || !fn->is_object()) continue;
        auto args = fn->find("arguments");
        if (args == fn->end() || !args->is_string()) continue;
        auto parsed = parse_json_bounded(args->get<std::string>(), kMaxArgumentsDepth);
        if (parsed.ok() && parsed->is_object()) *args = std::move(parsed).value();
      }
    }
    out.push_back(std::move(copy));
  }
  return out;
}

}  // namespace

Result<ChatTemplate> ChatTemplate::parse(std::string source, const jinja::Limits& limits) {
  LLMOPS_ASSIGN_OR_RETURN(jinja::Template t, jinja::Template::parse(source, limits));
  ChatTemplate out;
  out.source_ = std::move(source);
  out.template_ = std::move(t);
  return out;
}

Result<ChatTemplate> ChatTemplate::builtin(std::string_view name) {
  for (const auto& b : kBuiltins) {
    if (name == b.name) return parse(b.source);
  }
  return not_found("no built-in chat template named '" + std::string(name) + "'");
}

std::vector<std::string> ChatTemplate::builtin_names() {
  std::vector<std::string> names;
  for (const auto& b : kBuiltins) names.emplace_back(b.name);
  return names;
}

Result<std::string> ChatTemplate::render(const Json& messages, const ChatContext& ctx) const {
  LLMOPS_ASSIGN_OR_RETURN(Json normalized, normalize_messages(messages));
  Json vars = Json::object();
  if (ctx.extra_vars.is_object()) {
    vars = ctx.extra_vars;
  } else if (!ctx.extra_vars.is_null()) {
    return invalid_argument("extra template variables must be a JSON object");
  }
  // As transformers passes them: tools and documents are none when not given.
  if (!vars.contains("documents")) vars["documents"] = nullptr;
  vars["messages"] = std::move(normalized);
  vars["tools"] = ctx.tools;
  vars["bos_token"] = ctx.bos_token;
  vars["eos_token"] = ctx.eos_token;
  vars["add_generation_prompt"] = ctx.add_generation_prompt;
  jinja::RenderOptions options;
  options.now = ctx.now;
  return template_.render(vars, options);
}

Result<ChatTemplate> chat_template_from_gguf(const GgufFile& gguf) {
  auto source = gguf.get_string("tokenizer.chat_template");
  if (!source.ok()) {
    if (source.status().code() == Code::kNotFound) return not_found("the GGUF file has no tokenizer.chat_template");
    return source.status();
  }
  auto t = ChatTemplate::parse(std::move(source).value());
  if (!t.ok()) return t.status().with_context("tokenizer.chat_template");
  return t;
}

Result<ChatTemplate> chat_template_from_tokenizer_config(const Json& config, std::string_view name) {
  const auto field = config.is_object() ? config.find("chat_template") : config.end();
  if (!config.is_object() || field == config.end() || field->is_null()) {
    return not_found("tokenizer_config.json has no chat_template");
  }
  if (field->is_string()) return ChatTemplate::parse(field->get<std::string>());
  if (!field->is_array()) return invalid_argument("chat_template must be a string or a list of named templates");
  for (const auto& entry : *field) {
    if (!entry.is_object()) return invalid_argument("chat_template list entries must be objects");
    const auto entry_name = entry.find("name");
    const auto text = entry.find("template");
    if (entry_name == entry.end() || !entry_name->is_string() || text == entry.end() || !text->is_string()) {
      return invalid_argument("chat_template list entries need a string name and template");
    }
    if (*entry_name == name) return ChatTemplate::parse(text->get<std::string>());
  }
  return not_found("tokenizer_config.json has no chat template named '" + std::string(name) + "'");
}

std::string detect_builtin_template(const std::function<bool(std::string_view)>& has_token, bool sentencepiece) {
  if (has_token("<|start_header_id|>") && has_token("<|eot_id|>")) return "llama3";
  if (has_token("<|im_start|>") && has_token("<|im_end|>")) return "chatml";
  // Phi-3 has <|user|> and <|assistant|> too, but ends turns with <|end|>, not EOS.
  if (has_token("<|user|>") && has_token("<|assistant|>") && !has_token("<|end|>")) return "zephyr";
  if (sentencepiece && has_token("[INST]")) return "llama2";
  if (sentencepiece && has_token("<s>") && has_token("</s>") && !has_token("<|end|>")) return "llama2";
  return "";
}

}  // namespace llmops::engine
