"""The orch command: validate, fmt and console, end to end through main()."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchdsl.cli import main

REPO = Path(__file__).resolve().parents[1]


def run(capsys, *argv, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---- validate ----------------------------------------------------------------------

def test_validate_valid_and_invalid(tmp_path, capsys):
    good = tmp_path / "good.tf"
    good.write_text('resource "x" "y" {\n  a = 1\n}\n')
    bad = tmp_path / "bad.hcl"
    bad.write_text("a = 1\nb = = 2\nc = [1 2]\n")
    assert run(capsys, "validate", "--syntax-only", str(good))[0] == 0
    code, out, err = run(capsys, "validate", "--syntax-only", str(good), str(bad))
    assert code == 1
    assert f"{bad}:2:5" in err and f"{bad}:3:8" in err  # every error, located
    assert "^" in err


def test_validate_json_shape(tmp_path, capsys):
    bad = tmp_path / "bad.orch"
    bad.write_text('pod "web" {\n  replicas = 3 4\n}\n')
    code, out, _ = run(capsys, "validate", "--syntax-only", "--json", str(tmp_path))
    assert code == 1
    doc = json.loads(out)
    assert doc["valid"] is False and doc["error_count"] == 1 and doc["warning_count"] == 0
    (d,) = doc["diagnostics"]
    assert d["severity"] == "error" and d["summary"] == "Missing newline after argument" and d["detail"]
    assert d["range"]["filename"] == str(bad)
    assert d["range"]["start"] == {"line": 2, "column": 16, "byte": 27}
    assert set(d["range"]["end"]) == {"line", "column", "byte"}


def test_validate_json_valid(tmp_path, capsys):
    f = tmp_path / "ok.orch"
    f.write_text("a = 1\n")
    code, out, _ = run(capsys, "validate", "--syntax-only", "--json", str(f))
    assert code == 0 and json.loads(out) == {"format_version": "1.0", "valid": True, "error_count": 0,
                                             "warning_count": 0, "diagnostics": []}


def test_validate_missing_file_is_a_diagnostic(tmp_path, capsys):
    code, _, err = run(capsys, "validate", "--syntax-only", str(tmp_path / "nope.tf"))
    assert code == 1 and "Failed to read file" in err and "Traceback" not in err


# ---- fmt ---------------------------------------------------------------------------------

def test_fmt_check_diff_write(tmp_path, capsys):
    f = tmp_path / "main.orch"
    f.write_text('a=1\nbbb = "x"\n')
    code, out, _ = run(capsys, "fmt", "--check", "--diff", str(tmp_path))
    assert code == 3 and "+a   = 1" in out and f.read_text() == 'a=1\nbbb = "x"\n'
    code, out, _ = run(capsys, "fmt", str(tmp_path))
    assert code == 0 and f.read_text() == 'a   = 1\nbbb = "x"\n' and str(f) in out
    assert run(capsys, "fmt", "--check", str(tmp_path))[0] == 0


def test_fmt_refuses_broken_files(tmp_path, capsys):
    f = tmp_path / "broken.orch"
    f.write_text("a = \n")
    code, _, err = run(capsys, "fmt", str(f))
    assert code == 1 and "Missing expression" in err and f.read_text() == "a = \n"


def test_fmt_stdin(capsys, monkeypatch):
    code, out, _ = run(capsys, "fmt", "-", stdin="x={a=1}\n", monkeypatch=monkeypatch)
    assert code == 0 and out == "x = { a = 1 }\n"


# ---- console -------------------------------------------------------------------------------

def test_console_evaluates_in_configuration_scope(capsys, monkeypatch):
    lines = "local.env.PORTS\ncidrsubnet(var.pod_cidr, 8, 2)\nvar.replicas + 1\npod.web\n"
    code, out, err = run(capsys, "console", str(REPO / "examples" / "hello"), stdin=lines,
                         monkeypatch=monkeypatch)
    assert code == 0, err
    assert out.splitlines() == ['"8080,8081"', '"198.19.2.0/24"', "4", "(known after apply)"]


def test_console_json_and_errors(capsys, monkeypatch):
    lines = '{a = [1, "x", true, null]}\nnope\npod.web\n'
    code, out, err = run(capsys, "console", "--json", "--var", "replicas=7", str(REPO / "examples" / "hello"),
                         stdin=lines + "var.replicas\n", monkeypatch=monkeypatch)
    assert code == 1
    assert [json.loads(x) for x in out.splitlines()] == [{"a": [1, "x", True, None]}, 7]
    assert "Unknown variable" in err and "known only after apply" in err


def test_console_local_cycle_is_a_diagnostic(tmp_path, capsys, monkeypatch):
    (tmp_path / "main.orch").write_text("locals {\n  a = local.b\n  b = local.a\n}\n")
    code, _, err = run(capsys, "console", str(tmp_path), stdin="1\n", monkeypatch=monkeypatch)
    assert code == 1 and "Cycle in local values" in err


def test_installed_command_runs():
    out = subprocess.run([sys.executable, "-m", "orchdsl.cli", "validate", "--syntax-only",
                          str(REPO / "examples" / "hello")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("argv", [["validate", "--bogus"], []])
def test_usage_errors_do_not_trace(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    _, err = capsys.readouterr()
    assert code != 0 and "Traceback" not in err
