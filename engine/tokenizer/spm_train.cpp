#include "tokenizer/spm_train.h"

#include <algorithm>
#include <cstdio>
#include <queue>
#include <vector>

namespace llmops::engine {
namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // "▁"

size_t utf8_len(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;
}

// The characters of s; a truncated sequence at the end is one character of what is left.
std::vector<std::string_view> chars_of(std::string_view s) {
  std::vector<std::string_view> out;
  for (size_t i = 0; i < s.size();) {
    const size_t n = std::min(utf8_len(static_cast<unsigned char>(s[i])), s.size() - i);
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

uint64_t pair_key(int32_t a, int32_t b) { return static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32 | static_cast<uint32_t>(b); }

struct Candidate {
  int64_t count;
  uint64_t key;
  bool operator<(const Candidate& o) const { return count != o.count ? count < o.count : key > o.key; }
};

}  // namespace

void SpmTrainer::add(std::string_view text) {
  ++texts_;
  std::string word(kSpace);  // SentencePiece's space prefix
  auto flush = [&]() {
    if (!word.empty()) ++words_[word];
    word.clear();
  };
  for (char ch : text) {
    if (ch == ' ') {
      flush();
      word = kSpace;
    } else if (ch == '\n') {
      flush();
      ++words_["\n"];
    } else {
      word.push_back(ch);
    }
  }
  flush();
}

Result<SpmVocab> SpmTrainer::train(const SpmTrainOptions& opt) const {
  constexpr int kFixed = 3 + 256;
  if (opt.vocab_size <= kFixed) return invalid_argument("a vocabulary needs more than " + std::to_string(kFixed) + " tokens (3 specials and 256 bytes)");
  if (words_.empty()) return invalid_argument("no text to learn a vocabulary from");

  // The characters, most frequent first; those past min_char_count or the room left are bytes.
  std::unordered_map<std::string_view, int64_t> char_count;
  for (const auto& [w, n] : words_) {
    for (std::string_view c : chars_of(w)) char_count[c] += n;
  }
  std::vector<std::pair<std::string_view, int64_t>> chars(char_count.begin(), char_count.end());
  std::sort(chars.begin(), chars.end(), [](const auto& x, const auto& y) { return x.second != y.second ? x.second > y.second : x.first < y.first; });
  std::vector<std::string> symbols;  // symbol id → text
  std::unordered_map<std::string, int32_t> symbol_of;
  for (const auto& [c, n] : chars) {
    if (n < opt.min_char_count || kFixed + static_cast<int>(symbols.size()) >= opt.vocab_size) break;
    symbol_of.emplace(std::string(c), static_cast<int32_t>(symbols.size()));
    symbols.emplace_back(c);
  }
  const size_t n_chars = symbols.size();

  // Words as symbol sequences (-1: a character without a piece, which no merge crosses), in
  // text order so ids and ties do not depend on hashing.
  std::vector<std::pair<std::string_view, int64_t>> sorted_words(words_.begin(), words_.end());
  std::sort(sorted_words.begin(), sorted_words.end());
  std::vector<std::vector<int32_t>> seq(sorted_words.size());
  std::vector<int64_t> freq(sorted_words.size());
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<uint32_t>> where;
  for (size_t w = 0; w < sorted_words.size(); ++w) {
    freq[w] = sorted_words[w].second;
    for (std::string_view c : chars_of(sorted_words[w].first)) {
      auto it = symbol_of.find(std::string(c));
      seq[w].push_back(it == symbol_of.end() ? -1 : it->second);
    }
    for (size_t i = 0; i + 1 < seq[w].size(); ++i) {
      if (seq[w][i] < 0 || seq[w][i + 1] < 0) continue;
      const uint64_t k = pair_key(seq[w][i], seq[w][i + 1]);
      pair_count[k] += freq[w];
      where[k].push_back(static_cast<uint32_t>(w));
    }
  }
  std::priority_queue<Candidate> heap;
  for (const auto& [k, n] : pair_count) heap.push({n, k});

  std::vector<std::string> merged;  // learned pieces, in merge order
  std::vector<uint32_t> stamp(seq.size(), 0);
  uint32_t round = 0;
  const size_t room = static_cast<size_t>(opt.vocab_size - kFixed) - n_chars;
  std::vector<uint64_t> changed;
  while (merged.size() < room && !heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    auto pc = pair_count.find(top.key);
    if (pc == pair_count.end() || pc->second != top.count) continue;  // stale
    if (top.count < 2) break;
    const int32_t a = static_cast<int32_t>(top.key >> 32), b = static_cast<int32_t>(top.key & 0xffffffffu);
    std::string piece = symbols[static_cast<size_t>(a)] + symbols[static_cast<size_t>(b)];
    if (piece.size() > opt.max_piece_bytes) {
      pair_count.erase(pc);  // never merged
      continue;
    }
    int32_t c;
    if (auto it = symbol_of.find(piece); it != symbol_of.end()) {
      c = it->second;  // the same text learned by another merge earlier
    } else {
      c = static_cast<int32_t>(symbols.size());
      symbols.push_back(piece);
      symbol_of.emplace(piece, c);
      merged.push_back(piece);
    }
    // Each word holding the pair: take its pairs out, merge, put its pairs back.
    ++round;
    changed.clear();
    std::vector<uint32_t> words = std::move(where[top.key]);
    where.erase(top.key);
    auto adjust = [&](uint32_t w, int64_t sign) {
      const auto& s = seq[w];
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        if (s[i] < 0 || s[i + 1] < 0) continue;
        const uint64_t k = pair_key(s[i], s[i + 1]);
        pair_count[k] += sign * freq[w];
        changed.push_back(k);
        if (sign > 0) where[k].push_back(w);
      }
    };
    for (uint32_t w : words) {
      if (stamp[w] == round) continue;
      stamp[w] = round;
      auto& s = seq[w];
      bool holds = false;  // the list may name words an earlier merge changed
      for (size_t i = 0; i + 1 < s.size() && !holds; ++i) holds = s[i] == a && s[i + 1] == b;
      if (!holds) continue;
      adjust(w, -1);
      size_t out = 0;
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          s[out++] = c;
          ++i;
        } else {
          s[out++] = s[i];
        }
      }
      s.resize(out);
      adjust(w, +1);
    }
    std::sort(changed.begin(), changed.end());
    changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
    for (uint64_t k : changed) {
      auto it = pair_count.find(k);
      if (it == pair_count.end()) continue;
      if (it->second <= 0) {
        pair_count.erase(it);
      } else {
        heap.push({it->second, k});
      }
    }
  }

  SpmVocab v;
  auto add = [&](std::string piece, float score, TokenType type) {
    v.pieces.push_back(std::move(piece));
    v.scores.push_back(score);
    v.types.push_back(type);
  };
  add("<unk>", 0, TokenType::kUnknown);
  add("<s>", 0, TokenType::kControl);
  add("</s>", 0, TokenType::kControl);
  for (int byte = 0; byte < 256; ++byte) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", byte);
    add(name, 0, TokenType::kByte);
  }
  for (size_t i = 0; i < n_chars; ++i) add(symbols[i], 0, TokenType::kNormal);
  for (size_t r = 0; r < merged.size(); ++r) add(merged[r], -static_cast<float>(r + 1), TokenType::kNormal);
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  v.add_space_prefix = true;
  v.escape_spaces = true;
  return v;
}

}  // namespace llmops::engine
