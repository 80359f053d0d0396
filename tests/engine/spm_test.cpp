#include "tokenizer/spm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <sstream>

namespace llmops::engine {
namespace {

const std::string kSp = "\xE2\x96\x81";  // "▁"

// A hand-made vocabulary: <unk>, <s>, </s>, the 256 byte tokens (ids 3..258), then whatever a
// test adds, so every merge can be checked by hand.
class VocabBuilder {
 public:
  explicit VocabBuilder(bool with_bytes = true) {
    add("<unk>", 0);
    add("<s>", 0);
    add("</s>", 0);
    if (!with_bytes) return;
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      add(name, 0);
    }
  }
  int32_t add(const std::string& piece, float score) {
    vocab_.pieces.push_back(piece);
    vocab_.scores.push_back(score);
    ids_[piece] = static_cast<int32_t>(vocab_.pieces.size() - 1);
    return ids_[piece];
  }
  int32_t id(const std::string& piece) const { return ids_.at(piece); }
  SpmVocab& vocab() { return vocab_; }
  SpmTokenizer build() {
    auto tok = SpmTokenizer::create(vocab_);
    EXPECT_TRUE(tok.ok()) << tok.status().to_string();
    return std::move(tok).value();
  }

 private:
  SpmVocab vocab_;
  std::map<std::string, int32_t> ids_;
};

int32_t byte_id(unsigned char b) { return 3 + b; }  // in VocabBuilder vocabularies

TEST(Spm, HigherScoreMergesFirstAndTiesGoLeft) {
  VocabBuilder v;
  for (const char* c : {"a", "b", "c", "x", "y", "z"}) v.add(c, 0);
  v.add("ab", -1);
  v.add("bc", -1);  // same score as "ab": the leftmost pair wins
  v.add("xy", -2);
  v.add("yz", -1);  // better score wins even though it is further right
  v.vocab().add_space_prefix = false;
  SpmTokenizer tok = v.build();
  EXPECT_EQ(tok.encode("abc"), (std::vector<int32_t>{v.id("ab"), v.id("c")}));
  EXPECT_EQ(tok.encode("bcab"), (std::vector<int32_t>{v.id("bc"), v.id("ab")}));
  EXPECT_EQ(tok.encode("xyz"), (std::vector<int32_t>{v.id("x"), v.id("yz")}));
}

TEST(Spm, MergesChainAndScoreOrderBeatsLongestMatch) {
  VocabBuilder v;
  v.add(kSp, 0);
  for (const char* c : {"h", "e", "l", "o"}) v.add(c, 0);
  v.add("ll", -1);
  v.add("he", -2);
  v.add("hell", -3);
  v.add("hello", -4);
  v.add(kSp + "hello", -5);
  SpmTokenizer tok = v.build();
  // ll, he, hell, hello, ▁hello: one token.
  EXPECT_EQ(tok.encode("hello"), (std::vector<int32_t>{v.id(kSp + "hello")}));
  EXPECT_EQ(tok.encode("hello hello"), (std::vector<int32_t>{v.id(kSp + "hello"), v.id(kSp + "hello")}));
  EXPECT_EQ(tok.encode("hell"), (std::vector<int32_t>{v.id(kSp), v.id("hell")}));  // no "▁h"

  // Adding "lo" with the best score takes the second l first, so "hell" can never form.
  v.add("lo", -0.5f);
  SpmTokenizer tok2 = v.build();
  EXPECT_EQ(tok2.encode("hello"), (std::vector<int32_t>{v.id(kSp), v.id("he"), v.id("l"), v.id("lo")}));
}

TEST(Spm, StaleCandidatesAreSkipped) {
  VocabBuilder v;
  v.add("a", 0);
  v.add("aa", -1);
  v.add("aaaa", -2);
  v.vocab().add_space_prefix = false;
  SpmTokenizer tok = v.build();
  // The pairs (0,1) and (1,2) tie; (0,1) merges and (1,2) goes stale.
  EXPECT_EQ(tok.encode("aaa"), (std::vector<int32_t>{v.id("aa"), v.id("a")}));
  EXPECT_EQ(tok.encode("aaaa"), (std::vector<int32_t>{v.id("aaaa")}));
  EXPECT_EQ(tok.encode("aaaaa"), (std::vector<int32_t>{v.id("aaaa"), v.id("a")}));
}

TEST(Spm, ByteFallbackForMissingCharacters) {
  VocabBuilder v;
  v.add(kSp, 0);
  v.add("a", 0);
  SpmTokenizer tok = v.build();
  EXPECT_EQ(tok.encode("\xC3\xA9"), (std::vector<int32_t>{v.id(kSp), byte_id(0xC3), byte_id(0xA9)}));  // é
  EXPECT_EQ(tok.encode("a\xF0\x9F\x99\x82"),  // a🙂
            (std::vector<int32_t>{v.id(kSp), v.id("a"), byte_id(0xF0), byte_id(0x9F), byte_id(0x99), byte_id(0x82)}));
  EXPECT_EQ(tok.encode("\n"), (std::vector<int32_t>{v.id(kSp), byte_id('\n')}));
  EXPECT_EQ(tok.decode(tok.encode("\xC3\xA9")), "\xC3\xA9");
}

TEST(Spm, MalformedUtf8BytesAreSymbolsOfTheirOwn) {
  VocabBuilder v;
  v.add("a", 0);
  v.add("ab", -1);
  v.vocab().add_space_prefix = false;
  SpmTokenizer tok = v.build();
  EXPECT_EQ(tok.encode("\xFF" "a"), (std::vector<int32_t>{byte_id(0xFF), v.id("a")}));
  // A lead byte whose continuation is missing does not swallow the "a" after it.
  EXPECT_EQ(tok.encode("\xC3" "ab"), (std::vector<int32_t>{byte_id(0xC3), v.id("ab")}));
  EXPECT_EQ(tok.encode("\xE2\x96"), (std::vector<int32_t>{byte_id(0xE2), byte_id(0x96)}));  // "▁" cut short
  EXPECT_EQ(tok.encode("\x80"), (std::vector<int32_t>{byte_id(0x80)}));
  for (std::string s : {"\xFF" "a", "\xC3" "ab", "\xE2\x96", "a\xF0\x9F\x99"}) EXPECT_EQ(tok.decode(tok.encode(s)), s);
}

TEST(Spm, WithoutByteTokensUnknownCharactersAreUnk) {
  VocabBuilder v(/*with_bytes=*/false);
  v.add(kSp, 0);
  v.add("a", 0);
  SpmTokenizer tok = v.build();
  EXPECT_EQ(tok.encode("a\xC3\xA9\xC3\xA9"), (std::vector<int32_t>{v.id(kSp), v.id("a"), 0, 0}));
  EXPECT_EQ(tok.decode(tok.encode("a\xC3\xA9")), "a");  // <unk> shows as nothing
}

TEST(Spm, EmptyTextGivesNoIds) {
  VocabBuilder v;
  v.add(kSp, 0);
  SpmTokenizer tok = v.build();
  EXPECT_TRUE(tok.encode("").empty());
  EXPECT_EQ(tok.decode({}), "");
  v.vocab().add_space_prefix = false;
  EXPECT_TRUE(v.build().encode("").empty());
}

TEST(Spm, RoundTrips) {
  VocabBuilder v;
  v.add(kSp, 0);
  for (const char* c : {"a", "b", "e", "h", "l", "o", "w", "r", "d"}) v.add(c, 0);
  v.add(kSp + kSp, -1);
  v.add("ll", -1);
  v.add(kSp + "h", -2);
  v.add("lo", -2);
  v.add(kSp + "w", -3);
  v.add("or", -3);
  const std::vector<std::string> texts = {
      "hello world", " hello", "hello ", "  two leading", "trailing two  ", "multiple    spaces here",
      " ", "   ", "\t", "tab\tand\nnewline\n", "\n\nx\n", "\xF0\x9F\x98\x80 emoji \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD",
      "\xC3\x84pfel", "\xE1\x9E\x80\xE1\x9E\xB6", "a"};
  for (bool prefix : {true, false}) {
    v.vocab().add_space_prefix = prefix;
    SpmTokenizer tok = v.build();
    for (const std::string& text : texts) {
      EXPECT_EQ(tok.decode(tok.encode(text)), text) << "prefix=" << prefix << " text=[" << text << "]";
    }
  }
}

TEST(Spm, DecodePiece) {
  VocabBuilder v;
  const int32_t hello = v.add(kSp + "hello", -1);
  const int32_t user = v.add(kSp + "user", 0);
  v.vocab().types.clear();
  SpmTokenizer derive = v.build();
  ASSERT_EQ(derive.vocab().types.size(), static_cast<size_t>(derive.size()));
  EXPECT_EQ(derive.vocab().types[0], TokenType::kUnknown);
  EXPECT_EQ(derive.vocab().types[1], TokenType::kControl);
  EXPECT_EQ(derive.vocab().types[2], TokenType::kControl);
  EXPECT_EQ(derive.vocab().types[byte_id(0x41)], TokenType::kByte);
  EXPECT_EQ(derive.vocab().types[hello], TokenType::kNormal);

  SpmVocab typed = derive.vocab();
  typed.types[user] = TokenType::kUserDefined;
  auto made = SpmTokenizer::create(typed);
  ASSERT_TRUE(made.ok()) << made.status().to_string();
  const SpmTokenizer& tok = *made;
  EXPECT_EQ(tok.decode_piece(1, false), "");
  EXPECT_EQ(tok.decode_piece(2, true), "");
  EXPECT_EQ(tok.decode_piece(0, false), "");
  EXPECT_EQ(tok.decode_piece(byte_id(0x41), false), "A");
  EXPECT_EQ(tok.decode_piece(byte_id(0x00), false), std::string(1, '\0'));
  EXPECT_EQ(tok.decode_piece(hello, false), " hello");
  EXPECT_EQ(tok.decode_piece(hello, true), "hello");
  EXPECT_EQ(tok.decode_piece(user, false), kSp + "user");  // user-defined: verbatim
  EXPECT_EQ(tok.decode_piece(-1, false), "");
  EXPECT_EQ(tok.decode_piece(tok.size(), false), "");
  // The dummy space is dropped at the start and after each BOS, nowhere else.
  EXPECT_EQ(tok.decode({1, hello, hello}), "hello hello");
  EXPECT_EQ(tok.decode({hello, 1, hello, 2}), "hellohello");
  EXPECT_EQ(tok.decode({hello, 12345, -7}), "hello");

  typed.add_space_prefix = false;
  auto no_prefix = SpmTokenizer::create(typed);
  ASSERT_TRUE(no_prefix.ok());
  EXPECT_EQ(no_prefix->decode_piece(hello, true), " hello");
  EXPECT_EQ(no_prefix->decode({hello}), " hello");
}

TEST(Spm, LonePrefixSpaceDoesNotStripTheNextPiece) {
  VocabBuilder v;
  v.add(kSp, 0);
  v.add(kSp + "a", -1);
  SpmTokenizer tok = v.build();
  // " a" -> "▁▁a" -> ▁ ▁a (no "▁▁"): the first piece is only the dummy space.
  EXPECT_EQ(tok.encode(" a"), (std::vector<int32_t>{v.id(kSp), v.id(kSp + "a")}));
  EXPECT_EQ(tok.decode(tok.encode(" a")), " a");
}

TEST(Spm, UnescapedVocabularyUsesPlainSpaces) {
  VocabBuilder v;
  v.add(" ", 0);
  v.add("a", 0);
  v.add(" a", -1);
  v.vocab().escape_spaces = false;
  SpmTokenizer tok = v.build();
  EXPECT_EQ(tok.encode("a a"), (std::vector<int32_t>{v.id(" a"), v.id(" a")}));
  EXPECT_EQ(tok.decode(tok.encode("a  a")), "a  a");
  EXPECT_EQ(tok.encode(kSp), (std::vector<int32_t>{v.id(" "), byte_id(0xE2), byte_id(0x96), byte_id(0x81)}));
}

TEST(Spm, DuplicatePiecesLastOneWins) {
  VocabBuilder v;
  v.add("a", 0);
  const int32_t second = v.add("a", 0);
  v.vocab().add_space_prefix = false;
  EXPECT_EQ(v.build().encode("a"), (std::vector<int32_t>{second}));
}

TEST(Spm, CreateRefusesBadVocabularies) {
  auto refuses = [](SpmVocab vocab, const std::string& needle) {
    auto tok = SpmTokenizer::create(std::move(vocab));
    ASSERT_FALSE(tok.ok()) << needle;
    EXPECT_EQ(tok.status().code(), Code::kInvalidArgument);
    EXPECT_NE(tok.status().message().find(needle), std::string::npos) << tok.status().message();
  };
  VocabBuilder v;
  const SpmVocab good = v.vocab();
  EXPECT_TRUE(SpmTokenizer::create(good).ok());

  refuses(SpmVocab{}, "empty");
  SpmVocab bad = good;
  bad.scores.pop_back();
  refuses(bad, "scores");
  bad = good;
  bad.types.assign(3, TokenType::kNormal);
  refuses(bad, "token types");
  bad = good;
  bad.types.assign(bad.pieces.size(), TokenType::kNormal);
  bad.types[5] = static_cast<TokenType>(9);
  refuses(bad, "token 5 has unknown token type 9");
  bad = good;
  bad.scores[7] = std::nanf("");
  refuses(bad, "token 7 is NaN");
  bad = good;
  bad.bos_id = static_cast<int32_t>(bad.pieces.size());
  refuses(bad, "bos id");
  bad = good;
  bad.unk_id = -2;
  refuses(bad, "unk id");

  SpmVocab no_bytes = VocabBuilder(false).vocab();
  EXPECT_TRUE(SpmTokenizer::create(no_bytes).ok());
  no_bytes.unk_id = -1;
  refuses(no_bytes, "neither");
  bad = good;
  bad.eos_id = -1;  // "none" is allowed
  EXPECT_TRUE(SpmTokenizer::create(bad).ok());
}

// Merges one best pair at a time over the whole list, as llama2.c's encoder does: the
// reference the priority-queue encoder must agree with. Inputs are valid UTF-8 only.
std::vector<int32_t> naive_encode(const SpmVocab& vocab, std::string text) {
  std::map<std::string, int32_t> ids;
  for (size_t i = 0; i < vocab.pieces.size(); ++i) ids[vocab.pieces[i]] = static_cast<int32_t>(i);
  if (text.empty()) return {};
  text = " " + text;
  std::string escaped;
  for (char c : text) escaped += c == ' ' ? kSp : std::string(1, c);
  std::vector<std::string> parts;
  for (size_t i = 0; i < escaped.size();) {
    const auto lead = static_cast<unsigned char>(escaped[i]);
    const size_t len = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    parts.push_back(escaped.substr(i, len));
    i += len;
  }
  for (;;) {
    size_t best = parts.size();
    float best_score = 0;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      auto it = ids.find(parts[i] + parts[i + 1]);
      if (it == ids.end()) continue;
      if (best == parts.size() || vocab.scores[it->second] > best_score) best = i, best_score = vocab.scores[it->second];
    }
    if (best == parts.size()) break;
    parts[best] += parts[best + 1];
    parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
  std::vector<int32_t> out;
  for (const std::string& p : parts) {
    if (auto it = ids.find(p); it != ids.end()) {
      out.push_back(it->second);
    } else {
      for (unsigned char b : p) out.push_back(byte_id(b));
    }
  }
  return out;
}

TEST(Spm, AgreesWithOneMergeAtATimeOnRandomVocabularies) {
  std::mt19937 rng(42);
  const std::vector<std::string> alphabet = {kSp, "a", "b", "c", "\xC3\xA9", "\xE2\x82\xAC"};
  auto random_string = [&](int min_chars, int max_chars) {
    std::string s;
    const int n = std::uniform_int_distribution<int>(min_chars, max_chars)(rng);
    for (int i = 0; i < n; ++i) s += alphabet[rng() % alphabet.size()];
    return s;
  };
  for (int round = 0; round < 200; ++round) {
    VocabBuilder v;
    std::map<std::string, bool> seen;
    // Some characters fall back to bytes, but not the space mark: its bytes would decode to
    // "▁" rather than " " (as in llama.cpp), and every real vocabulary has it.
    for (const std::string& c : alphabet) {
      if (c == kSp || rng() % 4 != 0) v.add(c, 0), seen[c] = true;
    }
    for (int i = 0; i < 30; ++i) {
      std::string piece = random_string(2, 4);
      if (seen[piece]) continue;
      seen[piece] = true;
      v.add(piece, -static_cast<float>(rng() % 5));  // few distinct scores: many ties
    }
    SpmTokenizer tok = v.build();
    for (int t = 0; t < 20; ++t) {
      std::string text = random_string(0, 12);
      for (size_t p; (p = text.find(kSp)) != std::string::npos;) text.replace(p, kSp.size(), " ");
      ASSERT_EQ(tok.encode(text), naive_encode(v.vocab(), text)) << "round " << round << " text [" << text << "]";
      ASSERT_EQ(tok.decode(tok.encode(text)), text);
    }
  }
}

// --- llama2.c tok512 (stories260K), from ../shared ---

std::string tok512_path() { return std::string(LLMOPS_SHARED_DIR) + "/models/stories260K/tok512.bin"; }

bool file_exists(const std::string& path) { return std::ifstream(path).good(); }

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string write_temp(const std::string& name, const std::string& bytes) {
  const std::string path = ::testing::TempDir() + "spm_test_" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  return path;
}

#define SKIP_WITHOUT_TOK512()                                                               \
  if (!file_exists(tok512_path()))                                                          \
  GTEST_SKIP() << "../shared is absent: " << tok512_path() << " (stories260K tok512.bin) not found"

TEST(SpmTok512, EncodesAndDecodesLikeLlama2c) {
  SKIP_WITHOUT_TOK512();
  auto vocab = load_llama2c_tokenizer(tok512_path(), 512);
  ASSERT_TRUE(vocab.ok()) << vocab.status().to_string();
  EXPECT_FALSE(vocab->escape_spaces);
  EXPECT_TRUE(vocab->add_space_prefix);
  EXPECT_EQ(vocab->pieces[1], "\n<s>\n");
  auto tok = SpmTokenizer::create(std::move(vocab).value());
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  EXPECT_EQ(tok->size(), 512);
  EXPECT_EQ(tok->vocab().bos_id, 1);
  EXPECT_EQ(tok->vocab().types[1], TokenType::kControl);
  EXPECT_EQ(tok->vocab().types[2], TokenType::kControl);
  EXPECT_EQ(tok->vocab().types[0], TokenType::kUnknown);
  EXPECT_EQ(tok->vocab().types[3 + 'A'], TokenType::kByte);
  EXPECT_EQ(tok->decode_piece(1, false), "");

  const std::vector<int32_t> once = {403, 407, 261, 378};
  EXPECT_EQ(tok->encode("Once upon a time"), once);
  EXPECT_EQ(tok->decode(once), "Once upon a time");
  std::vector<int32_t> with_bos = {1};
  with_bos.insert(with_bos.end(), once.begin(), once.end());
  EXPECT_EQ(tok->decode(with_bos), "Once upon a time");

  // Case 1 of reference_greedy.txt: llama2.c's stream and llama.cpp's text.
  const std::vector<int32_t> stream = {
      403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408,
      419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426,
      338, 391, 266, 267, 337, 335, 312, 432, 398, 312, 286, 267, 414, 270, 333, 415, 426, 13,  438, 310};
  const std::string story =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a "
      "big, red ball. She wanted to play with it, but it was too high.\nLily";
  EXPECT_EQ(tok->decode(stream), story);
  EXPECT_EQ(tok->decode(tok->encode(story)), story);
  for (std::string text : {"", " ", "  x  ", "tab\tnew\nline", "\xC3\x84pfel \xF0\x9F\x99\x82", "\xFF"}) {
    EXPECT_EQ(tok->decode(tok->encode(text)), text);
  }
}

TEST(SpmTok512, RefusesTruncatedAndCorruptFiles) {
  SKIP_WITHOUT_TOK512();
  const std::string bytes = read_all(tok512_path());
  ASSERT_EQ(bytes.size(), 6227u);
  auto refused = [](const std::string& path, int32_t vocab_size, const std::string& needle) {
    auto vocab = load_llama2c_tokenizer(path, vocab_size);
    ASSERT_FALSE(vocab.ok()) << needle;
    EXPECT_EQ(vocab.status().code(), Code::kInvalidArgument);
    EXPECT_NE(vocab.status().message().find(needle), std::string::npos) << vocab.status().message();
  };

  const std::string cut_last = write_temp("cut_last.bin", bytes.substr(0, bytes.size() - 1));
  refused(cut_last, 512, "record 511 of 512 is truncated");
  const std::string cut_header = write_temp("cut_header.bin", bytes.substr(0, 4 + 8 + 5 + 3));
  refused(cut_header, 512, "record 1 of 512 is truncated");
  const std::string cut_max = write_temp("cut_max.bin", bytes.substr(0, 2));
  refused(cut_max, 512, "too short");
  refused(tok512_path(), 513, "record 512 of 513 is truncated");
  refused(tok512_path(), 511, "wrong vocab_size");
  refused(tok512_path(), 0, "vocab_size 0");

  std::string negative = bytes;
  const int32_t minus_one = -1;
  std::memcpy(&negative[4 + 4], &minus_one, 4);  // record 0: score at 4, length at 8
  const std::string negative_path = write_temp("negative.bin", negative);
  refused(negative_path, 512, "record 0 of 512 has length -1");

  std::string huge = bytes;
  const int32_t too_long = 1025;
  std::memcpy(&huge[4 + 4], &too_long, 4);
  const std::string huge_path = write_temp("huge.bin", huge);
  refused(huge_path, 512, "record 0 of 512 has length 1025");

  auto missing = load_llama2c_tokenizer(::testing::TempDir() + "spm_test_no_such_file.bin", 512);
  EXPECT_EQ(missing.status().code(), Code::kNotFound);

  for (const std::string& p : {cut_last, cut_header, cut_max, negative_path, huge_path}) std::remove(p.c_str());
}

}  // namespace
}  // namespace llmops::engine
