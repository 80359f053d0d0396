// The syntax tree of a parsed template (private to engine/chat). Built once by the parser,
// immutable after, shared by every render of the template.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/jinja.h"
#include "chat/jinja_value.h"

namespace llmops::engine::jinja {

class Renderer;

// Arguments of a call, filter or test, evaluated.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> named;
};

// A filter gets the value left of '|'; a test the value left of 'is'. Errors come back without
// a line; the renderer adds it.
using FilterFn = Result<Value> (*)(Renderer& r, const Value& input, const CallArgs& args);
using TestFn = Result<bool> (*)(Renderer& r, const Value& input, const CallArgs& args);

enum class Op : uint8_t {
  kAdd, kSub, kMul, kDiv, kFloorDiv, kMod, kPow, kConcat,
  kEq, kNe, kLt, kLe, kGt, kGe, kIn, kNotIn,
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Arg {
  std::string name;  // empty: positional
  ExprPtr value;
};

struct Expr {
  enum class Kind : uint8_t {
    kLiteral,   // literal
    kName,      // name
    kList,      // [items...]
    kTuple,     // (items...)
    kDict,      // {items[0]: items[1], items[2]: items[3], ...}
    kAttr,      // items[0].name
    kItem,      // items[0][items[1]]
    kSlice,     // items[0][items[1]:items[2]:items[3]]; an omitted part is null
    kCall,      // items[0](args)
    kFilter,    // items[0] | name(args), filter
    kTest,      // items[0] is [not] name(args), test, negated
    kNeg,       // -items[0]
    kPos,       // +items[0]
    kNot,       // not items[0]
    kBinary,    // items[0] op items[1]
    kAnd,       // items[0] and items[1]
    kOr,        // items[0] or items[1]
    kCompare,   // items[0] ops[0] items[1] ops[1] items[2] ... (chained, like Python)
    kCondExpr,  // items[1] if items[0] else items[2]; items[2] may be null
  };
  Kind kind = Kind::kLiteral;
  int line = 0;
  Value literal;
  std::string name;
  std::vector<ExprPtr> items;
  std::vector<Arg> args;
  Op op = Op::kAdd;
  std::vector<Op> ops;
  bool negated = false;
  FilterFn filter = nullptr;
  TestFn test = nullptr;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;

struct Body {
  std::vector<StmtPtr> stmts;
};

struct IfBranch {
  ExprPtr cond;  // null: else
  Body body;
};

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // null: undefined when the caller gives none (as Jinja does)
};

struct Stmt {
  enum class Kind : uint8_t {
    kText,      // text
    kOutput,    // {{ expr }}
    kIf,        // branches
    kFor,       // for names in expr [if filter_cond]: body [else: else_body]
    kSet,       // set names = expr (several names: unpacking)
    kSetAttr,   // set names[0].text = expr, on a namespace
    kSetBlock,  // set names[0] %} body {% endset
    kMacro,     // macro text(params): body
    kBreak,
    kContinue,
  };
  Kind kind = Kind::kText;
  int line = 0;
  std::string text;
  std::vector<std::string> names;
  ExprPtr expr;
  ExprPtr filter_cond;
  std::vector<IfBranch> branches;
  Body body;
  Body else_body;
  std::vector<MacroParam> params;
};

// From jinja_builtins.cpp: the filters and tests by name (nullptr when unknown).
FilterFn find_filter(std::string_view name);
TestFn find_test(std::string_view name);

}  // namespace llmops::engine::jinja
