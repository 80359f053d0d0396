// chrF against sacreBLEU's own test suite (github.com/mjpost/sacrebleu, test/test_chrf.py);
// each case names the test it comes from.
#include <gtest/gtest.h>

#include "eval/chrf.h"
#include "eval/metrics.h"

namespace llmops::eval {
namespace {

double corpus_chrf(const std::vector<std::string>& hyps, const std::vector<std::string>& refs, const ChrfOptions& opt) {
  ChrfStats total;
  for (size_t i = 0; i < hyps.size(); ++i) {
    ChrfStats s = chrf_stats(hyps[i], {refs[i]}, opt);
    if (total.empty()) total.assign(s.size(), 0);
    for (size_t k = 0; k < s.size(); ++k) total[k] += s[k];
  }
  return chrf_from_stats(total, opt);
}

ChrfOptions beta3(bool eps, bool whitespace = false) {
  ChrfOptions o;
  o.beta = 3;
  o.eps_smoothing = eps;
  o.whitespace = whitespace;
  return o;
}

TEST(Chrf, EpsSmoothingCases) {
  // test_chrf.py test_chrf: char_order 6, word_order 0, beta 3, eps_smoothing=True.
  struct Case {
    std::vector<std::string> hyp, ref;
    double want;
  };
  const std::vector<Case> cases = {
      {{"abcdefg"}, {"hijklmnop"}, 0.0},
      {{"a"}, {"b"}, 0.0},
      {{""}, {"b"}, 0.0},
      {{""}, {"ref"}, 0.0},
      {{""}, {"reference"}, 0.0},
      {{"aa"}, {"ab"}, 8.3333},
      {{"a", "b"}, {"a", "c"}, 8.3333},
      {{"a"}, {"a"}, 16.6667},
      {{"a b c"}, {"a b c"}, 50.0},
      {{"a b c"}, {"abc"}, 50.0},
      {{" risk assessment must be made of those who are qualified and expertise in the sector - these are the scientists ."},
       {"risk assessment has to be undertaken by those who are qualified and expert in that area - that is the scientists ."},
       63.361730},
      {{" Die    Beziehung zwischen  Obama und Netanjahu ist nicht gerade  freundlich. "},
       {"Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich."},
       64.1302698},
      {{"Niemand hat die Absicht, eine Mauer zu errichten"}, {"Niemand hat die Absicht, eine Mauer zu errichten"}, 100.0},
  };
  for (const auto& c : cases) EXPECT_NEAR(corpus_chrf(c.hyp, c.ref, beta3(true)), c.want, 1e-4) << c.hyp[0];
}

TEST(Chrf, EffectiveOrderCases) {
  // test_chrf.py test_chrf_eff_order: beta 3, eps_smoothing=False (sacreBLEU's default mode).
  EXPECT_NEAR(corpus_chrf({"a"}, {"a"}, beta3(false)), 100.0, 1e-4);
  EXPECT_NEAR(corpus_chrf({""}, {"reference"}, beta3(false)), 0.0, 1e-4);
  EXPECT_NEAR(corpus_chrf({"a b c"}, {"a b c"}, beta3(false)), 100.0, 1e-4);
  EXPECT_NEAR(corpus_chrf({"a b c"}, {"abc"}, beta3(false)), 100.0, 1e-4);
  EXPECT_NEAR(corpus_chrf({""}, {"c"}, beta3(false)), 0.0, 1e-4);
  EXPECT_NEAR(corpus_chrf({"a", "b"}, {"a", "c"}, beta3(false)), 50.0, 1e-4);
  EXPECT_NEAR(corpus_chrf({"aa"}, {"ab"}, beta3(false)), 25.0, 1e-4);
}

TEST(Chrf, KeepWhitespaceCases) {
  // test_chrf.py test_chrf_keep_whitespace: beta 3, whitespace kept.
  EXPECT_NEAR(corpus_chrf({"Die Beziehung zwischen Obama und Netanjahu ist nicht gerade freundlich."},
                          {"Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich."}, beta3(false, true)),
              67.3481606, 1e-4);
  EXPECT_NEAR(corpus_chrf({"risk assessment must be made of those who are qualified and expertise in the sector - these are the scientists ."},
                          {"risk assessment has to be undertaken by those who are qualified and expert in that area - that is the scientists ."},
                          beta3(false, true)),
              65.2414427, 1e-4);
}

TEST(Chrf, SentenceLevelDefaultsWithEpsSmoothing) {
  // test_chrf.py test_chrf_sentence_level: sentence_chrf(..., eps_smoothing=True), beta 2.
  ChrfOptions o;
  o.eps_smoothing = true;
  auto sent = [&](const std::string& h, const std::string& r) { return chrf_from_stats(chrf_stats(h, {r}, o), o); };
  EXPECT_NEAR(sent("Co nás nejvíc trápí, protože lékaři si vybírají, kdo bude žít a kdo zemře.",
                   "Nejvíce smutní jsme z toho, že musíme rozhodovat o tom, kdo bude žít a kdo zemře."),
              39.14078509, 1e-4);
  EXPECT_NEAR(sent("Nebo prostě nemají vybavení, které by jim pomohlo, uvedli lékaři.",
                   "A někdy nemáme ani potřebný materiál, abychom jim pomohli, popsali lékaři."),
              31.22557079, 1e-4);
  EXPECT_NEAR(sent("Lapali po dechu, jejich životy skončily dřív, než skutečně začaly.",
                   "Lapali po dechu a pak jejich život skončil - dřív, než skutečně mohl začít, připomněli."),
              57.15704367, 1e-4);
}

TEST(Chrf, BestReferenceSuppliesTheStatistics) {
  ChrfOptions o;
  ChrfStats s = chrf_stats("the cat sat", {"a dog ran far away", "the cat sat"}, o);
  EXPECT_NEAR(chrf_from_stats(s, o), 100.0, 1e-9);
  // Code points, not bytes: a CJK identity is 100.
  EXPECT_NEAR(chrf_from_stats(chrf_stats("我爱北京", {"我爱北京"}, o), o), 100.0, 1e-9);
  EXPECT_EQ(chrf_signature(1), "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.4.3");
}

}  // namespace
}  // namespace llmops::eval
