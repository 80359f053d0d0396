// Chat templates: the published templates of popular models render a fixed conversation to
// exactly what transformers' apply_chat_template produces (the templates, conversations and
// kWant* prompts are in chat_template_data.h; the vectors in TransformersVectors were produced
// by transformers itself), plus the built-in templates, the loaders, and message normalization.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "chat/chat_template.h"
#include "chat_template_data.h"
#include "engine_test_util.h"
#include "tokenizer/tokenizer.h"

namespace llmops::engine {
namespace {

using namespace test;  // chat_template_data.h

ChatContext context(std::string bos, std::string eos) {
  ChatContext ctx;
  ctx.bos_token = std::move(bos);
  ctx.eos_token = std::move(eos);
  ctx.now = fixed_now;
  return ctx;
}

Result<std::string> try_render(std::string_view source, std::string_view conversation, const ChatContext& ctx) {
  LLMOPS_ASSIGN_OR_RETURN(ChatTemplate t, ChatTemplate::parse(std::string(source)));
  return t.render(Json::parse(conversation), ctx);
}

std::string render(std::string_view source, std::string_view conversation, const ChatContext& ctx) {
  auto r = try_render(source, conversation, ctx);
  return r.ok() ? *r : "ERR " + r.status().to_string();
}

std::string llama32() {
  std::string t = kLlama31;
  const std::string from = "{%- if not date_string is defined %}\n    {%- set date_string = \"26 Jul 2024\" %}\n{%- endif %}";
  const size_t at = t.find(from);
  EXPECT_NE(at, std::string::npos);
  return t.replace(at, from.size(), kLlama32DateBlock);
}

TEST(ChatTemplateTest, PublishedTemplatesRenderAsTransformersDoes) {
  struct Case {
    const char* model;
    std::string source;
    const char* conversation;
    const char* bos;
    const char* eos;
    const char* want;
  };
  const Case cases[] = {
      {"Qwen2", kQwen2, kConversation, "", "<|im_end|>", kWantQwen2},
      {"Qwen2 without a system turn", kQwen2, kConversationNoSystem, "", "<|im_end|>", kWantQwen2NoSystem},
      {"Qwen2.5", kQwen25, kConversation, "", "<|im_end|>", kWantQwen25},
      {"Llama 2", kLlama2, kConversation, "<s>", "</s>", kWantLlama2},
      {"Llama 3", kLlama3, kConversation, "<|begin_of_text|>", "<|eot_id|>", kWantLlama3},
      {"Llama 3.1", kLlama31, kConversation, "<|begin_of_text|>", "<|eot_id|>", kWantLlama31},
      {"Llama 3.2", llama32(), kConversation, "<|begin_of_text|>", "<|eot_id|>", kWantLlama32},
      {"Mistral Instruct v0.1", kMistral, kConversationNoSystem, "<s>", "</s>", kWantMistral},
      {"Mixtral Instruct", kMixtral, kConversationNoSystem, "<s>", "</s>", kWantMixtral},
      {"Zephyr / TinyLlama", kZephyr, kConversation, "<s>", "</s>", kWantZephyr},
      {"Phi-3", kPhi3, kConversation, "<s>", "<|endoftext|>", kWantPhi3},
      {"SmolLM2", kSmolLM2, kConversation, "<|im_start|>", "<|im_end|>", kWantSmolLM2},
      {"Gemma", kGemma, kConversationNoSystem, "<bos>", "<eos>", kWantGemma},
      {"Gemma 3", kGemma3, kConversation, "<bos>", "<eos>", kWantGemma3},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(render(c.source, c.conversation, context(c.bos, c.eos)), c.want) << c.model;
  }
}

TEST(ChatTemplateTest, GenerationPromptOff) {
  ChatContext ctx = context("<s>", "<|endoftext|>");
  ctx.add_generation_prompt = false;
  EXPECT_EQ(render(kPhi3, kConversation, ctx), kWantPhi3NoPrompt);
}

TEST(ChatTemplateTest, ToolsAndToolCalls) {
  ChatContext qwen = context("", "<|im_end|>");
  qwen.tools = Json::parse(kTools);
  EXPECT_EQ(render(kQwen25, kToolConversation, qwen), kWantQwen25Tools);

  ChatContext llama = context("<|begin_of_text|>", "<|eot_id|>");
  llama.tools = Json::parse(kTools);
  EXPECT_EQ(render(kLlama31, kToolConversation, llama), kWantLlama31Tools);
  llama.extra_vars = {{"tools_in_user_message", false}};
  EXPECT_EQ(render(kLlama31, kToolConversation, llama), kWantLlama31ToolsInSystem);
}

TEST(ChatTemplateTest, ExtraVariablesReachTheTemplate) {
  ChatContext ctx = context("<|begin_of_text|>", "<|eot_id|>");
  ctx.extra_vars = {{"date_string", "01 Jan 2025"}, {"messages", "can't replace the conversation"}};
  const std::string out = render(llama32(), kConversation, ctx);
  EXPECT_NE(out.find("Today Date: 01 Jan 2025\n"), std::string::npos) << out;
  EXPECT_NE(out.find("Hello! Who are you?"), std::string::npos) << out;
  ctx.extra_vars = Json::array();
  EXPECT_EQ(try_render(kLlama3, kConversation, ctx).status().code(), Code::kInvalidArgument);
}

TEST(ChatTemplateTest, TemplatesRaiseTheirOwnErrors) {
  auto r = try_render(kMistral, kConversation, context("<s>", "</s>"));
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "Conversation roles must alternate user/assistant/user/assistant/...");
  r = try_render(kGemma, kConversation, context("<bos>", "<eos>"));
  EXPECT_EQ(r.status().message(), "System role not supported");
  r = try_render(kLlama2, R"([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])",
                 context("<s>", "</s>"));
  EXPECT_EQ(r.status().message(), "Conversation roles must alternate user/assistant/user/assistant/...");
  r = try_render(kLlama31, R"([{"role": "system", "content": "s"}])",
                 [] {
                   ChatContext ctx = context("<|begin_of_text|>", "<|eot_id|>");
                   ctx.tools = Json::parse(kTools);
                   return ctx;
                 }());
  EXPECT_EQ(r.status().message(), "Cannot put tools in the first user message when there's no first user message!");
}

// Vectors produced by transformers' apply_chat_template (as published with llama.cpp's and
// mistral.rs's template tests): system (when the template has one), then user "Hello",
// assistant "Hi there", user "Who are you", assistant "   I am an assistant   ", user
// "Another question".
TEST(ChatTemplateTest, TransformersVectors) {
  constexpr char kChatML[] =
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
      "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  Json with_system = Json::parse(R"([
    {"role": "system", "content": "You are a helpful assistant"},
    {"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there"},
    {"role": "user", "content": "Who are you"}, {"role": "assistant", "content": "   I am an assistant   "},
    {"role": "user", "content": "Another question"}])");
  Json without_system = with_system;
  without_system.erase(0);
  const auto run = [](std::string_view source, const Json& messages, const char* bos, const char* eos) {
    auto t = ChatTemplate::parse(std::string(source));
    EXPECT_TRUE(t.ok()) << t.status().to_string();
    auto r = t->render(messages, context(bos, eos));
    return r.ok() ? *r : r.status().to_string();
  };
  EXPECT_EQ(run(kChatML, with_system, "<s>", "</s>"),
            "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
            "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n"
            "<|im_start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother question<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(run(kMistral, without_system, "<s>", "</s>"),
            "<s>[INST] Hello [/INST]Hi there</s> [INST] Who are you [/INST]   I am an assistant   </s> "
            "[INST] Another question [/INST]");
  EXPECT_EQ(run(kMixtral, without_system, "<s>", "</s>"),
            "<s>[INST] Hello [/INST]Hi there</s>[INST] Who are you [/INST]   I am an assistant   </s>"
            "[INST] Another question [/INST]");
  EXPECT_EQ(run(kLlama2, with_system, "<s>", "</s>"),
            "<s>[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST] Hi there </s>"
            "<s>[INST] Who are you [/INST] I am an assistant </s><s>[INST] Another question [/INST]");
  EXPECT_EQ(run(kGemma, without_system, "<bos>", "<eos>"),
            "<bos><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\nHi there<end_of_turn>\n"
            "<start_of_turn>user\nWho are you<end_of_turn>\n<start_of_turn>model\nI am an assistant<end_of_turn>\n"
            "<start_of_turn>user\nAnother question<end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatTemplateTest, BuiltinsWriteThePublishedFormats) {
  EXPECT_EQ(ChatTemplate::builtin_names(), (std::vector<std::string>{"chatml", "llama2", "llama3", "zephyr"}));
  const auto run = [](const char* name, const char* conversation, const char* bos, const char* eos) {
    auto t = ChatTemplate::builtin(name);
    EXPECT_TRUE(t.ok()) << t.status().to_string();
    auto r = t->render(Json::parse(conversation), context(bos, eos));
    return r.ok() ? *r : r.status().to_string();
  };
  // The same prompts the models' own templates make.
  EXPECT_EQ(run("chatml", kConversation, "", "<|im_end|>"), kWantQwen2);
  EXPECT_EQ(run("llama2", kConversation, "<s>", "</s>"), kWantLlama2);
  EXPECT_EQ(run("llama3", kConversation, "<|begin_of_text|>", "<|eot_id|>"), kWantLlama3);
  EXPECT_EQ(run("zephyr", kConversation, "<s>", "</s>"), kWantZephyr);
  // An assistant turn that only calls tools has no content; the built-ins take it as "".
  EXPECT_EQ(run("chatml", R"([{"role": "assistant", "content": null}])", "", ""),
            "<|im_start|>assistant\n<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(ChatTemplate::builtin("alpaca").status().code(), Code::kNotFound);
}

TEST(ChatTemplateTest, ContentPartsAreJoined) {
  const char* parts = R"([{"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]}])";
  EXPECT_EQ(render(kQwen2, parts, context("", "")),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\none\ntwo<|im_end|>\n"
            "<|im_start|>assistant\n");
  auto r = try_render(kQwen2, R"([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])",
                      context("", ""));
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("image_url"), std::string::npos);
}

TEST(ChatTemplateTest, MalformedMessagesAreRefused) {
  for (const char* bad : {R"({"role": "user"})", R"([1])", R"([{"content": "no role"}])", R"([{"role": 5}])",
                          R"([{"role": "user", "content": [{"text": "no type"}]}])"}) {
    EXPECT_EQ(try_render(kQwen2, bad, context("", "")).status().code(), Code::kInvalidArgument) << bad;
  }
  auto r = try_render(kQwen2, R"([{"role": "user"}])", context("", ""));  // the template needs content
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("template line"), std::string::npos) << r.status().message();
}

TEST(ChatTemplateTest, ParseErrorsNameTheLine) {
  auto t = ChatTemplate::parse("{% for m in messages %}\n{{ m.content }\n{% endfor %}");
  EXPECT_EQ(t.status().code(), Code::kInvalidArgument);
  EXPECT_NE(t.status().message().find("template line 2"), std::string::npos) << t.status().message();
}

TEST(ChatTemplateTest, FromTokenizerConfig) {
  auto t = chat_template_from_tokenizer_config({{"chat_template", kMixtral}});
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->source(), kMixtral);
  const Json named = {{"chat_template",
                       {{{"name", "default"}, {"template", "default {{ bos_token }}"}},
                        {{"name", "tool_use"}, {"template", "tools {{ bos_token }}"}}}}};
  t = chat_template_from_tokenizer_config(named);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(*t->render(Json::array(), context("<s>", "")), "default <s>");
  t = chat_template_from_tokenizer_config(named, "tool_use");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(*t->render(Json::array(), context("<s>", "")), "tools <s>");
  EXPECT_EQ(chat_template_from_tokenizer_config(named, "rag").status().code(), Code::kNotFound);
  EXPECT_EQ(chat_template_from_tokenizer_config({{"bos_token", "<s>"}}).status().code(), Code::kNotFound);
  EXPECT_EQ(chat_template_from_tokenizer_config({{"chat_template", nullptr}}).status().code(), Code::kNotFound);
  EXPECT_EQ(chat_template_from_tokenizer_config({{"chat_template", 5}}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(chat_template_from_tokenizer_config({{"chat_template", "{% if %}"}}).status().code(),
            Code::kInvalidArgument);
}

const std::string kVectors = "tokenizer-vectors/llama.cpp/";

TEST(ChatTemplateTest, GgufVocabularies) {
  LLMOPS_REQUIRE_SHARED(kVectors + "ggml-vocab-phi-3.gguf");
  // Only the Phi-3 vocabulary carries a template (Phi-3's first one, which drops system turns).
  for (const char* file : {"ggml-vocab-gpt-2.gguf", "ggml-vocab-llama-bpe.gguf", "ggml-vocab-llama-spm.gguf"}) {
    auto g = GgufFile::open(test::shared_path(kVectors + file));
    ASSERT_TRUE(g.ok()) << g.status().to_string();
    EXPECT_EQ(chat_template_from_gguf(**g).status().code(), Code::kNotFound) << file;
  }
  auto g = GgufFile::open(test::shared_path(kVectors + "ggml-vocab-phi-3.gguf"));
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  auto t = chat_template_from_gguf(**g);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  auto out = t->render(Json::parse(kConversation), context("<s>", "<|endoftext|>"));
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(*out,
            "<s><|user|>\nHello! Who are you?<|end|>\n<|assistant|>\nI am an assistant. How can I help?<|end|>\n"
            "<|user|>\n  What is 2+2? Answer in caf\xC3\xA9 style \xE2\x98\x95.\n<|end|>\n<|assistant|>\n");
}

TEST(ChatTemplateTest, DetectsBuiltinsFromVocabularies) {
  LLMOPS_REQUIRE_SHARED(kVectors + "ggml-vocab-phi-3.gguf");
  const auto detect = [](const char* file) {
    auto g = GgufFile::open(test::shared_path(kVectors + file));
    EXPECT_TRUE(g.ok()) << g.status().to_string();
    auto tok = Tokenizer::from_gguf(**g);
    EXPECT_TRUE(tok.ok()) << tok.status().to_string();
    std::set<std::string, std::less<>> texts;
    for (int32_t id = 0; id < tok->size(); ++id) texts.insert(tok->token_text(id));
    return detect_builtin_template([&](std::string_view t) { return texts.count(t) > 0; }, !tok->is_byte_level());
  };
  EXPECT_EQ(detect("ggml-vocab-llama-bpe.gguf"), "llama3");
  EXPECT_EQ(detect("ggml-vocab-llama-spm.gguf"), "llama2");
  EXPECT_EQ(detect("ggml-vocab-phi-3.gguf"), "");
  EXPECT_EQ(detect("ggml-vocab-gpt-2.gguf"), "");
  EXPECT_EQ(detect_builtin_template([](std::string_view t) { return t == "<|im_start|>" || t == "<|im_end|>"; }, false),
            "chatml");
}

TEST(ChatTemplateTest, RendersFromManyThreadsAtOnce) {
  auto t = ChatTemplate::parse(kLlama31);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  const Json messages = Json::parse(kConversation);
  std::vector<std::string> outs(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < outs.size(); ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < 20; ++k) {
        auto r = t->render(messages, context("<|begin_of_text|>", "<|eot_id|>"));
        outs[i] = r.ok() ? *r : r.status().to_string();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& out : outs) EXPECT_EQ(out, kWantLlama31);
}

}  // namespace
}  // namespace llmops::engine
