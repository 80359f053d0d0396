// Splits a template into text and tag tokens (private to engine/chat). Whitespace control is
// applied here, as Jinja's lexer does: {%- -%} {{- -}} {#- -#} strip, trim_blocks drops the
// newline after a block or comment tag, lstrip_blocks drops the indentation before one, '+'
// turns either off for its tag. Comments vanish and {% raw %} blocks become text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "chat/jinja.h"
#include "status.h"

namespace llmops::engine::jinja {

enum class Tok : uint8_t {
  kText,        // text: literal output
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,        // text: an identifier (keywords too)
  kString,      // text: the decoded literal
  kInt,         // int_value
  kFloat,       // float_value
  kOp,          // text: an operator or bracket
  kEof,
};

struct Token {
  Tok kind = Tok::kEof;
  int line = 1;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0;
};

// Errors: kInvalidArgument "template line N: ..." (unclosed tags, strings or comments, stray
// characters, unbalanced brackets, integer literals past int64).
Result<std::vector<Token>> lex_template(std::string_view source);

}  // namespace llmops::engine::jinja
