// A sandboxed renderer for the subset of Jinja2 that chat templates use, with the settings
// Hugging Face renders them with (trim_blocks and lstrip_blocks on, autoescape off, a trailing
// newline of the source dropped, loop controls on).
//
// Understood: {{ }}, {% if/elif/else %}, {% for %} (loop.index/index0/revindex/revindex0/first/
// last/length/previtem/nextitem, an `if` filter, an else branch, `k, v` unpacking, break and
// continue), {% set %} (names, tuples, `ns.attr` on a namespace(), and {% set x %}...{% endset %}),
// {% macro %} with defaults and keyword arguments, {% raw %}, {% generation %} (rendered as its
// body), comments, whitespace control (-/+), Python's operators, literals, subscripts, slices,
// the filters and tests of jinja_filters.cpp, and the str and dict methods of jinja_globals.cpp.
// Refused at parse, with the line named: include, import, extends, from, block (loading other
// templates); not supported: call and filter blocks, recursive loops, loop.cycle, caller(),
// *args/**kwargs and varargs, the format filter and % formatting.
// Differences from Jinja2 that a template may notice: integers are 64-bit (overflow is an
// error); upper/lower/title/capitalize change ASCII letters only; filters return lists, not
// generators; x.name on a dict reads the key even when name is a dict method (items, get...);
// attributes of strings, lists and numbers other than the whitelisted method calls are errors,
// not undefined.
//
// The sandbox: a template reaches only the variables it is given. Attribute access reads dict
// keys and calls whitelisted methods; anything else (__class__, mro, unknown methods) is
// kInvalidArgument "template tried to reach ...". There is no I/O. Work is bounded: a budget of
// evaluation steps (loop iterations, expressions, bytes read and built, items built, values
// compared by their unfolded size), an output and string size cap, a recursion depth cap
// (macros, nesting, long operator chains at parse) and a cap on range() — each a
// kResourceExhausted error (kInvalidArgument when the parse refuses nesting), never a hang or
// a crash.
//
// Errors: parse and render errors are kInvalidArgument (or kResourceExhausted for the limits)
// with messages starting "template line N: ". raise_exception(msg) in a template is
// kInvalidArgument whose message is exactly msg.
//
// Threads: a Template is immutable after parse; any number of threads may render it at once.
#pragma once

#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "json.h"
#include "status.h"

namespace llmops::engine::jinja {

struct Limits {
  size_t max_source_bytes = 1 << 20;
  int max_parse_depth = 100;          // nested blocks and nested expressions
  uint64_t max_steps = 1'000'000;     // evaluation steps of one render
  size_t max_output_bytes = 1 << 20;  // of the result, and of any one string built
  int max_depth = 200;                // evaluator recursion: nested expressions, macro calls, values
  int64_t max_range = 100'000;        // items one range() may produce (Jinja's sandbox limit)
};

struct RenderOptions {
  // The local time for strftime_now(); empty: the system clock in the local time zone.
  std::function<std::tm()> now;
};

struct Body;

class Template {
 public:
  static Result<Template> parse(std::string_view source, const Limits& limits = {});

  // variables: a JSON object of the template's global variables (null → none). Besides them a
  // template sees range, namespace, dict, raise_exception and strftime_now.
  Result<std::string> render(const Json& variables, const RenderOptions& options = {}) const;

  const Limits& limits() const { return limits_; }

 private:
  std::shared_ptr<const Body> body_;
  Limits limits_;
};

}  // namespace llmops::engine::jinja
