// The whitelisted methods (str and dict) and the global functions a template may call: range,
// namespace, dict, raise_exception (transformers') and strftime_now (transformers', for
// Llama 3.x's date line).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "chat/jinja_builtins.h"
#include "chat/jinja_strings.h"

namespace llmops::engine::jinja {
namespace {

Result<Value> make_str(Renderer& r, std::string s) {
  LLMOPS_RETURN_IF_ERROR(r.check_string(s.size()));
  return Value::string(std::move(s));
}

Result<Value> string_list(Renderer& r, std::vector<std::string> parts) {
  LLMOPS_RETURN_IF_ERROR(r.check_items(parts.size()));
  std::vector<Value> items;
  items.reserve(parts.size());
  for (auto& p : parts) items.push_back(Value::string(std::move(p)));
  return Value::list(std::move(items));
}

// str.startswith/endswith take one prefix or a tuple of them.
Result<bool> affix_matches(const std::string& s, const Value& affix, bool at_start) {
  const auto one = [&](const Value& v) -> Result<bool> {
    if (!v.is_string()) return invalid_argument(std::string("needs a string or a tuple of strings, not ") + type_name(v));
    const std::string& a = v.str();
    if (a.size() > s.size()) return false;
    return at_start ? s.compare(0, a.size(), a) == 0 : s.compare(s.size() - a.size(), a.size(), a) == 0;
  };
  if (!affix.is_list()) return one(affix);
  for (const auto& v : affix.items()) {
    LLMOPS_ASSIGN_OR_RETURN(bool hit, one(v));
    if (hit) return true;
  }
  return false;
}

// str.format with {} {0} {name} fields and {{ }} escapes; no format specs, attributes or indexes
// (which is where Python's format reaches into objects).
Result<Value> format_string(Renderer& r, const std::string& fmt, const CallArgs& a) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    const char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') ++i;
      else return invalid_argument("single '}' in a format string");
      out += '}';
      continue;
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    const size_t close = fmt.find('}', i);
    if (close == std::string::npos) return invalid_argument("unclosed '{' in a format string");
    const std::string field = fmt.substr(i + 1, close - i - 1);
    i = close;
    if (field.find_first_of(":!.[") != std::string::npos) {
      return invalid_argument("format fields with specs, attributes or indexes are not supported");
    }
    const Value* v = nullptr;
    if (field.empty() || std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
      const size_t index = field.empty() ? auto_index++ : std::stoul(field.substr(0, 9));
      if (index >= a.positional.size()) return invalid_argument("format index " + std::to_string(index) + " out of range");
      v = &a.positional[index];
    } else {
      for (const auto& [name, value] : a.named) {
        if (name == field) v = &value;
      }
      if (!v) return invalid_argument("format field '" + field + "' not given");
    }
    LLMOPS_ASSIGN_OR_RETURN(std::string s, soft_str(r, *v));
    out += s;
    LLMOPS_RETURN_IF_ERROR(r.check_string(out.size()));
  }
  return make_str(r, std::move(out));
}

Result<Value> string_method(Renderer& r, const std::string& s, const std::string& name, const CallArgs& a,
                            const Value& obj) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {"chars"}));
    const bool left = name != "rstrip", right = name != "lstrip";
    if (!args.has(0)) return Value::string(py_strip(s, nullptr, left, right));
    LLMOPS_ASSIGN_OR_RETURN(std::string chars, args.string(0, ""));
    return Value::string(py_strip(s, &chars, left, right));
  }
  if (name == "split" || name == "rsplit") {
    LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {"sep", "maxsplit"}));
    LLMOPS_ASSIGN_OR_RETURN(int64_t maxsplit, args.integer(1, -1));
    if (!args.has(0)) return string_list(r, name == "split" ? py_split(s, nullptr, maxsplit) : py_rsplit(s, nullptr, maxsplit));
    LLMOPS_ASSIGN_OR_RETURN(std::string sep, args.string(0, ""));
    if (sep.empty()) return invalid_argument("empty separator");
    return string_list(r, name == "split" ? py_split(s, &sep, maxsplit) : py_rsplit(s, &sep, maxsplit));
  }
  if (name == "splitlines") {
    LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {}));
    return string_list(r, py_splitlines(s));
  }
  if (name == "startswith" || name == "endswith") {
    LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {"affix"}));
    if (!args.get(0)) return invalid_argument(name + "() needs an argument");
    LLMOPS_ASSIGN_OR_RETURN(bool hit, affix_matches(s, *args.get(0), name == "startswith"));
    return Value::boolean(hit);
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {}));
    if (name == "upper") return Value::string(ascii_upper(s));
    if (name == "lower") return Value::string(ascii_lower(s));
    if (name == "title") return Value::string(py_title(s));
    return Value::string(py_capitalize(s));
  }
  if (name == "replace") {
    LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {"old", "new", "count"}));
    LLMOPS_ASSIGN_OR_RETURN(std::string old_text, args.string(0, ""));
    LLMOPS_ASSIGN_OR_RETURN(std::string new_text, args.string(1, ""));
    if (!args.has(0) || !args.has(1)) return invalid_argument("replace() needs the old and the new text");
    LLMOPS_ASSIGN_OR_RETURN(int64_t count, args.integer(2, -1));
    LLMOPS_RETURN_IF_ERROR(r.check_string(py_replace_size(s, old_text, new_text, count)));
    return Value::string(py_replace(s, old_text, new_text, count));
  }
  if (name == "format") return format_string(r, s, a);
  if (name == "join") {
    LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {"iterable"}));
    if (!args.get(0)) return invalid_argument("join() needs an argument");
    LLMOPS_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(*args.get(0)));
    LLMOPS_RETURN_IF_ERROR(r.check_items(items.size()));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string()) return invalid_argument(std::string("join() needs strings, found ") + type_name(items[i]));
      if (i) out += s;
      out += items[i].str();
      LLMOPS_RETURN_IF_ERROR(r.check_string(out.size()));
    }
    return Value::string(std::move(out));
  }
  if (name == "find" || name == "count") {
    LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {"sub"}));
    LLMOPS_ASSIGN_OR_RETURN(std::string sub, args.string(0, ""));
    if (!args.has(0)) return invalid_argument(name + "() needs an argument");
    if (name == "find") {
      const size_t pos = find_text(s, sub);
      return Value::integer(pos == std::string::npos ? -1 : static_cast<int64_t>(utf8_length(s.substr(0, pos))));
    }
    if (sub.empty()) return Value::integer(static_cast<int64_t>(utf8_length(s)) + 1);
    return Value::integer(static_cast<int64_t>(find_all(s, sub).size()));
  }
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "islower" ||
      name == "isupper") {
    LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {}));
    if (name == "islower") return Value::boolean(py_islower(s));
    if (name == "isupper") return Value::boolean(py_isupper(s));
    if (s.empty()) return Value::boolean(false);
    if (name == "isspace") {
      const auto offsets = utf8_offsets(s);
      for (size_t i = 0; i + 1 < offsets.size(); ++i) {
        size_t len;
        if (!is_py_space(utf8_decode_at(s, offsets[i], &len))) return Value::boolean(false);
      }
      return Value::boolean(true);
    }
    const bool ok = std::all_of(s.begin(), s.end(), [&](char ch) {
      const bool digit = ch >= '0' && ch <= '9';
      const bool alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
      return name == "isdigit" ? digit : (name == "isalpha" ? alpha : digit || alpha);
    });
    return Value::boolean(ok);
  }
  return sandbox_error(name, obj);
}

Result<Value> dict_method(Renderer& r, const Dict& d, const std::string& name, const CallArgs& a, const Value& obj) {
  if (name == "items" || name == "keys" || name == "values") {
    LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {}));
    LLMOPS_RETURN_IF_ERROR(r.check_items(d.size()));
    std::vector<Value> out;
    out.reserve(d.size());
    for (const auto& [k, v] : d.items()) {
      if (name == "items") out.push_back(Value::list({Value::string(k), v}, true));
      else if (name == "keys") out.push_back(Value::string(k));
      else out.push_back(v);
    }
    return r.make_list(std::move(out));
  }
  if (name == "get") {
    LLMOPS_ASSIGN_OR_RETURN(Args args, Args::bind(a, {"key", "default"}));
    if (!args.get(0)) return invalid_argument("get() needs a key");
    const Value fallback = args.get(1) ? *args.get(1) : Value::none();
    if (!args.get(0)->is_string()) return fallback;
    const Value* found = d.find(args.get(0)->str());
    return found ? *found : fallback;
  }
  return sandbox_error(name, obj);
}

// ---- globals ----

Result<Value> g_range(Renderer& r, const CallArgs& a) {
  if (!a.named.empty() || a.positional.empty() || a.positional.size() > 3) {
    return invalid_argument("range() takes 1 to 3 integers");
  }
  int64_t v[3] = {0, 0, 1};
  for (size_t i = 0; i < a.positional.size(); ++i) {
    const Value& x = a.positional[i];
    if (!x.is_int() && !x.is_bool()) return invalid_argument(std::string("range() needs integers, not ") + type_name(x));
    v[a.positional.size() == 1 ? 1 : i] = x.to_int();
  }
  const int64_t start = v[0], stop = v[1], step = v[2];
  if (step == 0) return invalid_argument("range() step must not be zero");
  // The count in 128 bits: stop - start can overflow 64.
  const __int128 span = step > 0 ? static_cast<__int128>(stop) - start : static_cast<__int128>(start) - stop;
  const __int128 magnitude = step > 0 ? step : -static_cast<__int128>(step);
  const __int128 count = span <= 0 ? 0 : (span + magnitude - 1) / magnitude;
  if (count > r.limits().max_range) {
    const auto shown = static_cast<uint64_t>(std::min<__int128>(count, static_cast<__int128>(UINT64_MAX)));
    return resource_exhausted("range() of " + std::to_string(shown) +
                              " items is over the sandbox's limit of " + std::to_string(r.limits().max_range));
  }
  LLMOPS_RETURN_IF_ERROR(r.check_items(static_cast<size_t>(count)));
  std::vector<Value> items;
  items.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < static_cast<int64_t>(count); ++i) items.push_back(Value::integer(start + i * step));
  return Value::list(std::move(items));
}

// dict(mapping, **kwargs) and namespace(mapping, **kwargs).
Result<Dict> build_mapping(Renderer& r, const CallArgs& a, std::string_view what) {
  if (a.positional.size() > 1) return invalid_argument(std::string(what) + "() takes at most one mapping");
  Dict d;
  if (!a.positional.empty()) {
    const Value& m = a.positional[0];
    if (!m.is_dict()) return invalid_argument(std::string(what) + "() needs a dict, not " + type_name(m));
    for (const auto& [k, v] : m.dict_obj().items()) d.set(k, v);
  }
  for (const auto& [k, v] : a.named) d.set(k, v);
  LLMOPS_RETURN_IF_ERROR(r.check_items(d.size()));
  return d;
}

Result<Value> g_namespace(Renderer& r, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Dict d, build_mapping(r, a, "namespace"));
  for (const auto& [k, v] : d.items()) {
    if (v.holds_namespace()) return invalid_argument("a namespace can't hold a namespace");
  }
  if (d.depth() > r.limits().max_depth) return resource_exhausted("namespace() nested too deeply");
  auto ns = std::make_shared<Namespace>();
  ns->attrs = std::move(d);
  return Value::ns(std::move(ns));
}

Result<Value> g_dict(Renderer& r, const CallArgs& a) {
  LLMOPS_ASSIGN_OR_RETURN(Dict d, build_mapping(r, a, "dict"));
  return r.make_dict(std::move(d));
}

Result<Value> g_raise_exception(Renderer& r, const CallArgs& a) {
  std::string message = "raise_exception() called";
  if (!a.positional.empty()) {
    LLMOPS_ASSIGN_OR_RETURN(message, soft_str(r, a.positional[0]));
  }
  r.mark_raised();
  return invalid_argument(message);
}

// strftime over a fixed set of conversions (C locale names); '-' drops the padding as glibc
// does (%-d); anything else is copied as it is.
std::string format_time(const std::tm& t, const std::string& fmt) {
  static constexpr const char* kDays[] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};
  static constexpr const char* kMonths[] = {"January", "February", "March",     "April",   "May",      "June",
                                            "July",    "August",   "September", "October", "November", "December"};
  const int wday = std::clamp(t.tm_wday, 0, 6);
  const int mon = std::clamp(t.tm_mon, 0, 11);
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%' || i + 1 == fmt.size()) {
      out += fmt[i];
      continue;
    }
    size_t j = i + 1;
    const bool no_pad = fmt[j] == '-';
    if (no_pad && j + 1 < fmt.size()) ++j;
    const auto num = [&](long v, int width, char pad = '0') {
      char buf[32];
      if (no_pad) std::snprintf(buf, sizeof(buf), "%ld", v);
      else if (pad == ' ') std::snprintf(buf, sizeof(buf), "%*ld", width, v);
      else std::snprintf(buf, sizeof(buf), "%0*ld", width, v);
      out += buf;
    };
    switch (fmt[j]) {
      case 'a': out += std::string(kDays[wday], 3); break;
      case 'A': out += kDays[wday]; break;
      case 'b':
      case 'h': out += std::string(kMonths[mon], 3); break;
      case 'B': out += kMonths[mon]; break;
      case 'd': num(t.tm_mday, 2); break;
      case 'e': num(t.tm_mday, 2, ' '); break;
      case 'H': num(t.tm_hour, 2); break;
      case 'I': num(t.tm_hour % 12 == 0 ? 12 : t.tm_hour % 12, 2); break;
      case 'j': num(t.tm_yday + 1, 3); break;
      case 'm': num(mon + 1, 2); break;
      case 'M': num(t.tm_min, 2); break;
      case 'p': out += t.tm_hour < 12 ? "AM" : "PM"; break;
      case 'S': num(t.tm_sec, 2); break;
      case 'u': num(wday == 0 ? 7 : wday, 1); break;
      case 'w': num(wday, 1); break;
      case 'y': num((t.tm_year + 1900L) % 100, 2); break;
      case 'Y': num(t.tm_year + 1900L, 4); break;
      case '%': out += '%'; break;
      default: out.append(fmt, i, j - i + 1); break;
    }
    i = j;
  }
  return out;
}

Result<Value> g_strftime_now(Renderer& r, const CallArgs& a) {
  if (a.positional.size() != 1 || !a.positional[0].is_string() || !a.named.empty()) {
    return invalid_argument("strftime_now() takes one format string");
  }
  const std::string& fmt = a.positional[0].str();
  if (fmt.size() > 256) return invalid_argument("strftime_now() format longer than 256 bytes");
  std::tm now{};
  if (r.options().now) {
    now = r.options().now();
  } else {
    const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    localtime_r(&t, &now);
  }
  return Value::string(format_time(now, fmt));
}

struct Global {
  std::string_view name;
  Result<Value> (*fn)(Renderer&, const CallArgs&);
};

constexpr Global kGlobals[] = {
    {"range", g_range},
    {"namespace", g_namespace},
    {"dict", g_dict},
    {"raise_exception", g_raise_exception},
    {"strftime_now", g_strftime_now},
};

}  // namespace

Result<Value> call_method(Renderer& r, const Value& obj, const std::string& name, const CallArgs& args) {
  if (obj.is_string()) return string_method(r, obj.str(), name, args, obj);
  if (obj.is_dict()) return dict_method(r, obj.dict_obj(), name, args, obj);
  return sandbox_error(name, obj);
}

bool is_global_function(std::string_view name) {
  return std::any_of(std::begin(kGlobals), std::end(kGlobals), [&](const Global& g) { return g.name == name; });
}

Result<Value> call_global(Renderer& r, std::string_view name, const CallArgs& args) {
  for (const auto& g : kGlobals) {
    if (g.name == name) return g.fn(r, args);
  }
  return invalid_argument("'" + std::string(name) + "' is undefined");
}

}  // namespace llmops::engine::jinja
