#include "tokenizer/pretokenize.h"

#include <algorithm>

#include "tokenizer/unicode.h"

namespace llmops::engine {
namespace {

constexpr std::string_view kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

struct Char {
  size_t offset;  // of its first byte in the text
  uint32_t cp;    // kInvalidCodePoint for a byte that is not well-formed UTF-8
  CodePointClass cls;
};

// Matches one regex at a time over the decoded characters. Positions are character indices;
// past the end every test fails, which is how the regexes see the end of the text.
class Matcher {
 public:
  explicit Matcher(const std::vector<Char>& chars) : chars_(chars), n_(chars.size()) {}

  // Index one past the word that starts at character i (< n), for each regex.
  size_t gpt2_word_end(size_t i) const {
    if (const size_t len = contraction_length(i, /*fold_case=*/false)) return i + len;
    // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+': an optional space, then a run of one class.
    const size_t j = cp(i) == ' ' ? i + 1 : i;
    for (CodePointClass cls : {CodePointClass::kLetter, CodePointClass::kNumber, CodePointClass::kOther}) {
      if (is(j, cls)) return run_end(j, cls);
    }
    return whitespace_end(i);  // c[i] is whitespace here
  }

  size_t llama3_word_end(size_t i, size_t max_digits) const {
    if (const size_t len = contraction_length(i, /*fold_case=*/true)) return i + len;
    const CodePointClass cls = chars_[i].cls;
    // '[^\r\n\p{L}\p{N}]?\p{L}+': a letter run, with one leading non-letter/digit/newline.
    if (cls == CodePointClass::kLetter) return run_end(i, CodePointClass::kLetter);
    if (cls != CodePointClass::kNumber && !is_newline(i) && is(i + 1, CodePointClass::kLetter)) {
      return run_end(i + 1, CodePointClass::kLetter);
    }
    // '\p{N}{1,3}' (Qwen2: '\p{N}')
    if (cls == CodePointClass::kNumber) return std::min(run_end(i, CodePointClass::kNumber), i + max_digits);
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    const size_t j = cp(i) == ' ' ? i + 1 : i;
    if (is(j, CodePointClass::kOther)) {
      size_t end = run_end(j, CodePointClass::kOther);
      while (is_newline(end)) ++end;
      return end;
    }
    // '\s*[\r\n]+': the whitespace run up to and including its last newline, if it has one.
    const size_t run = run_end(i, CodePointClass::kWhitespace);
    for (size_t k = run; k > i; --k) {
      if (is_newline(k - 1)) return k;
    }
    return whitespace_end(i);
  }

 private:
  bool is(size_t k, CodePointClass cls) const { return k < n_ && chars_[k].cls == cls; }
  uint32_t cp(size_t k) const { return k < n_ ? chars_[k].cp : kInvalidCodePoint; }
  bool is_newline(size_t k) const { return cp(k) == '\r' || cp(k) == '\n'; }
  size_t run_end(size_t k, CodePointClass cls) const {
    while (is(k, cls)) ++k;
    return k;
  }

  // "'s|'t|'re|'ve|'m|'ll|'d" at i: its length in characters, or 0.
  size_t contraction_length(size_t i, bool fold_case) const {
    if (cp(i) != '\'') return 0;
    const auto letter = [&](size_t k) {
      const uint32_t c = cp(k);
      return fold_case && c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
    };
    const uint32_t a = letter(i + 1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    const uint32_t b = letter(i + 2);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
  }

  // '\s+(?!\S)|\s+' at whitespace i: the whole run when it ends the text; otherwise all but its
  // last character, which then starts the next word (so "  x" gives " " and " x"); a run of one
  // character before a non-space is a word by itself.
  size_t whitespace_end(size_t i) const {
    size_t end = run_end(i, CodePointClass::kWhitespace);
    if (end < n_ && end - i > 1) --end;
    return end;
  }

  const std::vector<Char>& chars_;
  const size_t n_;
};

}  // namespace

const char* pre_tokenizer_name(BpePreTokenizer kind) {
  switch (kind) {
    case BpePreTokenizer::kGpt2: return "gpt2";
    case BpePreTokenizer::kLlama3: return "llama3";
    case BpePreTokenizer::kQwen2: return "qwen2";
  }
  return "?";
}

std::string_view pre_tokenizer_regex(BpePreTokenizer kind) {
  switch (kind) {
    case BpePreTokenizer::kGpt2: return kGpt2Regex;
    case BpePreTokenizer::kLlama3: return kLlama3Regex;
    case BpePreTokenizer::kQwen2: return kQwen2Regex;
  }
  return {};
}

std::optional<BpePreTokenizer> pre_tokenizer_for_regex(std::string_view pattern) {
  for (BpePreTokenizer kind : {BpePreTokenizer::kGpt2, BpePreTokenizer::kLlama3, BpePreTokenizer::kQwen2}) {
    if (pattern == pre_tokenizer_regex(kind)) return kind;
  }
  return std::nullopt;
}

std::vector<std::string_view> pre_tokenize(std::string_view text, BpePreTokenizer kind) {
  std::vector<Char> chars;
  chars.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    uint32_t cp;
    const size_t len = decode_utf8(text, pos, cp);
    chars.push_back({pos, cp, cp == kInvalidCodePoint ? CodePointClass::kOther : code_point_class(cp)});
    pos += len;
  }
  const Matcher matcher(chars);
  std::vector<std::string_view> words;
  for (size_t i = 0; i < chars.size();) {
    size_t end;
    switch (kind) {
      case BpePreTokenizer::kGpt2: end = matcher.gpt2_word_end(i); break;
      case BpePreTokenizer::kLlama3: end = matcher.llama3_word_end(i, 3); break;
      case BpePreTokenizer::kQwen2: end = matcher.llama3_word_end(i, 1); break;
      default: end = chars.size(); break;
    }
    end = std::max(end, i + 1);  // every character starts a word; never stall
    const size_t begin_byte = chars[i].offset;
    const size_t end_byte = end < chars.size() ? chars[end].offset : text.size();
    words.push_back(text.substr(begin_byte, end_byte - begin_byte));
    i = end;
  }
  return words;
}

}  // namespace llmops::engine
