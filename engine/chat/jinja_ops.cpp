// The operators: arithmetic with Python's semantics (floor division and modulo take the
// divisor's sign, int64 overflow is an error), concatenation, repetition and comparisons.
#include <algorithm>
#include <cmath>

#include "chat/jinja_render.h"

namespace llmops::engine::jinja {

Result<bool> Renderer::eval_compare(Op op, const Value& a, const Value& b, int line) {
  LLMOPS_RETURN_IF_ERROR(at(line, op == Op::kIn || op == Op::kNotIn
                                      ? charge(add_weight(a.weight(), b.weight()))
                                      : charge_compare(a, b)));
  switch (op) {
    case Op::kEq: return equals(a, b);
    case Op::kNe: return !equals(a, b);
    case Op::kIn:
    case Op::kNotIn: {
      auto found = contains(b, a);
      if (!found.ok()) return at(line, found.status());
      return op == Op::kIn ? *found : !*found;
    }
    default: break;
  }
  if (a.is_undefined()) return at(line, undefined_error(a));
  if (b.is_undefined()) return at(line, undefined_error(b));
  auto c = compare(a, b);
  if (!c.ok()) return at(line, c.status());
  switch (op) {
    case Op::kLt: return *c < 0;
    case Op::kLe: return *c <= 0;
    case Op::kGt: return *c > 0;
    default: return *c >= 0;
  }
}

namespace {

// Python's % and // on integers: the result takes the divisor's sign.
int64_t floor_mod(int64_t a, int64_t b) {
  if (b == -1) return 0;
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

double float_mod(double a, double b) {
  double r = std::fmod(a, b);
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

Result<int64_t> int_pow(int64_t base, int64_t exp) {
  int64_t result = 1;
  while (exp > 0) {
    if (exp & 1) {
      if (__builtin_mul_overflow(result, base, &result)) return invalid_argument("integer overflow");
    }
    exp >>= 1;
    if (exp > 0 && __builtin_mul_overflow(base, base, &base)) return invalid_argument("integer overflow");
  }
  return result;
}

const char* op_symbol(Op op) {
  switch (op) {
    case Op::kAdd: return "+";
    case Op::kSub: return "-";
    case Op::kMul: return "*";
    case Op::kDiv: return "/";
    case Op::kFloorDiv: return "//";
    case Op::kMod: return "%";
    case Op::kPow: return "**";
    default: return "~";
  }
}

}  // namespace

Result<Value> Renderer::eval_binary(Op op, const Value& a, const Value& b, int line) {
  if (op == Op::kConcat) {
    auto sa = to_str(a, limits_.max_output_bytes);
    if (!sa.ok()) return at(line, sa.status());
    auto sb = to_str(b, limits_.max_output_bytes);
    if (!sb.ok()) return at(line, sb.status());
    LLMOPS_RETURN_IF_ERROR(at(line, check_string(sa->size() + sb->size())));
    return Value::string(*sa + *sb);
  }
  if (a.is_undefined()) return at(line, undefined_error(a));
  if (b.is_undefined()) return at(line, undefined_error(b));
  const auto type_error = [&]() {
    return at(line, invalid_argument(std::string("unsupported operand types for ") + op_symbol(op) + ": '" +
                                     type_name(a) + "' and '" + type_name(b) + "'"));
  };
  if (a.is_number() && b.is_number()) {
    const bool ints = !a.is_float() && !b.is_float();
    const auto overflow = [&]() { return at(line, invalid_argument("integer overflow")); };
    const auto div_zero = [&]() { return at(line, invalid_argument("division by zero")); };
    if (ints) {
      const int64_t x = a.to_int(), y = b.to_int();
      int64_t r = 0;
      switch (op) {
        case Op::kAdd: if (__builtin_add_overflow(x, y, &r)) return overflow(); return Value::integer(r);
        case Op::kSub: if (__builtin_sub_overflow(x, y, &r)) return overflow(); return Value::integer(r);
        case Op::kMul: if (__builtin_mul_overflow(x, y, &r)) return overflow(); return Value::integer(r);
        case Op::kDiv:
          if (y == 0) return div_zero();
          return Value::number(static_cast<double>(x) / static_cast<double>(y));
        case Op::kFloorDiv: {
          if (y == 0) return div_zero();
          if (x == INT64_MIN && y == -1) return overflow();
          int64_t q = x / y;
          if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
          return Value::integer(q);
        }
        case Op::kMod:
          if (y == 0) return div_zero();
          return Value::integer(floor_mod(x, y));
        case Op::kPow: {
          if (y >= 0) {
            auto p = int_pow(x, y);
            if (!p.ok()) return at(line, p.status());
            return Value::integer(*p);
          }
          if (x == 0) return at(line, invalid_argument("0 can't be raised to a negative power"));
          return Value::number(std::pow(static_cast<double>(x), static_cast<double>(y)));
        }
        default: break;
      }
    } else {
      const double x = a.to_double(), y = b.to_double();
      switch (op) {
        case Op::kAdd: return Value::number(x + y);
        case Op::kSub: return Value::number(x - y);
        case Op::kMul: return Value::number(x * y);
        case Op::kDiv:
          if (y == 0) return div_zero();
          return Value::number(x / y);
        case Op::kFloorDiv:
          if (y == 0) return div_zero();
          return Value::number(std::floor(x / y));
        case Op::kMod:
          if (y == 0) return div_zero();
          return Value::number(float_mod(x, y));
        case Op::kPow:
          if (x == 0 && y < 0) return at(line, invalid_argument("0.0 can't be raised to a negative power"));
          if (x < 0 && y != std::floor(y)) {
            return at(line, invalid_argument("a negative number can't be raised to a fractional power"));
          }
          return Value::number(std::pow(x, y));
        default: break;
      }
    }
    return type_error();
  }
  if (op == Op::kAdd && a.is_string() && b.is_string()) {
    LLMOPS_RETURN_IF_ERROR(at(line, check_string(a.str().size() + b.str().size())));
    return Value::string(a.str() + b.str());
  }
  if (op == Op::kAdd && a.is_list() && b.is_list() && a.list_obj().is_tuple == b.list_obj().is_tuple) {
    LLMOPS_RETURN_IF_ERROR(at(line, check_items(a.items().size() + b.items().size())));
    std::vector<Value> items = a.items();
    items.insert(items.end(), b.items().begin(), b.items().end());
    auto list = make_list(std::move(items), a.list_obj().is_tuple);
    if (!list.ok()) return at(line, list.status());
    return list;
  }
  if (op == Op::kMul && ((a.is_string() || a.is_list()) != (b.is_string() || b.is_list()))) {
    const Value& seq = a.is_string() || a.is_list() ? a : b;
    const Value& count = a.is_string() || a.is_list() ? b : a;
    if (count.is_int() || count.is_bool()) {
      const int64_t n = std::max<int64_t>(count.to_int(), 0);
      const size_t unit = seq.is_string() ? seq.str().size() : seq.items().size();
      if (unit == 0 || n == 0) {
        return seq.is_string() ? Value::string("") : Value::list({}, seq.list_obj().is_tuple);
      }
      // Refuse before multiplying: n can be anything up to 2^63.
      const size_t cap = seq.is_string() ? limits_.max_output_bytes : limits_.max_steps;
      if (unit > 0 && static_cast<uint64_t>(n) > cap / unit) {
        return at(line, resource_exhausted("template tried to repeat a " + std::string(type_name(seq)) + " " +
                                           std::to_string(n) + " times"));
      }
      if (seq.is_string()) {
        LLMOPS_RETURN_IF_ERROR(at(line, check_string(unit * n)));
        std::string out;
        out.reserve(unit * n);
        for (int64_t i = 0; i < n; ++i) out += seq.str();
        return Value::string(std::move(out));
      }
      LLMOPS_RETURN_IF_ERROR(at(line, check_items(unit * n)));
      std::vector<Value> items;
      items.reserve(unit * n);
      for (int64_t i = 0; i < n; ++i) items.insert(items.end(), seq.items().begin(), seq.items().end());
      auto list = make_list(std::move(items), seq.list_obj().is_tuple);
      if (!list.ok()) return at(line, list.status());
      return list;
    }
  }
  if (op == Op::kMod && a.is_string()) {
    return at(line, invalid_argument("string formatting with % is not supported"));
  }
  return type_error();
}

}  // namespace llmops::engine::jinja
