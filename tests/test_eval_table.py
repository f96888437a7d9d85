"""Table-driven tests of the evaluator and the standard functions.

Each case is ``(source, expected)``: the source is parsed as an expression
(templates are quoted strings or heredocs) and evaluated in ``CTX``.
``expected`` is a plain Python value (numbers as int/Decimal/float, lists
for every sequence and set, dicts for maps and objects), ``UNKNOWN`` for an
unknown result, ``Err("summary")`` for an expected error diagnostic, or
``Typed(value, "type expr")`` to check the result type too.

Expected values come from the HCL native syntax specification and the
Terraform function documentation examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from orchdsl.eval import (UNKNOWN, EvalContext, ListType, MapType, SetType, STRING, evaluate, format_value,
                          from_python, standard_functions, to_json, to_python,
                          unknown)
from orchdsl.lang import parse_expression


@dataclass(frozen=True)
class Err:
    summary: str


@dataclass(frozen=True)
class Typed:
    value: Any
    type_expr: str


TEMPLATE = "Hello, ${name}!\n%{ for ip in addrs ~}\nserver ${ip}\n%{ endfor ~}\n"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> EvalContext:
    base = tmp_path_factory.mktemp("cfg")
    (base / "hello.txt").write_text("Hello World\n")
    (base / "greet.tftpl").write_text(TEMPLATE)
    (base / "wrap.tftpl").write_text("${items}")
    (base / "bad.tftpl").write_text("${nope}")
    variables = {
        "var": from_python({
            "name": "web",
            "port": 8080,
            "ports": [80, 443],
            "tags": {"env": "prod", "team": "ops"},
            "servers": [{"name": "a", "ip": "10.0.0.1"}, {"name": "b", "ip": "10.0.0.2"}],
            "empty": [],
            "nothing": None,
            "flag": True,
        }),
        "local": from_python({"region": "eu-west-1", "zones": ["a", "b", "c"]}),
        "count": from_python({"index": 2}),
        "each": from_python({"key": "k1", "value": "v1"}),
        "unk": unknown(),
        "unk_str": unknown(STRING),
        "unk_list": unknown(ListType(STRING)),
        "unk_map": unknown(MapType(STRING)),
        "partly": from_python(["a", UNKNOWN, "c"]),
        "strlist": from_python(["x", "y"]),
    }
    from orchdsl.eval import convert

    variables["strlist"] = convert(variables["strlist"], ListType(STRING))
    variables["strset"] = convert(from_python(["b", "a"]), SetType(STRING))
    return EvalContext(variables, standard_functions(base))


D = Decimal

CASES: list[tuple[str, Any]] = [
    # ---- literals and escapes -----------------------------------------------------------
    ("1", 1),
    ("1.5", D("1.5")),
    ("1e3", 1000),
    ("1.5e-2", D("0.015")),
    ("true", True),
    ("null", None),
    ('"hello"', "hello"),
    (r'"a\nb\tc"', "a\nb\tc"),
    (r'"\u00e9t\u00E9"', "été"),
    (r'"\U0001F600"', "\U0001F600"),
    (r'"quote \" backslash \\"', 'quote " backslash \\'),
    ('"$${literal}"', "${literal}"),
    ('"%%{literal}"', "%{literal}"),
    ('"a $ b % c"', "a $ b % c"),
    ("[]", []),
    ("{}", {}),
    ('[1, "a", true]', Typed([1, "a", True], "tuple([number, string, bool])")),
    ('{a = 1, "b" = 2, c: 3}', {"a": 1, "b": 2, "c": 3}),
    ('{(var.name) = 1}', {"web": 1}),
    ('{"${var.name}-x" = 1}', {"web-x": 1}),
    ("{var = 1}", {"var": 1}),
    ("{true = 1, null = 2}", {"true": 1, "null": 2}),
    ("{a = 1, a = 2}", {"a": 2}),
    ("{a.b = 1}", Err("Ambiguous attribute key")),
    ("{(null) = 1}", Err("Null value as key")),
    ("{([1]) = 1}", Err("Incorrect key type")),
    # ---- arithmetic and precedence --------------------------------------------------------
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("10 - 4 - 3", 3),
    ("2 * 3 % 4", 2),
    ("7 / 2", D("3.5")),
    ("4 / 2", 2),
    ("7 % 3", 1),
    ("-7 % 3", -1),
    ("0.1 + 0.2", D("0.3")),
    ("0.1 + 0.2 == 0.3", True),
    ("-5", -5),
    ("- -5", 5),
    ("1 < 2", True),
    ("2 <= 1", False),
    ("3 >= 3", True),
    ("1 + 2 > 2 && 1 == 1", True),
    ("true || false && false", True),
    ("!true || true", True),
    ("!(true || true)", False),
    ("1 == 1.0", True),
    ('1 == "1"', False),
    ("[1, 2] == [1, 2]", True),
    ('{a = 1} != {a = 2}', True),
    ("null == null", True),
    ("var.nothing == null", True),
    ("var.name != null", True),
    ("99999999999999999999 + 1", 100000000000000000000),
    ("-(1/3) * 3 == -(1/3 + 1/3 + 1/3)", True),
    ("length(tostring(-(1/3)))", 158),  # full precision survives negation (not Python's 28 digits)
    ("1/0", Err("Division by zero")),
    ("1 % 0", Err("Division by zero")),
    # ---- conversions ---------------------------------------------------------------------
    ('"1" + 1', 2),
    ('"2.5" * 2', 5),
    ('"a" + 1', Err("Invalid operand")),
    ('!"true"', False),
    ("true + 1", Err("Invalid operand")),
    ("null + 1", Err("Invalid operand")),
    ('"${1 + 1}"', 2),
    ('"v${1 + 1}"', "v2"),
    ('"${true}!"', "true!"),
    ('"${1.50}"', D("1.5")),
    ('tostring(1)', "1"),
    ('tostring(1.25)', "1.25"),
    ('tostring(true)', "true"),
    ('tostring(null)', None),
    ('tonumber("42")', 42),
    ('tonumber("4.5e1")', 45),
    ('tonumber("x")', Err("Invalid function argument")),
    ('tobool("true")', True),
    ('tobool("yes")', Err("Invalid function argument")),
    ('tostring([1])', Err("Invalid function argument")),
    ('tolist(["a", "b", 3])', Typed(["a", "b", "3"], "list(string)")),
    ('tolist([1, [2]])', Err("Invalid function argument")),
    ('tolist([1, null])', Typed([1, None], "list(number)")),
    ('toset(["c", "b", "b"])', Typed(["b", "c"], "set(string)")),
    ('tomap({a = 1, b = "x"})', Typed({"a": "1", "b": "x"}, "map(string)")),
    # ---- conditionals ----------------------------------------------------------------------
    ('true ? "a" : "b"', "a"),
    ('false ? "a" : "b"', "b"),
    ('var.port > 1000 ? "high" : "low"', "high"),
    ('true ? 1 : "a"', Typed("1", "string")),
    ('false ? 1 : "a"', "a"),
    ("true ? null : 1", Typed(None, "number")),
    ("true ? [1] : []", [1]),
    ('true ? {a = 1} : {b = 2}', Typed({"a": 1}, "map(number)")),
    ('true ? [1] : {a = 1}', Err("Inconsistent conditional result types")),
    ('null ? 1 : 2', Err("Null condition")),
    ('"x" ? 1 : 2', Err("Incorrect condition type")),
    ('"true" ? 1 : 2', 1),
    ('var.nothing == null ? "none" : var.nothing.field', "none"),
    # ---- traversals, index, splat -----------------------------------------------------------
    ("var.name", "web"),
    ("var.ports[1]", 443),
    ('var.ports["1"]', 443),
    ("var.ports.0", 80),
    ('var.tags["env"]', "prod"),
    ("var.tags.team", "ops"),
    ("var.servers[0].ip", "10.0.0.1"),
    ('var.servers[count.index - 1]["name"]', "b"),
    ("local.zones[count.index]", "c"),
    ("each.key", "k1"),
    ("[1, 2, 3][1]", 2),
    ('{a = {b = "c"}}.a.b', "c"),
    ("var.servers[*].name", ["a", "b"]),
    ("var.servers.*.ip", ["10.0.0.1", "10.0.0.2"]),
    ("var.servers.*.name[0]", "a"),  # attribute-only splat: [0] applies to the result
    ("var.servers[*].name[0]", Err("Invalid index")),  # full splat: [0] applies to each name
    ("var.name[*]", ["web"]),
    ("var.nothing[*]", []),
    ("tolist(null)[*]", Err("Splat of null value")),
    ("{a = 1}[*].a", [1]),
    ("length(var.empty[*])", 0),
    ("var.ports[5]", Err("Invalid index")),
    ("var.ports[-1]", Err("Invalid index")),
    ("var.tags.missing", Err("Unsupported attribute")),
    ("tomap(var.tags).missing", Err("Missing map element")),
    ("var.servers.name", Err("Unsupported attribute")),
    ("var.name.x", Err("Unsupported attribute")),
    ("var.nothing.x", Err("Attempt to get attribute from null value")),
    ("var.nothing[0]", Err("Attempt to index null value")),
    ("toset([1])[0]", Err("Invalid index")),
    ("novar", Err("Unknown variable")),
    # ---- for expressions --------------------------------------------------------------------
    ("[for p in var.ports : p + 1]", [81, 444]),
    ("[for i, p in var.ports : i]", [0, 1]),
    ("[for s in var.servers : s.name if s.ip != \"10.0.0.1\"]", ["b"]),
    ("{for s in var.servers : s.name => s.ip}", {"a": "10.0.0.1", "b": "10.0.0.2"}),
    ("{for k, v in var.tags : v => k}", {"prod": "env", "ops": "team"}),
    ("[for k, v in {b = 2, a = 1} : k]", ["a", "b"]),
    ("[for v in toset([\"b\", \"a\"]) : upper(v)]", ["A", "B"]),
    ('{for x in ["a", "bb", "cc"] : length(x) => x...}', {"1": ["a"], "2": ["bb", "cc"]}),
    ('{for x in ["a", "a"] : x => x}', Err("Duplicate object key")),
    ("[for x in var.nothing : x]", Err("Iteration over null value")),
    ("[for x in 5 : x]", Err("Iteration over non-iterable value")),
    ('[for x in [1] : x if "no"]', Err("Invalid 'for' condition")),
    ("[for x in [[1, 2], [3]] : [for y in x : y * 10]]", [[10, 20], [30]]),
    # ---- templates --------------------------------------------------------------------------
    ('"Hello, ${var.name}!"', "Hello, web!"),
    ('"${var.name}${var.port}"', "web8080"),
    ('"%{if var.flag}yes%{else}no%{endif}"', "yes"),
    ('"%{if !var.flag}yes%{endif}"', ""),
    ('"%{for p in var.ports}${p},%{endfor}"', "80,443,"),
    ('"%{for i, p in var.ports}${i}=${p} %{endfor}"', "0=80 1=443 "),
    ('"a  ${~ "b" ~}  c"', "abc"),
    ('"[ %{~ if true ~} x %{~ endif ~} ]"', "[x]"),
    ("<<EOT\nhello\n  world\nEOT", "hello\n  world\n"),
    ("<<-EOT\n    hello\n      world\n    EOT", "hello\n  world\n"),
    ("<<-EOT\n  a\n\n  b\n  EOT", "a\n\nb\n"),
    ("<<-EOT\n  ${var.name}\n    x\n  EOT", "web\n  x\n"),
    ("<<EOT\n%{ for z in local.zones ~}\n${z}\n%{ endfor ~}\nEOT", "a\nb\nc\n"),
    ('"${var.nothing}"', Typed(None, "any")),
    ('"x${var.nothing}"', Err("Invalid template interpolation value")),
    ('"x${var.ports}"', Err("Invalid template interpolation value")),
    # ---- unknown propagation ------------------------------------------------------------------
    ("unk", UNKNOWN),
    ("unk + 1", Typed(UNKNOWN, "number")),
    ("unk == 1", Typed(UNKNOWN, "bool")),
    ("unk_str == null", UNKNOWN),
    ("unk ? 1 : 2", Typed(UNKNOWN, "number")),
    ("false && unk", False),
    ("true || unk", True),
    ("true && unk", UNKNOWN),
    ("var.nothing != null && var.nothing.x", False),
    ("var.name == \"web\" || var.nothing.x", True),
    ("unk || novar", UNKNOWN),
    ('"a-${unk_str}"', Typed(UNKNOWN, "string")),
    ("unk_list[0]", Typed(UNKNOWN, "string")),
    ("unk_map.key", Typed(UNKNOWN, "string")),
    ("unk.anything[3]", UNKNOWN),
    ("[for x in unk_list : x]", UNKNOWN),
    ("[1, unk]", [1, UNKNOWN]),
    ("upper(unk_str)", Typed(UNKNOWN, "string")),
    ("length(unk_list)", UNKNOWN),
    ("length(partly)", 3),
    ("length([unk, unk])", 2),
    ('join(",", partly)', UNKNOWN),
    ("keys(unk_map)", Typed(UNKNOWN, "list(string)")),
    ("unk_list[*]", Typed(UNKNOWN, "list(string)")),
    ("try(unk, 1)", UNKNOWN),
    ("can(unk.x)", UNKNOWN),
    ("tostring(unk)", Typed(UNKNOWN, "string")),
    ("coalesce(unk_str, \"x\")", UNKNOWN),
    # ---- string functions --------------------------------------------------------------------
    ('format("Hello, %s!", "Ander")', "Hello, Ander!"),
    ('format("There are %d lights", 4)', "There are 4 lights"),
    ('format("%-5s|%5s|", "ab", "cd")', "ab   |   cd|"),
    ('format("%03d %x %X %o %b", 7, 255, 255, 8, 5)', "007 ff FF 10 101"),
    ('format("%.2f %e %g", 3.14159, 1234.5, 0.0001)', "3.14 1.234500e+03 0.0001"),
    ('format("%v %v %#v", "s", 1.5, [1, "a"])', 's 1.5 [1,"a"]'),
    ('format("%q", "a\\"b")', '"a\\"b"'),
    ('format("%.40f", 1/3)', "0." + "3" * 40),
    ('format("%+.2e|%08.3f|%#x", -1234.5, -3.14159, 255)', "-1.23e+03|-003.142|0xff"),
    ('format("%[2]s %[1]s", "a", "b")', "b a"),
    ('format("%t %%", true)', "true %"),
    ('format("%d")', Err("Error in function call")),
    ('format("%s", "a", "b")', Err("Error in function call")),
    ('formatlist("Hello, %s!", ["Valentina", "Ander"])', ["Hello, Valentina!", "Hello, Ander!"]),
    ('formatlist("%s-%s", ["a", "b"], "x")', ["a-x", "b-x"]),
    ('join(", ", ["foo", "bar", "baz"])', "foo, bar, baz"),
    ('join("-", ["a"], ["b", "c"])', "a-b-c"),
    ('split(",", "foo,bar,baz")', Typed(["foo", "bar", "baz"], "list(string)")),
    ('split(",", "")', [""]),
    ('lower("HELLO")', "hello"),
    ('upper("héllo")', "HÉLLO"),
    ('title("hello world")', "Hello World"),
    ('trim("?!hello?!", "!?")', "hello"),
    ('trimspace("  hello\\n\\n")', "hello"),
    ('trimprefix("helloworld", "hello")', "world"),
    ('trimsuffix("helloworld", "world")', "hello"),
    ('chomp("hello\\n\\n")', "hello"),
    ('indent(2, "[\\n  foo,\\n]")', "[\n    foo,\n  ]"),
    ('replace("1 + 2 + 3", "+", "-")', "1 - 2 - 3"),
    ('replace("hello world", "/w.*d/", "everybody")', "hello everybody"),
    ('replace("a1b22", "/(\\\\d+)/", "<$1>")', "a<1>b<22>"),
    ('substr("hello world", 1, 4)', "ello"),
    ('substr("🤔🤷", 0, 1)', "🤔"),
    ('substr("hello world", -5, -1)', "world"),
    ('substr("hello", 10, 2)', ""),
    ('strrev("hello")', "olleh"),
    ('regex("[a-z]+", "53453453.345345aaabbbccc23454")', "aaabbbccc"),
    ('regex("(\\\\d\\\\d\\\\d\\\\d)-(\\\\d\\\\d)-(\\\\d\\\\d)", "2019-02-01")', ["2019", "02", "01"]),
    ('regex("^(?P<user>[^@]+)@(?P<domain>.+)$", "a@b.c")', {"user": "a", "domain": "b.c"}),
    ('regex("x", "abc")', Err("Error in function call")),
    ('regexall("[a-z]+", "1234abcd5678efgh9")', ["abcd", "efgh"]),
    ('length(regexall("[a-z]+", "1234"))', 0),
    ('startswith("hello world", "hello")', True),
    ('endswith("hello world", "hello")', False),
    ('strcontains("hello world", "wor")', True),
    # ---- collection functions ------------------------------------------------------------------
    ("length([])", 0),
    ('length(["a", "b"])', 2),
    ('length({"a" = "b"})', 1),
    ('length("hello")', 5),
    ('length("👾🕹️")', 2),
    ("length(null)", Err("Invalid function argument")),
    ("concat([\"a\", \"\"], [\"b\", \"c\"])", ["a", "", "b", "c"]),
    ("concat(strlist, strlist)", Typed(["x", "y", "x", "y"], "list(string)")),
    ('concat("a")', Err("Invalid function argument")),
    ('contains(["a", "b", "c"], "a")', True),
    ('contains(["a", "b", "c"], "d")', False),
    ("contains(strset, \"a\")", True),
    ('distinct(["a", "b", "a", "c", "d", "b"])', ["a", "b", "c", "d"]),
    ('element(["a", "b", "c"], 1)', "b"),
    ('element(["a", "b", "c"], 3)', "a"),
    ("element([], 0)", Err("Invalid function argument")),
    ('flatten([["a", "b"], [], ["c"]])', ["a", "b", "c"]),
    ('flatten([[["a", "b"], []], ["c"]])', ["a", "b", "c"]),
    ('keys({a = 1, c = 2, d = 3})', ["a", "c", "d"]),
    ('values({a = 3, c = 2, d = 1})', [3, 2, 1]),
    ('lookup({a = "ay", b = "bee"}, "a", "what?")', "ay"),
    ('lookup({a = "ay", b = "bee"}, "c", "what?")', "what?"),
    ('lookup({a = "ay"}, "c")', Err("Error in function call")),
    ('merge({a = "b", c = "d"}, {e = "f", c = "z"})', {"a": "b", "c": "z", "e": "f"}),
    ('merge({a = "b"}, {e = 1})', Typed({"a": "b", "e": 1}, "object({a = string, e = number})")),
    ("merge(var.tags, {team = \"dev\"})", {"env": "prod", "team": "dev"}),
    ("range(3)", [0, 1, 2]),
    ("range(1, 4)", [1, 2, 3]),
    ("range(1, 8, 2)", [1, 3, 5, 7]),
    ("range(4, 1)", [4, 3, 2]),
    ("range(0, 1, 0.25)", [0, D("0.25"), D("0.5"), D("0.75")]),
    ("range(1, 4, 0)", Err("Invalid function argument")),
    ("reverse([1, 2, 3])", [3, 2, 1]),
    ('slice(["a", "b", "c", "d"], 1, 3)', ["b", "c"]),
    ('slice(["a"], 0, 2)', Err("Invalid function argument")),
    ('sort(["e", "d", "a", "x"])', ["a", "d", "e", "x"]),
    ('zipmap(["a", "b"], [1, 2])', {"a": 1, "b": 2}),
    ('zipmap(["a"], [1, 2])', Err("Invalid function argument")),
    ('coalesce("", "b")', "b"),
    ("coalesce(1, 2)", 1),
    ('coalesce(null, "x")', "x"),
    ("coalesce(null, \"\")", Err("Error in function call")),
    ('coalescelist([], ["c", "d"])', ["c", "d"]),
    ('compact(["a", "", "b", null, "c"])', ["a", "b", "c"]),
    ('index(["a", "b", "c"], "b")', 1),
    ('index(["a"], "z")', Err("Error in function call")),
    ('one([])', None),
    ('one(["hello"])', "hello"),
    ('one(["a", "b"])', Err("Invalid function argument")),
    ('setunion(["a", "b"], ["b", "c"], ["d"])', Typed(["a", "b", "c", "d"], "set(string)")),
    ('setintersection(["a", "b"], ["b", "c"], ["b", "d"])', ["b"]),
    ('setsubtract(["a", "b", "c"], ["a", "c"])', ["b"]),
    ('setproduct(["development", "staging"], ["app1", "app2"])',
     [["development", "app1"], ["development", "app2"], ["staging", "app1"], ["staging", "app2"]]),
    ('transpose({a = ["1", "2"], b = ["2", "3"]})', {"1": ["a"], "2": ["a", "b"], "3": ["b"]}),
    ('chunklist(["a", "b", "c", "d", "e"], 2)', [["a", "b"], ["c", "d"], ["e"]]),
    ('alltrue(["true", true])', True),
    ("alltrue([true, false])", False),
    ("alltrue([])", True),
    ("anytrue([false, true])", True),
    ("anytrue([])", False),
    ("sum([10, 13, 6, 4.5])", D("33.5")),
    ("sum([])", Err("Invalid function argument")),
    ('matchkeys(["i-123", "i-abc", "i-def"], ["us-west", "us-east", "us-east"], ["us-east"])',
     ["i-abc", "i-def"]),
    ("try(var.tags.missing, \"default\")", "default"),
    ("try(var.tags.env, \"default\")", "prod"),
    ("try(var.nope, var.also_nope)", Err("Error in function call")),
    ('can(regex("^[a-z]+$", "abc"))', True),
    ('can(regex("^[a-z]+$", "123"))', False),
    # ---- numeric functions ----------------------------------------------------------------------
    ("abs(-12.4)", D("12.4")),
    ("ceil(5.1)", 6),
    ("floor(-5.1)", -6),
    ("log(16, 2)", 4),
    ("pow(3, 2)", 9),
    ("pow(4, 0.5)", 2),
    ("signum(-13)", -1),
    ("max(12, 54, 3)", 54),
    ("max([12, 54, 3]...)", 54),
    ("min(12, 54, 3)", 3),
    ("max()", Err("Error in function call")),
    ('parseint("100", 10)', 100),
    ('parseint("FF", 16)', 255),
    ('parseint("-10", 2)', -2),
    ('parseint("zz", 36)', 1295),
    ('parseint("12", 2)', Err("Invalid function argument")),
    # ---- encoding and hashing ----------------------------------------------------------------
    ('jsonencode({"hello" = "world"})', '{"hello":"world"}'),
    ('jsonencode([1, 1.5, true, null, "<&>"])', '[1,1.5,true,null,"\\u003c\\u0026\\u003e"]'),
    ('jsondecode("{\\"hello\\": \\"world\\"}")', {"hello": "world"}),
    ('jsondecode("[1, 2.5, true, null]")', [1, D("2.5"), True, None]),
    ('jsondecode("{")', Err("Invalid function argument")),
    ('base64encode("Hello World")', "SGVsbG8gV29ybGQ="),
    ('base64decode("SGVsbG8gV29ybGQ=")', "Hello World"),
    ('base64decode("%%%")', Err("Invalid function argument")),
    ('urlencode("Hello World!")', "Hello+World%21"),
    ('csvdecode("a,b\\n1,2\\n3,4\\n")', [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]),
    ('md5("hello world")', "5eb63bbbe01eeed093cb22bb8f5acdc3"),
    ('sha1("hello world")', "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed"),
    ('sha256("hello world")', "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"),
    ('substr(sha512("hello world"), 0, 16)', "309ecc489c12d6eb"),
    ('base64sha256("hello world")', "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="),
    # ---- network functions ------------------------------------------------------------------
    ('cidrhost("10.12.112.0/20", 16)', "10.12.112.16"),
    ('cidrhost("10.12.112.0/20", 268)', "10.12.113.12"),
    ('cidrhost("10.12.112.0/20", -1)', "10.12.127.255"),
    ('cidrhost("fd00:fd12:3456:7890:00a2::/72", 34)', "fd00:fd12:3456:7890::22"),
    ('cidrhost("10.0.0.0/30", 4)', Err("Invalid function argument")),
    ('cidrnetmask("172.16.0.0/12")', "255.240.0.0"),
    ('cidrsubnet("172.16.0.0/12", 4, 2)', "172.18.0.0/16"),
    ('cidrsubnet("10.1.2.0/24", 4, 15)', "10.1.2.240/28"),
    ('cidrsubnet("fd00:fd12:3456:7890::/56", 16, 162)', "fd00:fd12:3456:7800:a200::/72"),
    ('cidrsubnet("10.0.0.0/24", 2, 4)', Err("Invalid function argument")),
    ('cidrsubnets("10.1.0.0/16", 4, 4, 8, 4)', ["10.1.0.0/20", "10.1.16.0/20", "10.1.32.0/24", "10.1.48.0/20"]),
    ('cidrsubnets("10.0.0.0/30", 1, 1, 1)', Err("Invalid function argument")),
    # ---- filesystem functions -----------------------------------------------------------------
    ('file("hello.txt")', "Hello World\n"),
    ('file("missing.txt")', Err("Invalid function argument")),
    ('fileexists("hello.txt")', True),
    ('fileexists("missing.txt")', False),
    ('templatefile("greet.tftpl", {name = "you", addrs = ["10.0.0.1", "10.0.0.2"]})',
     "Hello, you!\nserver 10.0.0.1\nserver 10.0.0.2\n"),
    ('templatefile("wrap.tftpl", {items = [1, 2]})', [1, 2]),
    ('templatefile("bad.tftpl", {})', Err("Invalid function argument")),
    ('basename("foo/bar/baz.txt")', "baz.txt"),
    ('dirname("foo/bar/baz.txt")', "foo/bar"),
    ('dirname("baz.txt")', "."),
    ('pathexpand("/etc/x")', "/etc/x"),
    # ---- function call errors and expansion --------------------------------------------------
    ("upper()", Err("Not enough function arguments")),
    ('upper("a", "b")', Err("Too many function arguments")),
    ("upper([1])", Err("Invalid function argument")),
    ("upper(null)", Err("Invalid function argument")),
    ('nosuchfn("a")', Err("Call to unknown function")),
    ('join("-", ["a", "b"]...)', Err("Invalid function argument")),
    ('join("-", var.nothing...)', Err("Invalid expanding argument value")),
    ('concat([["a"], ["b"]]...)', ["a", "b"]),
    ('min(var.ports...)', 80),
    ("sensitive(1) + 1", 2),
]


def _check(value, diags, expected, src: str) -> None:
    errors = [d for d in diags if d.is_error]
    if isinstance(expected, Err):
        assert errors, f"{src}: expected error {expected.summary!r}, got {format_value(value)}"
        assert expected.summary in [d.summary for d in errors], \
            f"{src}: expected {expected.summary!r}, got {[(d.summary, d.detail) for d in errors]}"
        return
    assert not errors, f"{src}: unexpected {[(d.summary, d.detail) for d in errors]}"
    if isinstance(expected, Typed):
        assert value.type.type_expr() == expected.type_expr, f"{src}: type {value.type.type_expr()}"
        expected = expected.value
    got = to_python(value)
    assert got == expected, f"{src}: got {got!r}, want {expected!r}"


@pytest.mark.parametrize("src,expected", CASES, ids=[c[0][:60] for c in CASES])
def test_eval(ctx, src, expected):
    expr, parse_diags = parse_expression(src)
    assert expr is not None and not parse_diags, [d.summary for d in parse_diags]
    value, diags = evaluate(expr, ctx)
    _check(value, diags, expected, src)


def test_table_is_large_enough():
    assert len(CASES) >= 150


# ---- printing --------------------------------------------------------------------------------

FORMAT_CASES = [
    ('"x"', '"x"'),
    ("1.5", "1.5"),
    ("1/4", "0.25"),
    ("true", "true"),
    ("null", "null"),
    ("[1, 2]", "[\n  1,\n  2,\n]"),
    ("[]", "[]"),
    ('{a = 1}', '{\n  "a" = 1\n}'),
    ('tolist(["a"])', 'tolist([\n  "a",\n])'),
    ('toset(["b", "a"])', 'toset([\n  "a",\n  "b",\n])'),
    ('tomap({a = {b = 1}})', 'tomap({\n  "a" = {\n    "b" = 1\n  }\n})'),
    ("tostring(null)", "tostring(null)"),
    ("unk", "(known after apply)"),
    ('sensitive("secret")', "(sensitive value)"),
    ('"a\\nb"', "<<EOT\na\nb\nEOT"),
    ('{x = "a\\nb"}', '{\n  "x" = <<-EOT\n  a\n  b\n  EOT\n}'),
    ('"tab\\there"', '"tab\\there"'),
]


@pytest.mark.parametrize("src,want", FORMAT_CASES)
def test_format_value(ctx, src, want):
    expr, _ = parse_expression(src)
    value, diags = evaluate(expr, ctx)
    assert not diags
    assert format_value(value) == want


def test_to_json(ctx):
    expr, _ = parse_expression('{b = [1, 2.5, "x"], a = {c = null, d = true}}')
    value, _ = evaluate(expr, ctx)
    assert to_json(value) == '{"a":{"c":null,"d":true},"b":[1,2.5,"x"]}'
    assert to_json(value, indent=2).startswith('{\n  "a": {\n    "c": null')
    with pytest.raises(ValueError):
        to_json(unknown())


def test_yamlencode_matches_terraform_layout(ctx):
    expr, _ = parse_expression('yamlencode({"foo" = [1, {"a" = "b", "c" = "d"}, 3], "bar" = "baz"})')
    value, diags = evaluate(expr, ctx)
    assert not diags
    assert value.raw == '"bar": "baz"\n"foo":\n- 1\n- "a": "b"\n  "c": "d"\n- 3\n'
