"""Render docs/functions.md from the function registry (signatures and one-line docs).

Regenerate with ``python -m orchdsl.eval.functions.reference > docs/functions.md``;
a test checks the committed file is current.
"""

from __future__ import annotations

from . import standard_functions

_ORDER = ["string", "collection", "type conversion", "numeric", "encoding", "hash", "network", "filesystem",
          "sensitivity"]

_INTRO = """# Function reference

Functions available in `.orch` expressions. Names and behaviour follow Terraform's built-in
functions; call them as `name(arg, ...)`, or expand a list into the last arguments with
`name(args...)`.

Notation: `any` accepts any type; `list(T)`/`set(T)`/`map(T)` arguments are converted to that type
first (a tuple `[...]` becomes a list, an object `{...}` a map). `...name` is a variadic parameter.
Flags: `[null]` the argument may be null; `[unknown]` the function gives a useful result even when the
argument is not known yet (otherwise a call with an unknown argument returns an unknown result,
printed `(known after apply)`).

Errors are reported as *Invalid function argument* (pointing at the offending argument) or
*Error in function call*.

Differences from Terraform: numbers are exact decimals (155 significant digits), so `0.1 + 0.2 == 0.3`;
dividing by zero is an error rather than infinity; numbers are limited to magnitudes below `1e4000`;
file functions resolve relative paths against the configuration directory, read regular files only (up
to 64 MiB), and `fileset` stops after meeting 20,000 entries; provider-defined functions
(`provider::x::f`) are not supported. Regular expressions run on RE2 (the `google-re2` package), the engine
whose syntax Go's `regexp` (Terraform's) implements: linear-time matching, no lookaround or
backreferences. See [reliability.md](reliability.md#limits) for every limit.
"""


def render_reference() -> str:
    by_category: dict[str, list] = {}
    for f in standard_functions(".").values():
        by_category.setdefault(f.category, []).append(f)
    out = [_INTRO]
    for cat in _ORDER + sorted(set(by_category) - set(_ORDER)):
        fns = by_category.get(cat)
        if not fns:
            continue
        out += [f"## {cat[0].upper() + cat[1:]} functions", "", "| Signature | Description |", "| --- | --- |"]
        for f in sorted(fns, key=lambda f: f.name):
            out.append(f"| `{f.signature.replace('|', chr(92) + '|')}` | {f.doc} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(render_reference(), end="")
