// ROUGE-1/2/N, ROUGE-L and ROUGE-Lsum precision/recall/F1. Pure functions, any thread.
//
// Numbers are meant to be identical (same integer counts, same double arithmetic) to Google's
// rouge-score package (google-research/rouge: rouge_scorer.py, tokenize.py, scoring.py) with its
// DefaultTokenizer, with and without use_stemmer:
//  - tokens: Python's str.lower(), every character outside [a-z0-9] becomes a separator, tokens
//    longer than 3 characters are Porter-stemmed (porter.h) when `stem` is set. Text is UTF-8;
//    non-Latin scripts produce no tokens at all, exactly as in the reference.
//  - empty target or prediction (after tokenizing) scores 0/0/0.
//  - rouge-score raises on invalid input (n <= 0, no targets); here those score 0/0/0 instead.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace llmops::eval {

struct RougeScore {
  double precision = 0, recall = 0, f1 = 0;
};

struct RougeScores {
  RougeScore rouge1, rouge2, rougeL, rougeLsum;
};

// rouge-score's DefaultTokenizer(use_stemmer=stem).tokenize(text).
std::vector<std::string> rouge_tokenize(std::string_view text, bool stem);

// N-gram overlap with clipped counts (rouge-score's rougeN).
RougeScore rouge_n(const std::vector<std::string>& target, const std::vector<std::string>& prediction, int n);

// Longest-common-subsequence score over whole token sequences (rougeL).
RougeScore rouge_l(const std::vector<std::string>& target, const std::vector<std::string>& prediction);

// Summary-level LCS (rougeLsum): sentences are the '\n'-separated lines of each text, each
// reference sentence is matched against the union of its LCSs with every prediction sentence,
// and a token is counted at most as often as it occurs on both sides.
RougeScore rouge_lsum(std::string_view target, std::string_view prediction, bool stem);

// All four scores of RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"]).score(...).
RougeScores rouge_score(std::string_view target, std::string_view prediction, bool stem);

// RougeScorer.score_multi: each rouge type independently takes the score of the target with the
// highest F1, the first such target on ties. No targets gives all zeros.
RougeScores rouge_score_multi(const std::vector<std::string>& targets, std::string_view prediction, bool stem);

}  // namespace llmops::eval
