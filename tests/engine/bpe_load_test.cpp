// The loaders behind Tokenizer: tokenizer.json (+ tokenizer_config.json) written here with a
// small vocabulary, GPT-2's encoder.json + vocab.bpe, and vocabulary-only GGUF files; what each
// accepts and the typed errors for what it refuses.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <functional>

#include "formats/gguf_writer.h"
#include "json.h"
#include "tokenizer/bpe_load.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"
#include "unit/test_util.h"

namespace llmops::engine {
namespace {

int32_t byte_id(char c) { return static_cast<unsigned char>(c); }

constexpr int32_t kTwelve = 256, kHi = 257, kSpaceHi = 258;               // merged tokens
constexpr int32_t kEndOfText = 259, kImStart = 260, kImEnd = 261, kThink = 262;  // added tokens
constexpr int32_t kThirtyFour = 263;

// Ids 0..255: the bytes; then "12", "hi", " hi" from three merges; then four added tokens; then
// "34" from a fourth merge.
Json small_tokenizer_json(BpePreTokenizer kind) {
  Json vocab = Json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level_encode(std::string(1, static_cast<char>(b)))] = b;
  vocab["12"] = kTwelve;
  vocab["hi"] = kHi;
  vocab[byte_level_encode(" hi")] = kSpaceHi;
  vocab["34"] = kThirtyFour;
  Json root;
  root["version"] = "1.0";
  root["added_tokens"] = Json::array({
      {{"id", kEndOfText}, {"content", "<|endoftext|>"}, {"special", true}},
      {{"id", kImStart}, {"content", "<|im_start|>"}, {"special", true}},
      {{"id", kImEnd}, {"content", "<|im_end|>"}, {"special", true}},
      {{"id", kThink}, {"content", "<think>"}, {"special", false}},
  });
  root["normalizer"] = {{"type", "NFC"}};
  const Json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", kind == BpePreTokenizer::kGpt2}};
  if (kind == BpePreTokenizer::kGpt2) {
    root["pre_tokenizer"] = byte_level;
  } else {
    const Json split = {{"type", "Split"}, {"pattern", {{"Regex", std::string(pre_tokenizer_regex(kind))}}},
                        {"behavior", "Isolated"}, {"invert", false}};
    root["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", Json::array({split, byte_level})}};
  }
  root["model"] = {{"type", "BPE"},
                   {"dropout", nullptr},
                   {"unk_token", nullptr},
                   {"byte_fallback", false},
                   {"vocab", vocab},
                   {"merges", Json::array({"1 2", Json::array({"h", "i"}), byte_level_encode(" ") + " hi", "3 4"})}};
  return root;
}

const std::string kQwenConfig =
    R"({"bos_token": null, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "add_bos_token": false})";

Tokenizer hf(const Json& root, const std::string& config = "") {
  auto tok = Tokenizer::from_hf_json(root.dump(), config);
  EXPECT_TRUE(tok.ok()) << tok.status().to_string();
  return std::move(tok).value();
}

TEST(BpeHfJson, Qwen2SplitsDigitsOneByOne) {
  const Tokenizer tok = hf(small_tokenizer_json(BpePreTokenizer::kQwen2), kQwenConfig);
  ASSERT_TRUE(tok.is_byte_level());
  EXPECT_EQ(tok.bpe()->vocab().pre_tokenizer, BpePreTokenizer::kQwen2);
  EXPECT_EQ(tok.size(), 264);
  // "12" is a token, but each digit is a word of its own, so it is never reached.
  EXPECT_EQ(tok.encode("<|im_start|>hi 123<|im_end|>"),
            (std::vector<int32_t>{kImStart, kHi, byte_id(' '), byte_id('1'), byte_id('2'), byte_id('3'), kImEnd}));
  EXPECT_EQ(tok.encode("x hi"), (std::vector<int32_t>{byte_id('x'), kSpaceHi}));
  EXPECT_EQ(tok.eos_id(), kImEnd);
  EXPECT_EQ(tok.bos_id(), -1);
  EXPECT_FALSE(tok.add_bos());
  EXPECT_TRUE(tok.is_eog(kImEnd));
  EXPECT_TRUE(tok.is_eog(kEndOfText));  // known end-of-turn text
  EXPECT_FALSE(tok.is_eog(kImStart));
  EXPECT_EQ(tok.bpe()->vocab().pad_id, kEndOfText);
  EXPECT_EQ(tok.token_type(kImStart), TokenType::kControl);
  EXPECT_EQ(tok.token_type(kThink), TokenType::kUserDefined);
  EXPECT_EQ(tok.token_text(kSpaceHi), "\xC4\xA0hi");  // as stored: "Ġhi"
  EXPECT_EQ(tok.decode_piece(kSpaceHi, false), " hi");
}

TEST(BpeHfJson, SameVocabularyUnderEachPreTokenizer) {
  // GPT-2: "1234" is one word; Llama 3: "123" and "4"; Qwen2: four words.
  EXPECT_EQ(hf(small_tokenizer_json(BpePreTokenizer::kGpt2)).encode("1234"), (std::vector<int32_t>{kTwelve, kThirtyFour}));
  EXPECT_EQ(hf(small_tokenizer_json(BpePreTokenizer::kLlama3)).encode("1234"),
            (std::vector<int32_t>{kTwelve, byte_id('3'), byte_id('4')}));
  EXPECT_EQ(hf(small_tokenizer_json(BpePreTokenizer::kQwen2)).encode("1234"),
            (std::vector<int32_t>{byte_id('1'), byte_id('2'), byte_id('3'), byte_id('4')}));
  // GPT-2's contractions are case-sensitive, Llama 3's are not.
  EXPECT_EQ(hf(small_tokenizer_json(BpePreTokenizer::kGpt2)).encode("'S").size(), 2u);
  EXPECT_EQ(hf(small_tokenizer_json(BpePreTokenizer::kLlama3)).bpe()->vocab().pre_tokenizer, BpePreTokenizer::kLlama3);
}

TEST(BpeHfJson, SpecialAndUserDefinedAddedTokens) {
  const Tokenizer tok = hf(small_tokenizer_json(BpePreTokenizer::kQwen2), kQwenConfig);
  EXPECT_EQ(tok.encode("a<think>b"), (std::vector<int32_t>{byte_id('a'), kThink, byte_id('b')}));
  EXPECT_EQ(tok.encode("a<think>b", false), (std::vector<int32_t>{byte_id('a'), kThink, byte_id('b')}));
  const auto literal = tok.encode("<|im_end|>", /*parse_special=*/false);
  EXPECT_EQ(literal.size(), 10u);  // "<|", "im", "_", "end", "|>" in bytes
  EXPECT_EQ(tok.decode(literal), "<|im_end|>");
  EXPECT_EQ(tok.decode({kImStart, kHi, kThink, kImEnd}), "hi<think>");
}

TEST(BpeHfJson, ConfigAndTemplateDecideBos) {
  Json root = small_tokenizer_json(BpePreTokenizer::kLlama3);
  root["post_processor"] = {{"type", "TemplateProcessing"},
                            {"single", Json::array({{{"SpecialToken", {{"id", "<|im_start|>"}, {"type_id", 0}}}},
                                                    {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})}};
  const Tokenizer templated = hf(root);
  EXPECT_TRUE(templated.add_bos());
  EXPECT_EQ(templated.bos_id(), kImStart);
  EXPECT_EQ(templated.eos_id(), kEndOfText);  // "<|endoftext|>" without a config
  const Tokenizer configured = hf(root, R"({"add_bos_token": false, "bos_token": {"content": "<|endoftext|>"}})");
  EXPECT_FALSE(configured.add_bos());
  EXPECT_EQ(configured.bos_id(), kEndOfText);
}

TEST(BpeHfJson, ReadsADirectory) {
  test::TempDir dir;
  std::ofstream(dir.file("tokenizer.json")) << small_tokenizer_json(BpePreTokenizer::kQwen2).dump();
  auto bare = Tokenizer::from_hf_dir(dir.path());
  ASSERT_TRUE(bare.ok()) << bare.status().to_string();
  EXPECT_EQ(bare->eos_id(), kEndOfText);
  std::ofstream(dir.file("tokenizer_config.json")) << kQwenConfig;
  auto configured = Tokenizer::from_hf_dir(dir.path());
  ASSERT_TRUE(configured.ok()) << configured.status().to_string();
  EXPECT_EQ(configured->eos_id(), kImEnd);
  std::ofstream(dir.file("tokenizer_config.json")) << "{";
  auto broken = Tokenizer::from_hf_dir(dir.path());
  EXPECT_EQ(broken.status().code(), Code::kInvalidArgument);
  EXPECT_NE(broken.status().message().find("tokenizer_config.json"), std::string::npos) << broken.status().message();
  auto missing = Tokenizer::from_hf_dir(dir.file("nothing-here"));
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_NE(missing.status().message().find("tokenizer.json"), std::string::npos);
}

TEST(BpeHfJson, SentencePieceExportWithByteFallback) {
  const std::string sp = "\xE2\x96\x81";  // ▁
  Json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    vocab[name] = 3 + b;
  }
  vocab[sp] = 259;
  vocab["h"] = 260;
  vocab["i"] = 261;
  vocab[sp + "h"] = 262;
  vocab[sp + "hi"] = 263;
  vocab["hi"] = 264;
  Json root;
  root["added_tokens"] = Json::array({{{"id", 0}, {"content", "<unk>"}, {"special", true}},
                                      {{"id", 1}, {"content", "<s>"}, {"special", true}},
                                      {{"id", 2}, {"content", "</s>"}, {"special", true}}});
  root["normalizer"] = nullptr;
  root["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", sp}, {"prepend_scheme", "first"}, {"split", false}};
  root["model"] = {{"type", "BPE"}, {"unk_token", "<unk>"}, {"byte_fallback", true}, {"vocab", vocab},
                   {"merges", Json::array({sp + " h", sp + "h i", "h i"})}};
  const Tokenizer tok = hf(root, R"({"add_bos_token": true})");
  ASSERT_FALSE(tok.is_byte_level());
  EXPECT_TRUE(tok.add_bos());
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_TRUE(tok.spm()->vocab().add_space_prefix);
  // "▁h" ranks before "hi", so " hi" is ▁h + i → ▁hi; "é" has no piece: its bytes.
  EXPECT_EQ(tok.encode("hi"), std::vector<int32_t>{263});
  EXPECT_EQ(tok.encode("hi\xC3\xA9"), (std::vector<int32_t>{263, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(tok.decode(tok.encode("hi hi")), "hi hi");
  EXPECT_EQ(tok.token_type(0), TokenType::kUnknown);
  EXPECT_EQ(tok.token_type(3), TokenType::kByte);
  EXPECT_EQ(tok.token_type(1), TokenType::kControl);
}

struct BadJson {
  std::string name;
  std::function<void(Json&)> mutate;
  Code code;
  std::string needle;
};

TEST(BpeHfJson, RefusesWithTypedErrors) {
  const std::vector<BadJson> cases = {
      {"merge with unknown token", [](Json& j) { j["model"]["merges"].push_back("1 zz"); }, Code::kInvalidArgument,
       "'zz' is not a token"},
      {"merge without space", [](Json& j) { j["model"]["merges"].push_back("12"); }, Code::kInvalidArgument,
       "model.merges[4]"},
      {"merge of wrong type", [](Json& j) { j["model"]["merges"].push_back(7); }, Code::kInvalidArgument,
       "model.merges[4] must be"},
      {"vocab id a string", [](Json& j) { j["model"]["vocab"]["hi"] = "257"; }, Code::kInvalidArgument,
       "'hi' is not an integer"},
      {"vocab not an object", [](Json& j) { j["model"]["vocab"] = Json::array(); }, Code::kInvalidArgument, "model.vocab"},
      {"no model", [](Json& j) { j.erase("model"); }, Code::kInvalidArgument, "\"model\""},
      {"negative id", [](Json& j) { j["model"]["vocab"]["hi"] = -1; }, Code::kInvalidArgument, "id -1"},
      {"huge id", [](Json& j) { j["model"]["vocab"]["hi"] = 1ll << 40; }, Code::kInvalidArgument, "outside 0.."},
      {"id past int64", [](Json& j) { j["model"]["vocab"]["hi"] = 18446744073709551615ull; }, Code::kInvalidArgument,
       "id 9223372036854775807"},
      {"sparse ids", [](Json& j) { j["model"]["vocab"]["hi"] = 3000000; }, Code::kInvalidArgument, "sparse"},
      {"duplicate id", [](Json& j) { j["model"]["vocab"]["hi"] = 5; }, Code::kInvalidArgument, "id 5 is given to both"},
      {"added token clash", [](Json& j) { j["added_tokens"][0]["id"] = kHi; }, Code::kInvalidArgument,
       "is given to both"},
      {"added token without content", [](Json& j) { j["added_tokens"][0].erase("content"); }, Code::kInvalidArgument,
       "added_tokens[0]"},
      {"long token", [](Json& j) { j["model"]["vocab"][std::string(kMaxBpeTokenBytes + 1, 'x')] = 264; },
       Code::kInvalidArgument, "bytes long"},
      {"byte_fallback not bool", [](Json& j) { j["model"]["byte_fallback"] = "yes"; }, Code::kInvalidArgument,
       "byte_fallback"},
      {"unigram", [](Json& j) { j["model"]["type"] = "Unigram"; }, Code::kUnimplemented, "'Unigram'"},
      {"unknown regex", [](Json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\w+"; },
       Code::kUnimplemented, "'\\w+'"},
      {"digits pre-tokenizer", [](Json& j) { j["pre_tokenizer"]["pretokenizers"][0] = {{"type", "Digits"}}; },
       Code::kUnimplemented, "'Digits'"},
      {"lowercase normalizer", [](Json& j) { j["normalizer"] = {{"type", "Lowercase"}}; }, Code::kUnimplemented,
       "'Lowercase'"},
      {"subword prefix", [](Json& j) { j["model"]["continuing_subword_prefix"] = "##"; }, Code::kUnimplemented,
       "continuing_subword_prefix"},
      {"no pre-tokenizer", [](Json& j) { j.erase("pre_tokenizer"); }, Code::kUnimplemented, "pre_tokenizer"},
      {"unknown unk token", [](Json& j) { j["model"]["unk_token"] = "<unk>"; }, Code::kInvalidArgument, "unk_token"},
  };
  for (const BadJson& c : cases) {
    Json root = small_tokenizer_json(BpePreTokenizer::kQwen2);
    c.mutate(root);
    auto tok = Tokenizer::from_hf_json(root.dump(), "");
    ASSERT_FALSE(tok.ok()) << c.name;
    EXPECT_EQ(tok.status().code(), c.code) << c.name << ": " << tok.status().to_string();
    EXPECT_NE(tok.status().message().find(c.needle), std::string::npos) << c.name << ": " << tok.status().message();
  }
}

TEST(BpeHfJson, RefusesBadJsonAndDeepNesting) {
  const auto refused = [](const std::string& json, const std::string& config, const std::string& needle) {
    auto tok = Tokenizer::from_hf_json(json, config);
    ASSERT_FALSE(tok.ok());
    EXPECT_EQ(tok.status().code(), Code::kInvalidArgument);
    EXPECT_NE(tok.status().message().find(needle), std::string::npos) << tok.status().message();
  };
  refused("{\"model\": ", "", "tokenizer.json");
  refused("", "", "tokenizer.json");
  refused("[1, 2]", "", "must be a JSON object");
  refused(std::string(100000, '[') + std::string(100000, ']'), "", "nested deeper");
  const std::string good = small_tokenizer_json(BpePreTokenizer::kQwen2).dump();
  refused(good, std::string(1000, '{'), "tokenizer_config.json");
  refused(good, "[]", "tokenizer_config.json must be a JSON object");
  refused(good, R"({"eos_token": "<|nope|>"})", "eos_token '<|nope|>' is not a token");
  refused(good, R"({"bos_token": 5})", "bos_token must be a string");
  refused(good, R"({"add_bos_token": "yes"})", "add_bos_token");
}

TEST(BpeGpt2Files, LoadsAndRefuses) {
  const std::string encoder = R"({"a": 0, "b": 1, "ab": 2, "<|endoftext|>": 3})";
  auto v = bpe_vocab_from_gpt2_text(encoder, "#version: 0.2\na b\n\n");
  ASSERT_TRUE(v.ok()) << v.status().to_string();
  EXPECT_EQ(v->merges.size(), 1u);
  EXPECT_EQ(v->eos_id, 3);
  EXPECT_EQ(v->bos_id, 3);
  EXPECT_EQ(v->types[3], TokenType::kControl);
  const auto refused = [](std::string_view enc, std::string_view bpe, Code code, const std::string& needle) {
    auto r = bpe_vocab_from_gpt2_text(enc, bpe);
    if (r.ok()) {  // some defects only show when the tokenizer is built
      auto tok = BpeTokenizer::create(std::move(r).value());
      ASSERT_FALSE(tok.ok()) << needle;
      r = tok.status();
    }
    EXPECT_EQ(r.status().code(), code) << r.status().to_string();
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
  };
  refused("[]", "", Code::kInvalidArgument, "encoder.json must be an object");
  refused(R"({"a": 0, "b": 0})", "", Code::kInvalidArgument, "id 0 is given to both");
  refused(R"({"a": 0.5})", "", Code::kInvalidArgument, "not an integer");
  refused(encoder, "#version: 0.2\nab\n", Code::kInvalidArgument, "vocab.bpe line 2");
  refused(encoder, "a c\n", Code::kInvalidArgument, "'c' is not a token");
  auto missing = bpe_vocab_from_gpt2_files("/nonexistent/encoder.json", "/nonexistent/vocab.bpe");
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
}

// A vocabulary-only GGUF: the 256 byte tokens and "12", one merge, and what extra adds.
std::string write_gguf(const test::TempDir& dir, const std::function<void(GgufWriter&)>& extra) {
  GgufWriter w;
  w.add_string("general.architecture", "qwen2");
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(byte_level_encode(std::string(1, static_cast<char>(b))));
  tokens.push_back("12");
  tokens.push_back("<|im_end|>");
  w.add_strings("tokenizer.ggml.tokens", tokens);
  std::vector<int32_t> types(tokens.size(), 1);
  types.back() = 3;
  w.add_i32s("tokenizer.ggml.token_type", types);
  extra(w);
  const std::string path = dir.file("vocab.gguf");
  EXPECT_TRUE(w.write(path).ok());
  return path;
}

Result<Tokenizer> open_gguf(const std::string& path) {
  LLMOPS_ASSIGN_OR_RETURN(auto g, GgufFile::open(path));
  return Tokenizer::from_gguf(*g);
}

TEST(BpeGguf, QwenVocabulary) {
  test::TempDir dir;
  const std::string path = write_gguf(dir, [](GgufWriter& w) {
    w.add_string("tokenizer.ggml.model", "gpt2");
    w.add_string("tokenizer.ggml.pre", "qwen2");
    w.add_strings("tokenizer.ggml.merges", {"1 2"});
    w.add_u32("tokenizer.ggml.eos_token_id", 257);
    w.add_u32("tokenizer.ggml.eot_token_id", 257);
    w.add_bool("tokenizer.ggml.add_bos_token", true);
  });
  auto tok = open_gguf(path);
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  EXPECT_EQ(tok->encode("12"), (std::vector<int32_t>{byte_id('1'), byte_id('2')}));  // digits one by one
  EXPECT_EQ(tok->encode("x<|im_end|>"), (std::vector<int32_t>{byte_id('x'), 257}));
  EXPECT_TRUE(tok->add_bos());
  EXPECT_TRUE(tok->is_eog(257));
  EXPECT_EQ(tok->bos_id(), -1);
}

TEST(BpeGguf, RefusesWithTypedErrors) {
  struct Case {
    std::string name;
    std::function<void(GgufWriter&)> extra;
    Code code;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"unknown pre-tokenizer",
       [](GgufWriter& w) {
         w.add_string("tokenizer.ggml.model", "gpt2");
         w.add_string("tokenizer.ggml.pre", "tekken");
         w.add_strings("tokenizer.ggml.merges", {"1 2"});
       },
       Code::kUnimplemented, "'tekken'"},
      {"unknown model", [](GgufWriter& w) { w.add_string("tokenizer.ggml.model", "bert"); }, Code::kUnimplemented,
       "'bert'"},
      {"bos outside the vocabulary",
       [](GgufWriter& w) {
         w.add_string("tokenizer.ggml.model", "gpt2");
         w.add_strings("tokenizer.ggml.merges", {"1 2"});
         w.add_u32("tokenizer.ggml.bos_token_id", 9999);
       },
       Code::kInvalidArgument, "bos_token_id is 9999"},
      {"merge without space",
       [](GgufWriter& w) {
         w.add_string("tokenizer.ggml.model", "gpt2");
         w.add_strings("tokenizer.ggml.merges", {"1 2", "12"});
       },
       Code::kInvalidArgument, "tokenizer.ggml.merges[1]"},
      {"merge of an unknown token",
       [](GgufWriter& w) {
         w.add_string("tokenizer.ggml.model", "gpt2");
         w.add_strings("tokenizer.ggml.merges", {"1 2", "12 zz"});
       },
       Code::kInvalidArgument, "'zz' is not a token"},
      {"no merges", [](GgufWriter& w) { w.add_string("tokenizer.ggml.model", "gpt2"); }, Code::kNotFound,
       "tokenizer.ggml.merges"},
  };
  for (const Case& c : cases) {
    test::TempDir dir;
    auto tok = open_gguf(write_gguf(dir, c.extra));
    ASSERT_FALSE(tok.ok()) << c.name;
    EXPECT_EQ(tok.status().code(), c.code) << c.name << ": " << tok.status().to_string();
    EXPECT_NE(tok.status().message().find(c.needle), std::string::npos) << c.name << ": " << tok.status().message();
  }
}

TEST(TokenizerFacade, Llama2cFile) {
  const std::string path = std::string(LLMOPS_SHARED_DIR) + "/models/stories260K/tok512.bin";
  if (!std::ifstream(path).good()) GTEST_SKIP() << "../shared is absent: " << path << " not found";
  auto tok = Tokenizer::from_llama2c(path, 512);
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  EXPECT_FALSE(tok->is_byte_level());
  EXPECT_TRUE(tok->add_bos());
  EXPECT_EQ(tok->size(), 512);
  EXPECT_EQ(tok->decode(tok->encode("Once upon a time")), "Once upon a time");
  EXPECT_EQ(Tokenizer::from_llama2c(path, 7).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace llmops::engine
