// llama.cpp's tokenizer conformance vectors: every test string of each SentencePiece
// vocabulary in ../shared/tokenizer-vectors/llama.cpp must encode to exactly the expected ids.
#include <gtest/gtest.h>

#include <sstream>

#include "engine_test_util.h"
#include "tokenizer/gguf_vocab.h"

namespace llmops::engine {
namespace {

std::vector<std::string> split_inputs(const std::string& text) {
  std::vector<std::string> out;
  const std::string sep = "\n__ggml_vocab_test__\n";
  size_t pos = 0;
  for (;;) {
    size_t next = text.find(sep, pos);
    if (next == std::string::npos) break;
    out.push_back(text.substr(pos, next - pos));
    pos = next + sep.size();
  }
  return out;
}

class Vectors : public ::testing::TestWithParam<const char*> {};

TEST_P(Vectors, EncodeMatchesLlamaCpp) {
  std::string base = std::string("tokenizer-vectors/llama.cpp/") + GetParam();
  LLMOPS_REQUIRE_SHARED(base);
  auto g = GgufFile::open(test::shared_path(base));
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  auto vocab = spm_vocab_from_gguf(**g);
  ASSERT_TRUE(vocab.ok()) << vocab.status().to_string();
  auto tok = SpmTokenizer::create(std::move(vocab).value());
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  auto inputs = split_inputs(test::slurp(test::shared_path(base + ".inp")));
  std::istringstream expected(test::slurp(test::shared_path(base + ".out")));
  ASSERT_GT(inputs.size(), 30u);
  size_t failures = 0;
  for (const auto& input : inputs) {
    std::string line;
    ASSERT_TRUE(std::getline(expected, line));
    std::vector<int32_t> want;
    std::istringstream ids(line);
    int32_t id;
    while (ids >> id) want.push_back(id);
    auto got = tok->encode(input);
    if (got != want) ++failures;
    EXPECT_EQ(got, want) << "input: '" << input << "'";
    EXPECT_EQ(tok->decode(got), input) << "round trip of '" << input << "'";
  }
  EXPECT_EQ(failures, 0u);
}

INSTANTIATE_TEST_SUITE_P(Spm, Vectors, ::testing::Values("ggml-vocab-llama-spm.gguf", "ggml-vocab-phi-3.gguf"),
                         [](const auto& info) { return std::string(info.param).find("phi") != std::string::npos ? "phi3" : "llama_spm"; });

TEST(GgufVocab, OtherTokenizerModelsAreNamed) {
  LLMOPS_REQUIRE_SHARED("tokenizer-vectors/llama.cpp/ggml-vocab-gpt-2.gguf");
  auto g = GgufFile::open(test::shared_path("tokenizer-vectors/llama.cpp/ggml-vocab-gpt-2.gguf"));
  ASSERT_TRUE(g.ok());
  auto v = spm_vocab_from_gguf(**g);
  EXPECT_EQ(v.status().code(), Code::kUnimplemented);
  EXPECT_NE(v.status().message().find("gpt2"), std::string::npos);
}

}  // namespace
}  // namespace llmops::engine
