#include "tokenizer/bpe.h"

#include <algorithm>
#include <limits>
#include <queue>

#include "tokenizer/unicode.h"

namespace llmops::engine {
namespace {

constexpr size_t kNone = std::numeric_limits<size_t>::max();

// A run of word bytes that is one token (or, after a merge whose joined text is not in the
// vocabulary, none). Merged-away right symbols keep size 0 and drop out of the prev/next chain.
struct Symbol {
  int32_t id;  // -1: no token
  size_t begin, size;
  size_t prev, next;  // kNone at the ends
};

// A possible merge of two adjacent symbols. size is their joined length when queued; if either
// has changed since (symbols only grow while alive), the sum differs and the entry is stale.
struct Candidate {
  int32_t rank;
  size_t left, right;
  size_t size;
};

// The lowest rank merges first; between equal ranks (the same pair twice) the leftmost.
struct LaterMerge {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

std::string quote_token(std::string_view text) {
  constexpr size_t kMax = 64;
  return "'" + std::string(text.substr(0, kMax)) + (text.size() > kMax ? "...'" : "'");
}

}  // namespace

Result<BpeTokenizer> BpeTokenizer::create(BpeVocab vocab) {
  const size_t n = vocab.tokens.size();
  if (n == 0) return invalid_argument("BPE vocabulary is empty");
  if (n > kMaxBpeVocab) {
    return invalid_argument("BPE vocabulary has " + std::to_string(n) + " tokens, more than the limit of " +
                            std::to_string(kMaxBpeVocab));
  }
  for (size_t i = 0; i < n; ++i) {
    if (vocab.tokens[i].size() > kMaxBpeTokenBytes) {
      return invalid_argument("BPE token " + std::to_string(i) + " is " + std::to_string(vocab.tokens[i].size()) +
                              " bytes long, more than the limit of " + std::to_string(kMaxBpeTokenBytes));
    }
  }
  if (!vocab.types.empty() && vocab.types.size() != n) {
    return invalid_argument("BPE vocabulary has " + std::to_string(n) + " tokens but " +
                            std::to_string(vocab.types.size()) + " token types");
  }
  for (size_t i = 0; i < vocab.types.size(); ++i) {
    const auto t = static_cast<int32_t>(vocab.types[i]);
    if (t < 0 || t > static_cast<int32_t>(TokenType::kByte)) {
      return invalid_argument("BPE token " + std::to_string(i) + " has unknown token type " + std::to_string(t));
    }
  }
  if (vocab.types.empty()) vocab.types.assign(n, TokenType::kNormal);
  const std::pair<const char*, int32_t> specials[] = {
      {"bos", vocab.bos_id}, {"eos", vocab.eos_id}, {"unk", vocab.unk_id}, {"padding", vocab.pad_id}};
  for (const auto& [name, id] : specials) {
    if (id < -1 || id >= static_cast<int32_t>(n)) {
      return invalid_argument(std::string(name) + " token id " + std::to_string(id) +
                              " is outside the BPE vocabulary of " + std::to_string(n) + " tokens");
    }
  }
  if (vocab.merges.size() > kMaxBpeMerges) {
    return invalid_argument("BPE vocabulary has " + std::to_string(vocab.merges.size()) +
                            " merges, more than the limit of " + std::to_string(kMaxBpeMerges));
  }

  BpeTokenizer tok;
  tok.token_ids_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    // Empty texts (placeholders for unused ids) can never be looked up.
    if (!vocab.tokens[i].empty()) tok.token_ids_.insert_or_assign(vocab.tokens[i], static_cast<int32_t>(i));
  }

  tok.merges_.reserve(vocab.merges.size());
  std::string joined;
  for (size_t rank = 0; rank < vocab.merges.size(); ++rank) {
    const auto& [left, right] = vocab.merges[rank];
    const int32_t left_id = tok.find_token(left), right_id = tok.find_token(right);
    if (left_id < 0 || right_id < 0) {
      return invalid_argument("BPE merge " + std::to_string(rank) + " (" + quote_token(left) + " " + quote_token(right) +
                              "): " + quote_token(left_id < 0 ? left : right) + " is not a token of the vocabulary");
    }
    joined.assign(left).append(right);
    tok.merges_.try_emplace(pair_key(left_id, right_id), Merge{static_cast<int32_t>(rank), tok.find_token(joined)});
  }
  vocab.merges.clear();
  vocab.merges.shrink_to_fit();

  for (int b = 0; b < 256; ++b) {
    std::string spelled;
    append_utf8(byte_to_code_point(static_cast<uint8_t>(b)), spelled);
    tok.byte_ids_[b] = tok.find_token(spelled);
  }

  tok.pieces_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    switch (vocab.types[i]) {
      case TokenType::kNormal:
      case TokenType::kByte:
      case TokenType::kUndefined:
        tok.pieces_[i] = byte_level_decode(vocab.tokens[i]);
        break;
      case TokenType::kUserDefined:
        tok.pieces_[i] = vocab.tokens[i];
        break;
      default:  // control, unknown, unused: nothing to show
        break;
    }
    const bool special = vocab.types[i] == TokenType::kControl || vocab.types[i] == TokenType::kUserDefined;
    if (special && !vocab.tokens[i].empty()) tok.specials_.push_back(static_cast<int32_t>(i));
  }
  std::stable_sort(tok.specials_.begin(), tok.specials_.end(), [&](int32_t a, int32_t b) {
    return vocab.tokens[a].size() > vocab.tokens[b].size();
  });
  for (int32_t id : tok.specials_) {
    const char first = vocab.tokens[id][0];
    if (tok.special_first_bytes_.find(first) == std::string::npos) tok.special_first_bytes_ += first;
  }
  tok.vocab_ = std::move(vocab);
  return tok;
}

int32_t BpeTokenizer::find_token(std::string_view text) const {
  const auto it = token_ids_.find(text);
  return it == token_ids_.end() ? -1 : it->second;
}

std::vector<std::pair<std::string, std::string>> BpeTokenizer::merge_rules() const {
  std::vector<std::pair<int32_t, uint64_t>> ranked;  // rank, pair key
  ranked.reserve(merges_.size());
  for (const auto& [key, merge] : merges_) ranked.emplace_back(merge.rank, key);
  std::sort(ranked.begin(), ranked.end());
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(ranked.size());
  for (const auto& [rank, key] : ranked) {
    out.emplace_back(vocab_.tokens[static_cast<size_t>(key >> 32)], vocab_.tokens[static_cast<size_t>(key & 0xFFFFFFFFu)]);
  }
  return out;
}

const BpeTokenizer::Merge* BpeTokenizer::find_merge(int32_t left, int32_t right) const {
  if (left < 0 || right < 0) return nullptr;
  const auto it = merges_.find(pair_key(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

std::vector<BpeTokenizer::Fragment> BpeTokenizer::split_specials(std::string_view text, bool parse_special) const {
  std::vector<Fragment> fragments{{text, -1}};
  if (special_first_bytes_.empty() || text.find_first_of(special_first_bytes_) == std::string_view::npos) {
    return fragments;
  }
  // Longest token first over the whole text, then the next one within what is left, as
  // llama.cpp does; so of two overlapping specials the longer wins wherever it is.
  std::vector<Fragment> next;
  for (int32_t id : specials_) {
    if (!parse_special && vocab_.types[id] == TokenType::kControl) continue;
    const std::string_view special = vocab_.tokens[id];
    if (text.find(special) == std::string_view::npos) continue;
    next.clear();
    for (const Fragment& f : fragments) {
      if (f.special_id >= 0) {
        next.push_back(f);
        continue;
      }
      size_t pos = 0;
      for (size_t hit; (hit = f.text.find(special, pos)) != std::string_view::npos; pos = hit + special.size()) {
        if (hit > pos) next.push_back({f.text.substr(pos, hit - pos), -1});
        next.push_back({special, id});
      }
      if (pos < f.text.size()) next.push_back({f.text.substr(pos), -1});
    }
    fragments.swap(next);
  }
  return fragments;
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool parse_special) const {
  std::vector<int32_t> out;
  if (text.empty()) return out;
  for (const Fragment& f : split_specials(text, parse_special)) {
    if (f.special_id >= 0) {
      out.push_back(f.special_id);
      continue;
    }
    for (std::string_view word : pre_tokenize(f.text, vocab_.pre_tokenizer)) encode_word(word, out);
  }
  return out;
}

void BpeTokenizer::emit_bytes(std::string_view bytes, std::vector<int32_t>& out) const {
  for (char c : bytes) {
    const int32_t id = byte_ids_[static_cast<unsigned char>(c)];
    if (id >= 0) {
      out.push_back(id);
    } else if (vocab_.unk_id >= 0) {
      out.push_back(vocab_.unk_id);
    }
  }
}

void BpeTokenizer::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.size() == 1) {
    emit_bytes(word, out);
    return;
  }
  if (vocab_.ignore_merges) {
    const int32_t whole = find_token(byte_level_encode(word));
    if (whole >= 0) {
      out.push_back(whole);
      return;
    }
  }

  std::vector<Symbol> symbols(word.size());
  for (size_t i = 0; i < word.size(); ++i) {
    symbols[i] = {byte_ids_[static_cast<unsigned char>(word[i])], i, 1, i == 0 ? kNone : i - 1,
                  i + 1 == word.size() ? kNone : i + 1};
  }
  std::priority_queue<Candidate, std::vector<Candidate>, LaterMerge> queue;
  const auto consider = [&](size_t left, size_t right) {
    if (left == kNone || right == kNone) return;
    if (const Merge* m = find_merge(symbols[left].id, symbols[right].id)) {
      queue.push({m->rank, left, right, symbols[left].size + symbols[right].size});
    }
  };
  for (size_t i = 1; i < symbols.size(); ++i) consider(i - 1, i);

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.left];
    Symbol& right = symbols[top.right];
    if (left.size == 0 || right.size == 0 || left.size + right.size != top.size) continue;  // stale
    left.id = find_merge(left.id, right.id)->result;
    left.size += right.size;
    right.size = 0;
    left.next = right.next;
    if (right.next != kNone) symbols[right.next].prev = top.left;
    consider(left.prev, top.left);
    consider(top.left, left.next);
  }

  for (size_t i = 0; i != kNone; i = symbols[i].next) {
    if (symbols[i].id >= 0) {
      out.push_back(symbols[i].id);
    } else {
      // A merge whose joined text is no token (or a byte without one): spell it in byte tokens.
      emit_bytes(word.substr(symbols[i].begin, symbols[i].size), out);
    }
  }
}

std::string BpeTokenizer::decode_piece(int32_t id, bool render_special) const {
  if (id < 0 || id >= size()) return {};
  if (render_special && vocab_.types[id] == TokenType::kControl) return vocab_.tokens[id];
  return pieces_[id];
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= size()) continue;
    if (render_special && vocab_.types[id] == TokenType::kControl) {
      out += vocab_.tokens[id];
    } else {
      out += pieces_[id];
    }
  }
  return out;
}

size_t complete_utf8_prefix(std::string_view bytes) {
  const size_t n = bytes.size();
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    const auto c = static_cast<unsigned char>(bytes[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: its lead is further back
    const size_t needed = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 1;
    return needed > back ? n - back : n;
  }
  return n;
}

}  // namespace llmops::engine
