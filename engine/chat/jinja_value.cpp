#include "chat/jinja_value.h"

#include "chat/jinja_strings.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace llmops::engine::jinja {

Value Value::undefined(std::string hint) {
  Value v;
  v.v_ = UndefinedV{std::move(hint)};
  return v;
}

Value Value::none() {
  Value v;
  v.v_ = NoneV{};
  return v;
}

Value Value::boolean(bool b) {
  Value v;
  v.v_ = b;
  return v;
}

Value Value::integer(int64_t i) {
  Value v;
  v.v_ = i;
  return v;
}

Value Value::number(double f) {
  Value v;
  v.v_ = f;
  return v;
}

Value Value::string(std::string s) {
  Value v;
  v.v_ = std::move(s);
  return v;
}

Value Value::list(std::vector<Value> items, bool is_tuple) {
  auto l = std::make_shared<List>();
  for (const auto& item : items) {
    l->depth = std::max(l->depth, 1 + item.depth());
    l->weight = add_weight(l->weight, item.weight());
    l->holds_namespace = l->holds_namespace || item.holds_namespace();
  }
  l->items = std::move(items);
  l->is_tuple = is_tuple;
  Value v;
  v.v_ = std::shared_ptr<const List>(std::move(l));
  return v;
}

Value Value::dict(Dict d) {
  Value v;
  v.v_ = std::shared_ptr<const Dict>(std::make_shared<Dict>(std::move(d)));
  return v;
}

Value Value::ns(std::shared_ptr<Namespace> n) {
  Value v;
  v.v_ = std::move(n);
  return v;
}

Value Value::callable(std::shared_ptr<const Callable> c) {
  Value v;
  v.v_ = std::move(c);
  return v;
}

const std::vector<Value>& Value::items() const { return list_obj().items; }

int64_t Value::to_int() const { return is_bool() ? (as_bool() ? 1 : 0) : as_int(); }

double Value::to_double() const {
  if (is_float()) return as_float();
  return static_cast<double>(to_int());
}

int Value::depth() const {
  switch (kind()) {
    case Kind::kList: return list_obj().depth;
    case Kind::kDict: return dict_obj().depth();
    case Kind::kNamespace: return ns_obj().attrs.depth();
    default: return 0;
  }
}

uint64_t Value::weight() const {
  switch (kind()) {
    case Kind::kString: return 1 + str().size() / 64;
    case Kind::kList: return list_obj().weight;
    case Kind::kDict: return dict_obj().weight();
    case Kind::kNamespace: return ns_obj().attrs.weight();
    default: return 1;
  }
}

bool Value::holds_namespace() const {
  switch (kind()) {
    case Kind::kNamespace: return true;
    case Kind::kList: return list_obj().holds_namespace;
    case Kind::kDict: return dict_obj().holds_namespace();
    default: return false;
  }
}

uint64_t add_weight(uint64_t a, uint64_t b) {
  constexpr uint64_t kMax = uint64_t{1} << 62;
  return a >= kMax || b >= kMax || a + b >= kMax ? kMax : a + b;
}

const Value* Dict::find(std::string_view key) const {
  if (items_.size() >= kIndexFrom) {
    auto it = index_.find(std::string(key));
    return it == index_.end() ? nullptr : &items_[it->second].second;
  }
  for (const auto& [k, v] : items_) {
    if (k == key) return &v;
  }
  return nullptr;
}

void Dict::set(std::string key, Value value) {
  depth_ = std::max(depth_, 1 + value.depth());
  weight_ = add_weight(weight_, value.weight());
  holds_namespace_ = holds_namespace_ || value.holds_namespace();
  for (size_t i = 0; items_.size() < kIndexFrom && i < items_.size(); ++i) {
    if (items_[i].first == key) {
      items_[i].second = std::move(value);
      return;
    }
  }
  if (items_.size() >= kIndexFrom) {
    if (auto it = index_.find(key); it != index_.end()) {
      items_[it->second].second = std::move(value);
      return;
    }
  }
  items_.emplace_back(std::move(key), std::move(value));
  if (items_.size() == kIndexFrom) {
    for (size_t i = 0; i < items_.size(); ++i) index_.emplace(items_[i].first, i);
  } else if (items_.size() > kIndexFrom) {
    index_.emplace(items_.back().first, items_.size() - 1);
  }
}

const char* type_name(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return "Undefined";
    case Value::Kind::kNone: return "NoneType";
    case Value::Kind::kBool: return "bool";
    case Value::Kind::kInt: return "int";
    case Value::Kind::kFloat: return "float";
    case Value::Kind::kString: return "str";
    case Value::Kind::kList: return v.list_obj().is_tuple ? "tuple" : "list";
    case Value::Kind::kDict: return "dict";
    case Value::Kind::kNamespace: return "Namespace";
    case Value::Kind::kCallable: return v.callable_obj().macro ? "Macro" : "builtin_function";
  }
  return "?";
}

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return false;
    case Value::Kind::kBool: return v.as_bool();
    case Value::Kind::kInt: return v.as_int() != 0;
    case Value::Kind::kFloat: return v.as_float() != 0.0;
    case Value::Kind::kString: return !v.str().empty();
    case Value::Kind::kList: return !v.items().empty();
    case Value::Kind::kDict: return !v.dict_obj().empty();
    case Value::Kind::kNamespace:
    case Value::Kind::kCallable: return true;
  }
  return false;
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.to_double() == b.to_double();
    return a.to_int() == b.to_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return true;
    case Value::Kind::kString: return a.str() == b.str();
    case Value::Kind::kList: {
      const auto& x = a.list_obj();
      const auto& y = b.list_obj();
      if (x.is_tuple != y.is_tuple || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i) {
        if (!equals(x.items[i], y.items[i])) return false;
      }
      return true;
    }
    case Value::Kind::kDict: {
      const auto& x = a.dict_obj();
      const auto& y = b.dict_obj();
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x.items()) {
        const Value* other = y.find(k);
        if (!other || !equals(v, *other)) return false;
      }
      return true;
    }
    case Value::Kind::kNamespace: return &a.ns_obj() == &b.ns_obj();
    case Value::Kind::kCallable: return &a.callable_obj() == &b.callable_obj();
    default: return false;
  }
}

Result<bool> contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kString:
      if (!item.is_string()) {
        return invalid_argument(std::string("'in <string>' needs a string on the left, not ") + type_name(item));
      }
      return find_text(container.str(), item.str()) != std::string::npos;
    case Value::Kind::kList:
      return std::any_of(container.items().begin(), container.items().end(),
                         [&](const Value& x) { return equals(item, x); });
    case Value::Kind::kDict: return item.is_string() && container.dict_obj().find(item.str()) != nullptr;
    case Value::Kind::kUndefined: return false;
    default:
      return invalid_argument(std::string("argument of type '") + type_name(container) + "' is not iterable");
  }
}

Result<int> compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      double x = a.to_double(), y = b.to_double();
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    int64_t x = a.to_int(), y = b.to_int();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    int c = a.str().compare(b.str());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_list() && b.is_list() && a.list_obj().is_tuple == b.list_obj().is_tuple) {
    const auto& x = a.items();
    const auto& y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (equals(x[i], y[i])) continue;
      return compare(x[i], y[i]);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  return invalid_argument(std::string("'<' is not supported between '") + type_name(a) + "' and '" +
                          type_name(b) + "'");
}

std::string format_float(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f < 0 ? "-inf" : "inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), f, std::chars_format::scientific);
  std::string s(buf, res.ptr);  // "-1.2345e+17": the shortest digits that read back as f
  std::string out;
  if (s[0] == '-') {
    out = "-";
    s.erase(0, 1);
  }
  size_t e = s.find('e');
  std::string digits;
  for (size_t i = 0; i < e; ++i) {
    if (s[i] != '.') digits += s[i];
  }
  int exp = std::atoi(s.c_str() + e + 1);
  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      std::string int_part = digits.substr(0, std::min<size_t>(digits.size(), exp + 1));
      int_part.append(exp + 1 - int_part.size(), '0');
      std::string frac = digits.size() > size_t(exp + 1) ? digits.substr(exp + 1) : "0";
      return out + int_part + "." + frac;
    }
    return out + "0." + std::string(-exp - 1, '0') + digits;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  char ebuf[16];
  std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
  return out + ebuf;
}

namespace {

std::string repr_string(const std::string& s) {
  char quote = '\'';
  if (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) quote = '"';
  std::string out(1, quote);
  for (unsigned char c : s) {
    if (c == static_cast<unsigned char>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += quote;
  return out;
}

Status too_big(size_t max_bytes) {
  return resource_exhausted("template printed a value longer than " + std::to_string(max_bytes) + " bytes");
}

Status append_repr(std::string& out, const Value& v, size_t max_bytes);

Status append_dict_repr(std::string& out, const Dict& d, size_t max_bytes) {
  out += '{';
  bool first = true;
  for (const auto& [k, item] : d.items()) {
    if (!first) out += ", ";
    first = false;
    out += repr_string(k);
    out += ": ";
    LLMOPS_RETURN_IF_ERROR(append_repr(out, item, max_bytes));
  }
  out += '}';
  return ok_status();
}

// Checks the size after each element: one element is at most a string the renderer allowed,
// so the buffer never grows far past max_bytes.
Status append_repr(std::string& out, const Value& v, size_t max_bytes) {
  if (out.size() > max_bytes) return too_big(max_bytes);
  switch (v.kind()) {
    case Value::Kind::kString: out += repr_string(v.str()); break;
    case Value::Kind::kList: {
      const auto& l = v.list_obj();
      out += l.is_tuple ? '(' : '[';
      for (size_t i = 0; i < l.items.size(); ++i) {
        if (i) out += ", ";
        LLMOPS_RETURN_IF_ERROR(append_repr(out, l.items[i], max_bytes));
      }
      if (l.is_tuple && l.items.size() == 1) out += ',';
      out += l.is_tuple ? ')' : ']';
      break;
    }
    case Value::Kind::kDict: LLMOPS_RETURN_IF_ERROR(append_dict_repr(out, v.dict_obj(), max_bytes)); break;
    case Value::Kind::kNamespace:
      out += "<Namespace ";
      LLMOPS_RETURN_IF_ERROR(append_dict_repr(out, v.ns_obj().attrs, max_bytes));
      out += '>';
      break;
    case Value::Kind::kUndefined: out += "Undefined"; break;
    default: out += scalar_str(v); break;
  }
  return out.size() > max_bytes ? too_big(max_bytes) : ok_status();
}

void append_json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    char buf[16];
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\b') {
      out += "\\b";
    } else if (c == '\f') {
      out += "\\f";
    } else if (c < 0x20) {
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else if (c >= 0x80 && ensure_ascii) {
      size_t n = 1;
      uint32_t cp = utf8_decode_at(s, i, &n);
      if (n == 1) cp = 0xFFFD;  // an invalid byte (ASCII never gets here)
      if (cp >= 0x10000) {
        uint32_t u = cp - 0x10000;
        std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", 0xD800 + (u >> 10), 0xDC00 + (u & 0x3FF));
      } else {
        std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
      }
      out += buf;
      i += n;
      continue;
    } else {
      out += static_cast<char>(c);
    }
    ++i;
  }
  out += '"';
}

Status append_json(std::string& out, const Value& v, const JsonStyle& style, int level) {
  if (out.size() > style.max_bytes) return too_big(style.max_bytes);
  const bool pretty = style.indent >= 0;
  const std::string& item_sep = !style.item_separator.empty() ? style.item_separator : (pretty ? "," : ", ");
  const std::string& key_sep = !style.key_separator.empty() ? style.key_separator : ": ";
  const auto newline = [&](int lvl) {
    out += '\n';
    out.append(static_cast<size_t>(style.indent) * lvl, ' ');
  };
  switch (v.kind()) {
    case Value::Kind::kNone: out += "null"; return ok_status();
    case Value::Kind::kBool: out += v.as_bool() ? "true" : "false"; return ok_status();
    case Value::Kind::kInt: out += std::to_string(v.as_int()); return ok_status();
    case Value::Kind::kFloat: {
      double f = v.as_float();
      if (std::isnan(f)) out += "NaN";
      else if (std::isinf(f)) out += f < 0 ? "-Infinity" : "Infinity";
      else out += format_float(f);
      return ok_status();
    }
    case Value::Kind::kString:
      append_json_string(out, v.str(), style.ensure_ascii);
      return out.size() > style.max_bytes ? too_big(style.max_bytes) : ok_status();
    case Value::Kind::kList: {
      const auto& items = v.items();
      if (items.empty()) {
        out += "[]";
        return ok_status();
      }
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += item_sep;
        if (pretty) newline(level + 1);
        LLMOPS_RETURN_IF_ERROR(append_json(out, items[i], style, level + 1));
      }
      if (pretty) newline(level);
      out += ']';
      return ok_status();
    }
    case Value::Kind::kDict: {
      const auto& d = v.dict_obj();
      if (d.empty()) {
        out += "{}";
        return ok_status();
      }
      std::vector<const std::pair<std::string, Value>*> entries;
      for (const auto& e : d.items()) entries.push_back(&e);
      if (style.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(), [](auto* x, auto* y) { return x->first < y->first; });
      }
      out += '{';
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i) out += item_sep;
        if (pretty) newline(level + 1);
        append_json_string(out, entries[i]->first, style.ensure_ascii);
        out += key_sep;
        LLMOPS_RETURN_IF_ERROR(append_json(out, entries[i]->second, style, level + 1));
      }
      if (pretty) newline(level);
      out += '}';
      return ok_status();
    }
    default:
      return invalid_argument(std::string("object of type '") + type_name(v) + "' is not JSON serializable");
  }
}

}  // namespace

std::string scalar_str(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return "";
    case Value::Kind::kNone: return "None";
    case Value::Kind::kBool: return v.as_bool() ? "True" : "False";
    case Value::Kind::kInt: return std::to_string(v.as_int());
    case Value::Kind::kFloat: return format_float(v.as_float());
    case Value::Kind::kString: return v.str();
    case Value::Kind::kCallable:
      return v.callable_obj().macro ? "<Macro '" + v.callable_obj().name + "'>"
                                    : "<built-in function " + v.callable_obj().name + ">";
    default: return "";
  }
}

Result<std::string> to_str(const Value& v, size_t max_bytes) {
  switch (v.kind()) {
    case Value::Kind::kList:
    case Value::Kind::kDict:
    case Value::Kind::kNamespace: return repr(v, max_bytes);
    default: return scalar_str(v);
  }
}

Result<std::string> repr(const Value& v, size_t max_bytes) {
  std::string out;
  LLMOPS_RETURN_IF_ERROR(append_repr(out, v, max_bytes));
  return out;
}

Result<std::string> to_json(const Value& v, const JsonStyle& style) {
  std::string out;
  LLMOPS_RETURN_IF_ERROR(append_json(out, v, style, 0));
  return out;
}

Result<Value> from_json(const Json& j, int max_depth) {
  switch (j.type()) {
    case Json::value_t::null: return Value::none();
    case Json::value_t::boolean: return Value::boolean(j.get<bool>());
    case Json::value_t::number_integer: return Value::integer(j.get<int64_t>());
    case Json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::number(static_cast<double>(u));
      return Value::integer(static_cast<int64_t>(u));
    }
    case Json::value_t::number_float: return Value::number(j.get<double>());
    case Json::value_t::string: return Value::string(j.get<std::string>());
    case Json::value_t::array: {
      if (max_depth <= 0) return invalid_argument("JSON value nested too deeply for a template");
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) {
        LLMOPS_ASSIGN_OR_RETURN(Value item, from_json(e, max_depth - 1));
        items.push_back(std::move(item));
      }
      return Value::list(std::move(items));
    }
    case Json::value_t::object: {
      if (max_depth <= 0) return invalid_argument("JSON value nested too deeply for a template");
      Dict d;
      for (const auto& [k, e] : j.items()) {
        LLMOPS_ASSIGN_OR_RETURN(Value item, from_json(e, max_depth - 1));
        d.set(k, std::move(item));
      }
      return Value::dict(std::move(d));
    }
    default: return invalid_argument("JSON binary values can't be given to a template");
  }
}

}  // namespace llmops::engine::jinja
