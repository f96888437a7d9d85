"""The `orch` command: parse flags, call the core, render. No logic of its own."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .diagnostics import Diagnostic, to_validate_json

CONFIG_SUFFIXES = (".orch", ".tf", ".hcl")


def _color(args: argparse.Namespace) -> bool:
    return sys.stdout.isatty() and not getattr(args, "no_color", False) and "NO_COLOR" not in os.environ


def _print_diags(diags: list[Diagnostic], color: bool) -> None:
    from .redact import current

    for d in current().redact_all(diags):  # no diagnostic shows a known secret (docs/reliability.md)
        # a source line of a file that is not UTF-8 holds surrogate escapes: shown as \udcXX, never a crash
        print(d.render(color=color).encode("utf-8", "backslashreplace").decode("utf-8"), file=sys.stderr)
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

    from .engine.arguments import check_paths

    if _stop_on_errors(check_paths(args.paths), args):
        return 1
    if not args.syntax_only:
        return _validate_config(args)
    suffixes = CONFIG_SUFFIXES
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
    return _report_validation(diags, args, f" ({len(files)} file{'s' if len(files) != 1 else ''})")


def _validate_config(args: argparse.Namespace) -> int:
    """Full validation of configuration directories: syntax, resource schemas, references, types."""
    from .config import load_config

    overrides, diags = _var_overrides(args)
    dirs = args.paths or ["."]
    for d in dirs:
        if not Path(d).is_dir():
            diags.append(Diagnostic.error("Not a configuration directory", f"{d} is not a directory.",
                                          hint="pass a directory of .orch files, or use --syntax-only for "
                                               "single files"))
            continue
        # as terraform validate: a required variable left unset is unknown, not an error
        config, config_diags = load_config(d, overrides, args.var_file or [], unset_required_unknown=True)
        _learn_secrets(config, overrides)
        diags.extend(config_diags)
    return _report_validation(diags, args)


def _learn_secrets(config, overrides: dict[str, str]) -> None:
    """The configuration's sensitive variables (their values, and the --var texts of sensitive ones): scrubbed
    from every diagnostic of the command."""
    from .redact import current

    current().add_config(config)
    decls = config.variable_decls if () in config.modules else {}
    current().add([v for k, v in overrides.items() if k in decls and decls[k].sensitive])


def _report_validation(diags: list[Diagnostic], args: argparse.Namespace, what: str = "") -> int:
    from .redact import current

    diags = current().redact_all(diags)
    errors = any(d.is_error for d in diags)
    if args.json:
        print(to_validate_json(diags))
    else:
        _print_diags(diags, _color(args))
        if not errors:
            print(f"Success! The configuration is valid{what}.")
    return 1 if errors else 0


# ---- fmt ------------------------------------------------------------------------------

def cmd_fmt(args: argparse.Namespace) -> int:
    from .diagnostics import DiagnosticsError
    from .lang.formatter import format_source, unified_diff

    from .engine.arguments import check_paths

    if _stop_on_errors(check_paths(args.paths), args):
        return 1
    use_stdin = args.paths == ["-"]
    files = [] if use_stdin else expand_paths(args.paths or ["."], CONFIG_SUFFIXES, args.recursive)
    status = 0
    all_diags: list[Diagnostic] = []
    if use_stdin:  # as terraform fmt: the result, or only the diff (--diff), or nothing (--check); never a file
        text = sys.stdin.read()
        try:
            new = format_source(text, "<stdin>")
        except DiagnosticsError as e:
            _print_diags(e.diagnostics, _color(args))
            return 1
        if args.diff:
            sys.stdout.write(unified_diff("<stdin>", text, new))
        elif not args.check:
            sys.stdout.write(new)
        return 3 if args.check and new != text else 0
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
    from .engine.arguments import check_directory

    if _stop_on_errors(check_directory(args.dir), args):
        return 1
    return run_console(Path(args.dir), sys.stdin, sys.stdout, sys.stderr, as_json=args.json,
                       color=_color(args), variables=args.var or [])



# ---- plan / apply / destroy / show / graph / import -------------------------------------

def _bool(text: str) -> bool:
    t = str(text).lower()
    if t in ("true", "1", "yes", "on"):
        return True
    if t in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f'expected true or false, got "{text}"')


def _plan_options(args: argparse.Namespace, destroy: bool = False):
    from .addrs import AddressError, parse_address
    from .engine.arguments import UNSET_HINT, check_plan_modes
    from .engine.planner import PlanOptions
    from .state.targets import parse_target

    diags: list[Diagnostic] = []
    targets, replace = [], []
    for t in args.target or []:
        try:
            targets.append(parse_target(t))
        except (ValueError, Exception) as e:  # noqa: BLE001 - any bad address is a user error
            diags.append(Diagnostic.error("Invalid target address", str(e),
                                          hint=UNSET_HINT if not t.strip() else "e.g. --target pod.web[0]"))
    for r in args.replace or []:
        try:
            replace.append(parse_address(r))
        except AddressError as e:
            diags.append(Diagnostic.error("Invalid replace address", str(e),
                                          hint=UNSET_HINT if not r.strip() else "e.g. --replace pod.web[0]"))
    opts = PlanOptions(targets=targets, replace=replace, refresh=args.refresh,
                       refresh_only=getattr(args, "refresh_only", False), destroy=destroy or
                       getattr(args, "destroy", False))
    diags += check_plan_modes(destroy=opts.destroy, refresh=opts.refresh, refresh_only=opts.refresh_only,
                              replace=bool(args.replace), json_flag=getattr(args, "json", False),
                              fmt=getattr(args, "format", "text"))
    return opts, diags


def _var_overrides(args: argparse.Namespace) -> tuple[dict[str, str], list[Diagnostic]]:
    out: dict[str, str] = {}
    diags = []
    for item in args.var or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            diags.append(Diagnostic.error("Invalid --var option", f'"{item}" is not NAME=VALUE.',
                                          hint="use --var NAME=VALUE"))
            continue
        out[name.strip()] = value
    return out, diags


def _lock_timeout(args: argparse.Namespace) -> float:
    from .diagnostics import DiagnosticsError
    from .state.duration import parse_duration

    try:
        return parse_duration(args.lock_timeout)
    except ValueError as e:
        raise DiagnosticsError([Diagnostic.error("Invalid --lock-timeout", str(e),
                                                 hint="e.g. --lock-timeout 30s, 2m or 1m30s (0s: do not wait)")]
                               ) from None


def _render(the_plan, args: argparse.Namespace) -> None:
    from .redact import current

    fmt = "json" if getattr(args, "json", False) else getattr(args, "format", "text")
    if fmt != "json":  # values are redacted by their marks; what hosts reported, by the known secrets
        the_plan = current().redact_status(the_plan)
    if fmt == "json":
        from .plan.render_json import dumps_plan_json

        print(dumps_plan_json(the_plan))
    elif fmt == "markdown":
        from .plan.render_markdown import render_plan_markdown

        print(render_plan_markdown(the_plan))
    else:
        from .plan.render_text import render_plan_text

        print(render_plan_text(the_plan, color=_color(args)))


def _session(args: argparse.Namespace, need_config: bool = True, command: str | None = None):
    """Open the session of a command; its arguments are checked first (raises DiagnosticsError).
    ``command``: the configuration must have files (plan, apply, graph, import; not destroy)."""
    from .diagnostics import DiagnosticsError
    from .engine import arguments
    from .engine.workflow import open_session

    bad = arguments.check_directory(args.dir)
    bad += arguments.check_file_argument(getattr(args, "state", None), "--state", "state")
    for f in getattr(args, "var_file", None) or []:
        bad += arguments.check_file_argument(f, "--var-file", "variables")
    if command is not None and not bad:
        bad += arguments.no_configuration(args.dir, command)
    if bad:
        raise DiagnosticsError(bad)
    overrides, diags = _var_overrides(args)
    session = open_session(args.dir, overrides, getattr(args, "var_file", None) or [],
                           getattr(args, "state", None), need_config=need_config)
    session.diagnostics = diags + session.diagnostics
    if session.config is not None:
        _learn_secrets(session.config, overrides)
    return session, overrides


def _stop_on_errors(diags: list[Diagnostic], args: argparse.Namespace) -> bool:
    _print_diags(diags, _color(args))
    return any(d.is_error for d in diags)


def cmd_plan(args: argparse.Namespace) -> int:
    from .diagnostics import DiagnosticsError
    from .engine import workflow

    from .engine.arguments import check_plan_out, empty_argument
    from .redact import current

    opts, odiags = _plan_options(args)
    odiags += empty_argument(args.out, "The plan file path (--out)", "Invalid --out")
    session, overrides = _session(args, command=None if opts.destroy else "plan")
    if args.out:  # a plan that cannot be saved is not worth making
        odiags += check_plan_out(args.out, session.backend.path) or workflow.check_plan_target(args.out)
    if _stop_on_errors(session.diagnostics + odiags, args):
        return 1
    try:
        with session.backend.lock("plan", _lock_timeout(args)):
            state = session.backend.read()
            current().add_state(state)
            the_plan, diags = workflow.plan(session, state, opts)
            if the_plan is not None:
                current().add_plan(the_plan)
    except DiagnosticsError as e:
        _print_diags(e.diagnostics, _color(args))
        return 1
    if _stop_on_errors(diags, args) or the_plan is None:
        return 1
    _render(the_plan, args)
    if args.out:
        try:
            workflow.save_plan(args.out, workflow.SavedPlan(the_plan, str(args.dir), overrides,
                                                            args.var_file or []))
        except DiagnosticsError as e:
            _print_diags(e.diagnostics, _color(args))
            return 1
        if not getattr(args, "json", False):
            print(f'\nSaved the plan to: {args.out}\n\nTo perform exactly these actions, run:\n'
                  f'    orch apply "{args.out}"')
    if args.detailed_exitcode and the_plan.has_changes:
        return 2
    return 0


def _approve(args: argparse.Namespace, destroy: bool) -> bool:
    if args.auto_approve:
        return True
    what = "destroy all remote objects managed by this configuration" if destroy else \
        "perform the actions described above"
    print(f"\nDo you {'really want to destroy all resources' if destroy else 'want to perform these actions'}?\n"
          f"  orch will {what}.\n  Only 'yes' will be accepted to approve.\n")
    try:
        answer = input("  Enter a value: ")
    except EOFError:
        answer = ""
    if answer.strip() != "yes":
        print(f"\n{'Destroy' if destroy else 'Apply'} cancelled.")
        return False
    print()
    return True


def cmd_apply(args: argparse.Namespace, destroy: bool = False) -> int:
    from .diagnostics import DiagnosticsError
    from .engine import workflow

    from .engine import arguments
    from .redact import current

    if _stop_on_errors(arguments.check_parallelism(args.parallelism), args):
        return 1
    saved = None
    plan_file = None
    if not destroy and args.dir and Path(args.dir).is_file():
        plan_file = args.dir
        given = {"--var": bool(args.var), "--var-file": bool(args.var_file), "--target": bool(args.target),
                 "--replace": bool(args.replace), "--refresh": args.refresh is False,
                 "--refresh-only": bool(getattr(args, "refresh_only", False))}
        if _stop_on_errors(arguments.saved_plan_options(given), args):
            return 1
        try:
            saved = workflow.load_plan(plan_file)
        except DiagnosticsError as e:
            _print_diags(e.diagnostics, _color(args))
            return 1
        current().add_plan(saved.plan)
        args.dir = saved.directory
        args.var = [f"{k}={v}" for k, v in saved.var_overrides.items()]
        args.var_file = saved.var_files
    opts, odiags = _plan_options(args, destroy=destroy)
    session, _ = _session(args, command=None if destroy or saved is not None else "apply")
    if _stop_on_errors(session.diagnostics + odiags, args):
        return 1

    def say(line: str) -> None:  # progress lines may quote what a provider was given: never a secret
        workflow.say_stdout(current().redact(line))

    try:
        with session.backend.lock("apply", _lock_timeout(args)):
            state = session.backend.read()
            current().add_state(state)
            if saved is not None:
                if not session.backend.exists() and saved.plan.serial == 0:
                    # planned against "no state yet": the new state takes the plan's lineage
                    state = type(state)(lineage=saved.plan.lineage)
                stale = workflow.check_fresh(saved.plan, state)
                if _stop_on_errors(stale, args):
                    return 1
                the_plan = saved.plan
                if _stop_on_errors(workflow.prime(session, state), args):
                    return 1
            else:
                the_plan, diags = workflow.plan(session, state, opts)
                if the_plan is not None:
                    current().add_plan(the_plan)
                if _stop_on_errors(diags, args) or the_plan is None:
                    return 1
                _render(the_plan, args)
                if not the_plan.has_changes:
                    return 0
                if not _approve(args, destroy):
                    return 1
            with workflow.Interrupts(say) as interrupts:
                outcome = workflow.apply(session, the_plan, state, say, args.parallelism, interrupts.stop)
    except DiagnosticsError as e:
        _print_diags(e.diagnostics, _color(args))
        return 1
    if outcome.diagnostics:  # values computed during the apply: sensitive ones are in the state now
        current().add_state(session.backend.read())
    _print_diags(outcome.diagnostics, _color(args))
    if outcome.interrupted:
        print("\nApply interrupted: the changes in flight were finished and recorded in the state.")
        return 1
    verb = "Destroy" if destroy else "Apply"
    if not outcome.ok:
        print(f"\n{verb} failed. Resources: {outcome.added} added, {outcome.changed} changed, "
              f"{outcome.destroyed} destroyed.")
        return 1
    if destroy:
        print(f"\nDestroy complete! Resources: {outcome.destroyed} destroyed.")
    else:
        print(f"\nApply complete! Resources: {outcome.added} added, {outcome.changed} changed, "
              f"{outcome.destroyed} destroyed.")
        _print_outputs(session)
    return 0


def _print_outputs(session) -> None:
    from .eval import format_value, from_python
    from .redact import SENSITIVE

    state = session.backend.read()
    if not state.outputs:
        return
    print("\nOutputs:\n")
    for name, out in sorted(state.outputs.items()):
        shown = SENSITIVE if out.sensitive else format_value(from_python(out.value))
        print(f"{name} = {shown}")


def cmd_destroy(args: argparse.Namespace) -> int:
    return cmd_apply(args, destroy=True)


def cmd_show(args: argparse.Namespace) -> int:
    from .diagnostics import DiagnosticsError
    from .engine import workflow

    from .engine.arguments import check_file_argument

    if _stop_on_errors(check_file_argument(args.file, "PLANFILE", "plan"), args):
        return 1
    if args.file:
        try:
            saved = workflow.load_plan(args.file)
        except DiagnosticsError as e:
            _print_diags(e.diagnostics, _color(args))
            return 1
        from .redact import current

        current().add_plan(saved.plan)
        _render(saved.plan, args)
        return 0
    session, _o = _session(args, need_config=False)
    try:
        state = session.backend.read()
    except DiagnosticsError as e:
        _print_diags(e.diagnostics, _color(args))
        return 1
    if args.json:  # the state document: values present, sensitive_attributes say what to hide
        print(state.to_json())
    elif not len(state) and not state.outputs:
        print("The state file is empty. No resources are represented.")
    else:
        print(render_state(state))
    return 0


def render_state(state) -> str:
    """The state as ``terraform show`` prints it: each instance as ``orch state show`` does (HCL-like
    attribute blocks, sensitive values redacted), then the outputs."""
    from .state.render import render_instance, render_output

    parts = [render_instance(inst) + "\n" for inst in state]
    if state.outputs:
        parts.append("\nOutputs:\n\n" + "".join(f"{name} = {render_output(out, hide_sensitive=True)}\n"
                                                  for name, out in sorted(state.outputs.items())))
    return "\n".join(parts).rstrip("\n")


def cmd_graph(args: argparse.Namespace) -> int:
    from . import graph as G
    from .config import load_config
    from .engine import arguments
    from .engine.graph_order import config_graph

    bad = arguments.check_directory(args.dir)
    if _stop_on_errors(bad or arguments.no_configuration(args.dir, "graph"), args):
        return 1
    # the graph is the blocks and their references: required variables need no value (as terraform graph)
    config, diags = load_config(args.dir, unset_required_unknown=True)
    if _stop_on_errors([d for d in diags if d.is_error], args):
        return 1
    g = config_graph(config)
    print(G.to_mermaid(g) if args.format == "mermaid" else G.to_dot(g), end="")
    cycles = G.cycle_diagnostics(g)
    return 1 if _stop_on_errors(cycles, args) else 0


def cmd_import(args: argparse.Namespace) -> int:
    from .addrs import AddressError, parse_address
    from .diagnostics import DiagnosticsError
    from .engine import workflow

    from .engine.arguments import UNSET_HINT, empty_argument

    try:
        addr = parse_address(args.address)
    except AddressError as e:
        _print_diags([Diagnostic.error("Invalid address", str(e), hint=UNSET_HINT if not args.address.strip()
                                       else "e.g. pod.web[0]")], _color(args))
        return 1
    if _stop_on_errors(empty_argument(args.id, "The object id (ID)", "Invalid import id"), args):
        return 1
    _lock_timeout(args)  # checked before anything is read
    session, _ = _session(args, command="import")
    if _stop_on_errors(session.diagnostics, args):
        return 1
    try:
        with session.backend.lock("import", _lock_timeout(args)):
            state = session.backend.read()
            diags = workflow.import_resource(session, state, addr, args.id)
    except DiagnosticsError as e:
        diags = e.diagnostics
    if _stop_on_errors(diags, args):
        return 1
    print(f"{addr}: Import prepared!\n\nImport successful!")
    return 0


def _engine_flags(p: argparse.ArgumentParser, planning: bool = True) -> None:
    p.add_argument("--var", action="append", metavar="NAME=VALUE", help="set an input variable")
    p.add_argument("--var-file", action="append", metavar="FILE", help="load variable values from a file")
    p.add_argument("--state", metavar="PATH", help="state file (default: DIR/orch.orchstate)")
    p.add_argument("--lock-timeout", default="0s", metavar="DURATION", help="wait this long for the state lock")
    p.add_argument("--no-color", action="store_true", default=argparse.SUPPRESS, help="no colour in output")
    if planning:
        p.add_argument("--target", action="append", metavar="ADDR", help="plan only this resource (and what "
                                                                          "it depends on)")
        p.add_argument("--replace", action="append", metavar="ADDR", help="force replacement of this instance")
        p.add_argument("--refresh", type=_bool, default=True, nargs="?", const=True, metavar="BOOL",
                       help="read the real objects first (default true; --refresh=false skips)")
        p.add_argument("--json", action="store_true", help="print the plan as JSON (terraform show -json shape)")
        p.add_argument("--format", choices=["text", "json", "markdown"], default="text",
                       help="plan rendering: text, json, or markdown for a PR comment")

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
    v.add_argument("--var", action="append", metavar="NAME=VALUE",
                   help="set an input variable (required variables left unset are unknown while validating)")
    v.add_argument("--var-file", action="append", metavar="FILE", help="load variable values from a file")
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

    pl = sub.add_parser("plan", help="show what apply would change")
    pl.add_argument("dir", nargs="?", default=".", help="configuration directory (default: .)")
    _engine_flags(pl)
    pl.add_argument("--refresh-only", action="store_true", help="only show objects changed outside orch")
    pl.add_argument("--destroy", action="store_true", help="plan to destroy everything")
    pl.add_argument("--out", metavar="FILE", help="save the plan for orch apply FILE")
    pl.add_argument("--detailed-exitcode", action="store_true",
                    help="exit 0: no changes, 1: error, 2: changes present")
    pl.set_defaults(func=cmd_plan)

    for name, fn, helptext in (("apply", cmd_apply, "make the hosts match the configuration"),
                               ("destroy", cmd_destroy, "destroy everything this configuration manages")):
        ap = sub.add_parser(name, help=helptext)
        ap.add_argument("dir", nargs="?", default=".",
                        help="configuration directory, or a plan file saved with orch plan --out")
        _engine_flags(ap)
        ap.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
        ap.add_argument("--parallelism", type=int, default=10, help="changes in flight at once (default 10)")
        ap.add_argument("--refresh-only", action="store_true", help=argparse.SUPPRESS)
        ap.set_defaults(func=fn)

    sh = sub.add_parser("show", help="show a saved plan, or the state")
    sh.add_argument("file", nargs="?", help="plan file (default: show the state)")
    sh.add_argument("--dir", default=".", help="configuration directory (for the state)")
    sh.add_argument("--state", metavar="PATH", help="state file")
    sh.add_argument("--json", action="store_true", help="machine-readable output")
    sh.add_argument("--no-color", action="store_true", default=argparse.SUPPRESS, help="no colour in output")
    sh.add_argument("--format", choices=["text", "json", "markdown"], default="text", help=argparse.SUPPRESS)
    sh.set_defaults(func=cmd_show, var=None, var_file=None)

    gr = sub.add_parser("graph", help="print the dependency graph")
    gr.add_argument("dir", nargs="?", default=".", help="configuration directory (default: .)")
    gr.add_argument("--format", choices=["dot", "mermaid"], default="dot")
    gr.set_defaults(func=cmd_graph, var=None, var_file=None, state=None)

    im = sub.add_parser("import", help="bring an existing object under orch's management")
    im.add_argument("address", help="resource address, e.g. pod.web[0]")
    im.add_argument("id", help="the object's id on its platform")
    im.add_argument("--dir", default=".", help="configuration directory (default: .)")
    _engine_flags(im, planning=False)
    im.set_defaults(func=cmd_import)

    from .explain import add_parser as add_explain
    from .status import add_parser as add_status
    from .reconcile.command import add_parser as add_reconcile
    from .state.workspace import add_parser as add_workspace

    add_explain(sub)
    add_status(sub)
    add_reconcile(sub)
    add_workspace(sub)

    from .state.commands import register as register_state_commands

    register_state_commands(sub)
    _plugin_commands(sub)
    _everywhere_no_color(p)
    return p


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return {name: sp for a in parser._actions if isinstance(a, argparse._SubParsersAction)
            for name, sp in a.choices.items()}


def _everywhere_no_color(parser: argparse.ArgumentParser) -> None:
    """Every command takes --no-color (Terraform's commands take -no-color), not only the top level."""
    for sp in {id(sp): sp for sp in _subparsers(parser).values()}.values():
        if "--no-color" not in sp._option_string_actions:
            sp.add_argument("--no-color", action="store_true", default=argparse.SUPPRESS, help="no colour in output")
        _everywhere_no_color(sp)


def terraform_argv(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """Terraform's option forms in orch's: a single-dash long option (``-out=p.plan``, ``-auto-approve``,
    ``-var 'a=b'``) becomes ``--out=p.plan`` when the command it follows has ``--out``; a boolean given a
    value as Go's flag package allows (``-auto-approve=true``, ``-list=false``) becomes the flag, its
    ``--no-`` form, or nothing; an option's value is attached (``--var=-x``) so that it is never read as an
    option. Short options (``-h``, ``-r``), ``-`` and everything after ``--`` are left alone, and so are options
    no command has (argparse reports them)."""
    out: list[str] = []
    current = parser
    tokens = list(argv)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if tok == "--":
            out.extend(tokens[i - 1:])
            break
        if not tok.startswith("-") or len(tok) < 2:
            current = _subparsers(current).get(tok, current)  # a command name, or a positional
            out.append(tok)
            continue
        known = current._option_string_actions
        if not tok.startswith("--") and len(tok) > 2 and "--" + tok[1:].partition("=")[0] in known:
            tok = "-" + tok
        name, eq, value = tok.partition("=")
        action = known.get(name) if name.startswith("--") else None
        if action is None:
            out.append(tok)
            continue
        if action.nargs == 0 and eq and not isinstance(action, argparse._HelpAction):
            flag = _go_bool(value)
            if flag is None:
                out.append(tok)  # argparse says what is wrong with it
            elif isinstance(action, argparse.BooleanOptionalAction):
                out.append(name if flag else "--no-" + name[2:])
            elif flag:
                out.append(name)
            continue  # a flag set to false is a flag not given
        if action.nargs is None and not eq and i < len(tokens):
            out.append(f"{name}={tokens[i]}")  # Go's flag package takes the next word, whatever it looks like
            i += 1
            continue
        out.append(tok)
    return out


def _go_bool(text: str) -> bool | None:
    """A boolean flag's value as Go's strconv.ParseBool reads it (what Terraform's flags accept)."""
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    return None


def _plugin_commands(sub) -> None:
    """Commands contributed by installed providers (entry-point group ``orch.commands``):
    each entry point is a ``register(subparsers)`` function, e.g. the Docker provider's ``orch lab``."""
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group="orch.commands"), key=lambda e: e.name):
        try:
            ep.load()(sub)
        except Exception as e:  # noqa: BLE001 - a broken plugin must not break the core commands
            print(f"orch: warning: could not load commands from {ep.name}: {e}", file=sys.stderr)


class _StopSignals:
    """SIGTERM and SIGHUP (CI cancellations, `timeout`, systemd, `docker stop`, a closed terminal) raise
    KeyboardInterrupt, as Ctrl+C does: what is under way unwinds and the state lock is released, instead of the
    process dying on the spot. During apply, ``workflow.Interrupts`` handles all three as a first Ctrl+C."""

    def __enter__(self) -> None:
        import signal
        import threading

        self._old = {}
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGTERM, signal.SIGHUP):
                self._old[s] = signal.signal(s, self._raise)

    @staticmethod
    def _raise(signum, frame) -> None:
        raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        import signal

        for s, old in self._old.items():
            signal.signal(s, old)


def main(argv: Sequence[str] | None = None) -> int:
    from .redact import reset

    reset()  # the secrets this command learns, scrubbed from every diagnostic and progress line
    parser = build_parser()
    args = parser.parse_args(terraform_argv(parser, sys.argv[1:] if argv is None else argv))
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    from .diagnostics import DiagnosticsError

    try:
        with _StopSignals():
            return args.func(args)
    except DiagnosticsError as e:  # a bad argument found before the command started
        _print_diags(e.diagnostics, _color(args))
        return 1
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except RecursionError:  # a file or value nested hundreds of levels deep: a message, never a traceback
        _print_diags([Diagnostic.error(
            "Input nested too deeply",
            "A configuration file, variable value or state holds an expression or value nested more deeply "
            "than orch can process.",
            hint="look for runaway brackets, parentheses or operators in the files this command reads")],
            _color(args))
        return 1


if __name__ == "__main__":
    sys.exit(main())
