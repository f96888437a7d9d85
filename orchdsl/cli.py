"""The `orch` command: parse flags, call the core, render. No logic of its own."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from .diagnostics import Diagnostic, to_validate_json

CONFIG_SUFFIXES = (".orch", ".tf", ".hcl")


def _color(args: argparse.Namespace) -> bool:
    return sys.stdout.isatty() and not getattr(args, "no_color", False) and "NO_COLOR" not in os.environ


def _print_diags(diags: list[Diagnostic], color: bool) -> None:
    for d in diags:
        print(d.render(color=color), file=sys.stderr)
        print(file=sys.stderr)


def expand_paths(paths: Sequence[str], suffixes: tuple[str, ...], recursive: bool = False) -> list[Path]:
    """Files named on the command line, and the config files of named directories."""
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            out.extend(sorted(f for f in path.glob(pattern) if f.is_file() and f.suffix in suffixes))
        else:
            out.append(path)
    return out


def _read_error(path: Path, err: OSError) -> Diagnostic:
    return Diagnostic.error("Failed to read file", f"{path}: {err.strerror or err}",
                            hint="check the path and its permissions")


# ---- validate -----------------------------------------------------------------------

def cmd_validate(args: argparse.Namespace) -> int:
    from .lang import parse_file

    suffixes = CONFIG_SUFFIXES if args.syntax_only else (".orch",)
    files = expand_paths(args.paths or ["."], suffixes)
    diags: list[Diagnostic] = []
    if not files:
        diags.append(Diagnostic.error("No configuration files",
                                      f"No {', '.join(suffixes)} files in {', '.join(args.paths or ['.'])}.",
                                      hint="pass a directory containing configuration files, or file paths"))
    for f in files:
        try:
            _, file_diags = parse_file(f)
        except OSError as e:
            file_diags = [_read_error(f, e)]
        diags.extend(file_diags)
    errors = sum(1 for d in diags if d.is_error)
    if args.json:
        print(to_validate_json(diags))
    else:
        _print_diags(diags, _color(args))
        if not errors:
            print(f"Success! The configuration is valid ({len(files)} file{'s' if len(files) != 1 else ''}).")
    return 1 if errors else 0


# ---- fmt ------------------------------------------------------------------------------

def cmd_fmt(args: argparse.Namespace) -> int:
    from .diagnostics import DiagnosticsError
    from .lang.formatter import format_source, unified_diff

    use_stdin = args.paths == ["-"]
    files = [] if use_stdin else expand_paths(args.paths or ["."], CONFIG_SUFFIXES, args.recursive)
    status = 0
    all_diags: list[Diagnostic] = []
    if use_stdin:
        text = sys.stdin.read()
        try:
            sys.stdout.write(format_source(text, "<stdin>"))
        except DiagnosticsError as e:
            _print_diags(e.diagnostics, _color(args))
            return 1
        return 0
    for f in files:
        try:
            old = f.read_bytes().decode("utf-8", "surrogateescape")
        except OSError as e:
            all_diags.append(_read_error(f, e))
            status = 1
            continue
        try:
            new = format_source(old, str(f))
        except DiagnosticsError as e:
            all_diags.extend(e.diagnostics)
            status = 1
            continue
        if new == old:
            continue
        if args.list:
            print(f)
        if args.diff:
            sys.stdout.write(unified_diff(str(f), old, new))
        if args.check:
            status = max(status, 3)
        elif args.write:
            f.write_bytes(new.encode("utf-8", "surrogateescape"))
    _print_diags(all_diags, _color(args))
    # terraform fmt -check exits 3 when files need formatting; errors win with 1.
    return 1 if status == 1 else status


# ---- console --------------------------------------------------------------------------

def cmd_console(args: argparse.Namespace) -> int:
    from .console import run_console

    return run_console(Path(args.dir), sys.stdin, sys.stdout, sys.stderr, as_json=args.json,
                       color=_color(args), variables=args.var or [])


# ---- entry point ------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="orch", description="Declarative containers on Docker hosts over SSH.")
    p.add_argument("--no-color", action="store_true", help="disable colour in output")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    v = sub.add_parser("validate", help="check configuration files")
    v.add_argument("paths", nargs="*", metavar="PATH", help="files or directories (default: .)")
    v.add_argument("--syntax-only", action="store_true",
                   help="check HCL2 syntax only (any .orch, .tf or .hcl file)")
    v.add_argument("--json", action="store_true", help="machine-readable output (terraform validate -json shape)")
    v.set_defaults(func=cmd_validate)

    f = sub.add_parser("fmt", help="rewrite files in the canonical format")
    f.add_argument("paths", nargs="*", metavar="PATH", help="files or directories (default: .); - for stdin")
    f.add_argument("--check", action="store_true", help="do not write; exit 3 if any file needs formatting")
    f.add_argument("--diff", action="store_true", help="show the changes as a unified diff")
    f.add_argument("--list", action=argparse.BooleanOptionalAction, default=True,
                   help="list files whose formatting differs (default: on)")
    f.add_argument("--write", action=argparse.BooleanOptionalAction, default=True,
                   help="write the result to the files (default: on)")
    f.add_argument("--recursive", "-r", action="store_true", help="also process subdirectories")
    f.set_defaults(func=cmd_fmt)

    c = sub.add_parser("console", help="evaluate expressions read from standard input")
    c.add_argument("dir", nargs="?", default=".", help="configuration directory (default: .)")
    c.add_argument("--json", action="store_true", help="print one JSON value per line")
    c.add_argument("--var", action="append", metavar="NAME=VALUE", help="set an input variable")
    c.set_defaults(func=cmd_console)

    from .state.commands import register as register_state_commands

    register_state_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
