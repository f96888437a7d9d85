"""Saved plan files (``orch plan --out FILE``): a versioned, checksummed JSON document.

``orch show FILE`` and ``orch apply FILE`` read what ``orch plan --out FILE`` wrote. Plan files are passed
around (CI artifacts, a colleague's laptop), so reading one must never run anything: the file is JSON,
decoded field by field into the ``Plan`` model, nothing else (no pickle, no import by name). Layout::

    {"format": "orch-plan", "format_version": 1, "orch_version": "0.1.0",
     "checksum": "sha256:<hex>",
     "content": {"directory": "envs/prod", "var_overrides": {"replicas": "3"}, "var_files": [],
                 "plan": {"lineage": "...", "serial": 7, "changes": [...], "prior_state": {...}, ...}}}

``checksum`` is the SHA-256 of ``content`` serialised canonically (``json.dumps`` with ``ensure_ascii``,
no spaces, keys in the order written), so a truncated, bit-flipped or edited file is refused, and reformatting
the file (indentation) is harmless. Every problem is one ``Diagnostic`` with a hint, never a traceback.

Values (attributes, outputs, variables, derived values, summaries' data) are JSON with tags, each a
one-key object, for what JSON cannot say: ``{"$unknown": true}`` (known only after apply),
``{"$decimal": "0.5"}``, ``{"$tuple": [...]}``, ``{"$float": "inf"}``, ``{"$map": [[key, value], ...]}``
(non-string keys). An object key that starts with ``$`` is written with one more ``$`` (``"$x"`` as
``"$$x"``), so tags and data never mix up.

The file holds the state's values (``prior_state``) and the plan's values in clear, sensitive ones too: it
is written 0600, atomically (a temporary file in the target's directory, renamed over it). When the plan holds
sensitive values and ``ORCH_STATE_PASSPHRASE`` is set, the whole document above is written encrypted as the
state is (``orchdsl/state/encryption.py``: a plain JSON header line, then the sealed document); reading one
needs the same passphrase.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NoReturn

from ..addrs import ModuleStep, ResourceAddress
from ..cluster.derive import Summary
from ..diagnostics import Diagnostic, DiagnosticsError
from ..eval.plain import UNKNOWN
from ..eval.values import UNKNOWN as EVAL_UNKNOWN
from ..sdk.protocol import MemberStatus, ObjectStatus
from ..state.encryption import (
    INVALID,
    EncryptionError,
    decrypt_document,
    encrypt_document,
    is_encrypted,
    locked_diagnostic,
    passphrase_from_env,
)
from ..state.fileio import fsync_dir, replace_atomically
from ..state.model import State, StateFormatError, current_orch_version, gc_paused
from .model import Action, DriftChange, OutputChange, Plan, ResourceChange

PLAN_FORMAT = "orch-plan"
PLAN_FORMAT_VERSION = 1
PLAN_FILE_MODE = 0o600
# What orch wrote before plan files were JSON (a pickle after this line): recognised, never loaded.
LEGACY_PICKLE_MAGIC = b"ORCHPLAN1\n"

_HINT_REPLAN = "make a new one with orch plan --out FILE"


@dataclass
class SavedPlan:
    """A plan and what is needed to apply it later: where its configuration is, and the variables given."""

    plan: Plan
    directory: str
    var_overrides: dict[str, str] = field(default_factory=dict)
    var_files: list[str] = field(default_factory=list)


class PlanFileError(ValueError):
    """The content of a plan file is not what orch writes; the message says where and why."""


# ---- values ------------------------------------------------------------------------------------

_TAGS = ("$unknown", "$decimal", "$tuple", "$float", "$map")


def encode_value(v: Any) -> Any:
    """Plain plan data -> JSON data (see the module docstring for the tags)."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else {"$float": repr(v)}
    if v is UNKNOWN or v is EVAL_UNKNOWN:
        return {"$unknown": True}
    if isinstance(v, Decimal):
        return {"$decimal": str(v)}
    if isinstance(v, list):
        return [encode_value(x) for x in v]
    if isinstance(v, tuple):
        return {"$tuple": [encode_value(x) for x in v]}
    if isinstance(v, dict):
        if all(isinstance(k, str) for k in v):
            return {("$" + k if k.startswith("$") else k): encode_value(x) for k, x in v.items()}
        return {"$map": [[encode_value(k), encode_value(x)] for k, x in v.items()]}
    raise PlanFileError(f"cannot save a value of type {type(v).__name__}")


def decode_value(v: Any, where: str = "value") -> Any:
    """The inverse of :func:`encode_value`; raises PlanFileError on anything it would not write."""
    if v is None or isinstance(v, (bool, str, int, float)):
        return v
    if isinstance(v, list):
        return [decode_value(x, f"{where}[{i}]") for i, x in enumerate(v)]
    if not isinstance(v, dict):
        _fail(where, f"unexpected {type(v).__name__}")
    if len(v) == 1:
        ((tag, payload),) = v.items()
        if tag in _TAGS:
            return _decode_tag(tag, payload, where)
    out: dict[str, Any] = {}
    for k, x in v.items():
        if k.startswith("$"):
            if not k.startswith("$$"):
                _fail(where, f'unknown tag "{k}"')
            k = k[1:]
        out[k] = decode_value(x, f"{where}.{k}")
    return out


def _decode_tag(tag: str, payload: Any, where: str) -> Any:
    if tag == "$unknown":
        if payload is not True:
            _fail(where, "$unknown must be true")
        return UNKNOWN
    if tag == "$decimal":
        if not isinstance(payload, str):
            _fail(where, "$decimal must be a string")
        try:
            return Decimal(payload)
        except InvalidOperation:
            _fail(where, f"invalid $decimal {payload!r}")
    if tag == "$float":
        if payload not in ("inf", "-inf", "nan"):
            _fail(where, f"invalid $float {payload!r}")
        return float(payload)
    if tag == "$tuple":
        if not isinstance(payload, list):
            _fail(where, "$tuple must be a list")
        return tuple(decode_value(x, f"{where}[{i}]") for i, x in enumerate(payload))
    # $map
    if not isinstance(payload, list) or not all(isinstance(p, list) and len(p) == 2 for p in payload):
        _fail(where, "$map must be a list of [key, value] pairs")
    out: dict[Any, Any] = {}
    for i, (k, x) in enumerate(payload):
        key = decode_value(k, f"{where}.$map[{i}]")
        try:
            out[key] = decode_value(x, f"{where}[{key!r}]")
        except TypeError:  # an unhashable key (a list)
            _fail(where, f"$map key {i} is not hashable")
    return out


def _fail(where: str, what: str) -> NoReturn:
    raise PlanFileError(f"{where}: {what}")


# ---- addresses ---------------------------------------------------------------------------------

_JSON = json.JSONDecoder()


def parse_address_exact(text: str) -> ResourceAddress:
    """An address as ``str(ResourceAddress)`` writes it, read back exactly (and fast: no expression
    parser). Raises PlanFileError for any other text."""
    if not isinstance(text, str):
        raise PlanFileError(f"an address must be a string, not {type(text).__name__}")
    n, pos = len(text), 0

    def name(at: int) -> tuple[str, int]:
        end = at
        while end < n and text[end] not in ".[":
            end += 1
        if end == at:
            raise PlanFileError(f"invalid address {text!r}")
        return text[at:end], end

    def key(at: int) -> tuple[str | int | None, int]:
        if at >= n or text[at] != "[":
            return None, at
        try:
            if text[at + 1:at + 2] == '"':
                k, end = _JSON.raw_decode(text, at + 1)
                if not isinstance(k, str):
                    raise ValueError
            else:
                end = text.index("]", at)
                k = int(text[at + 1:end])
        except (ValueError, IndexError):
            raise PlanFileError(f"invalid address {text!r}") from None
        if end >= n or text[end] != "]":
            raise PlanFileError(f"invalid address {text!r}")
        return k, end + 1

    steps: list[ModuleStep] = []
    while True:
        first, pos = name(pos)
        if pos >= n or text[pos] != ".":
            raise PlanFileError(f"invalid address {text!r}")
        second, pos = name(pos + 1)
        k, pos = key(pos)
        if first == "module" and pos < n and text[pos] == ".":
            steps.append(ModuleStep(second, k))
            pos += 1
            continue
        if pos != n or first == "module":
            raise PlanFileError(f"invalid address {text!r}")
        addr = ResourceAddress(first, second, k, tuple(steps))
        if str(addr) != text:
            raise PlanFileError(f"invalid address {text!r}")
        return addr


# ---- the plan ----------------------------------------------------------------------------------

def _path(p: tuple[str | int, ...]) -> list[str | int]:
    return list(p)


def _status(s: Any) -> dict[str, Any]:
    if not isinstance(s, ObjectStatus):
        raise PlanFileError(f"cannot save a status of type {type(s).__name__}")
    return {"state": s.state, "reachable": s.reachable, "message": s.message,
            "members": [{"name": m.name, "state": m.state, "exit_code": m.exit_code, "health": m.health,
                         "failing_streak": m.failing_streak, "restarts": m.restarts,
                         "last_output": m.last_output} for m in s.members]}


def encode_plan(plan: Plan) -> dict[str, Any]:
    prior = plan.prior_state
    if prior is not None and not isinstance(prior, State):
        raise PlanFileError(f"cannot save a prior state of type {type(prior).__name__}")
    return {
        "lineage": plan.lineage,
        "serial": plan.serial,
        "refresh_only": plan.refresh_only,
        "destroy": plan.destroy,
        "timestamp": plan.timestamp,
        "variables": encode_value(plan.variables),
        "changes": [{
            "address": str(c.address), "action": c.action.value,
            "before": encode_value(c.before), "after": encode_value(c.after),
            "reason": c.reason, "action_reason": c.action_reason,
            "replace_paths": [_path(p) for p in c.replace_paths],
            "before_sensitive": [_path(p) for p in c.before_sensitive],
            "after_sensitive": [_path(p) for p in c.after_sensitive],
            "create_before_destroy": c.create_before_destroy, "provider": c.provider, "location": c.location,
            "derived": encode_value(c.derived), "index": c.index, "deposed": c.deposed,
            "derived_by": c.derived_by, "facts": [_path(p) for p in c.facts],
        } for c in plan.changes],
        "drift": [{"address": str(d.address), "action": d.action.value, "before": encode_value(d.before),
                   "after": encode_value(d.after), "reason": d.reason} for d in plan.drift],
        "outputs": [{"name": o.name, "action": o.action.value, "before": encode_value(o.before),
                     "after": encode_value(o.after), "sensitive": o.sensitive} for o in plan.outputs],
        "dependencies": {str(a): [str(d) for d in deps] for a, deps in plan.dependencies.items()},
        "adopted": [str(a) for a in plan.adopted],
        "summaries": [{"name": s.name, "text": s.text, "data": encode_value(s.data),
                       "concerns": sorted(s.concerns), "any_change": s.any_change, "markdown": s.markdown}
                      for s in plan.summaries],
        "status": {str(a): _status(s) for a, s in plan.status.items()},
        "prior_state": prior.to_dict() if prior is not None else None,
    }


class _Obj:
    """Typed access to one JSON object of the document, naming where a problem is."""

    def __init__(self, raw: Any, where: str) -> None:
        if not isinstance(raw, dict):
            _fail(where, f"expected an object, found {_kind(raw)}")
        self.raw: dict[str, Any] = raw
        self.where = where

    def _get(self, key: str) -> Any:
        if key not in self.raw:
            _fail(self.where, f'"{key}" is missing')
        return self.raw[key]

    def string(self, key: str) -> str:
        v = self._get(key)
        if not isinstance(v, str):
            _fail(f"{self.where}.{key}", f"expected a string, found {_kind(v)}")
        return v

    def opt_string(self, key: str) -> str | None:
        v = self._get(key)
        return None if v is None else self.string(key)

    def flag(self, key: str) -> bool:
        v = self._get(key)
        if not isinstance(v, bool):
            _fail(f"{self.where}.{key}", f"expected true or false, found {_kind(v)}")
        return v

    def opt_int(self, key: str) -> int | None:
        v = self._get(key)
        if v is None:
            return None
        if not isinstance(v, int) or isinstance(v, bool):
            _fail(f"{self.where}.{key}", f"expected an integer, found {_kind(v)}")
        return v

    def array(self, key: str) -> list[Any]:
        v = self._get(key)
        if not isinstance(v, list):
            _fail(f"{self.where}.{key}", f"expected a list, found {_kind(v)}")
        return v

    def integer(self, key: str) -> int:
        v = self.opt_int(key)
        if v is None:
            _fail(f"{self.where}.{key}", "expected an integer, found null")
        return v

    def obj(self, key: str) -> _Obj:
        return _Obj(self._get(key), f"{self.where}.{key}")

    def value(self, key: str) -> Any:
        return decode_value(self._get(key), f"{self.where}.{key}")

    def action(self, key: str) -> Action:
        v = self.string(key)
        try:
            return Action(v)
        except ValueError:
            _fail(f"{self.where}.{key}", f'unknown action "{v}"')

    def address(self, key: str) -> ResourceAddress:
        return _address(self._get(key), f"{self.where}.{key}")

    def paths(self, key: str) -> list[tuple[str | int, ...]]:
        out = []
        for i, p in enumerate(self.array(key)):
            if not isinstance(p, list) or not all(isinstance(s, (str, int)) and not isinstance(s, bool) for s in p):
                _fail(f"{self.where}.{key}[{i}]", "expected a path: a list of names and indexes")
            out.append(tuple(p))
        return out


def _kind(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def _address(v: Any, where: str) -> ResourceAddress:
    try:
        return parse_address_exact(v)
    except PlanFileError as e:
        _fail(where, str(e))


def _decode_status(raw: Any, where: str) -> ObjectStatus:
    o = _Obj(raw, where)
    members = []
    for i, m in enumerate(o.array("members")):
        mo = _Obj(m, f"{where}.members[{i}]")
        members.append(MemberStatus(mo.string("name"), mo.string("state"), mo.opt_int("exit_code"),
                                    mo.opt_string("health"), mo.integer("failing_streak"), mo.integer("restarts"),
                                    mo.string("last_output")))
    return ObjectStatus(o.string("state"), o.flag("reachable"), tuple(members), o.string("message"))


def decode_plan(raw: Any, where: str = "plan") -> Plan:
    p = _Obj(raw, where)
    plan = Plan(lineage=p.opt_string("lineage"), serial=p.opt_int("serial"), refresh_only=p.flag("refresh_only"),
                destroy=p.flag("destroy"), timestamp=p.string("timestamp"))
    variables = p.value("variables")
    if not isinstance(variables, dict):
        _fail(f"{where}.variables", "expected an object")
    plan.variables = variables
    for i, c in enumerate(p.array("changes")):
        o = _Obj(c, f"{where}.changes[{i}]")
        derived = o.value("derived")
        if not isinstance(derived, dict):
            _fail(f"{o.where}.derived", "expected an object")
        plan.changes.append(ResourceChange(
            address=o.address("address"), action=o.action("action"),
            before=_attrs(o, "before"), after=_attrs(o, "after"), reason=o.string("reason"),
            action_reason=o.opt_string("action_reason"), replace_paths=o.paths("replace_paths"),
            before_sensitive=o.paths("before_sensitive"), after_sensitive=o.paths("after_sensitive"),
            create_before_destroy=o.flag("create_before_destroy"), provider=o.string("provider"),
            location=o.opt_string("location"), derived=derived, index=o.opt_int("index"),
            deposed=o.opt_string("deposed"), derived_by=o.opt_string("derived_by"),
            facts=o.paths("facts") if "facts" in o.raw else []))
    for i, d in enumerate(p.array("drift")):
        o = _Obj(d, f"{where}.drift[{i}]")
        plan.drift.append(DriftChange(o.address("address"), o.action("action"), _attrs(o, "before"),
                                      _attrs(o, "after"), o.string("reason")))
    for i, out in enumerate(p.array("outputs")):
        o = _Obj(out, f"{where}.outputs[{i}]")
        plan.outputs.append(OutputChange(o.string("name"), o.action("action"), o.value("before"), o.value("after"),
                                         o.flag("sensitive")))
    deps = p.obj("dependencies")
    for a, lst in deps.raw.items():
        if not isinstance(lst, list):
            _fail(f"{deps.where}[{a!r}]", "expected a list of addresses")
        plan.dependencies[_address(a, f"{deps.where}")] = [
            _address(d, f"{deps.where}[{a!r}][{j}]") for j, d in enumerate(lst)]
    plan.adopted = [_address(a, f"{where}.adopted[{i}]") for i, a in enumerate(p.array("adopted"))]
    for i, s in enumerate(p.array("summaries")):
        o = _Obj(s, f"{where}.summaries[{i}]")
        data = o.value("data")
        if not isinstance(data, dict):
            _fail(f"{o.where}.data", "expected an object")
        concerns = o.array("concerns")
        if not all(isinstance(x, str) for x in concerns):
            _fail(f"{o.where}.concerns", "expected a list of addresses")
        plan.summaries.append(Summary(o.string("name"), o.string("text"), data, frozenset(concerns),
                                      o.flag("any_change") if "any_change" in o.raw else False,
                                      o.string("markdown") if "markdown" in o.raw else ""))
    status = p.obj("status")
    for a, s in status.raw.items():
        plan.status[_address(a, status.where)] = _decode_status(s, f"{status.where}[{a!r}]")
    prior = p._get("prior_state")
    if prior is not None:
        if not isinstance(prior, dict):
            _fail(f"{where}.prior_state", f"expected an object, found {_kind(prior)}")
        try:
            plan.prior_state = State.from_dict(prior)
        except StateFormatError as e:
            _fail(f"{where}.prior_state", str(e))
    return plan


def _attrs(o: _Obj, key: str) -> dict[str, Any] | None:
    v = o.value(key)
    if v is not None and not isinstance(v, dict):
        _fail(f"{o.where}.{key}", "expected an object or null")
    return v


def encode_saved(saved: SavedPlan) -> dict[str, Any]:
    return {"directory": saved.directory, "var_overrides": dict(saved.var_overrides),
            "var_files": list(saved.var_files), "plan": encode_plan(saved.plan)}


def decode_saved(raw: Any) -> SavedPlan:
    c = _Obj(raw, "content")
    overrides = c.obj("var_overrides").raw
    if not all(isinstance(v, str) for v in overrides.values()):
        _fail("content.var_overrides", "expected strings")
    files = c.array("var_files")
    if not all(isinstance(f, str) for f in files):
        _fail("content.var_files", "expected a list of paths")
    return SavedPlan(decode_plan(c._get("plan"), "content.plan"), c.string("directory"), dict(overrides), list(files))


# ---- the file ----------------------------------------------------------------------------------

def _canonical(content: Any) -> str:
    return json.dumps(content, ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def _checksum(canonical: str) -> str:
    return "sha256:" + hashlib.sha256(canonical.encode("ascii")).hexdigest()


def dumps_plan_file(saved: SavedPlan) -> bytes:
    """The bytes of a plan file. Raises PlanFileError when the plan holds something a plan file cannot."""
    try:
        with gc_paused():
            body = _canonical(encode_saved(saved))
    except ValueError as e:  # a non-finite float escaped the tags: a bug, reported as such
        raise PlanFileError(str(e)) from None
    head = json.dumps({"format": PLAN_FORMAT, "format_version": PLAN_FORMAT_VERSION,
                       "orch_version": current_orch_version(), "checksum": _checksum(body)},
                      separators=(",", ":"))
    return f'{head[:-1]},"content":{body}}}\n'.encode("ascii")


def _error(summary: str, detail: str, hint: str = _HINT_REPLAN) -> DiagnosticsError:
    return DiagnosticsError([Diagnostic.error(summary, detail, hint=hint)])


def check_target(path: str | os.PathLike[str]) -> list[Diagnostic]:
    """Whether a plan can be saved at ``path`` (checked before planning, so that a typo costs nothing)."""
    p = Path(path)
    if p.is_dir():
        return [Diagnostic.error("Cannot save the plan", f"{path} is a directory.",
                                 hint=f"name a file, e.g. --out {p / 'plan.orchplan'}")]
    parent = p.parent
    if not parent.is_dir():
        return [Diagnostic.error("Cannot save the plan", f"The directory {parent} does not exist.",
                                 hint=f"create it first (mkdir -p {parent}) or save the plan elsewhere")]
    if not os.access(parent, os.W_OK | os.X_OK):
        return [Diagnostic.error("Cannot save the plan", f"The directory {parent} is not writable.",
                                 hint="save the plan in a directory you can write to")]
    return []


def holds_sensitive_values(plan: Plan) -> bool:
    """Whether the plan holds a value marked sensitive: in a change, an output, or the prior state."""
    if any(c.before_sensitive or c.after_sensitive for c in plan.changes) or any(o.sensitive for o in plan.outputs):
        return True
    prior = plan.prior_state
    if isinstance(prior, State):
        return any(r.sensitive_attributes for r in prior) or any(o.sensitive for o in prior.outputs.values())
    return False


def write_plan_file(path: str | os.PathLike[str], saved: SavedPlan) -> None:
    """Write ``saved`` to ``path``: atomically, mode 0600 (it holds the state's values); encrypted when it holds
    sensitive values and ``ORCH_STATE_PASSPHRASE`` is set. Raises DiagnosticsError, with nothing left behind (no
    temporary file; an existing file at ``path`` intact)."""
    problems = check_target(path)
    if problems:
        raise DiagnosticsError(problems)
    try:
        data = dumps_plan_file(saved)
    except PlanFileError as e:
        raise _error("Cannot save the plan", f"The plan holds something a plan file cannot: {e}.",
                     hint="this is a bug in orch; please report it") from None
    passphrase = passphrase_from_env()
    if passphrase is not None and holds_sensitive_values(saved.plan):
        data = encrypt_document(data, passphrase)
    p = Path(path)
    try:
        replace_atomically(p, data, PLAN_FILE_MODE)
        fsync_dir(p.parent)
    except OSError as e:
        raise _error("Cannot save the plan", f"Cannot write {path}: {e.strerror or e}.",
                     hint="check that the directory is writable and has free space") from None


def loads_plan_file(data: bytes, name: str = "the plan file") -> SavedPlan:
    """Decode a plan file's bytes (decrypted with ``ORCH_STATE_PASSPHRASE`` when encrypted). Raises
    DiagnosticsError (one diagnostic) for anything orch did not write."""
    if is_encrypted(data):
        try:
            data = decrypt_document(data, passphrase_from_env())
        except EncryptionError as e:
            if e.reason != INVALID:
                raise DiagnosticsError([locked_diagnostic(e, name, "plan file")]) from None
            raise _error("Damaged plan file", f"{name} is encrypted, but {e}.") from None
    with gc_paused():  # hundreds of thousands of containers, none of them garbage (as loading a state)
        return _loads_plan_file(data, name)


def _loads_plan_file(data: bytes, name: str) -> SavedPlan:
    not_plan = f"{name} is not a plan saved by orch plan --out"
    if data.startswith(LEGACY_PICKLE_MAGIC) or data[:1] == b"\x80":
        raise _error("Unsupported plan file",
                     f"{name} was written by an older orch in a format (a Python pickle) that orch no longer "
                     "reads: loading it could run code hidden in it. It was not loaded.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _error("Not a plan file", f"{not_plan}: it is not text.") from None
    looks_ours = text.lstrip().startswith('{"format":"orch-plan"')
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        if looks_ours:
            where = f" ({e.msg} at line {e.lineno}, column {e.colno})" if isinstance(e, json.JSONDecodeError) else ""
            raise _error("Damaged plan file", f"{name} is cut short or damaged{where}.") from None
        raise _error("Not a plan file", f"{not_plan}: it is not JSON.") from None
    if not isinstance(doc, dict) or doc.get("format") != PLAN_FORMAT:
        raise _error("Not a plan file", f"{not_plan}{_foreign(doc)}.", hint=_foreign_hint(doc))
    version = doc.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _error("Damaged plan file", f"{name} has no valid format_version.")
    if version > PLAN_FORMAT_VERSION:
        raise _error("Unsupported plan file version",
                     f"{name} is in plan format version {version}, written by orch {doc.get('orch_version')}; "
                     f"this orch ({current_orch_version()}) reads version {PLAN_FORMAT_VERSION}.",
                     hint="apply it with the orch that made it, or " + _HINT_REPLAN)
    content = doc.get("content")
    checksum = doc.get("checksum")
    try:
        ok = isinstance(checksum, str) and _checksum(_canonical(content)) == checksum
    except (ValueError, RecursionError):
        ok = False
    if not ok:
        raise _error("Damaged plan file",
                     f"{name} does not match its checksum: it was changed or damaged after orch wrote it.")
    try:
        return decode_saved(content)
    except (PlanFileError, ValueError, TypeError, KeyError, RecursionError) as e:
        raise _error("Invalid plan file", f"{name} is not valid: {e}.") from None


def read_plan_file(path: str | os.PathLike[str]) -> SavedPlan:
    """Read and check the plan file at ``path``. Raises DiagnosticsError (one diagnostic)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise _error("Failed to read plan file", f"{path}: {e.strerror or e}.",
                     hint="check the path; plans are saved with orch plan --out FILE") from None
    return loads_plan_file(data, str(path))


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _foreign(doc: Any) -> str:
    if not isinstance(doc, dict):
        return ": it is JSON, but not an object"
    if "resource_changes" in doc or "planned_values" in doc:
        return ": it is a plan rendered as JSON (orch plan --json, orch show --json), which is for reading"
    if "lineage" in doc and "resources" in doc:
        return ": it is a state file"
    return ": it is JSON of another kind"


def _foreign_hint(doc: Any) -> str:
    if isinstance(doc, dict) and "lineage" in doc and "resources" in doc:
        return "show a state with orch show --state FILE; save a plan with orch plan --out FILE"
    return "save a plan with orch plan --out FILE, then pass that file"


__all__ = ["LEGACY_PICKLE_MAGIC", "PLAN_FILE_MODE", "PLAN_FORMAT", "PLAN_FORMAT_VERSION", "PlanFileError",
           "SavedPlan", "check_target", "decode_plan", "decode_value", "dumps_plan_file", "encode_plan",
           "encode_value", "holds_sensitive_values", "loads_plan_file", "parse_address_exact", "read_plan_file",
           "write_plan_file"]
