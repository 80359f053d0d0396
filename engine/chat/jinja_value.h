// Values of the sandboxed Jinja renderer (jinja.h): what a template's expressions evaluate to.
// Python's data model cut down to what chat templates use: undefined, none, bool, int (64-bit;
// overflow is an error, not a big integer), float, string (UTF-8 bytes; lengths, indexes and
// slices count code points), list (or tuple), dict (string keys, insertion order), namespace
// (the one mutable object, for `{% set ns.x = ... %}`) and callable (builtins and macros).
//
// Lists and dicts are immutable once built and shared by reference, so copying a Value is cheap.
// Each records its nesting depth and its weight (its size with shared parts counted each time
// they appear: what comparing or printing it costs), so the renderer can refuse values nested
// too deeply for recursion or too heavy for its budget ([x, x] nested 100 times is small in
// memory but has 2^100 leaves). A namespace can't be put inside a list, dict or namespace, so no
// value ever contains itself.
//
// Threads: values belong to one render on one thread; nothing here is shared between renders.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "json.h"
#include "status.h"

namespace llmops::engine::jinja {

struct List;
class Dict;
struct Namespace;
struct Callable;

class Value {
 public:
  enum class Kind : uint8_t { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kCallable };

  Value() = default;  // undefined, with no hint
  // An undefined value remembers what was looked up ("'x'", "key 'role'"), for the error a
  // template gets when it uses it.
  static Value undefined(std::string hint);
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value number(double f);
  static Value string(std::string s);
  static Value list(std::vector<Value> items, bool is_tuple = false);
  static Value dict(Dict d);
  static Value ns(std::shared_ptr<Namespace> n);
  static Value callable(std::shared_ptr<const Callable> c);

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_string() const { return kind() == Kind::kString; }
  bool is_int() const { return kind() == Kind::kInt; }
  bool is_float() const { return kind() == Kind::kFloat; }
  bool is_bool() const { return kind() == Kind::kBool; }
  // bool, int and float: Python's numbers (True + 1 == 2).
  bool is_number() const { return is_bool() || is_int() || is_float(); }
  bool is_list() const { return kind() == Kind::kList; }
  bool is_dict() const { return kind() == Kind::kDict; }

  // Accessors; each requires the matching kind.
  const std::string& undefined_hint() const { return std::get<0>(v_).hint; }
  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }   // kInt only; see to_int
  double as_float() const { return std::get<double>(v_); }   // kFloat only; see to_double
  const std::string& str() const { return std::get<std::string>(v_); }
  const List& list_obj() const { return *std::get<std::shared_ptr<const List>>(v_); }
  const std::vector<Value>& items() const;  // kList
  const Dict& dict_obj() const { return *std::get<std::shared_ptr<const Dict>>(v_); }
  Namespace& ns_obj() const { return *std::get<std::shared_ptr<Namespace>>(v_); }
  const Callable& callable_obj() const { return *std::get<std::shared_ptr<const Callable>>(v_); }

  int64_t to_int() const;    // bool or int
  double to_double() const;  // any number
  // Nesting depth: 0 for scalars, 1 + the deepest element for lists and dicts.
  int depth() const;
  // 1 per scalar (plus 1 per 64 bytes of a string), 1 + the elements' weights for containers;
  // saturates near 2^62.
  uint64_t weight() const;
  // Whether this is, or holds, a namespace (which may not be stored inside anything).
  bool holds_namespace() const;

 private:
  struct UndefinedV {
    std::string hint;
  };
  struct NoneV {};
  // The order of the alternatives is the order of Kind.
  std::variant<UndefinedV, NoneV, bool, int64_t, double, std::string, std::shared_ptr<const List>,
               std::shared_ptr<const Dict>, std::shared_ptr<Namespace>, std::shared_ptr<const Callable>>
      v_;
};

struct List {
  std::vector<Value> items;
  bool is_tuple = false;  // only changes how it prints: (1, 2)
  int depth = 1;
  uint64_t weight = 1;
  bool holds_namespace = false;
};

// a + b, saturating well below overflow.
uint64_t add_weight(uint64_t a, uint64_t b);

// String keys in insertion order; a key set again keeps its place.
class Dict {
 public:
  const Value* find(std::string_view key) const;
  void set(std::string key, Value value);
  const std::vector<std::pair<std::string, Value>>& items() const { return items_; }
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  // As Value's; a replaced value's share stays counted (they only grow).
  int depth() const { return depth_; }
  uint64_t weight() const { return weight_; }
  bool holds_namespace() const { return holds_namespace_; }

 private:
  static constexpr size_t kIndexFrom = 16;  // smaller dicts are searched in order
  std::vector<std::pair<std::string, Value>> items_;
  std::unordered_map<std::string, size_t> index_;
  int depth_ = 1;
  uint64_t weight_ = 1;
  bool holds_namespace_ = false;
};

struct Namespace {
  Dict attrs;
};

struct Stmt;
// A builtin global (range, namespace, ...) when macro is null, else a template's macro; a
// macro points into the template's syntax tree, which outlives every render.
struct Callable {
  std::string name;
  const Stmt* macro = nullptr;
};

// Python's names for types, for error messages: "str", "int", "list", "dict", "NoneType"...
const char* type_name(const Value& v);
// Python's truth: undefined, none, 0, 0.0, "" and empty containers are false.
bool truthy(const Value& v);
// Python's ==: numbers by value across bool/int/float, containers element by element (dicts in
// any order), undefined equals only undefined, callables by identity.
bool equals(const Value& a, const Value& b);
// Python's `item in container`: substring of a string, element of a list, key of a dict;
// nothing is in undefined; other containers are kInvalidArgument.
Result<bool> contains(const Value& container, const Value& item);
// Python's ordering for <, <=, >, >= and sort: numbers, strings (by code point), lists and
// tuples (element by element); anything else is kInvalidArgument.
Result<int> compare(const Value& a, const Value& b);

// str(v) as Jinja prints it: undefined → "", none → "None", True, 1.5, lists and dicts as
// Python's repr of them. Past max_bytes (a list may hold one big string many times over) it
// stops and returns kResourceExhausted.
Result<std::string> to_str(const Value& v, size_t max_bytes);
// str(v) of a value that isn't a list, dict or namespace (those need to_str's bound).
std::string scalar_str(const Value& v);
// repr(v): strings quoted the way Python quotes them.
Result<std::string> repr(const Value& v, size_t max_bytes);
// Python's repr of a float: shortest round-trip digits, "1.0", "1e-05", "1e+16", "inf", "nan".
std::string format_float(double f);

struct JsonStyle {
  int indent = -1;  // < 0: one line; else newlines and this many spaces per level
  bool ensure_ascii = false;
  bool sort_keys = false;
  // Empty: the separators Python picks, ", " and ": " on one line, "," and ": " when indented.
  std::string item_separator, key_separator;
  size_t max_bytes = 1 << 20;  // past it: kResourceExhausted
};
// json.dumps(v). Undefined, namespaces and callables are kInvalidArgument; NaN and infinities
// print as NaN, Infinity, -Infinity (as Python's json does).
Result<std::string> to_json(const Value& v, const JsonStyle& style);
// A JSON document as values; objects keep Json's key order. Deeper than max_depth is
// kInvalidArgument.
Result<Value> from_json(const Json& j, int max_depth);

}  // namespace llmops::engine::jinja
