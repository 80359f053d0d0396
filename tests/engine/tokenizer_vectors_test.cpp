// llama.cpp's tokenizer conformance vectors: every test string of each vocabulary in
// ../shared/tokenizer-vectors/llama.cpp must encode to exactly the expected ids (llama.cpp's .out
// lines, without BOS) and decode back to itself, through the Tokenizer facade. The same strings
// check GPT-2's original encoder.json + vocab.bpe, and tokenizer.json files built here from the
// GGUF vocabularies (so the Hugging Face loader meets real 50k-128k vocabularies).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <sstream>

#include "engine_test_util.h"
#include "json.h"
#include "model/export.h"
#include "model/model.h"
#include "model/synth.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/tokenizer.h"

namespace llmops::engine {
namespace {

const std::string kVectors = "tokenizer-vectors/llama.cpp/";

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

struct VectorCase {
  std::string input;
  std::vector<int32_t> ids;
};

std::vector<VectorCase> read_vectors(const std::string& vocab_file) {
  const auto inputs = split_inputs(test::slurp(test::shared_path(kVectors + vocab_file + ".inp")));
  std::istringstream expected(test::slurp(test::shared_path(kVectors + vocab_file + ".out")));
  std::vector<VectorCase> out;
  for (const auto& input : inputs) {
    std::string line;
    if (!std::getline(expected, line)) break;
    VectorCase c{input, {}};
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) c.ids.push_back(id);
    out.push_back(std::move(c));
  }
  EXPECT_EQ(out.size(), inputs.size()) << vocab_file << ".out has fewer lines than .inp has strings";
  return out;
}

// Encodes every vector string; returns how many came out exactly right (and round-tripped).
size_t check_vectors(const Tokenizer& tok, const std::vector<VectorCase>& cases, const std::string& label) {
  size_t exact = 0;
  for (const auto& c : cases) {
    // llama.cpp made the .out files without parsing special tokens.
    const auto got = tok.encode(c.input, /*parse_special=*/false);
    EXPECT_EQ(got, c.ids) << label << ": input '" << c.input << "'";
    const std::string back = tok.decode(got);
    EXPECT_EQ(back, c.input) << label << ": round trip of '" << c.input << "'";
    if (got == c.ids && back == c.input) ++exact;
  }
  return exact;
}

Tokenizer open_gguf(const std::string& vocab_file) {
  auto g = GgufFile::open(test::shared_path(kVectors + vocab_file));
  EXPECT_TRUE(g.ok()) << g.status().to_string();
  auto tok = Tokenizer::from_gguf(**g);
  EXPECT_TRUE(tok.ok()) << tok.status().to_string();
  return std::move(tok).value();
}

class Vectors : public ::testing::TestWithParam<const char*> {};

TEST_P(Vectors, EncodeMatchesLlamaCpp) {
  const std::string file = GetParam();
  LLMOPS_REQUIRE_SHARED(kVectors + file);
  const Tokenizer tok = open_gguf(file);
  const auto cases = read_vectors(file);
  ASSERT_GT(cases.size(), 30u);
  const size_t exact = check_vectors(tok, cases, file);
  EXPECT_EQ(exact, cases.size()) << file << ": " << exact << "/" << cases.size() << " strings exact";
  std::cout << "[          ] " << file << ": " << exact << "/" << cases.size() << " strings exact\n";
}

INSTANTIATE_TEST_SUITE_P(All, Vectors,
                         ::testing::Values("ggml-vocab-llama-spm.gguf", "ggml-vocab-phi-3.gguf",
                                           "ggml-vocab-gpt-2.gguf", "ggml-vocab-llama-bpe.gguf"),
                         [](const auto& info) {
                           std::string name = info.param;
                           name = name.substr(11, name.size() - 11 - 5);  // "ggml-vocab-" ... ".gguf"
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(TokenizerVectors, FacadeReportsTheVocabularies) {
  LLMOPS_REQUIRE_SHARED(kVectors + "ggml-vocab-llama-bpe.gguf");
  const Tokenizer gpt2 = open_gguf("ggml-vocab-gpt-2.gguf");
  EXPECT_TRUE(gpt2.is_byte_level());
  EXPECT_EQ(gpt2.size(), 50257);
  EXPECT_EQ(gpt2.eos_id(), 50256);
  EXPECT_FALSE(gpt2.add_bos());
  EXPECT_TRUE(gpt2.is_eog(50256));
  EXPECT_EQ(gpt2.token_text(50256), "<|endoftext|>");
  EXPECT_EQ(gpt2.token_type(50256), TokenType::kControl);
  EXPECT_EQ(gpt2.encode("<|endoftext|>"), std::vector<int32_t>{50256});
  EXPECT_EQ(gpt2.decode({50256}), "");

  const Tokenizer llama3 = open_gguf("ggml-vocab-llama-bpe.gguf");
  EXPECT_EQ(llama3.size(), 128256);
  EXPECT_EQ(llama3.bos_id(), 128000);
  EXPECT_TRUE(llama3.add_bos());
  const auto eot = llama3.encode("<|eot_id|>");
  ASSERT_EQ(eot.size(), 1u);
  EXPECT_TRUE(llama3.is_eog(eot[0]));
  EXPECT_TRUE(llama3.is_eog(llama3.eos_id()));
  EXPECT_FALSE(llama3.is_eog(llama3.bos_id()));
  // Without parse_special the same text is ordinary text.
  EXPECT_GT(llama3.encode("<|eot_id|>", false).size(), 1u);

  const Tokenizer spm = open_gguf("ggml-vocab-llama-spm.gguf");
  EXPECT_FALSE(spm.is_byte_level());
  EXPECT_TRUE(spm.add_bos());
  EXPECT_EQ(spm.bos_id(), 1);
  EXPECT_TRUE(spm.is_eog(2));

  // Phi-3 ends its turns with <|end|>, a control token besides EOS (<|endoftext|>).
  const Tokenizer phi3 = open_gguf("ggml-vocab-phi-3.gguf");
  int32_t end = -1;
  for (int32_t id = 0; id < phi3.size(); ++id) {
    if (phi3.token_text(id) == "<|end|>") end = id;
  }
  ASSERT_GE(end, 0);
  EXPECT_TRUE(phi3.is_eog(end));
  EXPECT_TRUE(phi3.is_eog(phi3.eos_id()));
  EXPECT_EQ(phi3.eog_ids().size(), 2u);
}

TEST(TokenizerVectors, Gpt2FilesMatchTheGgufVocabulary) {
  LLMOPS_REQUIRE_SHARED("tokenizer-vectors/gpt2/encoder.json");
  LLMOPS_REQUIRE_SHARED(kVectors + "ggml-vocab-gpt-2.gguf");
  auto files = Tokenizer::from_gpt2_files(test::shared_path("tokenizer-vectors/gpt2/encoder.json"),
                                          test::shared_path("tokenizer-vectors/gpt2/vocab.bpe"));
  ASSERT_TRUE(files.ok()) << files.status().to_string();
  EXPECT_EQ(files->size(), 50257);
  EXPECT_EQ(files->eos_id(), 50256);
  const Tokenizer gguf = open_gguf("ggml-vocab-gpt-2.gguf");
  const auto cases = read_vectors("ggml-vocab-gpt-2.gguf");
  size_t same = 0;
  for (const auto& c : cases) {
    const auto ids = files->encode(c.input, false);
    EXPECT_EQ(ids, gguf.encode(c.input, false)) << "input '" << c.input << "'";
    if (ids == gguf.encode(c.input, false)) ++same;
  }
  EXPECT_EQ(check_vectors(*files, cases, "encoder.json + vocab.bpe"), cases.size());
  std::cout << "[          ] encoder.json + vocab.bpe: " << same << "/" << cases.size() << " strings as the GGUF\n";
}

// A tokenizer.json as Hugging Face writes it for the byte-level GGUF vocabulary in file:
// normal tokens in model.vocab, control tokens in added_tokens (GPT-2 also keeps its one in the
// vocab, as gpt2's real file does).
std::string hf_json_from_gguf(const GgufFile& g, bool llama3) {
  auto tokens = g.get_strings("tokenizer.ggml.tokens");
  auto types = g.get_ints("tokenizer.ggml.token_type");
  auto merges = g.get_strings("tokenizer.ggml.merges");
  EXPECT_TRUE(tokens.ok() && types.ok() && merges.ok());
  Json vocab = Json::object(), added = Json::array(), merge_list = Json::array();
  for (size_t i = 0; i < tokens->size(); ++i) {
    const std::string text((*tokens)[i]);
    const bool control = (*types)[i] == static_cast<int64_t>(TokenType::kControl);
    if (!control || !llama3) vocab[text] = i;
    if (control) added.push_back({{"id", i}, {"content", text}, {"special", true}});
  }
  for (size_t i = 0; i < merges->size(); ++i) {
    const std::string rule((*merges)[i]);
    if (llama3) {  // newer files write pairs
      const size_t space = rule.find(' ', 1);
      merge_list.push_back(Json::array({rule.substr(0, space), rule.substr(space + 1)}));
    } else {
      merge_list.push_back(rule);
    }
  }
  Json root = {{"version", "1.0"}, {"added_tokens", added}, {"normalizer", nullptr}, {"decoder", {{"type", "ByteLevel"}}}};
  root["model"] = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"byte_fallback", false},
                   {"ignore_merges", llama3}, {"vocab", vocab}, {"merges", merge_list}};
  const Json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                           {"use_regex", !llama3}};
  if (llama3) {
    const Json split = {{"type", "Split"},
                        {"pattern", {{"Regex", std::string(pre_tokenizer_regex(BpePreTokenizer::kLlama3))}}},
                        {"behavior", "Isolated"},
                        {"invert", false}};
    root["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", Json::array({split, byte_level})}};
    root["post_processor"] = {
        {"type", "Sequence"},
        {"processors", Json::array({byte_level, {{"type", "TemplateProcessing"},
                                                 {"single", Json::array({{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
                                                                         {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})}}})}};
  } else {
    root["pre_tokenizer"] = byte_level;
  }
  return root.dump();
}

class HfVectors : public ::testing::TestWithParam<const char*> {};

TEST_P(HfVectors, TokenizerJsonMatchesLlamaCpp) {
  const std::string file = GetParam();
  LLMOPS_REQUIRE_SHARED(kVectors + file);
  auto g = GgufFile::open(test::shared_path(kVectors + file));
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  const bool llama3 = file.find("llama-bpe") != std::string::npos;
  const std::string config = llama3 ? R"({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"})" : "";
  auto tok = Tokenizer::from_hf_json(hf_json_from_gguf(**g, llama3), config);
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  const auto cases = read_vectors(file);
  const size_t exact = check_vectors(*tok, cases, file + " as tokenizer.json");
  EXPECT_EQ(exact, cases.size());
  if (llama3) {
    EXPECT_EQ(tok->bos_id(), 128000);
    EXPECT_TRUE(tok->add_bos());  // from the post_processor template
    EXPECT_EQ(tok->token_text(tok->eos_id()), "<|eot_id|>");
  } else {
    EXPECT_EQ(tok->eos_id(), 50256);
    EXPECT_FALSE(tok->add_bos());
  }
}

INSTANTIATE_TEST_SUITE_P(ByteLevel, HfVectors, ::testing::Values("ggml-vocab-gpt-2.gguf", "ggml-vocab-llama-bpe.gguf"),
                         [](const auto& info) { return std::string(info.param).find("gpt-2") != std::string::npos ? "gpt2" : "llama_bpe"; });

// A byte-level vocabulary written into an exported GGUF (tokens, types, merges, the
// pre-tokenizer's name) reads back as a tokenizer that gives llama.cpp's ids for every string.
class BpeExport : public ::testing::TestWithParam<const char*> {};

TEST_P(BpeExport, AnExportedGgufCarriesTheVocabulary) {
  const std::string file = GetParam();
  LLMOPS_REQUIRE_SHARED(kVectors + file);
  const Tokenizer source = open_gguf(file);
  llmops::test::TempDir dir;
  ASSERT_TRUE(write_synth_model(*find_synth_shape("gpt2-tiny"), GgmlType::kF32, 1, dir.file("m.gguf")).ok());
  auto model = Model::load(dir.file("m.gguf"));
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  // A model read from GGUF would carry its own tokenizer metadata; export from the HF form so
  // the given tokenizer is the one written.
  ASSERT_TRUE(export_hf(**model, SafetensorsDtype::kF32, dir.file("hf")).ok());
  auto hf = Model::load(dir.file("hf"));
  ASSERT_TRUE(hf.ok()) << hf.status().to_string();
  auto report = export_gguf(**hf, GgmlType::kF32, dir.file("out.gguf"), &source);
  ASSERT_TRUE(report.ok()) << report.status().to_string();
  EXPECT_TRUE(report->notes.empty()) << report->notes.front();
  auto g = GgufFile::open(dir.file("out.gguf"));
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  auto back = Tokenizer::from_gguf(**g);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->size(), source.size());
  EXPECT_EQ(back->eos_id(), source.eos_id());
  EXPECT_EQ(back->add_bos(), source.add_bos());
  const auto cases = read_vectors(file);
  EXPECT_EQ(check_vectors(*back, cases, file + " exported"), cases.size());
}

INSTANTIATE_TEST_SUITE_P(ByteLevel, BpeExport, ::testing::Values("ggml-vocab-gpt-2.gguf", "ggml-vocab-llama-bpe.gguf"),
                         [](const auto& info) { return std::string(info.param).find("gpt-2") != std::string::npos ? "gpt2" : "llama_bpe"; });

// A Llama 2 tokenizer.json as Hugging Face exports SentencePiece: vocab and merges (every split
// of a piece into two pieces, ordered by the piece's score) with byte_fallback.
TEST(HfTokenizerVectors, SentencePieceExportMatchesLlamaCpp) {
  const std::string file = "ggml-vocab-llama-spm.gguf";
  LLMOPS_REQUIRE_SHARED(kVectors + file);
  auto g = GgufFile::open(test::shared_path(kVectors + file));
  ASSERT_TRUE(g.ok());
  auto vocab = spm_vocab_from_gguf(**g);
  ASSERT_TRUE(vocab.ok());
  std::map<std::string, int32_t> ids;
  for (size_t i = 0; i < vocab->pieces.size(); ++i) ids[vocab->pieces[i]] = static_cast<int32_t>(i);
  struct Rule {
    float score;
    int32_t left, right;
  };
  std::vector<Rule> rules;
  for (size_t i = 0; i < vocab->pieces.size(); ++i) {
    const std::string& p = vocab->pieces[i];
    if (vocab->types[i] != TokenType::kNormal) continue;
    for (size_t cut = 1; cut < p.size(); ++cut) {
      if ((static_cast<unsigned char>(p[cut]) & 0xC0) == 0x80) continue;  // inside a character
      const auto l = ids.find(p.substr(0, cut)), r = ids.find(p.substr(cut));
      if (l != ids.end() && r != ids.end()) rules.push_back({vocab->scores[i], l->second, r->second});
    }
  }
  std::stable_sort(rules.begin(), rules.end(), [](const Rule& a, const Rule& b) { return a.score > b.score; });
  Json json_vocab = Json::object(), merges = Json::array();
  for (size_t i = 0; i < vocab->pieces.size(); ++i) json_vocab[vocab->pieces[i]] = i;
  for (const Rule& r : rules) merges.push_back(vocab->pieces[r.left] + " " + vocab->pieces[r.right]);
  Json root;
  root["added_tokens"] = Json::array({{{"id", 0}, {"content", "<unk>"}, {"special", true}},
                                      {{"id", 1}, {"content", "<s>"}, {"special", true}},
                                      {{"id", 2}, {"content", "</s>"}, {"special", true}}});
  root["normalizer"] = {{"type", "Sequence"},
                        {"normalizers", Json::array({{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
                                                     {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}})}};
  root["pre_tokenizer"] = nullptr;
  root["model"] = {{"type", "BPE"}, {"unk_token", "<unk>"}, {"byte_fallback", true}, {"fuse_unk", true},
                   {"vocab", json_vocab}, {"merges", merges}};
  auto tok = Tokenizer::from_hf_json(root.dump(), R"({"add_bos_token": true, "bos_token": "<s>", "eos_token": "</s>"})");
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  EXPECT_FALSE(tok->is_byte_level());
  EXPECT_TRUE(tok->add_bos());
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  const auto cases = read_vectors(file);
  EXPECT_EQ(check_vectors(*tok, cases, "llama-spm as tokenizer.json"), cases.size());
}

// A rendered Llama 2 chat template: with parse_special the SentencePiece text of control tokens
// becomes those tokens and the text between is encoded fragment by fragment, each with the
// dummy-prefix space (llama.cpp's rule); without it, the same text is ordinary text.
TEST(TokenizerVectors, SentencePieceSpecialTokensInText) {
  LLMOPS_REQUIRE_SHARED("tokenizer-vectors/llama.cpp/ggml-vocab-llama-spm.gguf");
  auto g = GgufFile::open(test::shared_path("tokenizer-vectors/llama.cpp/ggml-vocab-llama-spm.gguf"));
  ASSERT_TRUE(g.ok());
  auto tok = Tokenizer::from_gguf(**g);
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  const std::string text = "[INST] Hi there [/INST] Hello</s><s>[INST] Again [/INST]";
  std::vector<int32_t> want = tok->encode("[INST] Hi there [/INST] Hello", false);
  want.push_back(tok->eos_id());
  want.push_back(tok->bos_id());
  for (int32_t id : tok->encode("[INST] Again [/INST]", false)) want.push_back(id);
  EXPECT_EQ(tok->encode(text, true), want);
  const auto plain = tok->encode(text, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), tok->eos_id()), 0);
  EXPECT_EQ(tok->decode(plain), text);
}

TEST(GgufVocab, OtherTokenizerModelsAreNamed) {
  LLMOPS_REQUIRE_SHARED(kVectors + "ggml-vocab-gpt-2.gguf");
  auto g = GgufFile::open(test::shared_path(kVectors + "ggml-vocab-gpt-2.gguf"));
  ASSERT_TRUE(g.ok());
  auto v = spm_vocab_from_gguf(**g);
  EXPECT_EQ(v.status().code(), Code::kUnimplemented);
  EXPECT_NE(v.status().message().find("gpt2"), std::string::npos);
}

}  // namespace
}  // namespace llmops::engine
