#include "tokenizer/spm.h"

#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <queue>

namespace llmops::engine {
namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581 "▁", SentencePiece's space
constexpr size_t kNone = std::numeric_limits<size_t>::max();
constexpr int32_t kMaxLlama2cPieceLength = 1024;
constexpr int32_t kMaxLlama2cVocab = 1 << 24;

// Byte length of the UTF-8 character at text[pos]. A byte that does not start a well-formed
// sequence (stray continuation byte, invalid lead, sequence cut short) is a symbol by itself,
// so it can only fall back to its byte token and never swallows a following ASCII character.
size_t utf8_char_len(std::string_view text, size_t pos) {
  const auto lead = static_cast<unsigned char>(text[pos]);
  const size_t len = lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : lead < 0xF8 ? 4 : 1;
  if (len > text.size() - pos) return 1;
  for (size_t i = 1; i < len; ++i) {
    if ((static_cast<unsigned char>(text[pos + i]) & 0xC0) != 0x80) return 1;
  }
  return len;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// The byte a "<0xXX>" piece stands for, or -1 when the piece is not of that form.
int byte_of_piece(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  const int hi = hex_digit(piece[3]), lo = hex_digit(piece[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

std::string byte_piece(int byte) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  return std::string("<0x") + kHex[byte >> 4] + kHex[byte & 15] + ">";
}

void replace_all(std::string& text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  size_t start = 0;
  for (size_t hit; (hit = text.find(from, start)) != std::string::npos; start = hit + from.size()) {
    out.append(text, start, hit - start).append(to);
  }
  out.append(text, start, std::string::npos);
  text = std::move(out);
}

TokenType derived_type(const std::string& piece, int32_t id, const SpmVocab& vocab) {
  if (id == vocab.unk_id || piece == "<unk>") return TokenType::kUnknown;
  if (id == vocab.bos_id || id == vocab.eos_id || piece == "<s>" || piece == "</s>") {
    return TokenType::kControl;
  }
  if (byte_of_piece(piece) >= 0) return TokenType::kByte;
  return TokenType::kNormal;
}

// One run of input bytes in the merge list. Symbols are never removed: a merged-away right
// symbol keeps size 0 and drops out of the prev/next chain.
struct Symbol {
  size_t begin, size;
  size_t prev, next;  // kNone at the ends
};

// A candidate merge of two adjacent symbols. size is the joined length when the pair was
// queued; if either symbol changed since, the sum differs and the entry is stale.
struct Bigram {
  float score;
  size_t left, right;
  size_t size;
};

// Highest score first; on equal scores the leftmost pair (llama.cpp and SentencePiece agree).
struct LowerPriority {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

uint32_t u32_at(const std::string& bytes, size_t pos) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(bytes[pos + i]);
  return v;
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

}  // namespace

Result<SpmTokenizer> SpmTokenizer::create(SpmVocab vocab) {
  const size_t n = vocab.pieces.size();
  if (n == 0) return invalid_argument("tokenizer vocabulary is empty");
  if (n > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return invalid_argument("tokenizer vocabulary has " + std::to_string(n) + " pieces; too many");
  }
  if (vocab.scores.size() != n) {
    return invalid_argument("tokenizer has " + std::to_string(n) + " pieces but " +
                            std::to_string(vocab.scores.size()) + " scores");
  }
  if (!vocab.types.empty() && vocab.types.size() != n) {
    return invalid_argument("tokenizer has " + std::to_string(n) + " pieces but " +
                            std::to_string(vocab.types.size()) + " token types");
  }
  for (size_t i = 0; i < n; ++i) {
    // A NaN score would break the merge queue's ordering.
    if (std::isnan(vocab.scores[i])) return invalid_argument("score of token " + std::to_string(i) + " is NaN");
  }
  for (size_t i = 0; i < vocab.types.size(); ++i) {
    const auto t = static_cast<int32_t>(vocab.types[i]);
    if (t < 0 || t > static_cast<int32_t>(TokenType::kByte)) {
      return invalid_argument("token " + std::to_string(i) + " has unknown token type " + std::to_string(t));
    }
  }
  const std::pair<const char*, int32_t> specials[] = {
      {"bos", vocab.bos_id}, {"eos", vocab.eos_id}, {"unk", vocab.unk_id}};
  for (const auto& [name, id] : specials) {
    if (id < -1 || id >= static_cast<int32_t>(n)) {
      return invalid_argument(std::string(name) + " id " + std::to_string(id) + " is outside the vocabulary of " +
                              std::to_string(n));
    }
  }
  if (vocab.types.empty()) {
    vocab.types.reserve(n);
    for (size_t i = 0; i < n; ++i) vocab.types.push_back(derived_type(vocab.pieces[i], static_cast<int32_t>(i), vocab));
  }

  SpmTokenizer tok;
  tok.vocab_ = std::move(vocab);
  tok.piece_ids_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    // Empty pieces can never be the join of two symbols; leaving them out keeps "" unmapped.
    if (!tok.vocab_.pieces[i].empty()) tok.piece_ids_.insert_or_assign(tok.vocab_.pieces[i], static_cast<int32_t>(i));
  }
  tok.has_all_bytes_ = true;
  for (int b = 0; b < 256; ++b) {
    tok.byte_ids_[b] = tok.find_piece(byte_piece(b));
    if (tok.byte_ids_[b] < 0) tok.has_all_bytes_ = false;
  }
  if (!tok.has_all_bytes_ && tok.vocab_.unk_id < 0) {
    return invalid_argument("tokenizer vocabulary has neither the 256 byte tokens <0x00>..<0xFF> nor an unknown token");
  }
  const SpmVocab& v = tok.vocab_;
  for (int32_t id = 0; id < static_cast<int32_t>(n); ++id) {
    const TokenType t = v.types[static_cast<size_t>(id)];
    if ((t == TokenType::kControl || t == TokenType::kUserDefined) && !v.pieces[static_cast<size_t>(id)].empty()) {
      tok.specials_.push_back(id);
      tok.special_first_[static_cast<unsigned char>(v.pieces[static_cast<size_t>(id)][0])] = true;
    }
  }
  std::stable_sort(tok.specials_.begin(), tok.specials_.end(),
                   [&](int32_t a, int32_t b) { return v.pieces[static_cast<size_t>(a)].size() > v.pieces[static_cast<size_t>(b)].size(); });
  return tok;
}

std::vector<int32_t> SpmTokenizer::encode(std::string_view text, bool parse_special) const {
  return parse_special && !specials_.empty() ? encode_special(text) : encode(text);
}

std::vector<int32_t> SpmTokenizer::encode_special(std::string_view text) const {
  std::vector<int32_t> out;
  size_t start = 0, i = 0;
  auto flush = [&](size_t end) {
    if (end <= start) return;
    auto ids = encode(text.substr(start, end - start));
    out.insert(out.end(), ids.begin(), ids.end());
  };
  while (i < text.size()) {
    int32_t hit = -1;
    if (special_first_[static_cast<unsigned char>(text[i])]) {
      for (int32_t id : specials_) {
        const std::string& piece = vocab_.pieces[static_cast<size_t>(id)];
        if (text.compare(i, piece.size(), piece) == 0) {
          hit = id;
          break;
        }
      }
    }
    if (hit < 0) {
      ++i;
      continue;
    }
    flush(i);
    out.push_back(hit);
    i += vocab_.pieces[static_cast<size_t>(hit)].size();
    start = i;
  }
  flush(text.size());
  return out;
}

int32_t SpmTokenizer::find_piece(std::string_view text) const {
  const auto it = piece_ids_.find(text);
  return it == piece_ids_.end() ? -1 : it->second;
}

void SpmTokenizer::emit_unknown(std::string_view text, std::vector<int32_t>& out) const {
  if (!has_all_bytes_) {
    out.push_back(vocab_.unk_id);  // one unknown token per character
    return;
  }
  for (char c : text) out.push_back(byte_ids_[static_cast<unsigned char>(c)]);
}

std::vector<int32_t> SpmTokenizer::encode(std::string_view input) const {
  std::vector<int32_t> out;
  if (input.empty()) return out;
  std::string text;
  text.reserve(input.size() + 1);
  if (vocab_.add_space_prefix) text += ' ';
  text += input;
  if (vocab_.escape_spaces) replace_all(text, " ", kSpaceMark);

  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const size_t len = utf8_char_len(text, pos);
    const size_t index = symbols.size();
    symbols.push_back({pos, len, index == 0 ? kNone : index - 1, pos + len == text.size() ? kNone : index + 1});
    pos += len;
  }

  std::priority_queue<Bigram, std::vector<Bigram>, LowerPriority> queue;
  auto try_pair = [&](size_t left, size_t right) {
    if (left == kNone || right == kNone) return;
    const size_t joined_size = symbols[left].size + symbols[right].size;
    const int32_t id = find_piece(std::string_view(text).substr(symbols[left].begin, joined_size));
    if (id >= 0) queue.push({vocab_.scores[id], left, right, joined_size});
  };
  for (size_t i = 1; i < symbols.size(); ++i) try_pair(i - 1, i);

  while (!queue.empty()) {
    const Bigram top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.left];
    Symbol& right = symbols[top.right];
    if (left.size == 0 || right.size == 0 || left.size + right.size != top.size) continue;  // stale
    left.size += right.size;
    right.size = 0;
    left.next = right.next;
    if (right.next != kNone) symbols[right.next].prev = top.left;
    try_pair(left.prev, top.left);
    try_pair(top.left, left.next);
  }

  // Every merged symbol is a piece by construction; only single characters can be missing.
  for (size_t i = 0; i != kNone; i = symbols[i].next) {
    const std::string_view piece = std::string_view(text).substr(symbols[i].begin, symbols[i].size);
    const int32_t id = find_piece(piece);
    if (id >= 0) {
      out.push_back(id);
    } else {
      emit_unknown(piece, out);
    }
  }
  return out;
}

std::string SpmTokenizer::decode_piece(int32_t id, bool after_bos_or_start) const {
  if (id < 0 || id >= size()) return {};
  const std::string& piece = vocab_.pieces[id];
  std::string text;
  switch (vocab_.types[id]) {
    case TokenType::kNormal:
      text = piece;
      if (vocab_.escape_spaces) replace_all(text, kSpaceMark, " ");
      break;
    case TokenType::kUserDefined:  // verbatim, as llama.cpp prints them
      text = piece;
      break;
    case TokenType::kByte: {
      const int byte = byte_of_piece(piece);
      if (byte < 0) return {};
      text.assign(1, static_cast<char>(byte));
      break;
    }
    default:  // control, unknown, unused, undefined: nothing to show
      return {};
  }
  if (after_bos_or_start && vocab_.add_space_prefix && !text.empty() && text[0] == ' ') text.erase(0, 1);
  return text;
}

std::string SpmTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  bool at_start = true;
  for (int32_t id : ids) {
    std::string piece = decode_piece(id, false);
    const bool had_text = !piece.empty();
    // Strip here rather than in decode_piece so a first piece that is only the dummy space
    // (like "▁" before "\n") still ends the start: the next piece keeps its space.
    if (at_start && vocab_.add_space_prefix && had_text && piece[0] == ' ') piece.erase(0, 1);
    out += piece;
    at_start = id == vocab_.bos_id || (at_start && !had_text);
  }
  return out;
}

Result<SpmVocab> load_llama2c_tokenizer(const std::string& path, int32_t vocab_size) {
  if (vocab_size <= 0 || vocab_size > kMaxLlama2cVocab) {
    return invalid_argument("tokenizer " + path + ": vocab_size " + std::to_string(vocab_size) + " is outside 1.." +
                            std::to_string(kMaxLlama2cVocab));
  }
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) return errno_status("opening tokenizer " + path, errno);
  struct stat st {};
  if (fstat(fileno(file.get()), &st) != 0) return errno_status("reading tokenizer " + path, errno);
  if (!S_ISREG(st.st_mode)) return invalid_argument("tokenizer " + path + " is not a regular file");
  const auto file_size = static_cast<size_t>(st.st_size);
  // Refuse before reading what cannot be vocab_size records (a wrong path or vocab_size).
  const size_t max_size = 4 + static_cast<size_t>(vocab_size) * (8 + kMaxLlama2cPieceLength);
  if (file_size > max_size) {
    return invalid_argument("tokenizer " + path + " has " + std::to_string(file_size) + " bytes, more than " +
                            std::to_string(vocab_size) + " records can hold");
  }
  std::string bytes(file_size, '\0');
  if (std::fread(bytes.data(), 1, file_size, file.get()) != file_size) {
    return invalid_argument("tokenizer " + path + ": short read (file changed while reading?)");
  }
  if (bytes.size() < 4) return invalid_argument("tokenizer " + path + " is too short for its max_token_length header");

  SpmVocab vocab;
  vocab.escape_spaces = false;
  vocab.add_space_prefix = true;
  vocab.bos_id = 1;
  vocab.eos_id = 2;
  vocab.unk_id = 0;
  vocab.pieces.reserve(vocab_size);
  vocab.scores.reserve(vocab_size);
  size_t pos = 4;  // max_token_length is not needed: pieces are std::strings here
  for (int32_t i = 0; i < vocab_size; ++i) {
    auto where = [&] {
      return "tokenizer " + path + ": record " + std::to_string(i) + " of " + std::to_string(vocab_size);
    };
    if (bytes.size() - pos < 8) {
      return invalid_argument(where() + " is truncated: its header needs 8 bytes at offset " + std::to_string(pos) +
                              ", the file has " + std::to_string(bytes.size()));
    }
    const float score = std::bit_cast<float>(u32_at(bytes, pos));
    const auto len = static_cast<int32_t>(u32_at(bytes, pos + 4));
    pos += 8;
    if (len < 0 || len > kMaxLlama2cPieceLength) {
      return invalid_argument(where() + " has length " + std::to_string(len) + ", outside 0.." +
                              std::to_string(kMaxLlama2cPieceLength));
    }
    if (bytes.size() - pos < static_cast<size_t>(len)) {
      return invalid_argument(where() + " is truncated: its text needs " + std::to_string(len) + " bytes at offset " +
                              std::to_string(pos) + ", the file has " + std::to_string(bytes.size()));
    }
    vocab.scores.push_back(score);
    vocab.pieces.emplace_back(bytes, pos, static_cast<size_t>(len));
    pos += static_cast<size_t>(len);
  }
  if (pos != bytes.size()) {
    return invalid_argument("tokenizer " + path + ": " + std::to_string(bytes.size() - pos) +
                            " bytes follow the last of " + std::to_string(vocab_size) + " records; wrong vocab_size?");
  }
  return vocab;
}

}  // namespace llmops::engine
