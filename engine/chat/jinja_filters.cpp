// Jinja's filters and tests, with the argument names and edge cases of Jinja 3.1 (tojson as
// transformers overrides it: json.dumps with ensure_ascii off).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <unordered_map>

#include "chat/jinja_builtins.h"
#include "chat/jinja_strings.h"

namespace llmops::engine::jinja {

Result<Args> Args::bind(const CallArgs& args, std::initializer_list<std::string_view> params) {
  Args out;
  out.names_.assign(params.begin(), params.end());
  out.slots_.assign(params.size(), nullptr);
  if (args.positional.size() > params.size()) {
    return invalid_argument("takes at most " + std::to_string(params.size()) + " argument(s), got " +
                            std::to_string(args.positional.size()));
  }
  for (size_t i = 0; i < args.positional.size(); ++i) out.slots_[i] = &args.positional[i];
  for (const auto& [name, v] : args.named) {
    auto it = std::find(out.names_.begin(), out.names_.end(), name);
    if (it == out.names_.end()) return invalid_argument("unexpected argument '" + name + "'");
    const size_t i = static_cast<size_t>(it - out.names_.begin());
    if (out.slots_[i]) return invalid_argument("argument '" + name + "' given twice");
    out.slots_[i] = &v;
  }
  return out;
}

Result<int64_t> Args::integer(size_t i, int64_t fallback) const {
  if (!has(i)) return fallback;
  if (!slots_[i]->is_int() && !slots_[i]->is_bool()) {
    return invalid_argument("argument '" + std::string(names_[i]) + "' must be an integer, not " +
                            type_name(*slots_[i]));
  }
  return slots_[i]->to_int();
}

Result<std::string> Args::string(size_t i, std::string fallback) const {
  if (!has(i)) return fallback;
  if (!slots_[i]->is_string()) {
    return invalid_argument("argument '" + std::string(names_[i]) + "' must be a string, not " +
                            type_name(*slots_[i]));
  }
  return slots_[i]->str();
}

Result<std::string> soft_str(Renderer& r, const Value& v) {
  if (v.is_string()) return v.str();
  return to_str(v, r.limits().max_output_bytes);
}

Result<Value> attribute_path(const Value& item, const std::string& path) {
  Value v = item;
  size_t start = 0;
  for (;;) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    Value key = Value::string(part);
    if (!part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      int64_t index = 0;
      if (std::from_chars(part.data(), part.data() + part.size(), index).ec == std::errc()) {
        key = Value::integer(index);
      }
    }
    if (key.is_string() && !part.empty() && part[0] == '_') return sandbox_error(part, v);
    LLMOPS_ASSIGN_OR_RETURN(v, get_item(v, key));
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

Result<bool> run_test(Renderer& r, std::string_view name, const Value& v, const CallArgs& args) {
  TestFn fn = find_test(name);
  if (!fn) return invalid_argument("unknown test '" + std::string(name) + "'");
  return fn(r, v, args);
}

namespace {

// Sorting n keys costs about n log n comparisons, each up to the heaviest key's weight.
Status charge_sort(Renderer& r, const std::vector<Value>& keys) {
  uint64_t heaviest = 1, rounds = 1;
  for (const auto& k : keys) heaviest = std::max(heaviest, k.weight());
  for (size_t n = keys.size(); n > 1; n /= 2) ++rounds;
  constexpr uint64_t kMax = uint64_t{1} << 62;
  const uint64_t comparisons = keys.size() * rounds;  // n < 2^40, rounds < 64
  return r.charge(heaviest > kMax / std::max<uint64_t>(comparisons, 1) ? kMax : comparisons * heaviest);
}

Result<Value> make_str(Renderer& r, std::string s) {
  LLMOPS_RETURN_IF_ERROR(r.check_string(s.size()));
  return Value::string(std::move(s));
}

// The items a filter walks over, charged one step each.
Result<std::vector<Value>> walk(Renderer& r, const Value& v) {
  LLMOPS_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(v));
  LLMOPS_RETURN_IF_ERROR(r.check_items(items.size()));
  return items;
}

// ---- string filters ----

Result<Value> f_trim(Renderer& r, const Value& in, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {"chars"}));
  LLMOPS_ASSIGN_OR_RETURN(std::string s, soft_str(r, in));
  if (!args.has(0)) return Value::string(py_strip(s, nullptr, true, true));
  LLMOPS_ASSIGN_OR_RETURN(std::string chars, args.string(0, ""));
  return Value::string(py_strip(s, &chars, true, true));
}

template <std::string (*Fn)(std::string_view)>
Result<Value> f_map_string(Renderer& r, const Value& in, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {}));
  LLMOPS_ASSIGN_OR_RETURN(std::string s, soft_str(r, in));
  return Value::string(Fn(s));
}

Result<Value> f_string(Renderer& r, const Value& in, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {}));
  LLMOPS_ASSIGN_OR_RETURN(std::string s, soft_str(r, in));
  return Value::string(std::move(s));
}

Result<Value> f_safe(Renderer&, const Value& in, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {}));
  return in;
}

Result<Value> f_replace(Renderer& r, const Value& in, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {"old", "new", "count"}));
  if (!args.get(0) || !args.get(1)) return invalid_argument("needs the old and the new text");
  LLMOPS_ASSIGN_OR_RETURN(std::string s, soft_str(r, in));
  LLMOPS_ASSIGN_OR_RETURN(std::string old_text, soft_str(r, *args.get(0)));
  LLMOPS_ASSIGN_OR_RETURN(std::string new_text, soft_str(r, *args.get(1)));
  LLMOPS_ASSIGN_OR_RETURN(int64_t count, args.integer(2, -1));
  LLMOPS_RETURN_IF_ERROR(r.check_string(py_replace_size(s, old_text, new_text, count)));
  return Value::string(py_replace(s, old_text, new_text, count));
}

Result<Value> f_indent(Renderer& r, const Value& in, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {"width", "first", "blank"}));
  std::string pad(4, ' ');
  if (args.has(0) && args.get(0)->is_string()) {
    pad = args.get(0)->str();
  } else {
    LLMOPS_ASSIGN_OR_RETURN(int64_t width, args.integer(0, 4));
    if (width < 0 || width > 1024) return invalid_argument("width must be between 0 and 1024");
    pad.assign(static_cast<size_t>(width), ' ');
  }
  LLMOPS_ASSIGN_OR_RETURN(std::string s, soft_str(r, in));
  const auto lines = py_splitlines(s + "\n");
  LLMOPS_RETURN_IF_ERROR(r.check_string(s.size() + (lines.size() + 1) * (pad.size() + 1)));
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i) out += '\n';
    if ((i > 0 || args.flag(1, false)) && (args.flag(2, false) || !lines[i].empty())) out += pad;
    out += lines[i];
  }
  return Value::string(std::move(out));
}

Result<Value> f_tojson(Renderer& r, const Value& in, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {"ensure_ascii", "indent", "separators", "sort_keys"}));
  JsonStyle style;
  style.ensure_ascii = args.flag(0, false);
  LLMOPS_ASSIGN_OR_RETURN(int64_t indent, args.integer(1, -1));
  style.indent = args.has(1) ? static_cast<int>(std::clamp<int64_t>(indent, 0, 64)) : -1;
  if (args.has(2)) {
    const Value& seps = *args.get(2);
    if (!seps.is_list() || seps.items().size() != 2 || !seps.items()[0].is_string() || !seps.items()[1].is_string()) {
      return invalid_argument("separators must be a pair of strings");
    }
    style.item_separator = seps.items()[0].str();
    style.key_separator = seps.items()[1].str();
  }
  style.sort_keys = args.flag(3, false);
  style.max_bytes = r.limits().max_output_bytes;
  LLMOPS_ASSIGN_OR_RETURN(std::string json, to_json(in, style));
  return make_str(r, std::move(json));
}

Result<Value> f_escape(Renderer& r, const Value& in, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {}));
  LLMOPS_ASSIGN_OR_RETURN(std::string s, soft_str(r, in));
  return make_str(r, html_escape(s));
}

// ---- conversions ----

// Python's int(text, base): optional sign, digits with single underscores, 0x/0o/0b prefixes
// when base is 0 or matches; surrounding whitespace allowed.
std::optional<int64_t> parse_int(std::string_view text, int base) {
  std::string s = py_strip(text, nullptr, true, true);
  bool neg = false;
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  if (i + 1 < s.size() && s[i] == '0') {
    const char p = static_cast<char>(s[i + 1] | 0x20);
    const int prefixed = p == 'x' ? 16 : (p == 'o' ? 8 : (p == 'b' ? 2 : 0));
    if (prefixed && (base == 0 || base == prefixed)) {
      base = prefixed;
      i += 2;
      if (i < s.size() && s[i] == '_') ++i;
    }
  }
  if (base == 0) base = 10;
  if (base < 2 || base > 36) return std::nullopt;
  std::string digits;
  for (; i < s.size(); ++i) {
    if (s[i] == '_' && !digits.empty() && i + 1 < s.size() && s[i + 1] != '_') continue;
    digits += s[i];
  }
  if (digits.empty()) return std::nullopt;
  uint64_t magnitude = 0;
  auto res = std::from_chars(digits.data(), digits.data() + digits.size(), magnitude, base);
  if (res.ec != std::errc() || res.ptr != digits.data() + digits.size()) return std::nullopt;
  if (magnitude > static_cast<uint64_t>(INT64_MAX) + (neg ? 1 : 0)) return std::nullopt;
  return neg ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
}

// Python's float(text): decimal or exponent notation, inf, nan, underscores between digits.
std::optional<double> parse_float(std::string_view text) {
  std::string s = ascii_lower(py_strip(text, nullptr, true, true));
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  std::string_view body = s;
  bool neg = false;
  if (!body.empty() && (body[0] == '+' || body[0] == '-')) {
    neg = body[0] == '-';
    body.remove_prefix(1);
  }
  if (body == "inf" || body == "infinity") return neg ? -HUGE_VAL : HUGE_VAL;
  if (body == "nan") return std::nan("");
  if (body.empty() || body[0] == '+' || body[0] == '-') return std::nullopt;
  double v = 0;
  auto res = std::from_chars(body.data(), body.data() + body.size(), v);
  if (res.ptr != body.data() + body.size()) return std::nullopt;
  if (res.ec == std::errc::result_out_of_range) v = body.find("e-") != std::string_view::npos ? 0.0 : HUGE_VAL;
  else if (res.ec != std::errc()) return std::nullopt;
  return neg ? -v : v;
}

Result<Value> f_int(Renderer&, const Value& in, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {"default", "base"}));
  const Value fallback = args.get(0) ? *args.get(0) : Value::integer(0);
  LLMOPS_ASSIGN_OR_RETURN(int64_t base, args.integer(1, 10));
  if (in.is_int() || in.is_bool()) return Value::integer(in.to_int());
  std::optional<double> f;
  if (in.is_float()) {
    f = in.as_float();
  } else if (in.is_string()) {
    if (auto i = parse_int(in.str(), static_cast<int>(base))) return Value::integer(*i);
    f = parse_float(in.str());
  }
  if (!f || std::isnan(*f)) return fallback;
  if (!(std::fabs(*f) < 9.2e18)) return invalid_argument("can't convert " + format_float(*f) + " to an integer");
  return Value::integer(static_cast<int64_t>(*f));
}

Result<Value> f_float(Renderer&, const Value& in, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {"default"}));
  const Value fallback = args.get(0) ? *args.get(0) : Value::number(0.0);
  if (in.is_number()) return Value::number(in.to_double());
  if (in.is_string()) {
    if (auto f = parse_float(in.str())) return Value::number(*f);
  }
  return fallback;
}

Result<Value> f_abs(Renderer&, const Value& in, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {}));
  if (in.is_float()) return Value::number(std::fabs(in.as_float()));
  if (in.is_int() || in.is_bool()) {
    if (in.to_int() == INT64_MIN) return invalid_argument("integer overflow");
    return Value::integer(std::abs(in.to_int()));
  }
  return invalid_argument(std::string("bad operand type for abs(): '") + type_name(in) + "'");
}

Result<Value> f_round(Renderer&, const Value& in, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {"precision", "method"}));
  LLMOPS_ASSIGN_OR_RETURN(int64_t precision, args.integer(0, 0));
  LLMOPS_ASSIGN_OR_RETURN(std::string method, args.string(1, "common"));
  if (!in.is_number()) return invalid_argument(std::string("can't round a ") + type_name(in));
  precision = std::clamp<int64_t>(precision, -20, 20);
  const double x = in.to_double();
  if (method == "common") {
    if (!in.is_float()) return in.is_bool() ? Value::integer(in.to_int()) : in;
    if (!std::isfinite(x)) return in;
    if (precision < 0) {
      const double scale = std::pow(10.0, static_cast<double>(-precision));
      return Value::number(std::nearbyint(x / scale) * scale);
    }
    // printf rounds the exact binary value half-to-even, as Python's round() does.
    char buf[400];
    std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(precision), x);
    double v = 0;
    std::from_chars(buf, buf + std::char_traits<char>::length(buf), v);
    return Value::number(v);
  }
  if (method != "ceil" && method != "floor") return invalid_argument("method must be common, ceil or floor");
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double y = method == "ceil" ? std::ceil(x * scale) : std::floor(x * scale);
  return Value::number(y / scale);
}

// ---- sequences ----

Result<Value> f_length(Renderer&, const Value& in, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {}));
  switch (in.kind()) {
    case Value::Kind::kString: return Value::integer(static_cast<int64_t>(utf8_length(in.str())));
    case Value::Kind::kList: return Value::integer(static_cast<int64_t>(in.items().size()));
    case Value::Kind::kDict: return Value::integer(static_cast<int64_t>(in.dict_obj().size()));
    case Value::Kind::kUndefined: return Value::integer(0);
    default: return invalid_argument(std::string("object of type '") + type_name(in) + "' has no len()");
  }
}

Result<Value> f_first_or_last(Renderer& r, const Value& in, const CallArgs& a, bool last) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {}));
  if (in.is_list()) {
    if (in.items().empty()) return Value::undefined("the first item of an empty list");
    return last ? in.items().back() : in.items().front();
  }
  LLMOPS_ASSIGN_OR_RETURN(std::vector<Value> items, walk(r, in));
  if (items.empty()) return Value::undefined("the first item of an empty sequence");
  return last ? items.back() : items.front();
}
Result<Value> f_first(Renderer& r, const Value& in, const CallArgs& a) { return f_first_or_last(r, in, a, false); }
Result<Value> f_last(Renderer& r, const Value& in, const CallArgs& a) { return f_first_or_last(r, in, a, true); }

Result<Value> f_list(Renderer& r, const Value& in, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {}));
  LLMOPS_ASSIGN_OR_RETURN(std::vector<Value> items, walk(r, in));
  return r.make_list(std::move(items));
}

Result<Value> f_items(Renderer& r, const Value& in, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {}));
  if (in.is_undefined()) return Value::list({});
  if (!in.is_dict()) return invalid_argument(std::string("can only list the items of a dict, not a ") + type_name(in));
  LLMOPS_RETURN_IF_ERROR(r.check_items(in.dict_obj().size()));
  std::vector<Value> pairs;
  for (const auto& [k, v] : in.dict_obj().items()) pairs.push_back(Value::list({Value::string(k), v}, true));
  return r.make_list(std::move(pairs));
}

Result<Value> f_dictsort(Renderer& r, const Value& in, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {"case_sensitive", "by", "reverse"}));
  LLMOPS_ASSIGN_OR_RETURN(std::string by, args.string(1, "key"));
  if (by != "key" && by != "value") return invalid_argument("by must be 'key' or 'value'");
  LLMOPS_ASSIGN_OR_RETURN(Value pairs, f_items(r, in, {}));
  std::vector<Value> items = pairs.items();
  const bool case_sensitive = args.flag(0, false);
  const size_t field = by == "key" ? 0 : 1;
  Status failed;
  const auto sort_key = [&](const Value& v) {
    const Value& k = v.items()[field];
    return !case_sensitive && k.is_string() ? Value::string(ascii_lower(k.str())) : k;
  };
  std::vector<Value> keys;
  for (const auto& item : items) keys.push_back(item.items()[field]);
  LLMOPS_RETURN_IF_ERROR(charge_sort(r, keys));
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    auto c = compare(sort_key(x), sort_key(y));
    if (!c.ok()) failed = c.status();
    return c.ok() && *c < 0;
  });
  LLMOPS_RETURN_IF_ERROR(failed);
  if (args.flag(2, false)) std::reverse(items.begin(), items.end());
  return r.make_list(std::move(items));
}

Result<Value> f_join(Renderer& r, const Value& in, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {"d", "attribute"}));
  LLMOPS_ASSIGN_OR_RETURN(std::string sep, args.has(0) ? soft_str(r, *args.get(0)) : Result<std::string>(""));
  LLMOPS_ASSIGN_OR_RETURN(std::vector<Value> items, walk(r, in));
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    Value item = items[i];
    if (args.has(1)) {
      LLMOPS_ASSIGN_OR_RETURN(std::string path, soft_str(r, *args.get(1)));
      LLMOPS_ASSIGN_OR_RETURN(item, attribute_path(item, path));
    }
    LLMOPS_ASSIGN_OR_RETURN(std::string s, soft_str(r, item));
    if (i) out += sep;
    out += s;
    if (out.size() > r.limits().max_output_bytes) break;  // check_string below refuses it
  }
  return make_str(r, std::move(out));
}

Result<Value> f_default(Renderer&, const Value& in, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {"default_value", "boolean"}));
  const bool use_default = in.is_undefined() || (args.flag(1, false) && !truthy(in));
  if (!use_default) return in;
  return args.get(0) ? *args.get(0) : Value::string("");
}

Result<Value> f_reverse(Renderer& r, const Value& in, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {}));
  LLMOPS_ASSIGN_OR_RETURN(std::vector<Value> items, walk(r, in));
  std::reverse(items.begin(), items.end());
  if (!in.is_string()) return r.make_list(std::move(items));
  std::string out;
  for (const auto& c : items) out += c.str();
  return Value::string(std::move(out));
}

// The value sort, unique, min and max compare an item by.
Result<Value> sort_key(const Value& item, const Args& args, size_t case_sensitive_arg, size_t attribute_arg,
                       Renderer& r) {
  Value k = item;
  if (args.has(attribute_arg)) {
    LLMOPS_ASSIGN_OR_RETURN(std::string path, soft_str(r, *args.get(attribute_arg)));
    LLMOPS_ASSIGN_OR_RETURN(k, attribute_path(item, path));
  }
  if (!args.flag(case_sensitive_arg, false) && k.is_string()) return Value::string(ascii_lower(k.str()));
  return k;
}

Result<Value> f_sort(Renderer& r, const Value& in, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {"reverse", "case_sensitive", "attribute"}));
  LLMOPS_ASSIGN_OR_RETURN(std::vector<Value> items, walk(r, in));
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& item : items) {
    LLMOPS_ASSIGN_OR_RETURN(Value k, sort_key(item, args, 1, 2, r));
    keyed.emplace_back(std::move(k), std::move(item));
  }
  std::vector<Value> keys;
  for (const auto& [k, v] : keyed) keys.push_back(k);
  LLMOPS_RETURN_IF_ERROR(charge_sort(r, keys));
  Status failed;
  const bool reverse = args.flag(0, false);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    auto c = reverse ? compare(y.first, x.first) : compare(x.first, y.first);
    if (!c.ok()) failed = c.status();
    return c.ok() && *c < 0;
  });
  LLMOPS_RETURN_IF_ERROR(failed);
  items.clear();
  for (auto& [k, v] : keyed) items.push_back(std::move(v));
  return r.make_list(std::move(items));
}

Result<Value> f_unique(Renderer& r, const Value& in, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {"case_sensitive", "attribute"}));
  LLMOPS_ASSIGN_OR_RETURN(std::vector<Value> items, walk(r, in));
  std::vector<Value> keys, out;
  for (auto& item : items) {
    LLMOPS_ASSIGN_OR_RETURN(Value k, sort_key(item, args, 0, 1, r));
    for (const auto& seen : keys) LLMOPS_RETURN_IF_ERROR(r.charge_compare(seen, k));
    if (std::any_of(keys.begin(), keys.end(), [&](const Value& seen) { return equals(seen, k); })) continue;
    keys.push_back(std::move(k));
    out.push_back(std::move(item));
  }
  return r.make_list(std::move(out));
}

Result<Value> f_min_or_max(Renderer& r, const Value& in, const CallArgs& a, bool want_max) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {"case_sensitive", "attribute"}));
  LLMOPS_ASSIGN_OR_RETURN(std::vector<Value> items, walk(r, in));
  if (items.empty()) return Value::undefined("the min or max of an empty sequence");
  size_t best = 0;
  LLMOPS_ASSIGN_OR_RETURN(Value best_key, sort_key(items[0], args, 0, 1, r));
  for (size_t i = 1; i < items.size(); ++i) {
    LLMOPS_ASSIGN_OR_RETURN(Value k, sort_key(items[i], args, 0, 1, r));
    LLMOPS_RETURN_IF_ERROR(r.charge_compare(k, best_key));
    LLMOPS_ASSIGN_OR_RETURN(int c, compare(k, best_key));
    if (want_max ? c > 0 : c < 0) best = i, best_key = std::move(k);
  }
  return items[best];
}
Result<Value> f_min(Renderer& r, const Value& in, const CallArgs& a) { return f_min_or_max(r, in, a, false); }
Result<Value> f_max(Renderer& r, const Value& in, const CallArgs& a) { return f_min_or_max(r, in, a, true); }

Result<Value> f_sum(Renderer& r, const Value& in, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {"attribute", "start"}));
  LLMOPS_ASSIGN_OR_RETURN(std::vector<Value> items, walk(r, in));
  Value total = args.get(1) ? *args.get(1) : Value::integer(0);
  for (const auto& item : items) {
    Value v = item;
    if (args.has(0)) {
      LLMOPS_ASSIGN_OR_RETURN(std::string path, soft_str(r, *args.get(0)));
      LLMOPS_ASSIGN_OR_RETURN(v, attribute_path(item, path));
    }
    if (!v.is_number() || !total.is_number()) {
      return invalid_argument(std::string("can only sum numbers, not ") + type_name(v));
    }
    if (v.is_float() || total.is_float()) {
      total = Value::number(total.to_double() + v.to_double());
    } else {
      int64_t s;
      if (__builtin_add_overflow(total.to_int(), v.to_int(), &s)) return invalid_argument("integer overflow");
      total = Value::integer(s);
    }
  }
  return total;
}

// select/reject(test, args...), selectattr/rejectattr(attribute, test, args...); no test: truth.
Result<Value> filter_items(Renderer& r, const Value& in, const CallArgs& a, bool by_attribute, bool keep) {
  if (!a.named.empty()) return invalid_argument("takes no keyword arguments");
  size_t next = 0;
  std::string path;
  if (by_attribute) {
    if (a.positional.empty() || !a.positional[0].is_string()) return invalid_argument("needs an attribute name");
    path = a.positional[next++].str();
  }
  std::string test;
  if (next < a.positional.size()) {
    if (!a.positional[next].is_string()) return invalid_argument("the test must be named by a string");
    test = a.positional[next++].str();
    if (!find_test(test)) return invalid_argument("unknown test '" + test + "'");
  }
  CallArgs test_args;
  test_args.positional.assign(a.positional.begin() + static_cast<std::ptrdiff_t>(next), a.positional.end());
  LLMOPS_ASSIGN_OR_RETURN(std::vector<Value> items, walk(r, in));
  std::vector<Value> out;
  for (auto& item : items) {
    Value subject = item;
    if (by_attribute) {
      LLMOPS_ASSIGN_OR_RETURN(subject, attribute_path(item, path));
    }
    bool pass = false;
    if (test.empty()) {
      pass = truthy(subject);
    } else {
      LLMOPS_ASSIGN_OR_RETURN(pass, run_test(r, test, subject, test_args));
    }
    if (pass == keep) out.push_back(std::move(item));
  }
  return r.make_list(std::move(out));
}
Result<Value> f_select(Renderer& r, const Value& in, const CallArgs& a) { return filter_items(r, in, a, false, true); }
Result<Value> f_reject(Renderer& r, const Value& in, const CallArgs& a) { return filter_items(r, in, a, false, false); }
Result<Value> f_selectattr(Renderer& r, const Value& in, const CallArgs& a) { return filter_items(r, in, a, true, true); }
Result<Value> f_rejectattr(Renderer& r, const Value& in, const CallArgs& a) {
  return filter_items(r, in, a, true, false);
}

// map(attribute='x', default=d) or map('filter', args...).
Result<Value> f_map(Renderer& r, const Value& in, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(std::vector<Value> items, walk(r, in));
  const Value* attribute = nullptr;
  const Value* fallback = nullptr;
  for (const auto& [name, v] : a.named) {
    if (name == "attribute") attribute = &v;
    else if (name == "default") fallback = &v;
  }
  std::vector<Value> out;
  if (attribute) {
    if (!a.positional.empty()) return invalid_argument("takes either attribute= or a filter name");
    LLMOPS_ASSIGN_OR_RETURN(std::string path, soft_str(r, *attribute));
    for (const auto& item : items) {
      LLMOPS_ASSIGN_OR_RETURN(Value v, attribute_path(item, path));
      out.push_back(v.is_undefined() && fallback ? *fallback : std::move(v));
    }
    return r.make_list(std::move(out));
  }
  if (a.positional.empty() || !a.positional[0].is_string()) return invalid_argument("needs a filter name or attribute=");
  const std::string name = a.positional[0].str();
  if (name == "map") return invalid_argument("can't map the map filter");
  CallArgs filter_args;
  filter_args.positional.assign(a.positional.begin() + 1, a.positional.end());
  filter_args.named = a.named;
  for (const auto& item : items) {
    LLMOPS_ASSIGN_OR_RETURN(Value v, r.apply_filter(name, item, filter_args));
    out.push_back(std::move(v));
  }
  return r.make_list(std::move(out));
}

// Runs of word characters (regex \w: letters, digits, '_'; any non-ASCII byte counts as one).
Result<Value> f_wordcount(Renderer& r, const Value& in, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {}));
  LLMOPS_ASSIGN_OR_RETURN(std::string s, soft_str(r, in));
  int64_t words = 0;
  bool in_word = false;
  for (unsigned char c : s) {
    const bool word = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
    if (word && !in_word) ++words;
    in_word = word;
  }
  return Value::integer(words);
}

// ---- tests ----

Result<bool> require_args(const CallArgs& a, size_t n) {
  if (a.positional.size() != n || !a.named.empty()) {
    return invalid_argument("takes " + std::to_string(n) + " argument(s)");
  }
  return true;
}

template <bool (*Pred)(const Value&)>
Result<bool> t_unary(Renderer&, const Value& v, const CallArgs& a) {
  LLMOPS_RETURN_IF_ERROR(require_args(a, 0).status());
  return Pred(v);
}

bool p_defined(const Value& v) { return !v.is_undefined(); }
bool p_undefined(const Value& v) { return v.is_undefined(); }
bool p_none(const Value& v) { return v.is_none(); }
bool p_boolean(const Value& v) { return v.is_bool(); }
bool p_true(const Value& v) { return v.is_bool() && v.as_bool(); }
bool p_false(const Value& v) { return v.is_bool() && !v.as_bool(); }
bool p_integer(const Value& v) { return v.is_int(); }
bool p_float(const Value& v) { return v.is_float(); }
bool p_number(const Value& v) { return v.is_number(); }
bool p_string(const Value& v) { return v.is_string(); }
bool p_mapping(const Value& v) { return v.is_dict(); }
bool p_iterable(const Value& v) { return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined(); }
bool p_sequence(const Value& v) { return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined(); }
bool p_callable(const Value& v) { return v.kind() == Value::Kind::kCallable; }
bool p_escaped(const Value&) { return false; }

// str(v).islower() / isupper(), as Jinja tests any value.
template <bool kUpper>
Result<bool> t_case(Renderer& r, const Value& v, const CallArgs& a) {
  LLMOPS_RETURN_IF_ERROR(require_args(a, 0).status());
  LLMOPS_ASSIGN_OR_RETURN(std::string s, soft_str(r, v));
  return kUpper ? py_isupper(s) : py_islower(s);
}

Result<bool> t_parity(const Value& v, const CallArgs& a, bool odd) {
  LLMOPS_RETURN_IF_ERROR(require_args(a, 0).status());
  if (!v.is_int() && !v.is_bool()) return invalid_argument(std::string("needs an integer, not ") + type_name(v));
  return (v.to_int() % 2 != 0) == odd;
}
Result<bool> t_odd(Renderer&, const Value& v, const CallArgs& a) { return t_parity(v, a, true); }
Result<bool> t_even(Renderer&, const Value& v, const CallArgs& a) { return t_parity(v, a, false); }

Result<bool> t_divisibleby(Renderer&, const Value& v, const CallArgs& a) {
  LLMOPS_RETURN_IF_ERROR(require_args(a, 1).status());
  const Value& d = a.positional[0];
  if (!v.is_number() || !d.is_number()) return invalid_argument("needs numbers");
  if (v.is_float() || d.is_float()) {
    if (d.to_double() == 0) return invalid_argument("division by zero");
    return std::fmod(v.to_double(), d.to_double()) == 0;
  }
  if (d.to_int() == 0) return invalid_argument("division by zero");
  if (d.to_int() == -1) return true;
  return v.to_int() % d.to_int() == 0;
}

template <int kWhich>  // 0 ==, 1 !=, 2 <, 3 <=, 4 >, 5 >=
Result<bool> t_compare(Renderer& r, const Value& v, const CallArgs& a) {
  LLMOPS_RETURN_IF_ERROR(require_args(a, 1).status());
  const Value& other = a.positional[0];
  LLMOPS_RETURN_IF_ERROR(r.charge_compare(v, other));
  if (kWhich == 0) return equals(v, other);
  if (kWhich == 1) return !equals(v, other);
  LLMOPS_ASSIGN_OR_RETURN(int c, compare(v, other));
  switch (kWhich) {
    case 2: return c < 0;
    case 3: return c <= 0;
    case 4: return c > 0;
    default: return c >= 0;
  }
}

Result<bool> t_in(Renderer& r, const Value& v, const CallArgs& a) {
  LLMOPS_RETURN_IF_ERROR(require_args(a, 1).status());
  LLMOPS_RETURN_IF_ERROR(r.charge(add_weight(v.weight(), a.positional[0].weight())));
  return contains(a.positional[0], v);
}

Result<bool> t_sameas(Renderer&, const Value& v, const CallArgs& a) {
  LLMOPS_RETURN_IF_ERROR(require_args(a, 1).status());
  const Value& o = a.positional[0];
  if (v.kind() != o.kind()) return false;
  switch (v.kind()) {
    case Value::Kind::kList: return &v.list_obj() == &o.list_obj();
    case Value::Kind::kDict: return &v.dict_obj() == &o.dict_obj();
    default: return equals(v, o);
  }
}

Result<bool> t_filter(Renderer&, const Value& v, const CallArgs& a) {
  LLMOPS_RETURN_IF_ERROR(require_args(a, 0).status());
  return v.is_string() && find_filter(v.str()) != nullptr;
}

Result<bool> t_test(Renderer&, const Value& v, const CallArgs& a) {
  LLMOPS_RETURN_IF_ERROR(require_args(a, 0).status());
  return v.is_string() && find_test(v.str()) != nullptr;
}

}  // namespace

FilterFn find_filter(std::string_view name) {
  static const std::unordered_map<std::string_view, FilterFn> kFilters = {
      {"abs", f_abs},
      {"capitalize", f_map_string<py_capitalize>},
      {"count", f_length},
      {"d", f_default},
      {"default", f_default},
      {"dictsort", f_dictsort},
      {"e", f_escape},
      {"escape", f_escape},
      {"first", f_first},
      {"float", f_float},
      {"forceescape", f_escape},
      {"indent", f_indent},
      {"int", f_int},
      {"items", f_items},
      {"join", f_join},
      {"last", f_last},
      {"length", f_length},
      {"list", f_list},
      {"lower", f_map_string<ascii_lower>},
      {"map", f_map},
      {"max", f_max},
      {"min", f_min},
      {"reject", f_reject},
      {"rejectattr", f_rejectattr},
      {"replace", f_replace},
      {"reverse", f_reverse},
      {"round", f_round},
      {"safe", f_safe},
      {"select", f_select},
      {"selectattr", f_selectattr},
      {"sort", f_sort},
      {"string", f_string},
      {"sum", f_sum},
      {"title", f_map_string<jinja_title>},
      {"tojson", f_tojson},
      {"trim", f_trim},
      {"unique", f_unique},
      {"upper", f_map_string<ascii_upper>},
      {"wordcount", f_wordcount},
  };
  auto it = kFilters.find(name);
  return it == kFilters.end() ? nullptr : it->second;
}

TestFn find_test(std::string_view name) {
  static const std::unordered_map<std::string_view, TestFn> kTests = {
      {"boolean", t_unary<p_boolean>},
      {"callable", t_unary<p_callable>},
      {"defined", t_unary<p_defined>},
      {"divisibleby", t_divisibleby},
      {"eq", t_compare<0>},
      {"equalto", t_compare<0>},
      {"==", t_compare<0>},
      {"escaped", t_unary<p_escaped>},
      {"even", t_even},
      {"false", t_unary<p_false>},
      {"filter", t_filter},
      {"float", t_unary<p_float>},
      {"ge", t_compare<5>},
      {">=", t_compare<5>},
      {"gt", t_compare<4>},
      {"greaterthan", t_compare<4>},
      {">", t_compare<4>},
      {"in", t_in},
      {"integer", t_unary<p_integer>},
      {"iterable", t_unary<p_iterable>},
      {"le", t_compare<3>},
      {"<=", t_compare<3>},
      {"lower", t_case<false>},
      {"lt", t_compare<2>},
      {"lessthan", t_compare<2>},
      {"<", t_compare<2>},
      {"mapping", t_unary<p_mapping>},
      {"ne", t_compare<1>},
      {"!=", t_compare<1>},
      {"none", t_unary<p_none>},
      {"number", t_unary<p_number>},
      {"odd", t_odd},
      {"sameas", t_sameas},
      {"sequence", t_unary<p_sequence>},
      {"string", t_unary<p_string>},
      {"test", t_test},
      {"true", t_unary<p_true>},
      {"undefined", t_unary<p_undefined>},
      {"upper", t_case<true>},
  };
  auto it = kTests.find(name);
  return it == kTests.end() ? nullptr : it->second;
}

}  // namespace llmops::engine::jinja
