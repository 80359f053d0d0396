// ROUGE scores identical to Google's rouge-score package; see rouge.h for the contract.
//
// Reference: google-research/rouge rouge_scorer.py (RougeScorer.score / score_multi,
// _score_ngrams, _score_lcs, _summary_level_lcs, _union_lcs, _backtrack_norec), tokenize.py and
// scoring.fmeasure. Exactness rests on reproducing the same integer counts and then the same
// double operations: p = hits / total (int / int), f = 2 * p * r / (p + r) or 0.
//
// Tokens are interned to dense ids once per call so the scorers compare integers and count into
// flat arrays instead of hashing strings per n-gram.
#include "eval/rouge.h"

#include "data/text.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

#include "eval/porter.h"

namespace llmops::eval {
namespace {

using Ids = std::span<const uint32_t>;

// ---------------------------------------------------------------------------------------------
// Tokenizing

// tokenize.py lowercases with Python's str.lower(), turns every run of characters outside
// [a-z0-9] into a space and splits. Over UTF-8 that means: ASCII letters and digits build tokens,
// everything else separates, with the only two code points whose lowercase contains ASCII:
// U+212A KELVIN SIGN lowercases to 'k' (and so joins its neighbours), U+0130 (I with dot above)
// to 'i' followed by a combining dot, which separates. Invalid UTF-8 bytes separate.
// `on_newline` fires at every '\n' (rougeLsum's sentence boundary); a newline is also a separator,
// so a text's tokens are exactly the concatenation of its lines' tokens.
template <class OnToken, class OnNewline>
void scan_tokens(std::string_view text, std::string& cur, OnToken&& on_token, OnNewline&& on_newline) {
  cur.clear();
  auto flush = [&] {
    if (!cur.empty()) {
      on_token(cur);
      cur.clear();
    }
  };
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const auto b = static_cast<unsigned char>(text[i]);
    if (b < 0x80) {
      if ((b >= 'a' && b <= 'z') || (b >= '0' && b <= '9')) {
        cur += static_cast<char>(b);
      } else if (b >= 'A' && b <= 'Z') {
        cur += static_cast<char>(b - 'A' + 'a');
      } else {
        flush();
        if (b == '\n') on_newline();
      }
      ++i;
      continue;
    }
    // 0xE2 and 0xC4 are lead bytes in UTF-8, so these matches cannot start mid-character.
    if (b == 0xE2 && i + 2 < n && static_cast<unsigned char>(text[i + 1]) == 0x84 &&
        static_cast<unsigned char>(text[i + 2]) == 0xAA) {
      cur += 'k';
      i += 3;
      continue;
    }
    if (b == 0xC4 && i + 1 < n && static_cast<unsigned char>(text[i + 1]) == 0xB0) {
      cur += 'i';
      flush();
      i += 2;
      continue;
    }
    flush();
    ++i;
  }
  flush();
}

// tokenize.py stems only tokens longer than 3 characters ("was" stays "was", not "wa").
template <class Emit>
void emit_token(const std::string& raw, bool stem, Emit&& emit) {
  if (stem && raw.size() > 3) {
    std::string stemmed = porter_stem(raw);
    // tokenize.py's final ^[a-z0-9]+$ filter; a stem of a 4+ letter token is never empty, but the
    // filter is the reference's, so keep it.
    if (!stemmed.empty()) emit(std::string_view(stemmed));
  } else {
    emit(std::string_view(raw));
  }
}

// ---------------------------------------------------------------------------------------------
// Interning


size_t table_size_for(size_t entries) {
  size_t cap = 16;
  while (cap < entries * 2) cap <<= 1;
  return cap;
}

// Token text -> dense id, open addressing over one byte arena.
class Interner {
 public:
  Interner() : slots_(64, 0) {}

  uint32_t intern(std::string_view s) {
    if ((ends_.size() + 1) * 2 > slots_.size()) grow();
    const size_t h = std::hash<std::string_view>{}(s);
    const size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const uint32_t slot = slots_[i];
      if (slot == 0) {
        const auto id = static_cast<uint32_t>(ends_.size());
        bytes_.append(s);
        ends_.push_back(static_cast<uint32_t>(bytes_.size()));
        hashes_.push_back(h);
        slots_[i] = id + 1;
        return id;
      }
      if (hashes_[slot - 1] == h && text(slot - 1) == s) return slot - 1;
    }
  }

  uint32_t size() const { return static_cast<uint32_t>(ends_.size()); }

 private:
  std::string_view text(uint32_t id) const {
    const uint32_t begin = id == 0 ? 0 : ends_[id - 1];
    return std::string_view(bytes_).substr(begin, ends_[id] - begin);
  }

  void grow() {
    std::vector<uint32_t> slots(slots_.size() * 2, 0);
    const size_t mask = slots.size() - 1;
    for (uint32_t id = 0; id < size(); ++id) {
      size_t i = hashes_[id] & mask;
      while (slots[i] != 0) i = (i + 1) & mask;
      slots[i] = id + 1;
    }
    slots_.swap(slots);
  }

  std::string bytes_;
  std::vector<uint32_t> ends_;  // end offset of each id's text in bytes_
  std::vector<size_t> hashes_;
  std::vector<uint32_t> slots_;  // 0 = empty, else id + 1
};

// (id, id) -> dense id; sized up front for a known number of insertions, so it never grows.
class PairIds {
 public:
  explicit PairIds(size_t max_entries) : keys_(table_size_for(max_entries)), vals_(keys_.size(), 0) {}

  uint32_t id(uint32_t a, uint32_t b) {
    const uint64_t key = (static_cast<uint64_t>(a) << 32) | b;
    const size_t mask = keys_.size() - 1;
    for (size_t i = data::mix64(key) & mask;; i = (i + 1) & mask) {
      if (vals_[i] == 0) {
        keys_[i] = key;
        vals_[i] = ++count_;
        return count_ - 1;
      }
      if (keys_[i] == key) return vals_[i] - 1;
    }
  }

  uint32_t size() const { return count_; }

 private:
  std::vector<uint64_t> keys_;
  std::vector<uint32_t> vals_;  // 0 = empty, else id + 1
  uint32_t count_ = 0;
};

// A tokenized text: token ids plus the end (in ids) of each '\n'-separated line.
struct Doc {
  std::vector<uint32_t> ids;
  std::vector<uint32_t> line_ends;
};

void tokenize_doc(std::string_view text, bool stem, Interner& interner, std::string& cur, Doc& doc) {
  doc.ids.clear();
  doc.line_ends.clear();
  scan_tokens(
      text, cur,
      [&](const std::string& raw) {
        emit_token(raw, stem, [&](std::string_view tok) { doc.ids.push_back(interner.intern(tok)); });
      },
      [&] { doc.line_ends.push_back(static_cast<uint32_t>(doc.ids.size())); });
  doc.line_ends.push_back(static_cast<uint32_t>(doc.ids.size()));
}

std::vector<uint32_t> intern_all(const std::vector<std::string>& tokens, Interner& interner) {
  std::vector<uint32_t> ids;
  ids.reserve(tokens.size());
  for (const std::string& t : tokens) ids.push_back(interner.intern(t));
  return ids;
}

// ---------------------------------------------------------------------------------------------
// Scoring

// scoring.fmeasure, operation for operation.
double fmeasure(double precision, double recall) {
  return precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
}

RougeScore make_score(uint64_t hits, uint64_t prediction_total, uint64_t target_total) {
  RougeScore s;
  s.precision = static_cast<double>(hits) / static_cast<double>(std::max<uint64_t>(prediction_total, 1));
  s.recall = static_cast<double>(hits) / static_cast<double>(std::max<uint64_t>(target_total, 1));
  s.f1 = fmeasure(s.precision, s.recall);
  return s;
}

// _score_ngrams over _create_ngrams: the clipped overlap is sum over n-grams of min(count in
// target, count in prediction); totals are the n-gram counts (0 when a text is shorter than n).
RougeScore ngram_score(Ids target, Ids prediction, int n, uint32_t vocab) {
  if (n <= 0) return {};
  const size_t un = static_cast<size_t>(n);
  if (target.size() < un || prediction.size() < un) return {};
  const size_t nt = target.size() - un + 1;
  const size_t np = prediction.size() - un + 1;

  // Give each distinct n-gram a dense id by folding one more token in per level: the id of
  // (w0..wk) is the id of the pair (id of w0..wk-1, wk). Pair ids are injective within a level,
  // so equal ids mean equal n-grams; a table per level keeps them dense for the counts below.
  std::vector<uint32_t> grams_t(target.begin(), target.end());
  std::vector<uint32_t> grams_p(prediction.begin(), prediction.end());
  for (size_t k = 2; k <= un; ++k) {
    PairIds pairs(grams_t.size() + grams_p.size());
    const size_t lt = target.size() - k + 1;
    const size_t lp = prediction.size() - k + 1;
    for (size_t i = 0; i < lt; ++i) grams_t[i] = pairs.id(grams_t[i], target[i + k - 1]);
    for (size_t i = 0; i < lp; ++i) grams_p[i] = pairs.id(grams_p[i], prediction[i + k - 1]);
    grams_t.resize(lt);
    grams_p.resize(lp);
    vocab = pairs.size();
  }

  std::vector<uint32_t> left(vocab, 0);
  for (uint32_t g : grams_t) ++left[g];
  uint64_t hits = 0;
  for (uint32_t g : grams_p) {
    if (left[g] > 0) {
      --left[g];
      ++hits;
    }
  }
  return make_score(hits, np, nt);
}

// Length of the longest common subsequence; one rolling row of _lcs_table.
uint32_t lcs_length(Ids a, Ids b) {
  std::vector<uint32_t> row(b.size() + 1, 0);
  for (uint32_t x : a) {
    uint32_t diag = 0;  // row[j - 1] of the previous row
    for (size_t j = 1; j <= b.size(); ++j) {
      const uint32_t up = row[j];
      row[j] = x == b[j - 1] ? diag + 1 : std::max(up, row[j - 1]);
      diag = up;
    }
  }
  return row[b.size()];
}

// _score_lcs.
RougeScore lcs_score(Ids target, Ids prediction) {
  if (target.empty() || prediction.empty()) return {};
  return make_score(lcs_length(target, prediction), prediction.size(), target.size());
}

// Marks the reference positions of the one LCS that _backtrack_norec reads out of the full
// table. Which LCS it picks matters for rougeLsum, so the tie-breaking is the reference's: take a
// match, else step left only when the left cell is strictly larger, else step up.
void mark_lcs(Ids ref, Ids can, std::vector<uint32_t>& table, std::vector<char>& marked) {
  const size_t w = can.size() + 1;
  table.assign((ref.size() + 1) * w, 0);
  for (size_t i = 1; i <= ref.size(); ++i) {
    uint32_t* row = &table[i * w];
    const uint32_t* up = &table[(i - 1) * w];
    for (size_t j = 1; j <= can.size(); ++j) {
      row[j] = ref[i - 1] == can[j - 1] ? up[j - 1] + 1 : std::max(up[j], row[j - 1]);
    }
  }
  size_t i = ref.size(), j = can.size();
  while (i > 0 && j > 0) {
    if (ref[i - 1] == can[j - 1]) {
      marked[i - 1] = 1;
      --i;
      --j;
    } else if (table[i * w + j - 1] > table[(i - 1) * w + j]) {
      --j;
    } else {
      --i;
    }
  }
}

std::vector<Ids> lines_of(const Doc& doc) {
  std::vector<Ids> lines;
  uint32_t begin = 0;
  for (uint32_t end : doc.line_ends) {
    if (end > begin) lines.emplace_back(doc.ids.data() + begin, end - begin);
    begin = end;
  }
  return lines;
}

// _summary_level_lcs. Lines without tokens are dropped: the reference keeps them as empty token
// lists, but they add no tokens and no LCS positions, so the result is the same.
RougeScore summary_lcs_score(const Doc& target, const Doc& prediction, uint32_t vocab) {
  const std::vector<Ids> refs = lines_of(target);
  const std::vector<Ids> cans = lines_of(prediction);
  if (refs.empty() || cans.empty()) return {};
  // One line each: the union is that single LCS, whose tokens never exceed either side's counts,
  // so hits are the LCS length and this is exactly rougeL.
  if (refs.size() == 1 && cans.size() == 1) return lcs_score(refs[0], cans[0]);

  // Each token may be hit at most as often as it occurs in both texts; ROUGE-1.5.5 does this and
  // so does the reference, by decrementing these counts as hits are taken.
  std::vector<uint32_t> left_r(vocab, 0), left_c(vocab, 0);
  for (uint32_t t : target.ids) ++left_r[t];
  for (uint32_t t : prediction.ids) ++left_c[t];

  std::vector<uint32_t> table;
  std::vector<char> marked;
  uint64_t hits = 0;
  for (Ids ref : refs) {
    marked.assign(ref.size(), 0);
    for (Ids can : cans) mark_lcs(ref, can, table, marked);
    // The union is visited in reference order, which decides who gets a capped token.
    for (size_t i = 0; i < ref.size(); ++i) {
      const uint32_t t = ref[i];
      if (marked[i] && left_c[t] > 0 && left_r[t] > 0) {
        ++hits;
        --left_c[t];
        --left_r[t];
      }
    }
  }
  return make_score(hits, prediction.ids.size(), target.ids.size());
}

RougeScores score_docs(const Doc& target, const Doc& prediction, uint32_t vocab) {
  RougeScores s;
  s.rouge1 = ngram_score(target.ids, prediction.ids, 1, vocab);
  s.rouge2 = ngram_score(target.ids, prediction.ids, 2, vocab);
  s.rougeL = lcs_score(target.ids, prediction.ids);
  s.rougeLsum = summary_lcs_score(target, prediction, vocab);
  return s;
}

// np.argmax keeps the first maximum, so only a strictly larger F1 replaces the current best.
void keep_best(RougeScore& best, const RougeScore& candidate) {
  if (candidate.f1 > best.f1) best = candidate;
}

}  // namespace

std::vector<std::string> rouge_tokenize(std::string_view text, bool stem) {
  std::vector<std::string> tokens;
  std::string cur;
  scan_tokens(
      text, cur,
      [&](const std::string& raw) {
        emit_token(raw, stem, [&](std::string_view tok) { tokens.emplace_back(tok); });
      },
      [] {});
  return tokens;
}

RougeScore rouge_n(const std::vector<std::string>& target, const std::vector<std::string>& prediction, int n) {
  Interner interner;
  const std::vector<uint32_t> t = intern_all(target, interner);
  const std::vector<uint32_t> p = intern_all(prediction, interner);
  return ngram_score(t, p, n, interner.size());
}

RougeScore rouge_l(const std::vector<std::string>& target, const std::vector<std::string>& prediction) {
  Interner interner;
  const std::vector<uint32_t> t = intern_all(target, interner);
  const std::vector<uint32_t> p = intern_all(prediction, interner);
  return lcs_score(t, p);
}

RougeScore rouge_lsum(std::string_view target, std::string_view prediction, bool stem) {
  Interner interner;
  std::string cur;
  Doc t, p;
  tokenize_doc(target, stem, interner, cur, t);
  tokenize_doc(prediction, stem, interner, cur, p);
  return summary_lcs_score(t, p, interner.size());
}

RougeScores rouge_score(std::string_view target, std::string_view prediction, bool stem) {
  Interner interner;
  std::string cur;
  Doc t, p;
  tokenize_doc(target, stem, interner, cur, t);
  tokenize_doc(prediction, stem, interner, cur, p);
  return score_docs(t, p, interner.size());
}

RougeScores rouge_score_multi(const std::vector<std::string>& targets, std::string_view prediction, bool stem) {
  RougeScores best;
  if (targets.empty()) return best;
  Interner interner;
  std::string cur;
  Doc p, t;
  tokenize_doc(prediction, stem, interner, cur, p);
  for (size_t i = 0; i < targets.size(); ++i) {
    tokenize_doc(targets[i], stem, interner, cur, t);
    const RougeScores s = score_docs(t, p, interner.size());
    if (i == 0) {
      best = s;
      continue;
    }
    keep_best(best.rouge1, s.rouge1);
    keep_best(best.rouge2, s.rouge2);
    keep_best(best.rougeL, s.rougeL);
    keep_best(best.rougeLsum, s.rougeLsum);
  }
  return best;
}

}  // namespace llmops::eval
