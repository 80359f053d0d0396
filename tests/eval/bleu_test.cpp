// BLEU against sacreBLEU's own test suite (github.com/mjpost/sacrebleu, test/test_bleu.py and
// test/test_sentence_bleu.py); each case names the test it comes from.
#include <gtest/gtest.h>

#include "eval/bleu.h"
#include "eval/metrics.h"

namespace llmops::eval {
namespace {

double corpus_bleu(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& ref_streams) {
  BleuStats total;
  for (size_t i = 0; i < hyps.size(); ++i) {
    std::vector<std::string> refs;
    for (const auto& stream : ref_streams) refs.push_back(stream[i]);
    total += bleu_stats(hyps[i], refs);
  }
  return bleu_from_stats(total, false).score;
}

double sentence_bleu(const std::string& hyp, const std::vector<std::string>& refs) {
  return bleu_from_stats(bleu_stats(hyp, refs), true).score;
}

const std::vector<std::vector<std::string>> kRefs = {
    {"The dog bit the man.", "It was not unexpected.", "The man bit him first."},
    {"The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."},
};
const std::vector<std::string> kHyps = {"The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."};

TEST(Bleu, CorpusReadmeExampleTwoReferences) {
  // test_bleu.py test_corpus_bleu: default settings (13a, exp smoothing) → 48.530827.
  EXPECT_NEAR(corpus_bleu(kHyps, kRefs), 48.530827, 1e-6);
}

TEST(Bleu, EmptyHypothesesScoreZeroAndAreKept) {
  // test_bleu.py test_corpus_bleu: ('', '', '') against the same references → 0.0.
  EXPECT_EQ(corpus_bleu({"", "", ""}, kRefs), 0.0);
}

TEST(Bleu, SegmentStatistics) {
  // test_bleu.py test_statistics: matches [4, 2, 1, 0] of totals [6, 5, 4, 3].
  BleuStats s = bleu_stats("am I am a character sequence", {"I am a symbol string sequence a a"});
  EXPECT_EQ(s.correct, (std::array<uint64_t, 4>{4, 2, 1, 0}));
  EXPECT_EQ(s.total, (std::array<uint64_t, 4>{6, 5, 4, 3}));
  EXPECT_EQ(s.hyp_len, 6u);
  EXPECT_EQ(s.ref_len, 8u);
}

TEST(Bleu, ScoreFromStatistics) {
  // test_bleu.py test_scoring: correct [9, 7, 5, 3], total [10, 8, 6, 4], lengths 11/11 → 0.8375922397.
  BleuStats s;
  s.correct = {9, 7, 5, 3};
  s.total = {10, 8, 6, 4};
  s.hyp_len = s.ref_len = 11;
  EXPECT_NEAR(bleu_from_stats(s, false).score / 100, 0.8375922397, 1e-8);
}

TEST(Bleu, SentenceBleuExpSmoothing) {
  // test_sentence_bleu.py test_api_sentence_bleu ('exp', 13a, case kept) → 8.493 (to 1e-3).
  EXPECT_NEAR(sentence_bleu("Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;",
                            {"producţia de zahăr brut se exprimă în zahăr alb;"}),
              8.493, 1e-3);
}

TEST(Bleu, SentenceBleuNoMatchIsZero) {
  // test_sentence_bleu.py test_api_sentence_bleu_zero (issue #141) → 0.0.
  EXPECT_EQ(sentence_bleu("this is a cat", {"okay thanks"}), 0.0);
}

TEST(Bleu, EffectiveOrderUsesOnlyOrdersTheHypothesisHas) {
  // test_bleu.py test_effective_order: "test" vs "a test" → exp(1 - 2/1) = 0.36787944...; "a test"
  // vs itself → 1.
  EXPECT_NEAR(sentence_bleu("test", {"a test"}) / 100, 0.3678794411714425, 1e-8);
  EXPECT_NEAR(sentence_bleu("a test", {"a test"}) / 100, 1.0, 1e-12);
}

TEST(Bleu, Tokenizer13a) {
  // By hand from the 13a rules: punctuation apart, a period or comma inside a number kept, a
  // dash after a digit split, entities unescaped, "-\n" joins, <skipped> dropped.
  EXPECT_EQ(tokenize_13a("Hello, world! 3.14 and 1,000 5-6 &quot;x&quot; (a)"),
            (std::vector<std::string>{"Hello", ",", "world", "!", "3.14", "and", "1,000", "5", "-", "6", "\"", "x", "\"", "(", "a", ")"}));
  EXPECT_EQ(tokenize_13a("con-\ntinue <skipped>end.  "), (std::vector<std::string>{"continue", "end", "."}));
  // The apostrophe (0x27) lies outside 13a's symbol ranges: "it's" stays one token.
  EXPECT_EQ(tokenize_13a("it's"), (std::vector<std::string>{"it's"}));
  // Non-Latin text has no spaces to split on: one token per whitespace-separated run.
  EXPECT_EQ(tokenize_13a("我爱北京。"), (std::vector<std::string>{"我爱北京。"}));
  EXPECT_EQ(tokenize_13a("مرحبا بالعالم"), (std::vector<std::string>{"مرحبا", "بالعالم"}));
  // U+3000 (ideographic space) separates as Python's str.split() does.
  EXPECT_EQ(tokenize_13a("a\u3000b"), (std::vector<std::string>{"a", "b"}));
}

TEST(Bleu, ClosestReferenceLengthPrefersTheShorterOnATie) {
  // hyp of 3 tokens, references of 2 and 4: both 1 away, the 2 is taken.
  BleuStats s = bleu_stats("a b c", {"a b c d", "a b"});
  EXPECT_EQ(s.ref_len, 2u);
}

TEST(Bleu, MultiReferenceClipsByTheLargestCountInOneReference) {
  // "the the the": "the" appears twice in ref 2, once in ref 1 → 2 clipped matches, not 3.
  BleuStats s = bleu_stats("the the the", {"the cat", "the the dog"});
  EXPECT_EQ(s.correct[0], 2u);
  EXPECT_EQ(s.total[0], 3u);
}

TEST(Bleu, SignatureAndMetricShape) {
  EXPECT_EQ(bleu_signature(1, false), "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.4.3");
  EXPECT_EQ(bleu_signature(-1, true), "nrefs:var|case:mixed|eff:yes|tok:13a|smooth:exp|version:2.4.3");
  auto m = make_metric("bleu");
  ASSERT_TRUE(m.ok());
  // sacreBLEU refuses a segment with no non-empty reference; the metric leaves it out.
  EXPECT_TRUE((*m)->example_stats("x", {""}).empty());
  std::vector<double> sum;
  for (size_t i = 0; i < kHyps.size(); ++i) add_stats(sum, (*m)->example_stats(kHyps[i], {kRefs[0][i], kRefs[1][i]}));
  EXPECT_NEAR((*m)->aggregate(sum), 48.530827, 1e-6);
  EXPECT_FALSE(make_metric("bleurt").ok());
}

}  // namespace
}  // namespace llmops::eval
