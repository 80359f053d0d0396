// Learning a SentencePiece-style BPE vocabulary: the pieces it learns, that the tokenizer built
// from it encodes every text and decodes it back exactly, that it compresses what it learned
// from, and that it is deterministic.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "tokenizer/spm_train.h"
#include "tokenizer/tokenizer.h"

namespace llmops::engine {
namespace {

std::vector<std::string> corpus() {
  std::vector<std::string> texts;
  std::mt19937 rng(7);
  const char* names[] = {"Zara", "Tom", "the cat", "a fox"};
  const char* verbs[] = {"walked to", "looked at", "sang by", "dreamed of"};
  const char* places[] = {"the sea", "the old mill", "the garden", "the shore"};
  for (int i = 0; i < 400; ++i) {
    // One draw per statement: the operands of + are evaluated in no fixed order.
    const char* name = names[rng() % 4];
    const char* verb = verbs[rng() % 4];
    const char* place = places[rng() % 4];
    texts.push_back(std::string(name) + " " + verb + " " + place + ".\nThe end.");
  }
  return texts;
}

Tokenizer tokenizer_of(SpmVocab v) {
  auto spm = SpmTokenizer::create(std::move(v));
  EXPECT_TRUE(spm.ok()) << spm.status().message();
  return Tokenizer(std::move(*spm), true);
}

TEST(SpmTrain, LearnsFrequentWordsAsPieces) {
  SpmTrainer t;
  for (const auto& s : corpus()) t.add(s);
  SpmTrainOptions opt;
  opt.vocab_size = 320;
  auto v = t.train(opt);
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_EQ(v->pieces.size(), 320u);
  EXPECT_EQ(v->pieces[0], "<unk>");
  EXPECT_EQ(v->pieces[3], "<0x00>");
  EXPECT_EQ(v->pieces[258], "<0xFF>");
  for (const char* w : {"\xE2\x96\x81the", "\xE2\x96\x81walked", "\xE2\x96\x81" "end."}) {
    EXPECT_NE(std::find(v->pieces.begin(), v->pieces.end(), w), v->pieces.end()) << w;
  }
  // Merges score in the order learned.
  for (size_t i = 260; i < v->scores.size(); ++i) {
    if (v->scores[i] < 0 && v->scores[i - 1] < 0) {
      EXPECT_LT(v->scores[i], v->scores[i - 1]);
    }
  }
}

TEST(SpmTrain, EncodesAnyTextAndDecodesItBack) {
  SpmTrainer t;
  for (const auto& s : corpus()) t.add(s);
  auto v = t.train({});
  ASSERT_TRUE(v.ok());
  Tokenizer tok = tokenizer_of(*v);
  for (const std::string s : {"Zara walked to the sea.", "  two  spaces\nand a newline", "Ünïcödé ✓ and 日本語 are bytes here", "The end."}) {
    EXPECT_EQ(tok.decode(tok.encode(s, false)), s);
  }
  // What it learned from compresses well: each word (newline included) is a single token.
  const std::string text = corpus()[0];
  const std::vector<int32_t> ids = tok.encode(text, false);
  const size_t words = 1 + std::count(text.begin(), text.end(), ' ') + 2 * std::count(text.begin(), text.end(), '\n');
  EXPECT_LE(ids.size(), words) << text << " → " << testing::PrintToString(ids);
}

TEST(SpmTrain, SameVocabularyWhateverTheOrder) {
  auto texts = corpus();
  SpmTrainer a, b;
  for (const auto& s : texts) a.add(s);
  std::reverse(texts.begin(), texts.end());
  for (const auto& s : texts) b.add(s);
  SpmTrainOptions opt;
  opt.vocab_size = 300;
  auto va = a.train(opt), vb = b.train(opt);
  ASSERT_TRUE(va.ok() && vb.ok());
  EXPECT_EQ(va->pieces, vb->pieces);
}

TEST(SpmTrain, RefusesWhatCannotWork) {
  SpmTrainer t;
  EXPECT_EQ(t.train({}).status().code(), Code::kInvalidArgument);  // nothing added
  t.add("some text");
  SpmTrainOptions opt;
  opt.vocab_size = 259;
  EXPECT_EQ(t.train(opt).status().code(), Code::kInvalidArgument);
  opt.vocab_size = 300;  // room for more merges than the text has: fewer pieces, still valid
  auto v = t.train(opt);
  ASSERT_TRUE(v.ok());
  EXPECT_LT(v->pieces.size(), 300u);
  EXPECT_TRUE(SpmTokenizer::create(*v).ok());
}

}  // namespace
}  // namespace llmops::engine
