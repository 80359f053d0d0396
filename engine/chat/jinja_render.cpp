#include "chat/jinja_render.h"

#include "chat/jinja_strings.h"

#include <algorithm>
#include <cmath>

namespace llmops::engine::jinja {

class Renderer::DepthGuard {
 public:
  explicit DepthGuard(Renderer& r) : r_(r) { ++r_.depth_; }
  ~DepthGuard() { --r_.depth_; }
  DepthGuard(const DepthGuard&) = delete;
  DepthGuard& operator=(const DepthGuard&) = delete;
  bool exceeded() const { return r_.depth_ > r_.limits_.max_depth; }

 private:
  Renderer& r_;
};

namespace {

bool starts_with_underscore(const std::string& s) { return !s.empty() && s[0] == '_'; }

// Python's slice of a sequence of len items: the indexes it selects.
Result<std::vector<size_t>> slice_indexes(int64_t len, const Value& start_v, const Value& stop_v, const Value& step_v) {
  for (const Value* v : {&start_v, &stop_v, &step_v}) {
    if (!v->is_undefined() && !v->is_none() && !v->is_int() && !v->is_bool()) {
      return invalid_argument("slice indices must be integers or none");
    }
  }
  const auto given = [](const Value& v) { return v.is_int() || v.is_bool(); };
  int64_t step = given(step_v) ? step_v.to_int() : 1;
  if (step == 0) return invalid_argument("slice step cannot be zero");
  // Any step longer than the sequence selects at most one item; clamping keeps the arithmetic
  // below from overflowing.
  step = std::clamp<int64_t>(step, -(len + 1), len + 1);
  const int64_t lower = step > 0 ? 0 : -1;
  const int64_t upper = step > 0 ? len : len - 1;
  const auto clamp_index = [&](const Value& v, int64_t fallback) {
    if (!given(v)) return fallback;
    int64_t i = v.to_int();
    if (i < 0) return std::max(i < -len ? lower : i + len, lower);
    return std::min(i, upper);
  };
  const int64_t start = clamp_index(start_v, step > 0 ? lower : upper);
  const int64_t stop = clamp_index(stop_v, step > 0 ? upper : lower);
  std::vector<size_t> out;
  if (step > 0) {
    for (int64_t i = start; i < stop; i += step) out.push_back(static_cast<size_t>(i));
  } else {
    for (int64_t i = start; i > stop; i += step) out.push_back(static_cast<size_t>(i));
  }
  return out;
}

}  // namespace

Status undefined_error(const Value& v) {
  const std::string& hint = v.undefined_hint();
  return invalid_argument((hint.empty() ? std::string("a value") : hint) + " is undefined");
}

Status sandbox_error(const std::string& what, const Value& obj) {
  return invalid_argument("template tried to reach '" + what + "' on a " + type_name(obj) +
                          " (only dict keys and whitelisted methods are reachable)");
}

Result<std::vector<Value>> iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kList: return v.items();
    case Value::Kind::kUndefined: return std::vector<Value>{};
    case Value::Kind::kDict: {
      std::vector<Value> keys;
      keys.reserve(v.dict_obj().size());
      for (const auto& [k, item] : v.dict_obj().items()) keys.push_back(Value::string(k));
      return keys;
    }
    case Value::Kind::kString: {
      const auto offsets = utf8_offsets(v.str());
      std::vector<Value> chars;
      chars.reserve(offsets.size() - 1);
      for (size_t i = 0; i + 1 < offsets.size(); ++i) {
        chars.push_back(Value::string(v.str().substr(offsets[i], offsets[i + 1] - offsets[i])));
      }
      return chars;
    }
    default: return invalid_argument(std::string("'") + type_name(v) + "' object is not iterable");
  }
}

Result<Value> get_item(const Value& obj, const Value& key) {
  switch (obj.kind()) {
    case Value::Kind::kUndefined: return undefined_error(obj);
    case Value::Kind::kDict:
    case Value::Kind::kNamespace: {
      if (!key.is_string()) return Value::undefined("item " + scalar_str(key));
      const Dict& d = obj.is_dict() ? obj.dict_obj() : obj.ns_obj().attrs;
      const Value* found = d.find(key.str());
      return found ? *found : Value::undefined("key '" + key.str() + "'");
    }
    case Value::Kind::kList:
    case Value::Kind::kString: {
      if (key.is_string()) return sandbox_error(key.str(), obj);
      if (!key.is_int() && !key.is_bool()) return Value::undefined("item " + scalar_str(key));
      int64_t i = key.to_int();
      if (obj.is_list()) {
        const int64_t n = static_cast<int64_t>(obj.items().size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) return Value::undefined("item " + std::to_string(key.to_int()));
        return obj.items()[static_cast<size_t>(i)];
      }
      const auto offsets = utf8_offsets(obj.str());
      const int64_t n = static_cast<int64_t>(offsets.size()) - 1;
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value::undefined("item " + std::to_string(key.to_int()));
      return Value::string(obj.str().substr(offsets[i], offsets[i + 1] - offsets[i]));
    }
    default:
      if (key.is_string() && starts_with_underscore(key.str())) return sandbox_error(key.str(), obj);
      return Value::undefined("item " + scalar_str(key) + " of a " + type_name(obj));
  }
}

Result<std::string> Renderer::render(const Body& body, Dict globals) {
  frames_.clear();
  frames_.push_back(std::move(globals));
  floor_ = 1;
  std::string out;
  out_ = &out;
  auto flow = exec_body(body);
  out_ = nullptr;
  if (!flow.ok()) return flow.status();
  return out;
}

Status Renderer::at(int line, Status s) const {
  if (s.ok() || raised_) return s;
  static constexpr std::string_view kPrefix = "template line ";
  if (s.message().compare(0, kPrefix.size(), kPrefix) == 0) return s;
  return Status(s.code(), std::string(kPrefix) + std::to_string(line) + ": " + s.message());
}

Status Renderer::charge(uint64_t steps) {
  steps_ += steps;
  if (steps_ > limits_.max_steps) {
    return resource_exhausted("template ran past its budget of " + std::to_string(limits_.max_steps) +
                              " evaluation steps");
  }
  return ok_status();
}

Status Renderer::step(int line) { return at(line, charge(1)); }

Status Renderer::check_string(size_t bytes) {
  if (bytes > limits_.max_output_bytes) {
    return resource_exhausted("template built a string of " + std::to_string(bytes) + " bytes, over its limit of " +
                              std::to_string(limits_.max_output_bytes));
  }
  return charge(bytes / 64);
}

namespace {

Status check_value_size(const Value& v, const Limits& limits) {
  if (v.depth() > limits.max_depth) {
    return resource_exhausted("template built a value nested deeper than " + std::to_string(limits.max_depth) +
                              " levels");
  }
  if (v.weight() > limits.max_steps) {
    return resource_exhausted("template built a value of more than " + std::to_string(limits.max_steps) +
                              " elements (counting shared ones each time)");
  }
  return ok_status();
}

}  // namespace

Result<Value> Renderer::make_list(std::vector<Value> items, bool is_tuple) {
  Value v = Value::list(std::move(items), is_tuple);
  LLMOPS_RETURN_IF_ERROR(check_value_size(v, limits_));
  return v;
}

Result<Value> Renderer::make_dict(Dict d) {
  Value v = Value::dict(std::move(d));
  LLMOPS_RETURN_IF_ERROR(check_value_size(v, limits_));
  return v;
}

Status Renderer::charge_compare(const Value& a, const Value& b) { return charge(std::min(a.weight(), b.weight())); }

Status Renderer::charge_text(const Value& input, const CallArgs* args) {
  uint64_t bytes = input.is_string() ? input.str().size() : 0;
  if (args) {
    for (const auto& v : args->positional) bytes += v.is_string() ? v.str().size() : 0;
    for (const auto& [k, v] : args->named) bytes += v.is_string() ? v.str().size() : 0;
  }
  return charge(bytes / 64);
}

Result<Value> Renderer::apply_filter(std::string_view name, const Value& input, const CallArgs& args) {
  FilterFn fn = find_filter(name);
  if (!fn) return invalid_argument("unknown filter '" + std::string(name) + "'");
  LLMOPS_RETURN_IF_ERROR(charge_text(input, &args));
  return fn(*this, input, args);
}

Status Renderer::emit(std::string_view text, int line) {
  if (out_->size() + text.size() > limits_.max_output_bytes) {
    return at(line, resource_exhausted("template output is larger than " +
                                       std::to_string(limits_.max_output_bytes) + " bytes"));
  }
  LLMOPS_RETURN_IF_ERROR(at(line, charge(text.size() / 64)));
  out_->append(text);
  return ok_status();
}

Value Renderer::lookup(const std::string& name) const {
  for (size_t i = frames_.size(); i-- > floor_;) {
    if (const Value* v = frames_[i].find(name)) return *v;
  }
  if (const Value* v = frames_[0].find(name)) return *v;
  if (is_global_function(name)) {
    auto fn = std::make_shared<Callable>();
    fn->name = name;
    return Value::callable(std::move(fn));
  }
  return Value::undefined("'" + name + "'");
}

void Renderer::assign(const std::string& name, Value v) { frames_.back().set(name, std::move(v)); }

Status Renderer::bind_targets(const std::vector<std::string>& names, const Value& v, int line) {
  if (names.size() == 1) {
    assign(names[0], v);
    return ok_status();
  }
  if (!v.is_list()) {
    return at(line, invalid_argument(std::string("can't unpack a ") + type_name(v) + " into " +
                                     std::to_string(names.size()) + " names"));
  }
  if (v.items().size() != names.size()) {
    return at(line, invalid_argument("expected " + std::to_string(names.size()) + " values to unpack, got " +
                                     std::to_string(v.items().size())));
  }
  for (size_t i = 0; i < names.size(); ++i) assign(names[i], v.items()[i]);
  return ok_status();
}

Result<Renderer::Flow> Renderer::exec_body(const Body& body) {
  for (const auto& s : body.stmts) {
    LLMOPS_ASSIGN_OR_RETURN(Flow flow, exec(*s));
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

Result<Renderer::Flow> Renderer::exec(const Stmt& s) {
  DepthGuard guard(*this);
  if (guard.exceeded()) {
    return at(s.line, resource_exhausted("template recursion deeper than " + std::to_string(limits_.max_depth) +
                                         " levels"));
  }
  LLMOPS_RETURN_IF_ERROR(step(s.line));
  switch (s.kind) {
    case Stmt::Kind::kText: LLMOPS_RETURN_IF_ERROR(emit(s.text, s.line)); break;
    case Stmt::Kind::kOutput: {
      LLMOPS_ASSIGN_OR_RETURN(Value v, eval(*s.expr));
      auto text = to_str(v, limits_.max_output_bytes);
      if (!text.ok()) return at(s.line, text.status());
      LLMOPS_RETURN_IF_ERROR(emit(*text, s.line));
      break;
    }
    case Stmt::Kind::kIf:
      for (const auto& branch : s.branches) {
        bool take = true;
        if (branch.cond) {
          LLMOPS_ASSIGN_OR_RETURN(Value cond, eval(*branch.cond));
          take = truthy(cond);
        }
        if (take) return exec_body(branch.body);
      }
      break;
    case Stmt::Kind::kFor: return exec_for(s);
    case Stmt::Kind::kSet:
    case Stmt::Kind::kSetAttr: LLMOPS_RETURN_IF_ERROR(exec_set(s)); break;
    case Stmt::Kind::kSetBlock: {
      LLMOPS_ASSIGN_OR_RETURN(Value text, capture(s.body, s.line));
      assign(s.names[0], std::move(text));
      break;
    }
    case Stmt::Kind::kMacro: {
      auto fn = std::make_shared<Callable>();
      fn->name = s.text;
      fn->macro = &s;
      assign(s.text, Value::callable(std::move(fn)));
      break;
    }
    case Stmt::Kind::kBreak: return Flow::kBreak;
    case Stmt::Kind::kContinue: return Flow::kContinue;
  }
  return Flow::kNormal;
}

Result<Renderer::Flow> Renderer::exec_for(const Stmt& s) {
  LLMOPS_ASSIGN_OR_RETURN(Value seq, eval(*s.expr));
  LLMOPS_RETURN_IF_ERROR(at(s.line, charge_text(seq)));
  auto listed = iterate(seq);
  if (!listed.ok()) return at(s.line, listed.status());
  std::vector<Value> items = std::move(listed).value();
  if (s.filter_cond) {
    std::vector<Value> kept;
    for (auto& item : items) {
      LLMOPS_RETURN_IF_ERROR(step(s.line));
      frames_.emplace_back();
      LLMOPS_RETURN_IF_ERROR(bind_targets(s.names, item, s.line));
      auto cond = eval(*s.filter_cond);
      frames_.pop_back();
      if (!cond.ok()) return cond.status();
      if (truthy(*cond)) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) return exec_body(s.else_body);
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    LLMOPS_RETURN_IF_ERROR(step(s.line));
    Dict loop;
    loop.set("index", Value::integer(i + 1));
    loop.set("index0", Value::integer(i));
    loop.set("revindex", Value::integer(n - i));
    loop.set("revindex0", Value::integer(n - i - 1));
    loop.set("first", Value::boolean(i == 0));
    loop.set("last", Value::boolean(i == n - 1));
    loop.set("length", Value::integer(n));
    loop.set("previtem", i > 0 ? items[i - 1] : Value::undefined("loop.previtem"));
    loop.set("nextitem", i + 1 < n ? items[i + 1] : Value::undefined("loop.nextitem"));
    loop.set("depth", Value::integer(1));
    loop.set("depth0", Value::integer(0));
    frames_.emplace_back();
    LLMOPS_RETURN_IF_ERROR(bind_targets(s.names, items[i], s.line));
    frames_.back().set("loop", Value::dict(std::move(loop)));
    auto flow = exec_body(s.body);
    frames_.pop_back();
    if (!flow.ok()) return flow.status();
    if (*flow == Flow::kBreak) break;
  }
  return Flow::kNormal;
}

Status Renderer::exec_set(const Stmt& s) {
  LLMOPS_ASSIGN_OR_RETURN(Value v, eval(*s.expr));
  if (s.kind == Stmt::Kind::kSet) return bind_targets(s.names, v, s.line);
  Value target = lookup(s.names[0]);
  if (target.kind() != Value::Kind::kNamespace) {
    return at(s.line, invalid_argument("can't set attribute '" + s.text + "' on '" + s.names[0] + "', a " +
                                       type_name(target) + ": only a namespace() takes attributes"));
  }
  if (starts_with_underscore(s.text)) return at(s.line, sandbox_error(s.text, target));
  if (v.holds_namespace()) return at(s.line, invalid_argument("a namespace can't hold a namespace"));
  if (v.depth() + 1 > limits_.max_depth) {
    return at(s.line, resource_exhausted("template built a value nested deeper than " +
                                         std::to_string(limits_.max_depth) + " levels"));
  }
  target.ns_obj().attrs.set(s.text, std::move(v));
  return ok_status();
}

Result<Value> Renderer::capture(const Body& body, int line) {
  std::string buffer;
  std::string* saved = out_;
  out_ = &buffer;
  auto flow = exec_body(body);
  out_ = saved;
  if (!flow.ok()) return flow.status();
  (void)line;
  return Value::string(std::move(buffer));
}

Result<Value> Renderer::eval(const Expr& e) {
  DepthGuard guard(*this);
  if (guard.exceeded()) {
    return at(e.line, resource_exhausted("template recursion deeper than " + std::to_string(limits_.max_depth) +
                                         " levels"));
  }
  LLMOPS_RETURN_IF_ERROR(step(e.line));
  switch (e.kind) {
    case Expr::Kind::kLiteral: return e.literal;
    case Expr::Kind::kName: return lookup(e.name);
    case Expr::Kind::kList:
    case Expr::Kind::kTuple: {
      std::vector<Value> items;
      items.reserve(e.items.size());
      for (const auto& item : e.items) {
        LLMOPS_ASSIGN_OR_RETURN(Value v, eval(*item));
        items.push_back(std::move(v));
      }
      auto list = make_list(std::move(items), e.kind == Expr::Kind::kTuple);
      if (!list.ok()) return at(e.line, list.status());
      return list;
    }
    case Expr::Kind::kDict: {
      Dict d;
      for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
        LLMOPS_ASSIGN_OR_RETURN(Value key, eval(*e.items[i]));
        if (!key.is_string()) {
          return at(e.line, invalid_argument(std::string("dict keys must be strings, not ") + type_name(key)));
        }
        LLMOPS_ASSIGN_OR_RETURN(Value v, eval(*e.items[i + 1]));
        d.set(key.str(), std::move(v));
      }
      auto dict = make_dict(std::move(d));
      if (!dict.ok()) return at(e.line, dict.status());
      return dict;
    }
    case Expr::Kind::kAttr: return eval_attr(e);
    case Expr::Kind::kItem: return eval_item(e);
    case Expr::Kind::kSlice: return eval_slice(e);
    case Expr::Kind::kCall: return eval_call(e);
    case Expr::Kind::kFilter: {
      LLMOPS_ASSIGN_OR_RETURN(Value input, eval(*e.items[0]));
      CallArgs args;
      LLMOPS_RETURN_IF_ERROR(eval_args(e.args, args));
      LLMOPS_RETURN_IF_ERROR(at(e.line, charge_text(input, &args)));
      auto r = e.filter(*this, input, args);
      if (!r.ok()) return at(e.line, r.status().with_context("filter '" + e.name + "'"));
      return r;
    }
    case Expr::Kind::kTest: {
      LLMOPS_ASSIGN_OR_RETURN(Value input, eval(*e.items[0]));
      CallArgs args;
      LLMOPS_RETURN_IF_ERROR(eval_args(e.args, args));
      auto r = e.test(*this, input, args);
      if (!r.ok()) return at(e.line, r.status().with_context("test '" + e.name + "'"));
      return Value::boolean(*r != e.negated);
    }
    case Expr::Kind::kNeg:
    case Expr::Kind::kPos: {
      LLMOPS_ASSIGN_OR_RETURN(Value v, eval(*e.items[0]));
      if (v.is_undefined()) return at(e.line, undefined_error(v));
      const bool neg = e.kind == Expr::Kind::kNeg;
      if (v.is_float()) return Value::number(neg ? -v.as_float() : v.as_float());
      if (v.is_int() || v.is_bool()) {
        const int64_t i = v.to_int();
        if (neg && i == INT64_MIN) return at(e.line, invalid_argument("integer overflow"));
        return Value::integer(neg ? -i : i);
      }
      return at(e.line, invalid_argument(std::string("bad operand type for unary ") + (neg ? "-" : "+") + ": '" +
                                         type_name(v) + "'"));
    }
    case Expr::Kind::kNot: {
      LLMOPS_ASSIGN_OR_RETURN(Value v, eval(*e.items[0]));
      return Value::boolean(!truthy(v));
    }
    case Expr::Kind::kBinary: {
      LLMOPS_ASSIGN_OR_RETURN(Value a, eval(*e.items[0]));
      LLMOPS_ASSIGN_OR_RETURN(Value b, eval(*e.items[1]));
      return eval_binary(e.op, a, b, e.line);
    }
    case Expr::Kind::kAnd:
    case Expr::Kind::kOr: {
      LLMOPS_ASSIGN_OR_RETURN(Value a, eval(*e.items[0]));
      if (truthy(a) == (e.kind == Expr::Kind::kOr)) return a;
      return eval(*e.items[1]);
    }
    case Expr::Kind::kCompare: {
      LLMOPS_ASSIGN_OR_RETURN(Value left, eval(*e.items[0]));
      for (size_t i = 0; i < e.ops.size(); ++i) {
        LLMOPS_ASSIGN_OR_RETURN(Value right, eval(*e.items[i + 1]));
        LLMOPS_ASSIGN_OR_RETURN(bool holds, eval_compare(e.ops[i], left, right, e.line));
        if (!holds) return Value::boolean(false);
        left = std::move(right);
      }
      return Value::boolean(true);
    }
    case Expr::Kind::kCondExpr: {
      LLMOPS_ASSIGN_OR_RETURN(Value cond, eval(*e.items[0]));
      if (truthy(cond)) return eval(*e.items[1]);
      if (e.items[2]) return eval(*e.items[2]);
      return Value::undefined("an if-expression whose condition is false and that has no else");
    }
  }
  return internal_error("unknown expression kind");
}

Result<Value> Renderer::eval_attr(const Expr& e) {
  LLMOPS_ASSIGN_OR_RETURN(Value obj, eval(*e.items[0]));
  if (starts_with_underscore(e.name)) return at(e.line, sandbox_error(e.name, obj));
  switch (obj.kind()) {
    case Value::Kind::kUndefined: return at(e.line, undefined_error(obj));
    case Value::Kind::kDict:
    case Value::Kind::kNamespace: {
      const Dict& d = obj.is_dict() ? obj.dict_obj() : obj.ns_obj().attrs;
      const Value* found = d.find(e.name);
      return found ? *found : Value::undefined("attribute '" + e.name + "'");
    }
    default: return at(e.line, sandbox_error(e.name, obj));
  }
}

Result<Value> Renderer::eval_item(const Expr& e) {
  LLMOPS_ASSIGN_OR_RETURN(Value obj, eval(*e.items[0]));
  LLMOPS_ASSIGN_OR_RETURN(Value key, eval(*e.items[1]));
  LLMOPS_RETURN_IF_ERROR(at(e.line, charge_text(obj)));
  auto r = get_item(obj, key);
  if (!r.ok()) return at(e.line, r.status());
  return r;
}

Result<Value> Renderer::eval_slice(const Expr& e) {
  LLMOPS_ASSIGN_OR_RETURN(Value obj, eval(*e.items[0]));
  Value parts[3];
  for (int i = 0; i < 3; ++i) {
    if (e.items[i + 1]) {
      LLMOPS_ASSIGN_OR_RETURN(parts[i], eval(*e.items[i + 1]));
    }
  }
  if (obj.is_undefined()) return at(e.line, undefined_error(obj));
  if (obj.is_list()) {
    auto idx = slice_indexes(static_cast<int64_t>(obj.items().size()), parts[0], parts[1], parts[2]);
    if (!idx.ok()) return at(e.line, idx.status());
    LLMOPS_RETURN_IF_ERROR(at(e.line, check_items(idx->size())));
    std::vector<Value> items;
    items.reserve(idx->size());
    for (size_t i : *idx) items.push_back(obj.items()[i]);
    return Value::list(std::move(items), obj.list_obj().is_tuple);
  }
  if (obj.is_string()) {
    LLMOPS_RETURN_IF_ERROR(at(e.line, charge_text(obj)));
    const auto offsets = utf8_offsets(obj.str());
    auto idx = slice_indexes(static_cast<int64_t>(offsets.size()) - 1, parts[0], parts[1], parts[2]);
    if (!idx.ok()) return at(e.line, idx.status());
    std::string out;
    for (size_t i : *idx) out.append(obj.str(), offsets[i], offsets[i + 1] - offsets[i]);
    LLMOPS_RETURN_IF_ERROR(at(e.line, check_string(out.size())));
    return Value::string(std::move(out));
  }
  return Value::undefined(std::string("a slice of a ") + type_name(obj));  // as Jinja's failed subscripts
}

Status Renderer::eval_args(const std::vector<Arg>& args, CallArgs& out) {
  for (const auto& a : args) {
    LLMOPS_ASSIGN_OR_RETURN(Value v, eval(*a.value));
    if (a.name.empty()) {
      out.positional.push_back(std::move(v));
    } else {
      out.named.emplace_back(a.name, std::move(v));
    }
  }
  return ok_status();
}

Result<Value> Renderer::eval_call(const Expr& e) {
  const Expr& callee = *e.items[0];
  CallArgs args;
  if (callee.kind == Expr::Kind::kAttr) {  // a method: obj.name(args)
    LLMOPS_ASSIGN_OR_RETURN(Value obj, eval(*callee.items[0]));
    if (obj.is_undefined()) return at(e.line, undefined_error(obj));
    if (starts_with_underscore(callee.name)) return at(e.line, sandbox_error(callee.name, obj));
    LLMOPS_RETURN_IF_ERROR(eval_args(e.args, args));
    LLMOPS_RETURN_IF_ERROR(at(e.line, charge_text(obj, &args)));
    auto r = call_method(*this, obj, callee.name, args);
    if (!r.ok()) return at(e.line, r.status());
    return r;
  }
  LLMOPS_ASSIGN_OR_RETURN(Value fn, eval(callee));
  if (fn.is_undefined()) return at(e.line, undefined_error(fn));
  if (fn.kind() != Value::Kind::kCallable) {
    return at(e.line, invalid_argument(std::string("'") + type_name(fn) + "' object is not callable"));
  }
  LLMOPS_RETURN_IF_ERROR(eval_args(e.args, args));
  const Callable& c = fn.callable_obj();
  if (c.macro) return call_macro(c, args, e.line);
  auto r = call_global(*this, c.name, args);
  if (!r.ok()) return at(e.line, r.status());
  return r;
}

Result<Value> Renderer::call_macro(const Callable& macro, const CallArgs& args, int line) {
  const Stmt& m = *macro.macro;
  if (args.positional.size() > m.params.size()) {
    return at(line, invalid_argument("macro '" + m.text + "' takes at most " + std::to_string(m.params.size()) +
                                     " argument(s)"));
  }
  Dict frame;
  std::vector<bool> given(m.params.size(), false);
  for (size_t i = 0; i < args.positional.size(); ++i) {
    frame.set(m.params[i].name, args.positional[i]);
    given[i] = true;
  }
  for (const auto& [name, v] : args.named) {
    // A named copy: clang 14 cannot capture a structured binding in a lambda.
    const std::string& wanted = name;
    auto it = std::find_if(m.params.begin(), m.params.end(), [&](const MacroParam& p) { return p.name == wanted; });
    if (it == m.params.end()) {
      return at(line, invalid_argument("macro '" + m.text + "' takes no argument '" + name + "'"));
    }
    const size_t i = static_cast<size_t>(it - m.params.begin());
    if (given[i]) return at(line, invalid_argument("macro '" + m.text + "' got '" + name + "' twice"));
    frame.set(name, v);
    given[i] = true;
  }
  const size_t saved_floor = floor_;
  frames_.push_back(std::move(frame));
  floor_ = frames_.size() - 1;
  Result<Value> result = Value::none();
  for (size_t i = 0; i < m.params.size() && result.ok(); ++i) {
    if (given[i]) continue;
    if (m.params[i].default_value) {
      auto d = eval(*m.params[i].default_value);
      if (!d.ok()) {
        result = d.status();
        break;
      }
      frames_.back().set(m.params[i].name, std::move(d).value());
    } else {
      frames_.back().set(m.params[i].name, Value::undefined("'" + m.params[i].name + "'"));
    }
  }
  if (result.ok()) result = capture(m.body, line);
  frames_.pop_back();
  floor_ = saved_floor;
  return result;
}

}  // namespace llmops::engine::jinja
