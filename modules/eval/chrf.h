// chrF as sacreBLEU 2.x computes it with its defaults: character n-grams of orders 1..6 over
// code points with whitespace removed, beta 2, no word n-grams (word_order 2 gives chrF++),
// case kept, the effective-order averaging (orders where the hypothesis or the reference has
// no n-gram are left out) unless eps_smoothing; with several references the one giving the
// best F score supplies the segment's statistics. A corpus sums the statistics first.
// Pure functions; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llmops::eval {

struct ChrfOptions {
  int char_order = 6;
  int word_order = 0;
  double beta = 2;
  bool whitespace = false;  // keep whitespace in character n-grams
  bool eps_smoothing = false;
};

// (hyp n-grams, ref n-grams, matches) per order: chars 1..char_order, then words 1..word_order.
using ChrfStats = std::vector<uint64_t>;

ChrfStats chrf_stats(std::string_view hypothesis, const std::vector<std::string>& references, const ChrfOptions& opt = {});
// 0..100
double chrf_from_stats(const ChrfStats& s, const ChrfOptions& opt = {});
// "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.4.3"
std::string chrf_signature(int nrefs, const ChrfOptions& opt = {});

}  // namespace llmops::eval
