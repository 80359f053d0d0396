// The sandboxed Jinja renderer: the language as chat templates use it (expected outputs are
// what Jinja2 3.1 prints with transformers' settings), the sandbox, the limits, and errors that
// name the line.
#include <gtest/gtest.h>

#include <string>

#include "chat/jinja.h"
#include "chat_template_data.h"

namespace llmops::engine::jinja {
namespace {

using engine::test::fixed_now;

Result<std::string> try_render(std::string_view source, const Json& vars = Json::object(), const Limits& limits = {}) {
  LLMOPS_ASSIGN_OR_RETURN(Template t, Template::parse(source, limits));
  RenderOptions options;
  options.now = fixed_now;
  return t.render(vars, options);
}

// The output, or "ERR code: message".
std::string render(std::string_view source, const Json& vars = Json::object()) {
  auto r = try_render(source, vars);
  return r.ok() ? *r : "ERR " + r.status().to_string();
}

Status render_status(std::string_view source, const Json& vars = Json::object(), const Limits& limits = {}) {
  return try_render(source, vars, limits).status();
}

TEST(JinjaTest, OperatorsFollowJinjaPrecedence) {
  EXPECT_EQ(render("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ -2 ** 2 }} {{ 2 ** 3 ** 2 }}"), "7 9 4 64");
  EXPECT_EQ(render("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 1 / 2 }} {{ 4 / 2 }}"), "3 -4 2 -2 0.5 2.0");
  EXPECT_EQ(render("{{ 'a' ~ 1 ~ none ~ true }} {{ 'a' ~ 2 * 3 }}"), "a1NoneTrue a6");
  EXPECT_EQ(render("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ true == 1 }} {{ true + true }}"),
            "True False True True 2");
  EXPECT_EQ(render("{{ 'x' in 'xyz' }} {{ 2 not in [1] }} {{ 'k' in {'k': 1} }} {{ not 1 == 2 }}"),
            "True True True True");
  EXPECT_EQ(render("{{ 0 or 'x' }} {{ 1 and 'y' }} {{ none or [] }}|{{ 'y' if false else 'n' }}{{ 'z' if false }}|"),
            "x y []|n|");
  EXPECT_EQ(render("{{ [1, 2] + [3] }} {{ 'ab' * 3 }} {{ [0] * 2 }} {{ 'ab' * -1 }}|"), "[1, 2, 3] ababab [0, 0] |");
}

TEST(JinjaTest, PrintsValuesAsPythonDoes) {
  EXPECT_EQ(render("{{ [1, 'a', none, true, 1.0, {'k': 'v'}] }}"), "[1, 'a', None, True, 1.0, {'k': 'v'}]");
  EXPECT_EQ(render("{{ 1e20 }} {{ 1e16 }} {{ 1e15 }} {{ 0.1 + 0.2 }} {{ 1e-5 }} {{ 0.0001 }} {{ -0.0 }} {{ 1e3 }}"),
            "1e+20 1e+16 1000000000000000.0 0.30000000000000004 1e-05 0.0001 -0.0 1000.0");
  EXPECT_EQ(render("{{ (1,) }} {{ (1, 2) }} {{ () }} {{ \"it's\" }} {{ [\"it's\", 'a\"b', 'x\\ny'] }}"),
            "(1,) (1, 2) () it's [\"it's\", 'a\"b', 'x\\ny']");
  EXPECT_EQ(render("{{ '\\x41\\u00e9\\n' }}|{{ 'a\\qb' }}|{{ 'a' 'b' }}|{{ 1_000 }}"), "A\xC3\xA9\n|a\\qb|ab|1000");
  EXPECT_EQ(render("{{ none }} {{ true }} {{ nothing }}|"), "None True |");
}

TEST(JinjaTest, SubscriptsAndSlicesCountCodePoints) {
  EXPECT_EQ(render("{{ [1, 2, 3][-1] }} {{ [1, 2, 3][1:] }} {{ [1, 2, 3][::-1] }} {{ [1, 2, 3, 4][1:3] }}"),
            "3 [2, 3] [3, 2, 1] [2, 3]");
  EXPECT_EQ(render("{{ 'abc'[::-1] }} {{ 'h\xC3\xA9llo'[1:3] }} {{ 'h\xC3\xA9llo'|length }} {{ 'h\xC3\xA9llo'[1] }}"),
            "cba \xC3\xA9l 5 \xC3\xA9");
  EXPECT_EQ(render("{{ [1][5] }}|{{ {'a': 1}.b }}|{{ 'abc'[9] }}|{{ 5[1:] }}|"), "||||");
  const Json vars = {{"m", {{"role", "user"}, {"content", "hi"}}}};
  EXPECT_EQ(render("{{ m.role }} {{ m['content'] }} {{ m.name is defined }}", vars), "user hi False");
}

TEST(JinjaTest, WhitespaceControlMatchesHuggingFace) {
  // trim_blocks and lstrip_blocks on, as transformers renders.
  EXPECT_EQ(render("  {% if true %}\n  x\n  {% endif %}\n  y  \n"), "  x\n  y  ");
  EXPECT_EQ(render("a  {{- 'b' -}}  c"), "abc");
  EXPECT_EQ(render("a\n  {# c #}\nb"), "a\nb");
  EXPECT_EQ(render("a\n  {%+ if true %}x{% endif %}"), "a\n  x");   // + keeps the indentation
  EXPECT_EQ(render("{% if true +%}\nx{% endif %}"), "\nx");          // + keeps the newline
  EXPECT_EQ(render("{{ 'v' }}\n"), "v");                             // one trailing newline dropped
  EXPECT_EQ(render("a\r\nb\rc"), "a\nb\nc");
  EXPECT_EQ(render("{% raw %}{{ x }}{% if %}{% endraw %}"), "{{ x }}{% if %}");
  EXPECT_EQ(render("{{ {'a': {'b': 1}} }}"), "{'a': {'b': 1}}");   // }} inside brackets
}

TEST(JinjaTest, ForLoops) {
  EXPECT_EQ(render("{% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}"
                   "{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ x }},{% endfor %}"),
            "103TrueFalse3a,212FalseFalse3b,321FalseTrue3c,");
  EXPECT_EQ(render("{% for x in [] %}a{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for x in [1, 2, 3] if x > 1 %}{{ loop.index }}/{{ loop.length }} {% endfor %}"), "1/2 2/2 ");
  EXPECT_EQ(render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }}{{ ',' if not loop.last }}{% endfor %}"),
            "a=1,b=2");
  EXPECT_EQ(render("{% for k, v in {'a': 1}|items %}{{ k }}{{ v }}{% endfor %}"), "a1");
  EXPECT_EQ(render("{% for a in [1, 2, 3] %}{% if a == 2 %}{% continue %}{% endif %}{{ a }}"
                   "{% if a == 3 %}{% break %}{% endif %}{% endfor %}"),
            "13");
  EXPECT_EQ(render("{% for x in 'ab' %}{{ x }}{{ loop.previtem }}|{% endfor %}"), "a|ba|");
  EXPECT_EQ(render("{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}"), "xy");
}

TEST(JinjaTest, ScopesAndNamespaces) {
  // A set inside a loop lasts one iteration; namespace() carries values out.
  EXPECT_EQ(render("{% set x = 'o' %}{% for i in range(3) %}{% if i == 0 %}{% set x = 'a' %}{% endif %}"
                   "[{{ x }}]{% endfor %}{{ x }}"),
            "[a][o][o]o");
  EXPECT_EQ(render("{% set ns = namespace(a=1) %}{% for i in range(3) %}{% set ns.a = ns.a + i %}{% endfor %}"
                   "{{ ns.a }} {{ ns }}"),
            "4 <Namespace {'a': 4}>");
  EXPECT_EQ(render("{% set a, b = 1, 2 %}{{ a }}{{ b }} {% set t = 1, 2 %}{{ t }}"), "12 (1, 2)");
  EXPECT_EQ(render("{% set x %}hi {{ 1 }}{% endset %}[{{ x }}]"), "[hi 1]");
  EXPECT_EQ(render("{% macro f(a, b=2) %}[{{ a }}{{ b }}]{% endmacro %}{{ f(1) }}{{ f(1, b=3) }}{{ f() }}"),
            "[12][13][2]");
  EXPECT_EQ(render("{% set g = 'G' %}{% macro f() %}{{ g }}{% endmacro %}{{ f() }}"), "G");
  EXPECT_EQ(render("{% generation %}kept{% endgeneration %}"), "kept");
}

TEST(JinjaTest, Filters) {
  EXPECT_EQ(render("{{ '  a b  '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ 'ab'|upper }}{{ 'AB'|lower }}"), "a b|a|ABab");
  EXPECT_EQ(render("{{ 'hello world-foo'|title }} {{ 'hELLO'|capitalize }}"), "Hello World-Foo Hello");
  EXPECT_EQ(render("{{ [1, 2]|length }} {{ 'abc'|count }} {{ {'a': 1}|length }} {{ nothing|length }}"), "2 3 1 0");
  EXPECT_EQ(render("{{ [1, 'a']|join('-') }} {{ [{'n': 'x'}, {'n': 'y'}]|join(',', attribute='n') }}"), "1-a x,y");
  EXPECT_EQ(render("{{ nothing|default('d') }} {{ ''|default('d') }} {{ ''|default('d', true) }} {{ none|d('x') }}"),
            "d  d None");
  EXPECT_EQ(render("{{ [1, 2, 3]|first }} {{ 'abc'|last }} {{ []|first }}|{{ 'ab'|list }} {{ {'a': 1}|list }}"),
            "1 c |['a', 'b'] ['a']");
  EXPECT_EQ(render("{{ 3|string ~ 'x' }} {{ '3.7'|int }} {{ 'x'|int }} {{ 'x'|int(5) }} {{ '0x1A'|int(0, 16) }} "
                   "{{ '12'|float }} {{ 2|float }} {{ -1.5|int }}"),
            "3x 3 0 5 26 12.0 2.0 -1");
  EXPECT_EQ(render("{{ {'a': 1}|items|list }} {{ 'aXbX'|replace('X', '-') }} {{ 'aaa'|replace('a', 'b', 2) }}"),
            "[('a', 1)] a-b- bba");
  const Json vars = {{"ms", {{{"role", "system"}}, {{"role", "user"}, {"x", 1}}, {{"role", "user"}}}}};
  EXPECT_EQ(render("{{ ms|selectattr('role', 'equalto', 'user')|list|length }} "
                   "{{ ms|rejectattr('role', 'equalto', 'user')|map(attribute='role')|join }} "
                   "{{ ms|selectattr('x', 'defined')|list|length }} {{ ms|selectattr('x')|list|length }}",
                   vars),
            "2 system 1 1");
  EXPECT_EQ(render("{{ ['a', 'b']|map('upper')|join }} {{ [1, 2, 3]|select('odd')|list }} "
                   "{{ [1, 2, 3]|reject('odd')|list }}"),
            "AB [1, 3] [2]");
  EXPECT_EQ(render("{{ {'b': 1, 'a': [1, 2, {'c': '\xC3\xA9'}]}|tojson }}"), "{\"b\": 1, \"a\": [1, 2, {\"c\": \"\xC3\xA9\"}]}");
  EXPECT_EQ(render("{{ {'b': 1, 'a': []}|tojson(indent=2) }}"), "{\n  \"b\": 1,\n  \"a\": []\n}");
  EXPECT_EQ(render("{{ 'x\"\\n'|tojson }} {{ none|tojson }} {{ 1.0|tojson }} {{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}"),
            "\"x\\\"\\n\" null 1.0 {\"a\": 2, \"b\": 1}");
  EXPECT_EQ(render("{{ [3, 1, 2]|sort }} {{ ['b', 'A']|sort }} {{ [3, 1]|sort(reverse=true) }} {{ [1, 1, 2]|unique|list }}"),
            "[1, 2, 3] ['A', 'b'] [3, 1] [1, 2]");
  EXPECT_EQ(render("{{ [1, 2]|reverse|list }} {{ 'abc'|reverse }} {{ -1|abs }} {{ 2.5|round }} {{ 3.5|round }} "
                   "{{ 2.567|round(2) }} {{ 2.1|round(method='ceil') }}"),
            "[2, 1] cba 1 2.0 4.0 2.57 3.0");
  EXPECT_EQ(render("{{ 'a\\nb'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}"), "a\n  b|  a\n  b");
  EXPECT_EQ(render("{{ '<a href=\"x\">&\\''|e }} {{ '<b>'|safe }}"), "&lt;a href=&#34;x&#34;&gt;&amp;&#39; <b>");
  EXPECT_EQ(render("{{ '0.1 a_b, c'|wordcount }}"), "4");
  EXPECT_EQ(render("{{ [1, 2, 3]|sum }} {{ [3, 1]|min }} {{ [3, 1]|max }} {{ {'b': 1, 'a': 2}|dictsort }}"),
            "6 1 3 [('a', 2), ('b', 1)]");
}

TEST(JinjaTest, Tests) {
  EXPECT_EQ(render("{{ x is defined }} {{ x is undefined }} {{ none is none }} {{ 'a' is string }} {{ {} is mapping }}"),
            "False True True True True");
  EXPECT_EQ(render("{{ 'a' is iterable }} {{ 1 is iterable }} {{ 1 is number }} {{ true is number }} "
                   "{{ [] is sequence }} {{ true is boolean }} {{ 1 is integer }} {{ 1.0 is float }}"),
            "True False True True True True True True");
  EXPECT_EQ(render("{{ 3 is odd }} {{ 4 is even }} {{ 4 is divisibleby 2 }} {{ 4 is divisibleby(3) }} "
                   "{{ 1 is equalto 1 }} {{ 'x' is not none }} {{ true is true }} {{ 0 is false }}"),
            "True True True False True True True False");
  EXPECT_EQ(render("{{ 'ab' is lower }} {{ 'AB' is upper }} {{ 2 is in [1, 2] }} {{ range is callable }}"),
            "True True True True");
  EXPECT_EQ(render("{{ ['b'] is lower }} {{ none is upper }}"), "True False");  // str(value), as Jinja
}

TEST(JinjaTest, StringAndDictMethods) {
  EXPECT_EQ(render("{{ '  a  '.strip() }}|{{ 'xax'.strip('x') }}|{{ '  a '.lstrip() }}|{{ ' a  '.rstrip() }}|"),
            "a|a|a | a|");
  EXPECT_EQ(render("{{ 'a,b,,c'.split(',') }} {{ ' a b  '.split() }} {{ 'a b c'.split(' ', 1) }} "
                   "{{ 'abcb'.rsplit('b', 1) }} {{ 'a\\nb\\r\\nc'.splitlines() }}"),
            "['a', 'b', '', 'c'] ['a', 'b'] ['a', 'b c'] ['abc', ''] ['a', 'b', 'c']");
  EXPECT_EQ(render("{{ 'abc'.startswith('ab') }} {{ 'abc'.startswith(('x', 'a')) }} {{ 'abc'.endswith('bc') }}"),
            "True True True");
  EXPECT_EQ(render("{{ 'ab'.upper() }} {{ 'AB'.lower() }} {{ 'hello world'.title() }} {{ 'aXa'.replace('X', 'y') }}"),
            "AB ab Hello World aya");
  EXPECT_EQ(render("{{ 'a{}b{}'.format(1, 'x') }} {{ '{0}{0}'.format('z') }} {{ '{n}'.format(n=2) }} "
                   "{{ ', '.join(['a', 'b']) }} {{ 'abc'.find('c') }} {{ 'aaa'.count('a') }}"),
            "a1bx zz 2 a, b 2 3");
  const Json vars = {{"d", {{"a", 1}, {"b", 2}}}};
  EXPECT_EQ(render("{{ d.items()|list }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.get('a') }} "
                   "{{ d.get('z') }} {{ d.get('z', 0) }}",
                   vars),
            "[('a', 1), ('b', 2)] ['a', 'b'] [1, 2] 1 None 0");
  EXPECT_EQ(render("{{ range(3)|list }} {{ range(1, 10, 3)|list }} {{ range(5, 0, -2)|list }} {{ dict(a=1) }}"),
            "[0, 1, 2] [1, 4, 7] [5, 3, 1] {'a': 1}");
}

TEST(JinjaTest, StrftimeNowReadsTheInjectedClock) {
  EXPECT_EQ(render("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%A %B %-d, %H:%M:%S %p %j %y %%') }}"),
            "26 Jul 2024|Friday July 26, 13:00:00 PM 208 24 %");
  EXPECT_EQ(render("{{ strftime_now is defined }}"), "True");
}

TEST(JinjaTest, RaiseExceptionIsTheTemplatesMessage) {
  Status s = render_status("line 1\n{{ raise_exception('Conversation roles must alternate!') }}");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.message(), "Conversation roles must alternate!");
  s = render_status("{% macro f() %}{{ raise_exception('deep') }}{% endmacro %}{% for x in [1] %}{{ f() }}{% endfor %}");
  EXPECT_EQ(s.message(), "deep");
}

TEST(JinjaTest, UndefinedValues) {
  Status s = render_status("\n{{ x.y }}");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.message(), "template line 2: 'x' is undefined");
  EXPECT_EQ(render_status("{{ x + 1 }}").code(), Code::kInvalidArgument);
  EXPECT_EQ(render_status("{{ lipsum() }}").code(), Code::kInvalidArgument);
  EXPECT_EQ(render("{{ x|upper }}|{{ x|trim }}|{{ x|list }}|{{ x|join }}|{{ x ~ 'y' }}|{% for i in x %}{% endfor %}"),
            "||[]||y|");
  EXPECT_EQ(render_status("{{ 'a' + 1 }}").code(), Code::kInvalidArgument);
  EXPECT_EQ(render_status("{{ 1 < 'a' }}").code(), Code::kInvalidArgument);
  EXPECT_EQ(render_status("{{ 5 // 0 }}").code(), Code::kInvalidArgument);
  EXPECT_EQ(render_status("{{ 2 ** 64 }}").code(), Code::kInvalidArgument);  // no big integers
}

// ---- the sandbox ----

void expect_sandbox_refusal(std::string_view source, const Json& vars = Json::object()) {
  Status s = render_status(source, vars);
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << source;
  EXPECT_NE(s.message().find("template tried to reach"), std::string::npos) << source << ": " << s.to_string();
}

TEST(JinjaTest, SandboxRefusesPythonInternals) {
  const Json vars = {{"messages", {{{"role", "user"}}}}, {"d", {{"k", 1}}}};
  expect_sandbox_refusal("{{ messages.__class__ }}", vars);
  expect_sandbox_refusal("{{ ''.__class__.__mro__ }}");
  expect_sandbox_refusal("{{ ''.__class__ }}");
  expect_sandbox_refusal("{{ d.__init__.__globals__ }}", vars);
  expect_sandbox_refusal("{{ d._private }}", vars);
  expect_sandbox_refusal("{{ 'abc'.mro() }}");
  expect_sandbox_refusal("{{ messages.append(1) }}", vars);  // and no mutating lists
  expect_sandbox_refusal("{{ messages.pop() }}", vars);
  expect_sandbox_refusal("{{ ''['__class__'] }}");
  expect_sandbox_refusal("{{ 'x'.upper }}");  // methods only as calls
  expect_sandbox_refusal("{{ range.__call__ }}");
  expect_sandbox_refusal("{{ [1]|map(attribute='__class__')|list }}");
  // Keys are data: a dict key that looks like an attribute is just looked up.
  EXPECT_EQ(render("{{ d['__class__'] is defined }}", vars), "False");
}

TEST(JinjaTest, SandboxRefusesLoadingTemplates) {
  for (const char* tag : {"{% include 'x' %}", "{% import 'x' as y %}", "{% extends 'x' %}",
                          "{% from 'x' import y %}", "{% block b %}{% endblock %}"}) {
    Status s = render_status(std::string("ok\n\n") + tag);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << tag;
    EXPECT_NE(s.message().find("template line 3"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("not allowed"), std::string::npos) << s.message();
  }
}

TEST(JinjaTest, NamespacesCannotHoldThemselves) {
  EXPECT_EQ(render_status("{% set ns = namespace() %}{% set ns.me = ns %}").code(), Code::kInvalidArgument);
  EXPECT_EQ(render_status("{% set ns = namespace() %}{% set ns.me = [{'a': ns}] %}").code(), Code::kInvalidArgument);
  EXPECT_EQ(render_status("{% set ns = namespace() %}{% set x = namespace(a=ns) %}").code(), Code::kInvalidArgument);
  EXPECT_EQ(render_status("{% set d = {} %}{% set d.x = 1 %}").code(), Code::kInvalidArgument);
}

// ---- the limits ----

void expect_exhausted(std::string_view source, const Limits& limits = {}) {
  Status s = render_status(source, Json::object(), limits);
  EXPECT_EQ(s.code(), Code::kResourceExhausted) << source << ": " << s.to_string();
}

TEST(JinjaTest, StepBudgetStopsEndlessWork) {
  expect_exhausted("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}");
  expect_exhausted("{% for i in range(10**9) %}x{% endfor %}");  // range() itself is capped
  expect_exhausted("{{ range(2**62)|length }}");
  Limits small;
  small.max_steps = 1000;
  expect_exhausted("{% for i in range(2000) %}{% endfor %}", small);
}

TEST(JinjaTest, OutputAndStringsAreCapped) {
  expect_exhausted("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}");
  expect_exhausted("{{ 'x' * 10**12 }}");
  expect_exhausted("{{ [1] * 10**12 }}");
  expect_exhausted("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}");
  expect_exhausted("{% set s = 'x' * 100000 %}{{ [s] * 1000 }}");  // printing a list of big strings
  expect_exhausted("{% set s = 'x' * 100000 %}{{ ([s] * 1000)|join }}");
  expect_exhausted("{% set s = 'x' * 100000 %}{{ ([s] * 1000)|tojson }}");
  expect_exhausted("{% set s = 'x' * 1000000 %}{{ s|replace('x', 'yy') }}");
  Limits small;
  small.max_output_bytes = 10;
  expect_exhausted("{{ 'hello world' }}", small);
  EXPECT_EQ(render("{{ '' * 10**18 }}|"), "|");
}

TEST(JinjaTest, RecursionAndNestingAreCapped) {
  expect_exhausted("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  expect_exhausted("{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set ns.l = [ns.l] %}{% endfor %}");
  Status s = render_status("{{ " + std::string(500, '(') + "1" + std::string(500, ')') + " }}");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("nests deeper"), std::string::npos) << s.message();
  std::string deep_blocks;
  for (int i = 0; i < 200; ++i) deep_blocks += "{% if true %}";
  EXPECT_EQ(render_status(deep_blocks).code(), Code::kInvalidArgument);
  EXPECT_EQ(render_status("{{ " + std::string(1000, '-') + "1 }}").code(), Code::kInvalidArgument);
  EXPECT_EQ(render_status("{{ " + std::string(1000, '[') + std::string(1000, ']') + " }}").code(),
            Code::kInvalidArgument);
  // Long left-associative chains nest too: one level per link.
  std::string chain = "{{ 1";
  for (int i = 0; i < 100000; ++i) chain += "+1";
  EXPECT_EQ(render_status(chain + " }}").code(), Code::kInvalidArgument);
  std::string filters = "{{ 'a'";
  for (int i = 0; i < 100000; ++i) filters += "|trim";
  EXPECT_EQ(render_status(filters + " }}").code(), Code::kInvalidArgument);
  std::string attrs = "{{ x";
  for (int i = 0; i < 100000; ++i) attrs += ".a";
  EXPECT_EQ(render_status(attrs + " }}").code(), Code::kInvalidArgument);
  // Shared parts count each time they appear: [x, x] nested 100 times is small in memory but
  // would take 2^100 steps to compare or print.
  expect_exhausted("{% set ns = namespace(l=[]) %}{% for i in range(100) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}"
                   "{{ ns.l == ns.l }}");
  expect_exhausted("{% set ns = namespace(a=[], b=[]) %}{% for i in range(60) %}{% set ns.a = [ns.a] * 2 %}"
                   "{% set ns.b = [ns.b] * 2 %}{% endfor %}{{ ns.a == ns.b }}");
  // Quadratic string searches are linear here, and big strings cost steps per use.
  expect_exhausted("{% set s = 'a' * 500000 %}{% for i in range(100000) %}{{ s[i] }}{% endfor %}");
  expect_exhausted("{% set s = 'a' * 500000 %}{% set t = 'a' * 250000 ~ 'b' %}{% for i in range(1000) %}"
                   "{{ t in s }}{{ s.count(t) }}{{ s.rsplit(t) }}{% endfor %}");
}

TEST(JinjaTest, ParseErrorsNameTheLine) {
  const auto message = [](std::string_view source) { return render_status(source).message(); };
  EXPECT_EQ(message("line one\n{% if x %}\n{% endfor %}"), "template line 3: unknown or misplaced tag 'endfor'");
  EXPECT_EQ(message("a\n{% for x in y %}\nb"),
            "template line 2: unclosed block: expected '{% endfor %}' before the end of the template");
  EXPECT_EQ(message("\n\n{{ 1 + }}"), "template line 3: unexpected '}}' in an expression");
  EXPECT_EQ(message("{{ x|nosuchfilter }}"), "template line 1: unknown filter 'nosuchfilter'");
  EXPECT_EQ(message("{{ x is nosuchtest }}"), "template line 1: unknown test 'nosuchtest'");
  EXPECT_EQ(message("\n{{ 'abc }}"), "template line 2: unclosed string literal");
  EXPECT_EQ(message("{# open"), "template line 1: unclosed comment (no '#}')");
  EXPECT_EQ(message("\n{{ x"), "template line 2: unclosed tag: expected '}}'");
  EXPECT_EQ(message("{% break %}"), "template line 1: 'break' outside a for loop");
  EXPECT_EQ(message("{{ f(*args) }}"), "template line 1: *args and **kwargs are not supported");
  EXPECT_EQ(message("{{ 99999999999999999999 }}"), "template line 1: integer literal 99999999999999999999 is too large");
  EXPECT_EQ(message("{{ a ; b }}"), "template line 1: unexpected character ';'");
}

}  // namespace
}  // namespace llmops::engine::jinja
