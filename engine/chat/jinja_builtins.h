// Helpers shared by the builtins (private to engine/chat): Python-style argument binding and
// the conversions filters and methods share.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "chat/jinja_render.h"

namespace llmops::engine::jinja {

// A call's arguments bound to parameter names, positional first, then by keyword.
class Args {
 public:
  // Too many positional arguments, an unknown keyword or one given twice: kInvalidArgument.
  static Result<Args> bind(const CallArgs& args, std::initializer_list<std::string_view> params);

  const Value* get(size_t i) const { return slots_[i]; }  // nullptr: not given
  // Given and not none.
  bool has(size_t i) const { return slots_[i] && !slots_[i]->is_none(); }
  Result<int64_t> integer(size_t i, int64_t fallback) const;
  Result<std::string> string(size_t i, std::string fallback) const;
  bool flag(size_t i, bool fallback) const { return slots_[i] ? truthy(*slots_[i]) : fallback; }

 private:
  std::vector<const Value*> slots_;
  std::vector<std::string_view> names_;
};

// str(v) within the renderer's output cap.
Result<std::string> soft_str(Renderer& r, const Value& v);
// item.a.b (a path of keys, digits as indexes), as map(attribute=), selectattr and sort read it.
Result<Value> attribute_path(const Value& item, const std::string& path);
// Applies test `name` to v (select, selectattr, reject, rejectattr).
Result<bool> run_test(Renderer& r, std::string_view name, const Value& v, const CallArgs& args);

}  // namespace llmops::engine::jinja
