// Chat templates: any bytes as a template give a parse error or a template that renders a fixed
// conversation (with and without tools) to a prompt or a typed error — never a crash, a hang or
// unbounded memory. Smaller limits than the defaults keep each input fast.
#include <cstdint>
#include <string>

#include "chat/chat_template.h"
#include "chat/jinja.h"

using namespace llmops;
using namespace llmops::engine;

namespace {

const Json& conversation() {
  static const Json messages = Json::parse(R"([
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello! \u00e9\u2615"},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": [1, 2.5, null, true]}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "{\"r\": 1}"},
    {"role": "user", "content": [{"type": "text", "text": "  again  "}]}
  ])");
  return messages;
}

std::tm fixed_now() {
  std::tm t{};
  t.tm_year = 124;
  t.tm_mon = 6;
  t.tm_mday = 26;
  t.tm_wday = 5;
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string source(reinterpret_cast<const char*>(data), size);
  jinja::Limits limits;
  limits.max_steps = 50'000;
  limits.max_output_bytes = 64 << 10;
  auto parsed = jinja::Template::parse(source, limits);
  if (!parsed.ok()) return 0;
  ChatContext ctx;
  ctx.bos_token = "<s>";
  ctx.eos_token = "</s>";
  ctx.now = fixed_now;
  const Json vars = {{"messages", conversation()}, {"bos_token", "<s>"}, {"eos_token", "</s>"},
                     {"add_generation_prompt", true}, {"tools", nullptr}};
  jinja::RenderOptions options;
  options.now = fixed_now;
  (void)parsed->render(vars, options);
  Json with_tools = vars;
  with_tools["tools"] = Json::parse(R"([{"type": "function", "function": {"name": "f", "parameters": {}}}])");
  (void)parsed->render(with_tools, options);
  // The same text through ChatTemplate (default limits, message normalization) when it is small.
  if (size < 4096) {
    if (auto t = ChatTemplate::parse(source); t.ok()) (void)t->render(conversation(), ctx);
  }
  return 0;
}
