// Byte-level BPE pieces by themselves: Unicode classes and UTF-8 decoding, GPT-2's byte map, the
// three pre-tokenizers on tricky strings (expected words from Python's `regex` module running
// the original patterns), and merging, special tokens and decoding on hand-made vocabularies.
#include <gtest/gtest.h>

#include <map>

#include "tokenizer/bpe.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/unicode.h"

namespace llmops::engine {
namespace {

TEST(BpeUnicode, ClassesOfCodePoints) {
  EXPECT_EQ(code_point_class('A'), CodePointClass::kLetter);
  EXPECT_EQ(code_point_class('z'), CodePointClass::kLetter);
  EXPECT_EQ(code_point_class(0xE9), CodePointClass::kLetter);     // é
  EXPECT_EQ(code_point_class(0x4E16), CodePointClass::kLetter);   // 世
  EXPECT_EQ(code_point_class('7'), CodePointClass::kNumber);
  EXPECT_EQ(code_point_class(0x0661), CodePointClass::kNumber);   // Arabic-Indic one
  EXPECT_EQ(code_point_class(0x00BD), CodePointClass::kNumber);   // ½ (No)
  EXPECT_EQ(code_point_class(0x2167), CodePointClass::kNumber);   // Ⅷ (Nl)
  EXPECT_EQ(code_point_class(' '), CodePointClass::kWhitespace);
  EXPECT_EQ(code_point_class('\n'), CodePointClass::kWhitespace);
  EXPECT_EQ(code_point_class(0x00A0), CodePointClass::kWhitespace);
  EXPECT_EQ(code_point_class(0x3000), CodePointClass::kWhitespace);
  EXPECT_EQ(code_point_class(0x200B), CodePointClass::kOther);    // zero width space is not White_Space
  EXPECT_EQ(code_point_class(0x001C), CodePointClass::kOther);
  EXPECT_EQ(code_point_class('!'), CodePointClass::kOther);
  EXPECT_EQ(code_point_class(0x0301), CodePointClass::kOther);    // combining acute (Mn)
  EXPECT_EQ(code_point_class(0x1F999), CodePointClass::kOther);   // 🦙
  EXPECT_EQ(code_point_class(0x10FFFF), CodePointClass::kOther);
  EXPECT_EQ(code_point_class(0xFFFFFFFF), CodePointClass::kOther);
}

TEST(BpeUnicode, DecodesUtf8AndIsolatesBadBytes) {
  const auto decode = [](std::string_view s) {
    uint32_t cp;
    const size_t len = decode_utf8(s, 0, cp);
    return std::make_pair(len, cp);
  };
  EXPECT_EQ(decode("A"), std::make_pair(size_t{1}, uint32_t{'A'}));
  EXPECT_EQ(decode("\xC3\xA9"), std::make_pair(size_t{2}, uint32_t{0xE9}));
  EXPECT_EQ(decode("\xE4\xB8\x96"), std::make_pair(size_t{3}, uint32_t{0x4E16}));
  EXPECT_EQ(decode("\xF0\x9F\xA6\x99"), std::make_pair(size_t{4}, uint32_t{0x1F999}));
  for (std::string_view bad : {"\x80", "\xFF", "\xC0\x80", "\xC3", "\xC3" "A", "\xE4\xB8", "\xED\xA0\x80",
                               "\xF4\x90\x80\x80", "\xF8\x88\x80\x80\x80"}) {
    EXPECT_EQ(decode(bad), std::make_pair(size_t{1}, kInvalidCodePoint)) << "bytes of length " << bad.size();
  }
}

TEST(BpeUnicode, Gpt2ByteMapIsReversible) {
  EXPECT_EQ(byte_to_code_point(' '), 0x120u);   // Ġ
  EXPECT_EQ(byte_to_code_point('\n'), 0x10Au);  // Ċ
  EXPECT_EQ(byte_to_code_point('A'), uint32_t{'A'});
  EXPECT_EQ(byte_to_code_point(0xAD), 0x143u);  // soft hyphen is the last remapped byte
  EXPECT_EQ(byte_to_code_point(0xFF), 0xFFu);
  std::string all;
  for (int b = 0; b < 256; ++b) {
    EXPECT_EQ(byte_from_code_point(byte_to_code_point(static_cast<uint8_t>(b))), b);
    all += static_cast<char>(b);
  }
  EXPECT_EQ(byte_from_code_point(0x144), -1);
  EXPECT_EQ(byte_level_encode(" a\n"), "\xC4\xA0" "a" "\xC4\x8A");
  EXPECT_EQ(byte_level_decode(byte_level_encode(all)), all);
  EXPECT_EQ(byte_level_decode("\xE4\xB8\x96"), "\xE4\xB8\x96");  // not in the map: kept
}

struct SplitCase {
  BpePreTokenizer kind;
  std::string text;
  std::vector<std::string> words;
};

// Expected words: Python's `regex` module, findall() with each original pattern.
const SplitCase kSplitCases[] = {
    {BpePreTokenizer::kGpt2, "Hello world", {"Hello", " world"}},
    {BpePreTokenizer::kGpt2, "I've 'told he's there, 'RE you sure? 'M not 'll 'd 'st",
     {"I", "'ve", " '", "told", " he", "'s", " there", ",", " '", "RE", " you", " sure", "?", " '", "M", " not",
      " '", "ll", " '", "d", " '", "st"}},
    // GPT-2's contractions are case-sensitive.
    {BpePreTokenizer::kGpt2, "We'Ve a'lL 'S", {"We", "'", "Ve", " a", "'", "lL", " '", "S"}},
    // A whitespace run before a word gives its last space to the word.
    {BpePreTokenizer::kGpt2, "   Hello", {"  ", " Hello"}},
    {BpePreTokenizer::kGpt2, "\tHello  \t world", {"\t", "Hello", "  \t", " world"}},
    {BpePreTokenizer::kGpt2, "Hello\n\n  world\n", {"Hello", "\n\n ", " world", "\n"}},
    {BpePreTokenizer::kGpt2, "!!\n\nx ?!\r\n", {"!!", "\n", "\n", "x", " ?!", "\r\n"}},
    {BpePreTokenizer::kGpt2, "1234567 x12 3.14", {"1234567", " x", "12", " 3", ".", "14"}},
    {BpePreTokenizer::kGpt2, "🦙 llama ✅🦙", {"🦙", " llama", " ✅🦙"}},
    {BpePreTokenizer::kGpt2, "café привет 世界١٢", {"café", " привет", " 世界", "١٢"}},
    {BpePreTokenizer::kGpt2, "a\u00a0b\u3000c", {"a", "\u00a0", "b", "\u3000", "c"}},
    {BpePreTokenizer::kGpt2, "x  ", {"x", "  "}},

    {BpePreTokenizer::kLlama3, "I've 'told he's there, 'RE you sure? 'M not 'll 'd 'st",
     {"I", "'ve", " '", "told", " he", "'s", " there", ",", " '", "RE", " you", " sure", "?", " '", "M", " not",
      " '", "ll", " '", "d", " '", "st"}},
    // (?i:...): 'Ve and 'lL are contractions; a lone quote joins the letters after it.
    {BpePreTokenizer::kLlama3, "We'Ve a'lL 'S", {"We", "'Ve", " a", "'lL", " '", "S"}},
    {BpePreTokenizer::kLlama3, "'S'RE'x", {"'S", "'RE", "'x"}},
    {BpePreTokenizer::kLlama3, "   Hello", {"  ", " Hello"}},
    // Any one non-letter, non-digit, non-newline character may lead a word: a tab too.
    {BpePreTokenizer::kLlama3, "\tHello  \t world", {"\tHello", "  \t", " world"}},
    {BpePreTokenizer::kLlama3, "Hello\n\n  world\n", {"Hello", "\n\n", " ", " world", "\n"}},
    {BpePreTokenizer::kLlama3, " \n \n x", {" \n \n", " x"}},
    {BpePreTokenizer::kLlama3, "!!\n\nx ?!\r\n", {"!!\n\n", "x", " ?!\r\n"}},
    {BpePreTokenizer::kLlama3, "1234567 x12 3.14", {"123", "456", "7", " x", "12", " ", "3", ".", "14"}},
    {BpePreTokenizer::kLlama3, "🦙 llama ✅🦙", {"🦙", " llama", " ✅🦙"}},
    {BpePreTokenizer::kLlama3, "a\u00a0b\u3000c", {"a", "\u00a0b", "\u3000c"}},

    // Qwen2: one digit per word.
    {BpePreTokenizer::kQwen2, "1234567 x12 3.14",
     {"1", "2", "3", "4", "5", "6", "7", " x", "1", "2", " ", "3", ".", "1", "4"}},
    {BpePreTokenizer::kQwen2, "世界١٢", {"世界", "١", "٢"}},
    {BpePreTokenizer::kQwen2, "We'Ve", {"We", "'Ve"}},
};

TEST(BpePreTokenize, MatchesTheRegexes) {
  for (const SplitCase& c : kSplitCases) {
    const auto words = pre_tokenize(c.text, c.kind);
    EXPECT_EQ(std::vector<std::string>(words.begin(), words.end()), c.words)
        << pre_tokenizer_name(c.kind) << " on '" << c.text << "'";
  }
}

TEST(BpePreTokenize, InvalidUtf8IsOneCharacterPerByte) {
  // A bad byte is punctuation-like ("other"): it joins runs of other characters and never
  // swallows the ASCII after it.
  const std::string text = "ab\xFF\xFE" "cd \xC3(x\x80";
  const std::vector<std::string> expected = {"ab", "\xFF\xFE", "cd", " \xC3(", "x", "\x80"};
  for (auto kind : {BpePreTokenizer::kGpt2, BpePreTokenizer::kLlama3}) {
    const auto words = pre_tokenize(text, kind);
    EXPECT_EQ(std::vector<std::string>(words.begin(), words.end()), expected) << pre_tokenizer_name(kind);
  }
  // Llama 3 lets one "other" character lead a letter run; a bad byte is no exception.
  const auto led = pre_tokenize("\xFF" "abc", BpePreTokenizer::kLlama3);
  EXPECT_EQ(std::vector<std::string>(led.begin(), led.end()), std::vector<std::string>{"\xFF" "abc"});
}

TEST(BpePreTokenize, EmptyAndWordsCoverTheText) {
  EXPECT_TRUE(pre_tokenize("", BpePreTokenizer::kGpt2).empty());
  const std::string text = "  mixed\t\t123 🦙\r\n\r\n  end \xF0\x9F";
  for (auto kind : {BpePreTokenizer::kGpt2, BpePreTokenizer::kLlama3, BpePreTokenizer::kQwen2}) {
    std::string joined;
    for (auto w : pre_tokenize(text, kind)) {
      EXPECT_FALSE(w.empty());
      joined += w;
    }
    EXPECT_EQ(joined, text) << pre_tokenizer_name(kind);
  }
}

TEST(BpePreTokenize, RegexesAreRecognised) {
  for (auto kind : {BpePreTokenizer::kGpt2, BpePreTokenizer::kLlama3, BpePreTokenizer::kQwen2}) {
    EXPECT_EQ(pre_tokenizer_for_regex(pre_tokenizer_regex(kind)), kind);
  }
  EXPECT_FALSE(pre_tokenizer_for_regex("\\p{L}+").has_value());
}

// A hand-made byte-level vocabulary: ids 0..255 are the bytes (spelled through the byte map),
// then whatever a test adds.
class BpeVocabBuilder {
 public:
  BpeVocabBuilder() {
    for (int b = 0; b < 256; ++b) add(byte_level_encode(std::string(1, static_cast<char>(b))));
  }
  int32_t add(const std::string& text, TokenType type = TokenType::kNormal) {
    vocab_.tokens.push_back(text);
    vocab_.types.push_back(type);
    return ids_[text] = static_cast<int32_t>(vocab_.tokens.size() - 1);
  }
  // Adds the merge and, unless told not to, its joined token.
  void merge(const std::string& left, const std::string& right, bool add_joined = true) {
    vocab_.merges.emplace_back(byte_level_encode(left), byte_level_encode(right));
    if (add_joined && !ids_.count(byte_level_encode(left + right))) add(byte_level_encode(left + right));
  }
  int32_t id(const std::string& raw) const { return ids_.at(byte_level_encode(raw)); }
  BpeVocab& vocab() { return vocab_; }
  BpeTokenizer build() const {
    auto tok = BpeTokenizer::create(vocab_);
    EXPECT_TRUE(tok.ok()) << tok.status().to_string();
    return std::move(tok).value();
  }

 private:
  BpeVocab vocab_;
  std::map<std::string, int32_t> ids_;
};

int32_t byte_id(char c) { return static_cast<unsigned char>(c); }

TEST(Bpe, MergesByRankNotByLength) {
  BpeVocabBuilder v;
  v.merge("l", "l");     // rank 0
  v.merge("h", "e");     // rank 1
  v.merge("he", "ll");   // rank 2
  v.merge("hell", "o");  // rank 3
  v.merge("e", "l");     // rank 4: would split "hello" differently had it ranked first
  const BpeTokenizer tok = v.build();
  EXPECT_EQ(tok.encode("hello"), std::vector<int32_t>{v.id("hello")});
  EXPECT_EQ(tok.encode("hel"), (std::vector<int32_t>{v.id("he"), byte_id('l')}));
  EXPECT_EQ(tok.encode("ell"), (std::vector<int32_t>{byte_id('e'), v.id("ll")}));
  EXPECT_EQ(tok.decode(tok.encode("hello hello")), "hello hello");
}

TEST(Bpe, EqualPairsMergeLeftmostFirst) {
  BpeVocabBuilder v;
  v.merge("a", "a");
  const BpeTokenizer tok = v.build();
  EXPECT_EQ(tok.encode("aaa"), (std::vector<int32_t>{v.id("aa"), byte_id('a')}));
  EXPECT_EQ(tok.encode("aaaa"), (std::vector<int32_t>{v.id("aa"), v.id("aa")}));
}

TEST(Bpe, MergesStayInsideWords) {
  BpeVocabBuilder v;
  v.merge("a", " ");  // never applies: the pre-tokenizer puts the space with the next word
  v.merge(" ", "b");
  const BpeTokenizer tok = v.build();
  EXPECT_EQ(tok.encode("a b"), (std::vector<int32_t>{byte_id('a'), v.id(" b")}));
}

TEST(Bpe, MergeWithoutAJoinedTokenFallsBackToBytes) {
  BpeVocabBuilder v;
  v.merge("x", "y", /*add_joined=*/false);  // as llama.cpp allows: the joined text is no token
  const BpeTokenizer tok = v.build();
  EXPECT_EQ(tok.encode("xyz"), (std::vector<int32_t>{byte_id('x'), byte_id('y'), byte_id('z')}));
}

TEST(Bpe, IgnoreMergesTakesWholeWords) {
  BpeVocabBuilder v;
  const int32_t word = v.add(byte_level_encode("zq"));  // no merge makes it
  BpeVocab merged = v.vocab();
  EXPECT_EQ(BpeTokenizer::create(merged)->encode("zq"), (std::vector<int32_t>{byte_id('z'), byte_id('q')}));
  v.vocab().ignore_merges = true;
  EXPECT_EQ(v.build().encode("zq"), std::vector<int32_t>{word});
}

TEST(Bpe, SpecialTokensAreCutOutLongestFirst) {
  BpeVocabBuilder v;
  const int32_t end = v.add("<|end|>", TokenType::kControl);
  const int32_t tool = v.add("<tool>", TokenType::kUserDefined);
  const int32_t ab = v.add("ab", TokenType::kUserDefined);
  const int32_t bcd = v.add("bcd", TokenType::kUserDefined);
  v.merge(" ", "x");
  const BpeTokenizer tok = v.build();
  EXPECT_EQ(tok.encode("a<|end|> x"), (std::vector<int32_t>{byte_id('a'), end, v.id(" x")}));
  EXPECT_EQ(tok.encode("<tool><|end|>"), (std::vector<int32_t>{tool, end}));
  // "bcd" is longer, so it is cut out first and "ab" no longer matches.
  EXPECT_EQ(tok.encode("abcd"), (std::vector<int32_t>{byte_id('a'), bcd}));
  EXPECT_EQ(tok.encode("ab"), std::vector<int32_t>{ab});
  // Without parse_special a control token's text is text; user-defined tokens still match.
  const auto literal = tok.encode("<|end|><tool>", /*parse_special=*/false);
  ASSERT_EQ(literal.size(), 8u);
  EXPECT_EQ(literal.back(), tool);
  EXPECT_EQ(tok.decode(literal), "<|end|><tool>");
  // Control tokens show as nothing unless asked; user-defined ones verbatim.
  EXPECT_EQ(tok.decode({byte_id('a'), end, tool}), "a<tool>");
  EXPECT_EQ(tok.decode({byte_id('a'), end, tool}, /*render_special=*/true), "a<|end|><tool>");
  EXPECT_EQ(tok.decode_piece(end), "");
  EXPECT_EQ(tok.decode_piece(end, true), "<|end|>");
}

TEST(Bpe, AnyBytesRoundTrip) {
  BpeVocabBuilder v;
  v.merge("\xF0", "\x9F");
  const BpeTokenizer tok = v.build();
  std::string all;
  for (int b = 255; b >= 0; --b) all += static_cast<char>(b);
  for (const std::string& text : {all, std::string("\xFF\xFE a \xC3"), std::string("🦙 'S\r\n\t 123"), std::string(1, '\0')}) {
    EXPECT_EQ(tok.decode(tok.encode(text)), text);
  }
  EXPECT_TRUE(tok.encode("").empty());
  // An emoji's bytes: pieces that are not UTF-8 by themselves.
  const auto ids = tok.encode("🦙");
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(tok.decode_piece(ids[0]), "\xF0\x9F");
  EXPECT_EQ(tok.decode_piece(-1), "");
  EXPECT_EQ(tok.decode_piece(tok.size()), "");
  EXPECT_EQ(tok.decode({-5, ids[0], ids[1], ids[2], 1 << 30}), "🦙");
}

TEST(Bpe, MissingByteTokensBecomeUnknown) {
  BpeVocab v;
  v.tokens = {"a", "<unk>"};
  v.types = {TokenType::kNormal, TokenType::kUnknown};
  auto dropped = BpeTokenizer::create(v);
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(dropped->encode("aba"), (std::vector<int32_t>{0, 0}));
  v.unk_id = 1;
  auto unk = BpeTokenizer::create(v);
  ASSERT_TRUE(unk.ok());
  EXPECT_EQ(unk->encode("aba"), (std::vector<int32_t>{0, 1, 0}));
}

TEST(Bpe, CreateRefusesBadVocabularies) {
  const auto refused = [](BpeVocab v, const std::string& needle) {
    auto tok = BpeTokenizer::create(std::move(v));
    ASSERT_FALSE(tok.ok()) << "expected an error mentioning " << needle;
    EXPECT_EQ(tok.status().code(), Code::kInvalidArgument);
    EXPECT_NE(tok.status().message().find(needle), std::string::npos) << tok.status().message();
  };
  BpeVocab base;
  base.tokens = {"a", "b", "ab"};
  refused(BpeVocab{}, "empty");
  BpeVocab unknown_merge = base;
  unknown_merge.merges = {{"a", "b"}, {"a", "zz"}};
  refused(unknown_merge, "'zz' is not a token");
  BpeVocab bad_types = base;
  bad_types.types = {TokenType::kNormal};
  refused(bad_types, "token types");
  bad_types.types = {TokenType::kNormal, TokenType::kNormal, static_cast<TokenType>(9)};
  refused(bad_types, "unknown token type 9");
  BpeVocab bad_bos = base;
  bad_bos.bos_id = 3;
  refused(bad_bos, "bos token id 3");
  BpeVocab long_token = base;
  long_token.tokens.push_back(std::string(kMaxBpeTokenBytes + 1, 'x'));
  refused(long_token, "token 3 is");
  BpeVocab ok = base;
  ok.merges = {{"a", "b"}, {"a", "b"}};  // a repeated merge keeps its first rank
  auto tok = BpeTokenizer::create(ok);
  ASSERT_TRUE(tok.ok());
  EXPECT_EQ(tok->encode("ab"), std::vector<int32_t>{2});
  EXPECT_TRUE(tok->vocab().merges.empty());
  EXPECT_EQ(tok->vocab().types.size(), 3u);
}

TEST(Bpe, CompleteUtf8Prefix) {
  EXPECT_EQ(complete_utf8_prefix(""), 0u);
  EXPECT_EQ(complete_utf8_prefix("abc"), 3u);
  EXPECT_EQ(complete_utf8_prefix("a\xF0\x9F"), 1u);           // emoji cut after two bytes
  EXPECT_EQ(complete_utf8_prefix("a\xF0\x9F\xA6"), 1u);
  EXPECT_EQ(complete_utf8_prefix("a\xF0\x9F\xA6\x99"), 5u);   // complete
  EXPECT_EQ(complete_utf8_prefix("\xC3"), 0u);
  EXPECT_EQ(complete_utf8_prefix("\xC3\xA9"), 2u);
  EXPECT_EQ(complete_utf8_prefix("a\xFF"), 2u);               // never completes: not held back
  EXPECT_EQ(complete_utf8_prefix("\x80\x80\x80\x80\x80"), 5u);
  EXPECT_EQ(complete_utf8_prefix("\xE2" "A"), 2u);
}

}  // namespace
}  // namespace llmops::engine
