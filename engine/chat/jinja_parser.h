// Tokens → syntax tree (private to engine/chat), with Jinja2's grammar and operator precedence:
// `x if c else y` < or < and < not < comparisons and `in` < + - < ~ < * / // % < ** < unary
// - + < postfix (.attr [i] [a:b:c] (call)) and filters/tests (| f, is t).
#pragma once

#include <memory>
#include <vector>

#include "chat/jinja_ast.h"
#include "chat/jinja_lexer.h"

namespace llmops::engine::jinja {

// Errors: kInvalidArgument "template line N: ..." for syntax errors, unknown filters and tests,
// unsupported or refused tags (include, import, extends...), break/continue outside a loop, and
// nesting deeper than limits.max_parse_depth.
Result<std::shared_ptr<const Body>> parse_tokens(std::vector<Token> tokens, const Limits& limits);

}  // namespace llmops::engine::jinja
