// BLEU as sacreBLEU 2.x computes it with its defaults: the 13a tokenizer (mteval-v13a), case
// kept, n-grams up to 4, the closest reference length for the brevity penalty (the shorter on
// a tie), counts clipped by the maximum over the references, "exp" smoothing (an order with no
// match counts as 1 / (2^k × total)), and for sentence BLEU the effective order (orders the
// hypothesis is too short for are left out). Corpus BLEU sums the segments' statistics first.
// Pure functions; any thread.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llmops::eval {

// sacreBLEU's "13a" tokenizer: the tokens of one segment, after its rstrip().
std::vector<std::string> tokenize_13a(std::string_view segment);

// The sufficient statistics of one segment; they add up across a corpus.
struct BleuStats {
  uint64_t hyp_len = 0, ref_len = 0;
  std::array<uint64_t, 4> correct{}, total{};
  BleuStats& operator+=(const BleuStats& o);
};

// references: the segment's non-empty references (sacreBLEU drops empty ones and refuses a
// segment with none; callers check that first).
BleuStats bleu_stats(std::string_view hypothesis, const std::vector<std::string>& references);

struct BleuScore {
  double score = 0;  // 0..100
  std::array<double, 4> precisions{};
  double bp = 0;
  uint64_t hyp_len = 0, ref_len = 0;
};
// effective_order: true for sentence BLEU (sacreBLEU's sentence_bleu), false for the corpus.
BleuScore bleu_from_stats(const BleuStats& s, bool effective_order);

// sacreBLEU's signature of the settings: "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.4.3".
// nrefs < 0 writes "var" (a varying number of references per segment).
std::string bleu_signature(int nrefs, bool effective_order);

}  // namespace llmops::eval
