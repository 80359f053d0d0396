#include "chat/jinja.h"

#include "chat/jinja_lexer.h"
#include "chat/jinja_parser.h"
#include "chat/jinja_render.h"

namespace llmops::engine::jinja {

Result<Template> Template::parse(std::string_view source, const Limits& limits) {
  if (source.size() > limits.max_source_bytes) {
    return invalid_argument("template of " + std::to_string(source.size()) + " bytes is over the limit of " +
                            std::to_string(limits.max_source_bytes));
  }
  LLMOPS_ASSIGN_OR_RETURN(std::vector<Token> tokens, lex_template(source));
  LLMOPS_ASSIGN_OR_RETURN(std::shared_ptr<const Body> body, parse_tokens(std::move(tokens), limits));
  Template t;
  t.body_ = std::move(body);
  t.limits_ = limits;
  return t;
}

Result<std::string> Template::render(const Json& variables, const RenderOptions& options) const {
  if (!variables.is_object() && !variables.is_null()) {
    return invalid_argument("template variables must be a JSON object");
  }
  Dict globals;
  if (variables.is_object()) {
    for (const auto& [name, value] : variables.items()) {
      LLMOPS_ASSIGN_OR_RETURN(Value v, from_json(value, limits_.max_depth - 1));
      globals.set(name, std::move(v));
    }
  }
  Renderer renderer(limits_, options);
  return renderer.render(*body_, std::move(globals));
}

}  // namespace llmops::engine::jinja
