"""The formatter behind ``orch fmt``: terraform fmt's (hclwrite's) rules, exactly."""

from __future__ import annotations

import textwrap

import pytest

from orchdsl.diagnostics import DiagnosticsError
from orchdsl.lang import parse
from orchdsl.lang.ast import shape
from orchdsl.lang.formatter import format_file_check, format_source, format_tokens, unified_diff


def fmt(src: str) -> str:
    return format_source(textwrap.dedent(src).lstrip("\n"))


def dd(src: str) -> str:
    return textwrap.dedent(src).lstrip("\n")


# hclwrite's own format_test.go cases (hashicorp/hcl), input -> output, run on the raw
# pass (no parse check, no final-newline rule) as hclwrite runs them.
HCLWRITE_CASES = [
    ("a=1", "a = 1"),
    ("a=b.c", "a = b.c"),
    ("a=b[c]", "a = b[c]"),
    ("a=b()[c]", "a = b()[c]"),
    ('a=["hello"][0]', 'a = ["hello"][0]'),
    ("( a+2 )", "(a + 2)"),
    ("( a*2 )", "(a * 2)"),
    ("( a+-2 )", "(a + -2)"),
    ("( a*-2 )", "(a * -2)"),
    ("(-2+1)", "(-2 + 1)"),
    ("foo(1, -2,a*b, b,c)", "foo(1, -2, a * b, b, c)"),
    ("foo(a,b...)", "foo(a, b...)"),
    ("! true", "!true"),
    # orch keeps template contents as written (hclwrite would write "${name}"): see docs/cli.md.
    ('a="hello ${ name }"', 'a = "hello ${ name }"'),
    ('a="hello ${~ name ~}"', 'a = "hello ${~ name ~}"'),
    ('a="${b}${c}${ d } ${e}"', 'a = "${b}${c}${ d } ${e}"'),
    ('"%{if true}${var.foo}%{endif}"', '"%{if true}${var.foo}%{endif}"'),
    ("b{}", "b {}"),
    ('\n"${\nhello\n}"\n', '\n"${\nhello\n}"\n'),
    ("\nfoo(\n1,\n- 2,\na*b,\nb,\nc,\n)\n", "\nfoo(\n  1,\n  -2,\n  a * b,\n  b,\n  c,\n)\n"),
    ("a?b:c", "a ? b : c"),
    ("[ [ ] ]", "[[]]"),
    ("[for x in y : x]", "[for x in y : x]"),
    ("[for x in [y] : x]", "[for x in [y] : x]"),
    ("\n[\n[\na\n]\n]\n", "\n[\n  [\n    a\n  ]\n]\n"),
    ("\n[[\na\n]]\n", "\n[[\n  a\n]]\n"),
    ("\n[[\n[\na\n]\n]]\n", "\n[[\n  [\n    a\n  ]\n]]\n"),
    ("\n[[\n[\na\n]]\n]\n", "\n[[\n  [\n    a\n  ]]\n]\n"),  # degenerate: asymmetrical brackets
    ("\nb {\na = 1\n}\n", "\nb {\n  a = 1\n}\n"),
    ("\nb {a = 1}\n", "\nb { a = 1 }\n"),
    ("\na = 1\nbungle = 2\n", "\na      = 1\nbungle = 2\n"),
    ("\na = 1\n\nbungle = 2\n", "\na = 1\n\nbungle = 2\n"),
    ("\na = 1 # foo\nbungle = 2\n", "\na      = 1 # foo\nbungle = 2\n"),
    ('\na = 1 # foo\nbungle = "bonce" # baz\n', '\na      = 1       # foo\nbungle = "bonce" # baz\n'),
    ('\n# here we go\na = 1 # foo\nbungle = "bonce" # baz\n',
     '\n# here we go\na      = 1       # foo\nbungle = "bonce" # baz\n'),
    ('\nfoo {} # here we go\na = 1 # foo\nbungle = "bonce" # baz\n',
     '\nfoo {}           # here we go\na      = 1       # foo\nbungle = "bonce" # baz\n'),
    ('\na = 1 # foo\nbungle = "bonce" # baz\nzebra = "striped" # baz\n',
     '\na      = 1         # foo\nbungle = "bonce"   # baz\nzebra  = "striped" # baz\n'),
    ('\na = 1 # foo\nbungle = (\n    "bonce"\n) # baz\nzebra = "striped" # baz\n',
     '\na = 1 # foo\nbungle = (\n  "bonce"\n)                 # baz\nzebra = "striped" # baz\n'),
    ('\na="apple"# foo\nbungle=(# woo parens\n"bonce"\n)# baz\nzebra="striped"# baz\n',
     '\na = "apple" # foo\nbungle = (  # woo parens\n  "bonce"\n)                 # baz\nzebra = "striped" # baz\n'),
    ('\n𝒜 = 1 # foo\nbungle = "🇬🇧" # baz\nzebra = "striped" # baz\n',
     '\n𝒜      = 1         # foo\nbungle = "🇬🇧"       # baz\nzebra  = "striped" # baz\n'),
    ("\nfoo {\n# ...\n}\n", "\nfoo {\n  # ...\n}\n"),
    ("\nfoo = {\n# ...\n}\n", "\nfoo = {\n  # ...\n}\n"),
    ("\nfoo = [\n# ...\n]\n", "\nfoo = [\n  # ...\n]\n"),
    ("\nfoo = [{\n# ...\n}]\n", "\nfoo = [{\n  # ...\n}]\n"),
    ("\nfoo {\nbar {\n# ...\n}\n}\n", "\nfoo {\n  bar {\n    # ...\n  }\n}\n"),
    ("\nfoo {\nbar = {\n# ...\n}\n}\n", "\nfoo {\n  bar = {\n    # ...\n  }\n}\n"),
    ("\nfoo {\nbar = [\n# ...\n]\n}\n", "\nfoo {\n  bar = [\n    # ...\n  ]\n}\n"),
    ("\nfoo {\nbar = <<EOT\nFoo bar baz\nEOT\n}\n", "\nfoo {\n  bar = <<EOT\nFoo bar baz\nEOT\n}\n"),
    ("\nfoo {\nbar = <<-EOT\n  Foo bar baz\nEOT\n}\n", "\nfoo {\n  bar = <<-EOT\n  Foo bar baz\nEOT\n}\n"),
    ("\nfoo {\nbar = <<-EOT\n  blahblahblah = x\nEOT\n}\n", "\nfoo {\n  bar = <<-EOT\n  blahblahblah = x\nEOT\n}\n"),
    ("\nfoo {\nbar = <<-EOT\n  ${{ blahblahblah = x }}\nEOT\n}\n",
     "\nfoo {\n  bar = <<-EOT\n  ${{ blahblahblah = x }}\nEOT\n}\n"),
    ("\nfoo {\n  bar = <<-EOT\n  ${a}${b}${ c } ${d}\nEOT\n}\n", "\nfoo {\n  bar = <<-EOT\n  ${a}${b}${ c } ${d}\nEOT\n}\n"),
    ("\nfoo {\nbar = <<EOT\nFoo bar baz\nEOT\nbaz = <<EOT\nFoo bar baz\nEOT\n}\n\nbar {\nfoo = \"bar\"\n}\n",
     "\nfoo {\n  bar = <<EOT\nFoo bar baz\nEOT\n  baz = <<EOT\nFoo bar baz\nEOT\n}\n\nbar {\n  foo = \"bar\"\n}\n"),
    ('\nmodule "foo" {\nfoo = <<EOF\n5\nEOF\n}\n\nmodule "x" {\na = "b"\nabcde = "456"\n}',
     '\nmodule "foo" {\n  foo = <<EOF\n5\nEOF\n}\n\nmodule "x" {\n  a     = "b"\n  abcde = "456"\n}'),
]


@pytest.mark.parametrize("src,want", HCLWRITE_CASES)
def test_hclwrite_format_cases(src, want):
    assert format_tokens(src) == want
    assert format_tokens(want) == want


def test_resource_block_alignment_and_nested_object():
    src = dd("""
        resource "aws_instance" "web" {
        ami = "ami-123"
        instance_type="t2.micro"
        tags = {
        Name = "web"
        Environment="prod"
        }
        }
        """)
    assert format_source(src) == dd("""
        resource "aws_instance" "web" {
          ami           = "ami-123"
          instance_type = "t2.micro"
          tags = {
            Name        = "web"
            Environment = "prod"
          }
        }
        """)


def test_alignment_chains_break_on_blank_lines_blocks_and_multiline_values():
    src = dd("""
        a = 1
        bbb = 2

        cc = 3
        block {
        }
        dddd = 4
        e = [
        1,
        ]
        ffffff = 5
        g = 6
        """)
    assert format_source(src) == dd("""
        a   = 1
        bbb = 2

        cc = 3
        block {
        }
        dddd = 4
        e = [
          1,
        ]
        ffffff = 5
        g      = 6
        """)


def test_alignment_continues_across_a_heredoc_value():
    src = dd("""
        resource "x" "y" {
            user_data = <<-EOF
            #!/bin/bash
              echo   hi   
            EOF
            other = 1
        }
        """)
    assert format_source(src) == dd("""
        resource "x" "y" {
          user_data = <<-EOF
            #!/bin/bash
              echo   hi   
            EOF
          other     = 1
        }
        """)


def test_nested_blocks_and_one_line_blocks():
    src = dd("""
        resource "a" "b" {
                lifecycle {ignore_changes=[tags]}
            dynamic "x" {
            for_each = var.list
              content {
            value=x.value
            }
          }
          empty { }
        }
        """)
    assert format_source(src) == dd("""
        resource "a" "b" {
          lifecycle { ignore_changes = [tags] }
          dynamic "x" {
            for_each = var.list
            content {
              value = x.value
            }
          }
          empty {}
        }
        """)


def test_objects_lists_and_calls():
    assert fmt("""
        x = { a = 1, "b" = [ 1,2 ,3 ] }
        y = merge( var.tags , {Name="x"} )
        z = {a: 1}
        w = provider::aws::arn_parse( "x" )
        """) == dd("""
        x = { a = 1, "b" = [1, 2, 3] }
        y = merge(var.tags, { Name = "x" })
        z = { a : 1 }
        w = provider::aws::arn_parse("x")
        """)


def test_for_expressions():
    assert fmt("""
        a = [for x in var.l: upper(x) if x!=""]
        b = {for k,v in var.m: k=>v...}
        c = [for x in[1,2]: x]
        """) == dd("""
        a = [for x in var.l : upper(x) if x != ""]
        b = { for k, v in var.m : k => v... }
        c = [for x in [1, 2] : x]
        """)


def test_operators_and_negation():
    assert fmt("""
        a = 1+2*3/4%5-6
        b = var.x==""?-1:- 2
        c = !var.a&&var.b||! var.c
        d = [-1, - 2, 3 -1, (-4)]
        e = a<=b
        f = a!=b
        g = var.l[*].id
        h = var.l.*.id
        i = count.index+1
        """) == dd("""
        a = 1 + 2 * 3 / 4 % 5 - 6
        b = var.x == "" ? -1 : -2
        c = !var.a && var.b || !var.c
        d = [-1, -2, 3 - 1, (-4)]
        e = a <= b
        f = a != b
        g = var.l[*].id
        h = var.l.*.id
        i = count.index + 1
        """)


def test_templates_keep_their_text():
    src = dd('''
        a = "  two  spaces ${ var.x }-${var.y}  "
        b = "%{ for s in var.l }${s},  %{ endfor ~}"
        c = "%{ if var.b }yes%{ else }no%{ endif }"
        d = "$${not_interp} %%{not_directive}"
        ''')
    assert format_source(src) == src


def test_heredoc_content_is_never_changed():
    body = "  indented ${ x }\n\tTABBED   \n\n    = not an attribute\n# not a comment\n"
    src = f"block {{\n        x=<<EOT\n{body}EOT\n      y = <<-EOT\n{body}  EOT\n}}\n"
    want = f"block {{\n  x = <<EOT\n{body}EOT\n" \
           f"  y = <<-EOT\n{body}  EOT\n}}\n"
    assert format_source(src) == want


def test_heredoc_closing_inside_brackets_keeps_its_line_break():
    src = 'x = jsonencode(<<EOT\nhi\nEOT\n)\ny = [<<EOT\na\nEOT\n, "b"]\n'
    out = format_source(src)
    assert out == src
    assert shape(parse(out)[0]) == shape(parse(src)[0])


def test_comments_kept_and_indented():
    src = dd("""
        # top comment   
        // slash comment
        /* block
              comment keeps   
           its lines */
        block {
        # inside
          a = 1 # trailing
            bb = 2   // other

        /* one */ c = 3
        dd = 4
        }
        """)
    assert format_source(src) == dd("""
        # top comment
        // slash comment
        /* block
              comment keeps   
           its lines */
        block {
          # inside
          a  = 1 # trailing
          bb = 2 // other

          /* one */ c = 3
          dd          = 4
        }
        """)


def test_whitespace_blank_lines_and_final_newline():
    src = "\n\na  =  1   \n\n\n\nb=2\t\n\n\n\n"
    assert format_source(src) == "\n\na = 1\n\n\n\nb = 2\n"
    assert format_source("a = 1") == "a = 1\n"
    assert format_source("") == ""
    assert format_source("\n\n  \n") == ""
    assert format_source("# only a comment") == "# only a comment\n"


def test_tabs_become_spaces():
    assert format_source("b {\n\ta\t=\t1\n\tcc = 2\n}\n") == "b {\n  a  = 1\n  cc = 2\n}\n"


def test_crlf_line_endings_are_kept():
    src = "a = 1 # x  \r\nbb = 2\r\nc {\r\nd = 3\r\n}\r\n\r\n"
    assert format_source(src) == "a  = 1 # x\r\nbb = 2\r\nc {\r\n  d = 3\r\n}\r\n"


def test_multiline_interpolation_is_kept_as_written():
    src = dd('''
        tags = "${merge(map(
              "Name", "x"
            ), var.extra)}"
        ''')
    assert format_source(src) == src


def test_refuses_files_that_do_not_parse():
    for bad in ("a = \n", "foo {\n", 'a = "unterminated\n', "a = 1 b = 2\n"):
        with pytest.raises(DiagnosticsError) as exc:
            format_source(bad)
        assert any(d.is_error for d in exc.value.diagnostics)


def test_format_file_check_and_diff():
    out, changed = format_file_check("a=1\n")
    assert (out, changed) == ("a = 1\n", True)
    assert format_file_check("a = 1\n") == ("a = 1\n", False)
    diff = unified_diff("main.tf", "a=1\nbb=2\n", "a  = 1\nbb = 2\n")
    assert diff.splitlines() == [
        "--- old/main.tf", "+++ new/main.tf", "@@ -1,2 +1,2 @@", "-a=1", "-bb=2", "+a  = 1", "+bb = 2",
    ]
    assert unified_diff("main.tf", "x\n", "x\n") == ""
    assert "\\ No newline at end of file" in unified_diff("m.tf", "a=1", "a = 1\n")


IDEMPOTENCE_INPUTS = [src for src, _ in HCLWRITE_CASES] + [
    'a = "${ {a = 1} }"\n',
    "x = [\n  for k, v in m :\n  k => v\n]\n",
    "locals {\n  a = (\n    1 +\n    2\n  )\n  b = 1\n}\n",
    "x = foo(<<EOT\n  a\nEOT\n  , 2)\n",
    "a = { for k, v in var.m : k => v if v != null }\n",
    "a = [[[\n1]]]\n",
]


@pytest.mark.parametrize("src", IDEMPOTENCE_INPUTS)
def test_idempotent_and_meaning_preserving(src):
    body, diags = parse(src)
    if any(d.is_error for d in diags):
        once = format_tokens(src)
        assert format_tokens(once) == once
        return
    once = format_source(src)
    assert format_source(once) == once
    body2, diags2 = parse(once)
    assert not [d for d in diags2 if d.is_error]
    assert shape(body2) == shape(body)


def test_column_widths_count_grapheme_clusters():
    from orchdsl.lang.formatter import _approx_graphemes, _width

    for s, n in [("abc", 3), ('"🇬🇧"', 3), ("𝒜", 1), ("e\u0301", 1), ("👩\u200d💻", 1), ("👍🏽", 1), ("日本", 2)]:
        assert _width(s) == n, s
        assert _approx_graphemes(s) == n, s


def test_byte_order_mark_is_kept():
    assert format_source("\ufeffa=1\n") == "\ufeffa = 1\n"
