// Exact match and F1 with SQuAD's normalisation (the official evaluate-v1.1.py /
// evaluate-v2.0.py: normalize_answer, exact_match_score, f1_score); the values are worked by
// hand from those functions.
#include <gtest/gtest.h>

#include "eval/squad.h"

namespace llmops::eval {
namespace {

TEST(Squad, Normalisation) {
  EXPECT_EQ(squad_normalize("The  Eiffel Tower!"), "eiffel tower");
  EXPECT_EQ(squad_normalize("an apple, a pear and THE plum"), "apple pear and plum");
  // Articles only as whole words: "another", "theory", "Anna" keep their letters.
  EXPECT_EQ(squad_normalize("another theory of Anna"), "another theory of anna");
  // Punctuation goes before the article rule, so "the-end" becomes "theend" (no article left).
  EXPECT_EQ(squad_normalize("the-end"), "theend");
  // Only ASCII punctuation is removed; other scripts pass through lower-cased.
  EXPECT_EQ(squad_normalize("Ünïcode «quoted» 北京。"), "ünïcode «quoted» 北京。");
  EXPECT_EQ(squad_normalize(""), "");
}

TEST(Squad, ExactMatch) {
  EXPECT_EQ(squad_exact_match("the Eiffel tower.", {"Eiffel Tower"}), 1.0);
  EXPECT_EQ(squad_exact_match("Eiffel", {"Eiffel Tower"}), 0.0);
  EXPECT_EQ(squad_exact_match("Paris", {"London", "paris"}), 1.0);
}

TEST(Squad, TokenF1) {
  // pred {eiffel, tower, paris}, gold {eiffel, tower}: p = 2/3, r = 1, F1 = 0.8.
  EXPECT_NEAR(squad_f1("Eiffel tower Paris", {"the Eiffel Tower"}), 0.8, 1e-12);
  // Repeated tokens count with multiplicity: pred {a1 x2}, gold {x}: common 1, p = 1/2, r = 1.
  EXPECT_NEAR(squad_f1("x x", {"x"}), 2.0 / 3.0, 1e-12);
  EXPECT_EQ(squad_f1("cat", {"dog"}), 0.0);
  // Best over golds.
  EXPECT_NEAR(squad_f1("new york", {"york", "new york city"}), 0.8, 1e-12);
  // Empty after normalisation: 1 when both are empty, else 0 (the v2.0 script's rule).
  EXPECT_EQ(squad_f1("the", {"a"}), 1.0);
  EXPECT_EQ(squad_f1("", {"answer"}), 0.0);
}

}  // namespace
}  // namespace llmops::eval
