#include "chat/jinja_parser.h"

#include <algorithm>
#include <initializer_list>

namespace llmops::engine::jinja {
namespace {

class Parser {
 public:
  Parser(std::vector<Token> tokens, const Limits& limits) : toks_(std::move(tokens)), limits_(limits) {}

  Result<std::shared_ptr<const Body>> run() {
    auto body = std::make_shared<Body>();
    std::string end;
    LLMOPS_RETURN_IF_ERROR(parse_body(*body, {}, &end, 0));
    return std::shared_ptr<const Body>(std::move(body));
  }

 private:
  // Depth of nested blocks and expressions; the guard fails the parse past the limit.
  class DepthGuard {
   public:
    explicit DepthGuard(Parser& p) : p_(p) { ++p_.depth_; }
    ~DepthGuard() { --p_.depth_; }
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;

   private:
    Parser& p_;
  };

  // A left-associative chain (a + b + c, x.a.b, x|f|g) nests one level per link, built in a loop:
  // each link counts until the chain is done, so the tree's height stays within the limit (a
  // tree that high would overflow the stack when evaluated or destroyed).
  class ChainGuard {
   public:
    explicit ChainGuard(Parser& p) : p_(p) {}
    ~ChainGuard() { p_.depth_ -= links_; }
    ChainGuard(const ChainGuard&) = delete;
    ChainGuard& operator=(const ChainGuard&) = delete;
    Status add() {
      ++p_.depth_;
      ++links_;
      return p_.check_depth();
    }

   private:
    Parser& p_;
    int links_ = 0;
  };

  Status check_depth() const {
    if (depth_ > limits_.max_parse_depth) {
      return error("template nests deeper than " + std::to_string(limits_.max_parse_depth) + " levels");
    }
    return ok_status();
  }

  const Token& cur() const { return toks_[pos_]; }
  const Token& peek(size_t k = 1) const { return toks_[std::min(pos_ + k, toks_.size() - 1)]; }
  void advance() {
    if (pos_ + 1 < toks_.size()) ++pos_;
  }
  bool at_op(std::string_view op) const { return cur().kind == Tok::kOp && cur().text == op; }
  bool at_name(std::string_view name) const { return cur().kind == Tok::kName && cur().text == name; }

  Status error(const std::string& msg) const { return error_at(cur().line, msg); }
  static Status error_at(int line, const std::string& msg) {
    return invalid_argument("template line " + std::to_string(line) + ": " + msg);
  }

  static std::string describe(const Token& t) {
    switch (t.kind) {
      case Tok::kText: return "text";
      case Tok::kVarBegin: return "'{{'";
      case Tok::kVarEnd: return "'}}'";
      case Tok::kBlockBegin: return "'{%'";
      case Tok::kBlockEnd: return "'%}'";
      case Tok::kName: return "'" + t.text + "'";
      case Tok::kString: return "a string";
      case Tok::kInt:
      case Tok::kFloat: return "a number";
      case Tok::kOp: return "'" + t.text + "'";
      case Tok::kEof: return "the end of the template";
    }
    return "?";
  }

  Status expect_op(std::string_view op) {
    if (!at_op(op)) return error("expected '" + std::string(op) + "', found " + describe(cur()));
    advance();
    return ok_status();
  }

  Status expect_block_end() {
    if (cur().kind != Tok::kBlockEnd) return error("expected '%}', found " + describe(cur()));
    advance();
    return ok_status();
  }

  Result<std::string> expect_name() {
    if (cur().kind != Tok::kName) return error("expected a name, found " + describe(cur()));
    std::string name = cur().text;
    advance();
    return name;
  }

  ExprPtr make(Expr::Kind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // Statements until one of end_tags ({% elif %}, {% endfor %}...), whose name is left in
  // *found (its tag's remaining tokens are the caller's). No end tags: until the end.
  Status parse_body(Body& body, std::initializer_list<std::string_view> end_tags, std::string* found, int open_line) {
    for (;;) {
      const Token& t = cur();
      switch (t.kind) {
        case Tok::kEof:
          if (end_tags.size() == 0) return ok_status();
          return error_at(open_line, "unclosed block: expected '{% " + std::string(*end_tags.begin()) +
                                         " %}' before the end of the template");
        case Tok::kText: {
          auto s = std::make_unique<Stmt>();
          s->kind = Stmt::Kind::kText;
          s->line = t.line;
          s->text = t.text;
          body.stmts.push_back(std::move(s));
          advance();
          break;
        }
        case Tok::kVarBegin: {
          auto s = std::make_unique<Stmt>();
          s->kind = Stmt::Kind::kOutput;
          s->line = t.line;
          advance();
          LLMOPS_ASSIGN_OR_RETURN(s->expr, parse_tuple(true));
          if (cur().kind != Tok::kVarEnd) return error("expected '}}', found " + describe(cur()));
          advance();
          body.stmts.push_back(std::move(s));
          break;
        }
        case Tok::kBlockBegin: {
          const Token& name = peek();
          if (name.kind == Tok::kName &&
              std::find(end_tags.begin(), end_tags.end(), name.text) != end_tags.end()) {
            *found = name.text;
            advance();
            advance();
            return ok_status();
          }
          LLMOPS_RETURN_IF_ERROR(parse_statement(body));
          break;
        }
        default: return error("unexpected " + describe(t));
      }
    }
  }

  Status parse_statement(Body& body) {
    DepthGuard guard(*this);
    LLMOPS_RETURN_IF_ERROR(check_depth());
    advance();  // {%
    if (cur().kind != Tok::kName) return error("expected a tag name, found " + describe(cur()));
    const std::string tag = cur().text;
    const int line = cur().line;
    advance();
    if (tag == "if") return parse_if(body, line);
    if (tag == "for") return parse_for(body, line);
    if (tag == "set") return parse_set(body, line);
    if (tag == "macro") return parse_macro(body, line);
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) return error_at(line, "'" + tag + "' outside a for loop");
      auto s = std::make_unique<Stmt>();
      s->kind = tag == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
      s->line = line;
      body.stmts.push_back(std::move(s));
      return expect_block_end();
    }
    if (tag == "generation") {  // transformers' marker of assistant text: rendered as its body
      LLMOPS_RETURN_IF_ERROR(expect_block_end());
      std::string end;
      LLMOPS_RETURN_IF_ERROR(parse_body(body, {"endgeneration"}, &end, line));
      return expect_block_end();
    }
    if (tag == "include" || tag == "import" || tag == "extends" || tag == "from" || tag == "block") {
      return error_at(line, "'{% " + tag + " %}' is not allowed: a sandboxed template can't load other templates");
    }
    if (tag == "call" || tag == "filter" || tag == "with" || tag == "autoescape" || tag == "do" || tag == "trans") {
      return error_at(line, "'{% " + tag + " %}' is not supported");
    }
    return error_at(line, "unknown or misplaced tag '" + tag + "'");
  }

  Status parse_if(Body& body, int line) {
    auto s = std::make_unique<Stmt>();
    s->kind = Stmt::Kind::kIf;
    s->line = line;
    LLMOPS_ASSIGN_OR_RETURN(ExprPtr cond, parse_expression(true));
    LLMOPS_RETURN_IF_ERROR(expect_block_end());
    for (;;) {
      IfBranch branch;
      branch.cond = std::move(cond);
      std::string end;
      LLMOPS_RETURN_IF_ERROR(parse_body(branch.body, {"endif", "elif", "else"}, &end, line));
      const bool is_else = !branch.cond;
      s->branches.push_back(std::move(branch));
      if (end == "endif") break;
      if (is_else) return error("expected '{% endif %}' after '{% else %}', found '{% " + end + " %}'");
      if (end == "elif") {
        LLMOPS_ASSIGN_OR_RETURN(cond, parse_expression(true));
      } else {
        cond = nullptr;
      }
      LLMOPS_RETURN_IF_ERROR(expect_block_end());
    }
    body.stmts.push_back(std::move(s));
    return expect_block_end();
  }

  Status parse_for(Body& body, int line) {
    auto s = std::make_unique<Stmt>();
    s->kind = Stmt::Kind::kFor;
    s->line = line;
    const bool parens = at_op("(");
    if (parens) advance();
    for (;;) {
      LLMOPS_ASSIGN_OR_RETURN(std::string name, expect_name());
      s->names.push_back(std::move(name));
      if (!at_op(",")) break;
      advance();
    }
    if (parens) LLMOPS_RETURN_IF_ERROR(expect_op(")"));
    if (!at_name("in")) return error("expected 'in' in a for loop, found " + describe(cur()));
    advance();
    LLMOPS_ASSIGN_OR_RETURN(s->expr, parse_tuple(false));
    if (at_name("if")) {
      advance();
      LLMOPS_ASSIGN_OR_RETURN(s->filter_cond, parse_expression(true));
    }
    if (at_name("recursive")) return error("recursive for loops are not supported");
    LLMOPS_RETURN_IF_ERROR(expect_block_end());
    ++loop_depth_;
    std::string end;
    Status st = parse_body(s->body, {"endfor", "else"}, &end, line);
    --loop_depth_;
    LLMOPS_RETURN_IF_ERROR(st);
    if (end == "else") {
      LLMOPS_RETURN_IF_ERROR(expect_block_end());
      LLMOPS_RETURN_IF_ERROR(parse_body(s->else_body, {"endfor"}, &end, line));
    }
    body.stmts.push_back(std::move(s));
    return expect_block_end();
  }

  Status parse_set(Body& body, int line) {
    auto s = std::make_unique<Stmt>();
    s->line = line;
    LLMOPS_ASSIGN_OR_RETURN(std::string first, expect_name());
    s->names.push_back(std::move(first));
    if (at_op(".")) {
      advance();
      s->kind = Stmt::Kind::kSetAttr;
      LLMOPS_ASSIGN_OR_RETURN(s->text, expect_name());
    } else {
      s->kind = Stmt::Kind::kSet;
      while (at_op(",")) {
        advance();
        LLMOPS_ASSIGN_OR_RETURN(std::string name, expect_name());
        s->names.push_back(std::move(name));
      }
    }
    if (cur().kind == Tok::kBlockEnd && s->kind == Stmt::Kind::kSet && s->names.size() == 1) {
      s->kind = Stmt::Kind::kSetBlock;
      advance();
      std::string end;
      LLMOPS_RETURN_IF_ERROR(parse_body(s->body, {"endset"}, &end, line));
      body.stmts.push_back(std::move(s));
      return expect_block_end();
    }
    LLMOPS_RETURN_IF_ERROR(expect_op("="));
    LLMOPS_ASSIGN_OR_RETURN(s->expr, parse_tuple(true));
    body.stmts.push_back(std::move(s));
    return expect_block_end();
  }

  Status parse_macro(Body& body, int line) {
    auto s = std::make_unique<Stmt>();
    s->kind = Stmt::Kind::kMacro;
    s->line = line;
    LLMOPS_ASSIGN_OR_RETURN(s->text, expect_name());
    LLMOPS_RETURN_IF_ERROR(expect_op("("));
    while (!at_op(")")) {
      MacroParam p;
      LLMOPS_ASSIGN_OR_RETURN(p.name, expect_name());
      if (at_op("=")) {
        advance();
        LLMOPS_ASSIGN_OR_RETURN(p.default_value, parse_expression(true));
      }
      s->params.push_back(std::move(p));
      if (!at_op(",")) break;
      advance();
    }
    LLMOPS_RETURN_IF_ERROR(expect_op(")"));
    LLMOPS_RETURN_IF_ERROR(expect_block_end());
    const int saved_loops = loop_depth_;
    loop_depth_ = 0;  // break/continue can't leave a macro
    std::string end;
    Status st = parse_body(s->body, {"endmacro"}, &end, line);
    loop_depth_ = saved_loops;
    LLMOPS_RETURN_IF_ERROR(st);
    body.stmts.push_back(std::move(s));
    return expect_block_end();
  }

  // ---- expressions ----

  bool at_tuple_end() const {
    return cur().kind == Tok::kVarEnd || cur().kind == Tok::kBlockEnd || at_op(")") || cur().kind == Tok::kEof ||
           at_name("if");
  }

  // expr or "a, b, ..." (a tuple without parentheses), as in {{ }}, set and for.
  Result<ExprPtr> parse_tuple(bool with_condexpr) {
    const int line = cur().line;
    LLMOPS_ASSIGN_OR_RETURN(ExprPtr first, parse_expression(with_condexpr));
    if (!at_op(",")) return first;
    auto tuple = make(Expr::Kind::kTuple, line);
    tuple->items.push_back(std::move(first));
    while (at_op(",")) {
      advance();
      if (at_tuple_end()) break;
      LLMOPS_ASSIGN_OR_RETURN(ExprPtr item, parse_expression(with_condexpr));
      tuple->items.push_back(std::move(item));
    }
    return tuple;
  }

  Result<ExprPtr> parse_expression(bool with_condexpr) {
    DepthGuard guard(*this);
    LLMOPS_RETURN_IF_ERROR(check_depth());
    if (!with_condexpr) return parse_or();
    LLMOPS_ASSIGN_OR_RETURN(ExprPtr value, parse_or());
    ChainGuard chain(*this);
    while (at_name("if")) {
      LLMOPS_RETURN_IF_ERROR(chain.add());
      const int line = cur().line;
      advance();
      auto cond = make(Expr::Kind::kCondExpr, line);
      LLMOPS_ASSIGN_OR_RETURN(ExprPtr test, parse_or());
      cond->items.push_back(std::move(test));
      cond->items.push_back(std::move(value));
      if (at_name("else")) {
        advance();
        LLMOPS_ASSIGN_OR_RETURN(ExprPtr other, parse_expression(true));
        cond->items.push_back(std::move(other));
      } else {
        cond->items.push_back(nullptr);
      }
      value = std::move(cond);
    }
    return value;
  }

  Result<ExprPtr> parse_or() {
    LLMOPS_ASSIGN_OR_RETURN(ExprPtr left, parse_and());
    ChainGuard chain(*this);
    while (at_name("or")) {
      LLMOPS_RETURN_IF_ERROR(chain.add());
      auto e = make(Expr::Kind::kOr, cur().line);
      advance();
      LLMOPS_ASSIGN_OR_RETURN(ExprPtr right, parse_and());
      e->items.push_back(std::move(left));
      e->items.push_back(std::move(right));
      left = std::move(e);
    }
    return left;
  }

  Result<ExprPtr> parse_and() {
    LLMOPS_ASSIGN_OR_RETURN(ExprPtr left, parse_not());
    ChainGuard chain(*this);
    while (at_name("and")) {
      LLMOPS_RETURN_IF_ERROR(chain.add());
      auto e = make(Expr::Kind::kAnd, cur().line);
      advance();
      LLMOPS_ASSIGN_OR_RETURN(ExprPtr right, parse_not());
      e->items.push_back(std::move(left));
      e->items.push_back(std::move(right));
      left = std::move(e);
    }
    return left;
  }

  Result<ExprPtr> parse_not() {
    if (!at_name("not")) return parse_compare();
    DepthGuard guard(*this);
    LLMOPS_RETURN_IF_ERROR(check_depth());
    auto e = make(Expr::Kind::kNot, cur().line);
    advance();
    LLMOPS_ASSIGN_OR_RETURN(ExprPtr operand, parse_not());
    e->items.push_back(std::move(operand));
    return e;
  }

  Result<ExprPtr> parse_compare() {
    const int line = cur().line;
    LLMOPS_ASSIGN_OR_RETURN(ExprPtr first, parse_math1());
    ExprPtr cmp;
    for (;;) {
      Op op;
      if (at_op("==")) op = Op::kEq;
      else if (at_op("!=")) op = Op::kNe;
      else if (at_op("<")) op = Op::kLt;
      else if (at_op("<=")) op = Op::kLe;
      else if (at_op(">")) op = Op::kGt;
      else if (at_op(">=")) op = Op::kGe;
      else if (at_name("in")) op = Op::kIn;
      else if (at_name("not") && peek().kind == Tok::kName && peek().text == "in") op = Op::kNotIn;
      else break;
      advance();
      if (op == Op::kNotIn) advance();
      if (!cmp) {
        cmp = make(Expr::Kind::kCompare, line);
        cmp->items.push_back(std::move(first));
      }
      LLMOPS_ASSIGN_OR_RETURN(ExprPtr rhs, parse_math1());
      cmp->ops.push_back(op);
      cmp->items.push_back(std::move(rhs));
    }
    return cmp ? std::move(cmp) : std::move(first);
  }

  using SubParser = Result<ExprPtr> (Parser::*)();

  // Left-associative binary operators of one precedence level.
  Result<ExprPtr> parse_binary(SubParser next, std::initializer_list<std::pair<std::string_view, Op>> ops) {
    LLMOPS_ASSIGN_OR_RETURN(ExprPtr left, (this->*next)());
    ChainGuard chain(*this);
    for (;;) {
      const std::pair<std::string_view, Op>* match = nullptr;
      for (const auto& o : ops) {
        if (at_op(o.first)) match = &o;
      }
      if (!match) return left;
      LLMOPS_RETURN_IF_ERROR(chain.add());
      auto e = make(Expr::Kind::kBinary, cur().line);
      e->op = match->second;
      advance();
      LLMOPS_ASSIGN_OR_RETURN(ExprPtr right, (this->*next)());
      e->items.push_back(std::move(left));
      e->items.push_back(std::move(right));
      left = std::move(e);
    }
  }

  Result<ExprPtr> parse_math1() { return parse_binary(&Parser::parse_concat, {{"+", Op::kAdd}, {"-", Op::kSub}}); }
  Result<ExprPtr> parse_concat() { return parse_binary(&Parser::parse_math2, {{"~", Op::kConcat}}); }
  Result<ExprPtr> parse_math2() {
    return parse_binary(&Parser::parse_pow,
                        {{"*", Op::kMul}, {"/", Op::kDiv}, {"//", Op::kFloorDiv}, {"%", Op::kMod}});
  }
  Result<ExprPtr> parse_pow() { return parse_binary(&Parser::parse_unary_filtered, {{"**", Op::kPow}}); }
  Result<ExprPtr> parse_unary_filtered() { return parse_unary(true); }

  Result<ExprPtr> parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    LLMOPS_RETURN_IF_ERROR(check_depth());
    ExprPtr node;
    if (at_op("-") || at_op("+")) {
      node = make(at_op("-") ? Expr::Kind::kNeg : Expr::Kind::kPos, cur().line);
      advance();
      LLMOPS_ASSIGN_OR_RETURN(ExprPtr operand, parse_unary(false));
      node->items.push_back(std::move(operand));
    } else {
      LLMOPS_ASSIGN_OR_RETURN(node, parse_primary());
    }
    LLMOPS_ASSIGN_OR_RETURN(node, parse_postfix(std::move(node)));
    if (with_filter) {
      LLMOPS_ASSIGN_OR_RETURN(node, parse_filter_expr(std::move(node)));
    }
    return node;
  }

  Result<ExprPtr> parse_primary() {
    const Token& t = cur();
    const int line = t.line;
    switch (t.kind) {
      case Tok::kName: {
        auto e = make(Expr::Kind::kLiteral, line);
        if (t.text == "true" || t.text == "True") {
          e->literal = Value::boolean(true);
        } else if (t.text == "false" || t.text == "False") {
          e->literal = Value::boolean(false);
        } else if (t.text == "none" || t.text == "None") {
          e->literal = Value::none();
        } else {
          e->kind = Expr::Kind::kName;
          e->name = t.text;
        }
        advance();
        return e;
      }
      case Tok::kString: {
        std::string s;
        while (cur().kind == Tok::kString) {  // "a" "b" is "ab", as in Python
          s += cur().text;
          advance();
        }
        auto e = make(Expr::Kind::kLiteral, line);
        e->literal = Value::string(std::move(s));
        return e;
      }
      case Tok::kInt: {
        auto e = make(Expr::Kind::kLiteral, line);
        e->literal = Value::integer(t.int_value);
        advance();
        return e;
      }
      case Tok::kFloat: {
        auto e = make(Expr::Kind::kLiteral, line);
        e->literal = Value::number(t.float_value);
        advance();
        return e;
      }
      case Tok::kOp:
        if (t.text == "(") return parse_parenthesized();
        if (t.text == "[") return parse_list();
        if (t.text == "{") return parse_dict();
        break;
      default: break;
    }
    return error("unexpected " + describe(t) + " in an expression");
  }

  Result<ExprPtr> parse_parenthesized() {
    const int line = cur().line;
    advance();
    if (at_op(")")) {
      advance();
      return make(Expr::Kind::kTuple, line);
    }
    LLMOPS_ASSIGN_OR_RETURN(ExprPtr first, parse_expression(true));
    if (at_op(")")) {
      advance();
      return first;
    }
    auto tuple = make(Expr::Kind::kTuple, line);
    tuple->items.push_back(std::move(first));
    while (at_op(",")) {
      advance();
      if (at_op(")")) break;
      LLMOPS_ASSIGN_OR_RETURN(ExprPtr item, parse_expression(true));
      tuple->items.push_back(std::move(item));
    }
    LLMOPS_RETURN_IF_ERROR(expect_op(")"));
    return tuple;
  }

  Result<ExprPtr> parse_list() {
    auto list = make(Expr::Kind::kList, cur().line);
    advance();
    while (!at_op("]")) {
      LLMOPS_ASSIGN_OR_RETURN(ExprPtr item, parse_expression(true));
      list->items.push_back(std::move(item));
      if (!at_op(",")) break;
      advance();
    }
    LLMOPS_RETURN_IF_ERROR(expect_op("]"));
    return list;
  }

  Result<ExprPtr> parse_dict() {
    auto dict = make(Expr::Kind::kDict, cur().line);
    advance();
    while (!at_op("}")) {
      LLMOPS_ASSIGN_OR_RETURN(ExprPtr key, parse_expression(true));
      LLMOPS_RETURN_IF_ERROR(expect_op(":"));
      LLMOPS_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(true));
      dict->items.push_back(std::move(key));
      dict->items.push_back(std::move(value));
      if (!at_op(",")) break;
      advance();
    }
    LLMOPS_RETURN_IF_ERROR(expect_op("}"));
    return dict;
  }

  Result<ExprPtr> parse_postfix(ExprPtr node) {
    ChainGuard chain(*this);
    for (;;) {
      const int line = cur().line;
      if (at_op(".") || at_op("[") || at_op("(")) LLMOPS_RETURN_IF_ERROR(chain.add());
      if (at_op(".")) {
        advance();
        if (cur().kind == Tok::kInt) {  // x.0 is x[0]
          auto index = make(Expr::Kind::kLiteral, line);
          index->literal = Value::integer(cur().int_value);
          advance();
          auto e = make(Expr::Kind::kItem, line);
          e->items.push_back(std::move(node));
          e->items.push_back(std::move(index));
          node = std::move(e);
          continue;
        }
        auto e = make(Expr::Kind::kAttr, line);
        LLMOPS_ASSIGN_OR_RETURN(e->name, expect_name());
        e->items.push_back(std::move(node));
        node = std::move(e);
      } else if (at_op("[")) {
        advance();
        LLMOPS_ASSIGN_OR_RETURN(node, parse_subscript(std::move(node), line));
      } else if (at_op("(")) {
        LLMOPS_ASSIGN_OR_RETURN(node, parse_call(std::move(node)));
      } else {
        return node;
      }
    }
  }

  // After '[': x[i] or x[a:b:c] with any part omitted.
  Result<ExprPtr> parse_subscript(ExprPtr target, int line) {
    ExprPtr parts[3];
    if (!at_op(":")) {
      LLMOPS_ASSIGN_OR_RETURN(parts[0], parse_expression(true));
      if (at_op("]")) {
        advance();
        auto e = make(Expr::Kind::kItem, line);
        e->items.push_back(std::move(target));
        e->items.push_back(std::move(parts[0]));
        return e;
      }
    }
    LLMOPS_RETURN_IF_ERROR(expect_op(":"));
    if (!at_op("]") && !at_op(":")) {
      LLMOPS_ASSIGN_OR_RETURN(parts[1], parse_expression(true));
    }
    if (at_op(":")) {
      advance();
      if (!at_op("]")) {
        LLMOPS_ASSIGN_OR_RETURN(parts[2], parse_expression(true));
      }
    }
    LLMOPS_RETURN_IF_ERROR(expect_op("]"));
    auto e = make(Expr::Kind::kSlice, line);
    e->items.push_back(std::move(target));
    for (auto& p : parts) e->items.push_back(std::move(p));
    return e;
  }

  Status parse_call_args(std::vector<Arg>& args) {
    LLMOPS_RETURN_IF_ERROR(expect_op("("));
    while (!at_op(")")) {
      if (at_op("*") || at_op("**")) return error("*args and **kwargs are not supported");
      Arg arg;
      if (cur().kind == Tok::kName && peek().kind == Tok::kOp && peek().text == "=") {
        arg.name = cur().text;
        advance();
        advance();
      } else if (!args.empty() && !args.back().name.empty()) {
        return error("a positional argument follows a keyword argument");
      }
      LLMOPS_ASSIGN_OR_RETURN(arg.value, parse_expression(true));
      args.push_back(std::move(arg));
      if (!at_op(",")) break;
      advance();
    }
    return expect_op(")");
  }

  Result<ExprPtr> parse_call(ExprPtr callee) {
    auto e = make(Expr::Kind::kCall, cur().line);
    e->items.push_back(std::move(callee));
    LLMOPS_RETURN_IF_ERROR(parse_call_args(e->args));
    return e;
  }

  Result<ExprPtr> parse_filter_expr(ExprPtr node) {
    ChainGuard chain(*this);
    for (;;) {
      const int line = cur().line;
      if (at_op("|") || at_name("is") || at_op("(")) LLMOPS_RETURN_IF_ERROR(chain.add());
      if (at_op("|")) {
        advance();
        auto e = make(Expr::Kind::kFilter, line);
        LLMOPS_ASSIGN_OR_RETURN(e->name, expect_name());
        e->filter = find_filter(e->name);
        if (!e->filter) return error_at(line, "unknown filter '" + e->name + "'");
        if (at_op("(")) LLMOPS_RETURN_IF_ERROR(parse_call_args(e->args));
        e->items.push_back(std::move(node));
        node = std::move(e);
      } else if (at_name("is")) {
        advance();
        auto e = make(Expr::Kind::kTest, line);
        if (at_name("not")) {
          e->negated = true;
          advance();
        }
        LLMOPS_ASSIGN_OR_RETURN(e->name, expect_name());
        e->test = find_test(e->name);
        if (!e->test) return error_at(line, "unknown test '" + e->name + "'");
        if (at_op("(")) {
          LLMOPS_RETURN_IF_ERROR(parse_call_args(e->args));
        } else if (takes_bare_test_arg()) {
          LLMOPS_ASSIGN_OR_RETURN(ExprPtr arg, parse_primary());
          LLMOPS_ASSIGN_OR_RETURN(arg, parse_postfix(std::move(arg)));
          e->args.push_back(Arg{"", std::move(arg)});
        }
        e->items.push_back(std::move(node));
        node = std::move(e);
      } else if (at_op("(")) {
        LLMOPS_ASSIGN_OR_RETURN(node, parse_call(std::move(node)));
      } else {
        return node;
      }
    }
  }

  // `x is divisibleby 3`, `x is sameas false`: a test's one argument may follow bare.
  bool takes_bare_test_arg() const {
    const Token& t = cur();
    if (t.kind == Tok::kName) return t.text != "else" && t.text != "or" && t.text != "and" && t.text != "is";
    return t.kind == Tok::kString || t.kind == Tok::kInt || t.kind == Tok::kFloat || at_op("[") || at_op("{");
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  const Limits& limits_;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Result<std::shared_ptr<const Body>> parse_tokens(std::vector<Token> tokens, const Limits& limits) {
  return Parser(std::move(tokens), limits).run();
}

}  // namespace llmops::engine::jinja
