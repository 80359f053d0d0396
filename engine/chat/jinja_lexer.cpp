#include "chat/jinja_lexer.h"

#include "chat/jinja_strings.h"

#include <charconv>
#include <cmath>
#include <cstring>

namespace llmops::engine::jinja {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Lexer {
 public:
  explicit Lexer(std::string source) : src_(std::move(source)) {}

  Result<std::vector<Token>> run() {
    const size_t n = src_.size();
    while (pos_ < n) {
      size_t start = find_tag(pos_);
      if (start == std::string::npos) {
        emit_text(src_.substr(pos_), line_);
        advance_to(n);
        break;
      }
      const char kind = src_[start + 1];
      const char mod = start + 2 < n && (src_[start + 2] == '-' || src_[start + 2] == '+') ? src_[start + 2] : 0;
      std::string text = src_.substr(pos_, start - pos_);
      const int text_line = line_;
      if (mod == '-') {
        rstrip(text);
      } else if (mod != '+' && kind != '{') {
        lstrip_block(text);
      }
      emit_text(std::move(text), text_line);
      advance_to(start + 2 + (mod ? 1 : 0));
      Status s;
      if (kind == '#') {
        s = lex_comment(start);
      } else if (kind == '%' && at_raw()) {
        s = lex_raw(start);
      } else {
        s = lex_tag(kind == '%');
      }
      LLMOPS_RETURN_IF_ERROR(s);
      line_starting_ = pos_ > 0 && src_[pos_ - 1] == '\n';
    }
    Token eof;
    eof.kind = Tok::kEof;
    eof.line = line_;
    out_.push_back(std::move(eof));
    return std::move(out_);
  }

 private:
  Status error(int line, const std::string& msg) const {
    return invalid_argument("template line " + std::to_string(line) + ": " + msg);
  }

  size_t find_tag(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return std::string::npos;
  }

  void advance_to(size_t p) {
    for (; pos_ < p; ++pos_) {
      if (src_[pos_] == '\n') ++line_;
    }
  }

  void skip_space() {
    size_t p = pos_;
    while (p < src_.size() && is_space(src_[p])) ++p;
    advance_to(p);
  }

  bool starts_with(std::string_view s) const { return src_.compare(pos_, s.size(), s) == 0; }

  static void rstrip(std::string& text) {
    size_t end = text.size();
    while (end > 0 && is_space(text[end - 1])) --end;
    text.resize(end);
  }

  // lstrip_blocks: a block or comment tag alone on its line takes its indentation with it.
  void lstrip_block(std::string& text) const {
    size_t line_start = text.rfind('\n');
    line_start = line_start == std::string::npos ? 0 : line_start + 1;
    if (line_start == 0 && !line_starting_) return;
    if (line_start == text.size()) return;
    for (size_t i = line_start; i < text.size(); ++i) {
      if (!is_space(text[i])) return;
    }
    text.resize(line_start);
  }

  void emit_text(std::string text, int line) {
    if (text.empty()) return;
    Token t;
    t.kind = Tok::kText;
    t.line = line;
    t.text = std::move(text);
    out_.push_back(std::move(t));
  }

  void emit(Tok kind, int line, std::string text = {}) {
    Token t;
    t.kind = kind;
    t.line = line;
    t.text = std::move(text);
    out_.push_back(std::move(t));
  }

  // After a block or comment tag: '-' strips the whitespace that follows, trim_blocks one newline.
  void after_block_end(bool strip, bool keep) {
    if (strip) {
      skip_space();
    } else if (!keep && pos_ < src_.size() && src_[pos_] == '\n') {
      advance_to(pos_ + 1);
    }
  }

  Status lex_comment(size_t tag_start) {
    const int line = line_;
    size_t close = src_.find("#}", pos_);
    if (close == std::string::npos) return error(line, "unclosed comment (no '#}')");
    (void)tag_start;
    const bool strip = close > pos_ && src_[close - 1] == '-';
    advance_to(close + 2);
    after_block_end(strip, false);
    return ok_status();
  }

  // Whether "{%" at pos_ opens a raw block: "raw" then the tag's end.
  bool at_raw() const {
    size_t p = pos_;
    while (p < src_.size() && is_space(src_[p])) ++p;
    if (src_.compare(p, 3, "raw") != 0) return false;
    p += 3;
    return p < src_.size() && !is_name_char(src_[p]);
  }

  // {% raw %}...{% endraw %}: the content is text, tags and all.
  Status lex_raw(size_t tag_start) {
    const int line = line_;
    skip_space();
    advance_to(pos_ + 3);  // "raw"
    skip_space();
    if (starts_with("-%}")) {
      advance_to(pos_ + 3);
      skip_space();
    } else if (starts_with("%}")) {
      advance_to(pos_ + 2);
    } else {
      return error(line, "expected '%}' after 'raw'");
    }
    line_starting_ = pos_ > 0 && src_[pos_ - 1] == '\n';
    for (size_t i = src_.find("{%", pos_); i != std::string::npos; i = src_.find("{%", i + 1)) {
      size_t p = i + 2;
      char mod = p < src_.size() && (src_[p] == '-' || src_[p] == '+') ? src_[p] : 0;
      if (mod) ++p;
      while (p < src_.size() && is_space(src_[p])) ++p;
      if (src_.compare(p, 6, "endraw") != 0) continue;
      p += 6;
      while (p < src_.size() && is_space(src_[p])) ++p;
      char end_mod = p < src_.size() && (src_[p] == '-' || src_[p] == '+') ? src_[p] : 0;
      if (src_.compare(p + (end_mod ? 1 : 0), 2, "%}") != 0) continue;
      std::string text = src_.substr(pos_, i - pos_);
      if (mod == '-') {
        rstrip(text);
      } else if (mod != '+') {
        lstrip_block(text);
      }
      emit_text(std::move(text), line_);
      advance_to(p + (end_mod ? 1 : 0) + 2);
      after_block_end(end_mod == '-', end_mod == '+');
      return ok_status();
    }
    (void)tag_start;
    return error(line, "unclosed raw block (no '{% endraw %}')");
  }

  // The tokens of a {{ }} or {% %} tag, through its end. The end only counts outside brackets,
  // so {{ {'a': {'b': 1}} }} closes where it should.
  Status lex_tag(bool is_block) {
    const int open_line = line_;
    emit(is_block ? Tok::kBlockBegin : Tok::kVarBegin, line_);
    std::vector<char> brackets;
    for (;;) {
      skip_space();
      if (pos_ >= src_.size()) {
        return error(open_line, std::string("unclosed tag: expected '") + (is_block ? "%}" : "}}") + "'");
      }
      if (brackets.empty()) {
        if (is_block) {
          if (starts_with("-%}") || starts_with("+%}") || starts_with("%}")) {
            const char mod = src_[pos_] == '%' ? 0 : src_[pos_];
            emit(Tok::kBlockEnd, line_);
            advance_to(pos_ + (mod ? 3 : 2));
            after_block_end(mod == '-', mod == '+');
            return ok_status();
          }
        } else if (starts_with("-}}") || starts_with("}}")) {
          const bool strip = src_[pos_] == '-';
          emit(Tok::kVarEnd, line_);
          advance_to(pos_ + (strip ? 3 : 2));
          if (strip) skip_space();
          return ok_status();
        }
      }
      const char c = src_[pos_];
      if (is_name_start(c)) {
        size_t p = pos_;
        while (p < src_.size() && is_name_char(src_[p])) ++p;
        emit(Tok::kName, line_, src_.substr(pos_, p - pos_));
        advance_to(p);
      } else if (is_digit(c)) {
        LLMOPS_RETURN_IF_ERROR(lex_number());
      } else if (c == '\'' || c == '"') {
        LLMOPS_RETURN_IF_ERROR(lex_string());
      } else {
        LLMOPS_RETURN_IF_ERROR(lex_operator(brackets));
      }
    }
  }

  Status lex_operator(std::vector<char>& brackets) {
    static constexpr const char* kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
    for (const char* op : kTwo) {
      if (starts_with(op)) {
        emit(Tok::kOp, line_, op);
        advance_to(pos_ + 2);
        return ok_status();
      }
    }
    const char c = src_[pos_];
    if (!std::strchr("+-*/%~<>=()[]{}.:,|", c) || c == 0) {
      const unsigned char u = static_cast<unsigned char>(c);
      if (u >= 0x20 && u < 0x7f) return error(line_, std::string("unexpected character '") + c + "'");
      return error(line_, "unexpected byte " + std::to_string(u));
    }
    if (c == '(' || c == '[' || c == '{') {
      brackets.push_back(c);
    } else if (c == ')' || c == ']' || c == '}') {
      const char open = c == ')' ? '(' : (c == ']' ? '[' : '{');
      if (brackets.empty() || brackets.back() != open) return error(line_, std::string("unexpected '") + c + "'");
      brackets.pop_back();
    }
    emit(Tok::kOp, line_, std::string(1, c));
    advance_to(pos_ + 1);
    return ok_status();
  }

  // Digits with single '_' between them ("1_000").
  size_t scan_digits(size_t p, std::string& digits) const {
    while (p < src_.size() && is_digit(src_[p])) {
      digits += src_[p++];
      if (p + 1 < src_.size() && src_[p] == '_' && is_digit(src_[p + 1])) ++p;
    }
    return p;
  }

  Status lex_number() {
    std::string digits;
    size_t p = scan_digits(pos_, digits);
    bool is_float = false;
    if (p + 1 < src_.size() && src_[p] == '.' && is_digit(src_[p + 1])) {
      digits += '.';
      p = scan_digits(p + 1, digits);
      is_float = true;
    }
    if (p < src_.size() && (src_[p] == 'e' || src_[p] == 'E')) {
      size_t q = p + 1;
      std::string exp = "e";
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) exp += src_[q++];
      if (q < src_.size() && is_digit(src_[q])) {
        p = scan_digits(q, exp);
        digits += exp;
        is_float = true;
      }
    }
    Token t;
    t.line = line_;
    if (is_float) {
      t.kind = Tok::kFloat;
      auto res = std::from_chars(digits.data(), digits.data() + digits.size(), t.float_value);
      // Out of range leaves the value alone; Python reads 1e999 as inf and 1e-999 as 0.0.
      if (res.ec == std::errc::result_out_of_range) {
        t.float_value = digits.find("e-") != std::string::npos ? 0.0 : HUGE_VAL;
      }
    } else {
      t.kind = Tok::kInt;
      auto res = std::from_chars(digits.data(), digits.data() + digits.size(), t.int_value);
      if (res.ec != std::errc()) return error(line_, "integer literal " + digits + " is too large");
    }
    out_.push_back(std::move(t));
    advance_to(p);
    return ok_status();
  }

  // Python's escapes; an unknown one keeps its backslash, as Python does.
  Status lex_string() {
    const int line = line_;
    const char quote = src_[pos_];
    std::string value;
    size_t p = pos_ + 1;
    for (;;) {
      if (p >= src_.size()) return error(line, "unclosed string literal");
      const char c = src_[p];
      if (c == quote) break;
      if (c != '\\') {
        value += c;
        ++p;
        continue;
      }
      if (p + 1 >= src_.size()) return error(line, "unclosed string literal");
      const char e = src_[p + 1];
      p += 2;
      switch (e) {
        case '\n': break;
        case '\\': value += '\\'; break;
        case '\'': value += '\''; break;
        case '"': value += '"'; break;
        case 'a': value += '\a'; break;
        case 'b': value += '\b'; break;
        case 'f': value += '\f'; break;
        case 'n': value += '\n'; break;
        case 'r': value += '\r'; break;
        case 't': value += '\t'; break;
        case 'v': value += '\v'; break;
        case 'x':
        case 'u':
        case 'U': {
          const size_t len = e == 'x' ? 2 : (e == 'u' ? 4 : 8);
          uint32_t cp = 0;
          for (size_t k = 0; k < len; ++k) {
            int h = p + k < src_.size() ? hex_value(src_[p + k]) : -1;
            if (h < 0) return error(line, std::string("truncated \\") + e + " escape in a string literal");
            cp = cp * 16 + static_cast<uint32_t>(h);
          }
          if (cp > 0x10FFFF) return error(line, "escape past U+10FFFF in a string literal");
          append_utf8(value, cp);  // a lone surrogate (\uD83D) becomes U+FFFD
          p += len;
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = static_cast<uint32_t>(e - '0');
            for (int k = 0; k < 2 && p < src_.size() && src_[p] >= '0' && src_[p] <= '7'; ++k) {
              cp = cp * 8 + static_cast<uint32_t>(src_[p++] - '0');
            }
            append_utf8(value, cp);
          } else {
            value += '\\';
            value += e;
          }
      }
    }
    emit(Tok::kString, line, std::move(value));
    advance_to(p + 1);
    return ok_status();
  }

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
  std::vector<Token> out_;
};

// Jinja reads "\r\n" and "\r" as "\n" and drops one trailing newline (keep_trailing_newline off).
std::string normalize_newlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

Result<std::vector<Token>> lex_template(std::string_view source) {
  return Lexer(normalize_newlines(source)).run();
}

}  // namespace llmops::engine::jinja
