// The evaluator of a parsed template (private to engine/chat). One Renderer per render: it
// owns the scopes, the output buffer and the counters of the limits; builtins (filters, tests,
// methods, globals in jinja_builtins.cpp) get it to charge their work and build values.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "chat/jinja_ast.h"

namespace llmops::engine::jinja {

class Renderer {
 public:
  Renderer(const Limits& limits, const RenderOptions& options) : limits_(limits), options_(options) {}

  // Renders body with globals as the outermost scope.
  Result<std::string> render(const Body& body, Dict globals);

  const Limits& limits() const { return limits_; }
  const RenderOptions& options() const { return options_; }

  // Counts work against the step budget; kResourceExhausted past it.
  Status charge(uint64_t steps);
  // Before building a string of `bytes` bytes: over the output cap is kResourceExhausted;
  // otherwise charges one step per 64 bytes.
  Status check_string(size_t bytes);
  // Before building a list of n items: charges n steps.
  Status check_items(size_t n) { return charge(n); }
  // A list or dict value, refused when it would nest deeper than limits().max_depth or weigh
  // more than the step budget (Value::weight).
  Result<Value> make_list(std::vector<Value> items, bool is_tuple = false);
  Result<Value> make_dict(Dict d);
  // Before comparing a and b (==, <, sort...): charges what it can cost, the lighter weight.
  Status charge_compare(const Value& a, const Value& b);
  // Before an operation that reads strings end to end (a filter, a method, an index into a
  // string): one step per 64 bytes of the input and of the string arguments.
  Status charge_text(const Value& input, const CallArgs* args = nullptr);

  // raise_exception() marks its error so it reaches the caller exactly as the template wrote it.
  void mark_raised() { raised_ = true; }

  // A filter applied by name from inside another (map('upper')): input | name(args).
  Result<Value> apply_filter(std::string_view name, const Value& input, const CallArgs& args);

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  class DepthGuard;

  Status at(int line, Status s) const;
  Status step(int line);

  Result<Flow> exec_body(const Body& body);
  Result<Flow> exec(const Stmt& s);
  Result<Flow> exec_for(const Stmt& s);
  Status exec_set(const Stmt& s);
  Status emit(std::string_view text, int line);

  Result<Value> eval(const Expr& e);
  Result<Value> eval_attr(const Expr& e);
  Result<Value> eval_item(const Expr& e);
  Result<Value> eval_slice(const Expr& e);
  Result<Value> eval_call(const Expr& e);
  Result<Value> eval_binary(Op op, const Value& a, const Value& b, int line);
  Result<bool> eval_compare(Op op, const Value& a, const Value& b, int line);
  Status eval_args(const std::vector<Arg>& args, CallArgs& out);
  Result<Value> call_macro(const Callable& macro, const CallArgs& args, int line);
  Result<Value> capture(const Body& body, int line);

  Value lookup(const std::string& name) const;
  void assign(const std::string& name, Value v);
  Status bind_targets(const std::vector<std::string>& names, const Value& v, int line);

  const Limits& limits_;
  const RenderOptions& options_;
  // frames_[0] holds the globals and top-level assignments; a for loop iteration or a macro
  // call pushes one. Lookups search frames_[floor_..] innermost first, then frames_[0].
  std::vector<Dict> frames_;
  size_t floor_ = 1;
  std::string* out_ = nullptr;
  uint64_t steps_ = 0;
  int depth_ = 0;
  bool raised_ = false;
};

// kInvalidArgument "template tried to reach 'what' on a <type>".
Status sandbox_error(const std::string& what, const Value& obj);
// kInvalidArgument "<what was looked up> is undefined", for using an undefined value.
Status undefined_error(const Value& v);

// From jinja_globals.cpp. Errors come back without a line; the renderer adds it.
// A method call obj.name(args) on a string or dict; anything not whitelisted is
// kInvalidArgument "template tried to reach ...".
Result<Value> call_method(Renderer& r, const Value& obj, const std::string& name, const CallArgs& args);
// The global functions: range, namespace, dict, raise_exception, strftime_now.
bool is_global_function(std::string_view name);
Result<Value> call_global(Renderer& r, std::string_view name, const CallArgs& args);
// From jinja_render.cpp.
// Python's sequence rules for templates: the items a for loop or filter walks over (a dict's
// keys, a string's characters, nothing for undefined); other values are kInvalidArgument.
Result<std::vector<Value>> iterate(const Value& v);
// obj[key] / obj.key as templates read it: list and string indexes (negative from the end),
// dict and namespace keys; missing → undefined.
Result<Value> get_item(const Value& obj, const Value& key);

}  // namespace llmops::engine::jinja
