"""Bad input never crashes or hangs the front end: a result or diagnostics, nothing else."""

from __future__ import annotations

import signal
from contextlib import contextmanager

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchdsl.lang import parse, parse_expression
from tests.conftest import corpus_root

SECONDS_PER_INPUT = 5

SAMPLES = [
    'pod "web" {\n  replicas = 3\n  container "c" {\n    image = "x:${var.tag}"\n  }\n}\n',
    'locals {\n  m = { for k, v in var.m : k => v... if v != null }\n  t = [for x in a : x * 2]\n}\n',
    'x = <<-EOT\n  %{ for k, v in m ~}\n  ${k} = ${v}\n  %{ endfor }\n  EOT\n',
    'a = b ? c[*].d : e.*.f\nf = g(1, [2]...)\nh = "\\u00e9 $${x} %%{y}"\n',
]


def _seed_texts() -> list[str]:
    root = corpus_root()
    texts = list(SAMPLES)
    if root is not None:
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "oracle.json")
        for p in files[:: max(1, len(files) // 150)]:
            texts.append(p.read_bytes().decode("utf-8", "surrogateescape")[:6000])
    return texts


SEEDS = _seed_texts()
ALPHABET = st.sampled_from(list('abcxyz019 \t\n\r"\'\\$%{}[]()<>=!&|?:.,*+-/~#;`_é\udc80') + ["${", "%{", "<<EOT\n",
                                                                                                "EOT\n", "for ", " in "])


class Hang(Exception):
    pass


@contextmanager
def time_limit(seconds: int):
    def on_alarm(signum, frame):
        raise Hang(f"no result after {seconds}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def check(text: str) -> None:
    with time_limit(SECONDS_PER_INPUT):
        body, diags = parse(text, "fuzz.orch")
        assert body is not None
        for d in diags:
            assert d.subject is not None and d.summary
            d.render()
        expr, ediags = parse_expression(text)
        assert expr is not None or ediags


@st.composite
def mutated(draw) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            break
        i = draw(st.integers(0, len(text) - 1))
        j = draw(st.integers(i, min(len(text), i + 40)))
        op = draw(st.sampled_from(["delete", "duplicate", "insert", "truncate"]))
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        elif op == "insert":
            text = text[:i] + "".join(draw(st.lists(ALPHABET, max_size=6))) + text[i:]
        else:
            text = text[:i]
    return text


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


@FUZZ
@given(st.text(max_size=200))
def test_random_text(text):
    check(text)


@FUZZ
@given(st.lists(ALPHABET, max_size=120).map("".join))
def test_random_tokens(text):
    check(text)


@FUZZ
@given(mutated())
def test_mutated_corpus_files(text):
    check(text)
