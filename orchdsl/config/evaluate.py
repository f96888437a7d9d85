"""Evaluating a loaded configuration: resource instances and outputs.

``expand(decl, ctx_values)`` and ``evaluate_outputs(config, ctx_values)``
evaluate expressions in a scope built from:

* the root's variable values (``Config.variables``), a child module's
  variables from its module block's arguments;
* local values and module outputs, evaluated on demand (only those the
  expressions use, transitively);
* ``ctx_values``: the current or planned values of other resources, plain
  data keyed by ``ConfigAddress`` — a dict for a single instance, a list for
  a ``count``ed resource (or a pod with ``replicas``), a dict key -> instance
  for ``for_each``, ``UNKNOWN`` where unknown. A resource missing from
  ``ctx_values`` is wholly unknown. Attributes an instance's data lacks
  (computed ones such as a pod's ``ip``) read as unknown;
* ``count.index``, ``each.key``, ``each.value``, ``path.module``,
  ``path.root``, ``path.cwd``.

Nothing here writes anything; the only I/O is what file functions read.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..addrs import ConfigAddress, ModulePath, ResourceAddress
from ..diagnostics import Diagnostic, unique
from ..eval import (BOOL, NUMBER, STRING, ConversionError, EvalContext, Value, convert, evaluate, number_val,
                    object_val, string_val, tuple_val, unknown)
from ..eval.types import DYNAMIC, Type
from ..eval.values import UNKNOWN as EVAL_UNKNOWN
from ..lang import ast as A
from ..eval.plain import UNKNOWN
from ..schema import RESOURCE_TYPES, describe, normalize, sensitive_paths
from ..schema.base import ModelSpec
from .data import Path, from_data, to_data
from .model import (Config, Module, OutputValue, ResourceDecl, ResourceInstanceConfig, Span, module_prefix)
from .refs import DYNAMIC_KEY, classify, references
from .variables import RawValue, finalize

_MISSING = object()
# Instances of one resource block (count, for_each, a pod's replicas): a ceiling, so that `replicas = 1e9`
# is an error at the attribute rather than a plan that never ends. Documented in docs/resources.md.
MAX_INSTANCES = 10_000


class Scope:
    """Named values for one evaluation pass, computed on demand and cached."""

    def __init__(self, config: Config, ctx_values: dict) -> None:
        self.config = config
        self.ctx_values = ctx_values
        self.diags: list[Diagnostic] = []
        self._vars: dict[tuple[ModulePath, str], Value] = {}
        self._locals: dict[tuple[ModulePath, str], Value] = {}
        self._outputs: dict[tuple[ModulePath, str], Value] = {}
        self._resources: dict[ConfigAddress, Value] = {}
        self._partial: dict[tuple[ConfigAddress, frozenset[Any]], Value] = {}
        self._busy: set[tuple] = set()

    # ---- contexts -----------------------------------------------------------------------------------------
    def context(self, mod: Module, exprs: list[A.Node | None]) -> EvalContext:
        """A context with every named value ``exprs`` refer to."""
        config = self.config
        types = set(RESOURCE_TYPES)
        var_names: set[str] = set()
        local_names: set[str] = set()
        module_outputs: dict[str, set[str] | None] = {}
        resources: dict[str, dict[str, Value]] = {}
        # per count/for_each resource: the literal keys every reference indexes with (None: used whole)
        keys_used: dict[ConfigAddress, set[Any] | None] = {}
        for expr in exprs:
            if expr is None:
                continue
            for trav, steps in references(expr):
                ref = classify(trav, steps, mod.path, types)
                if ref.kind == "var" and ref.name in mod.variables:
                    var_names.add(ref.name)
                elif ref.kind == "local" and ref.name in mod.locals:
                    local_names.add(ref.name)
                elif ref.kind == "module" and ref.name in mod.calls:
                    attr = ref.first_attr
                    child = config.modules.get(mod.calls[ref.name].path)
                    if child is None:
                        continue
                    if attr is None or attr not in child.outputs:
                        module_outputs[ref.name] = None  # all outputs
                    elif module_outputs.get(ref.name, set()) is not None:
                        module_outputs.setdefault(ref.name, set()).add(attr)
                elif ref.kind == "resource" and ref.address in config.resources:
                    rest = ref.steps
                    key = rest[0].value if rest and rest[0].kind == "index" else DYNAMIC_KEY
                    if key is DYNAMIC_KEY or isinstance(key, bool) or not isinstance(key, (int, float, str)):
                        keys_used[ref.address] = None
                    elif ref.address not in keys_used or keys_used[ref.address] is not None:
                        keys_used.setdefault(ref.address, set()).add(key)  # type: ignore[union-attr]
        for addr, used in keys_used.items():
            resources.setdefault(addr.type, {})[addr.name] = self.resource(addr, used)
        scope: dict[str, Value] = {
            "var": object_val({n: self.var(mod, n) for n in var_names}),
            "local": object_val({n: self.local(mod, n) for n in local_names}),
            "path": object_val({"module": string_val(str(mod.directory)),
                                "root": string_val(str(config.directory)),
                                "cwd": string_val(os.getcwd())}),
        }
        if module_outputs:
            mods = {}
            for name, outs in module_outputs.items():
                child = config.modules[mod.calls[name].path]
                names = list(child.outputs) if outs is None else sorted(outs)
                mods[name] = object_val({o: self.output(child, o) for o in names})
            scope["module"] = object_val(mods)
        for rtype, named in resources.items():
            scope[rtype] = object_val(named)
        return EvalContext(scope, config.functions(mod.path))

    # ---- named values --------------------------------------------------------------------------------------
    def var(self, mod: Module, name: str) -> Value:
        if not mod.path:
            return self.config.variables.get(name, unknown())
        key = (mod.path, name)
        if key in self._vars:
            return self._vars[key]
        busy = ("var",) + key  # keyed by kind too: a variable, a local and an output may share a name
        if busy in self._busy:
            return unknown()
        self._busy.add(busy)
        decl = mod.variables[name]
        call = self.config.module_calls[mod.path]
        attr = call.inputs.get(name)
        what = f"var.{name} of module.{call.name}"
        if attr is None:
            if decl.required:  # reported when loading ("Missing required argument")
                value = unknown(decl.type.type)
            else:
                value, d = finalize(decl, None, self.config.functions(mod.path), what)
                self.diags.extend(d)
        else:
            parent = self.config.modules[call.parent]
            raw, d = evaluate(attr.expr, self.context(parent, [attr.expr]))
            self.diags.extend(d)
            if any(x.is_error for x in d):
                value = unknown(decl.type.type)
            else:
                value, d = finalize(decl, RawValue(raw, attr.expr, "module argument"),
                                    self.config.functions(mod.path), what)
                self.diags.extend(d)
        self._busy.discard(busy)
        self._vars[key] = value
        return value

    def local(self, mod: Module, name: str) -> Value:
        key = (mod.path, name)
        if key in self._locals:
            return self._locals[key]
        busy = ("local",) + key
        if busy in self._busy:
            return unknown()
        self._busy.add(busy)
        expr = mod.locals[name].expr
        value, d = evaluate(expr, self.context(mod, [expr]))
        self.diags.extend(d)
        self._busy.discard(busy)
        self._locals[key] = value
        return value

    def output(self, mod: Module, name: str) -> Value:
        key = (mod.path, name)
        if key in self._outputs:
            return self._outputs[key]
        busy = ("output",) + key
        if busy in self._busy:
            return unknown()
        self._busy.add(busy)
        decl = mod.outputs[name]
        value, d = evaluate(decl.expr, self.context(mod, [decl.expr]))
        self.diags.extend(d)
        if decl.expr is None:
            value = unknown()
        if value.is_deeply_sensitive and not decl.sensitive:
            b = decl.block
            self.diags.append(Diagnostic.error(
                "Output refers to sensitive values",
                f"To reduce the risk of accidentally exporting sensitive data, an output whose value uses "
                f"sensitive values must itself be declared sensitive ({module_prefix(mod.path)}output.{name}).",
                b.src, b.start, b.label_ranges[0][1] if b.label_ranges else b.end,
                hint="add sensitive = true to the output block"))
        value = value.mark(decl.sensitive)
        self._busy.discard(busy)
        self._outputs[key] = value
        return value

    def resource(self, addr: ConfigAddress, keys: set[Any] | None = None) -> Value:
        """The value expressions see for a resource. ``keys``: the only instances the expressions can reach
        (``pod.web[0].ip``); the others are left unknown rather than converted (10,000 replicas cost one)."""
        v = self._resources.get(addr)
        if v is not None:
            return v
        if keys is not None and self.config.resources[addr].mode in ("count", "for_each"):
            partial_key = (addr, frozenset(keys))
            v = self._partial.get(partial_key)
            if v is None:
                v = self._partial[partial_key] = self._resource_value(addr, keys)
            return v
        v = self._resources[addr] = self._resource_value(addr)
        return v

    def _resource_value(self, addr: ConfigAddress, keys: set[Any] | None = None) -> Value:
        decl = self.config.resources[addr]
        data = self.ctx_values.get(addr, _MISSING)
        mode = decl.mode
        if data is _MISSING or data is UNKNOWN:
            if mode == "single":  # not planned yet: everything unknown but its name
                return instance_value(addr.type, {"name": addr.name}, everything_unknown=True)
            # Unknown instances: sensitive if the type has sensitive attributes (conservative).
            spec = describe(RESOURCE_TYPES[addr.type])
            return unknown().mark(any(a.sensitive for a in spec.attributes.values()))
        try:
            if mode == "count":
                if not isinstance(data, (list, tuple)):
                    raise TypeError(f"{addr} has count: its value is a list of instances")
                if keys is not None:
                    return tuple_val(instance_value(addr.type, x) if i in keys else unknown()
                                     for i, x in enumerate(data))
                return tuple_val(instance_value(addr.type, x) for x in data)
            if mode == "for_each":
                if not isinstance(data, dict):
                    raise TypeError(f"{addr} has for_each: its value is a dict of instances")
                if keys is not None:
                    return object_val({str(k): instance_value(addr.type, x) if k in keys else unknown()
                                       for k, x in data.items()})
                return object_val({str(k): instance_value(addr.type, x) for k, x in data.items()})
            return instance_value(addr.type, data)
        except TypeError as e:
            raise ValueError(f"ctx_values[{addr}]: {e}") from None


def instance_value(rtype: str, data: Any, everything_unknown: bool = False) -> Value:
    """An instance's data as the object expressions see: computed attributes it lacks are unknown."""
    if data is UNKNOWN or not isinstance(data, dict):
        if data is UNKNOWN:
            return unknown()
        raise TypeError(f"an instance's value is a dict of attributes, not {type(data).__name__}")
    model = RESOURCE_TYPES[rtype]
    spec = describe(model)
    full = dict(data)
    for name, a in spec.attributes.items():
        if name not in full:
            full[name] = UNKNOWN if a.computed or everything_unknown else None
    for name, b in spec.blocks.items():
        if name not in full:
            full[name] = UNKNOWN if everything_unknown else [] if b.nesting == "list" else None
    value = from_data(full, sensitive_paths(model, full))
    # Unknown attributes get their schema type, so that reading into them keeps marks and types.
    attrs = dict(value.raw)
    for name, a in spec.attributes.items():
        v = attrs[name]
        if v.raw is EVAL_UNKNOWN and v.type == DYNAMIC:
            attrs[name] = Value(a.type, EVAL_UNKNOWN, v.sensitive)
    return object_val(attrs)


# ---- resource instances ------------------------------------------------------------------------------------

def expand(decl: ResourceDecl, ctx_values: dict, *, validate: bool = False, scope: Scope | None = None
           ) -> tuple[list[ResourceInstanceConfig], list[Diagnostic]]:
    """The instances of ``decl`` with their evaluated attributes.

    ``validate=True`` (used by ``load_config``) accepts a ``count`` or
    ``for_each`` not known yet and then checks one instance with unknown
    ``count.index``/``each``, returning no instance for it.
    """
    config: Config = decl.config
    mod = config.modules[decl.module]
    scope = scope or Scope(config, ctx_values)
    diags: list[Diagnostic] = []
    model = RESOURCE_TYPES[decl.type]
    spec = describe(model)
    skip = {"count", "for_each", "depends_on", decl.count_argument}
    exprs = _all_exprs(decl.block.body, skip)
    base = scope.context(mod, exprs)

    keys: list[tuple[Any, dict[str, Value]]] = []  # (instance key, count/each variables)
    phantom = False
    if decl.for_each_expr is not None:
        ctx = scope.context(mod, [decl.for_each_expr])
        items, d, is_unknown = _for_each_items(decl, ctx)
        diags.extend(d[:-1] if is_unknown and validate else d)
        if is_unknown and validate:
            phantom = True
            keys = [(None, {"each": object_val({"key": unknown(STRING), "value": unknown()})})]
        elif items is not None:
            keys = [(k, {"each": object_val({"key": string_val(k), "value": v})}) for k, v in items]
    elif decl.count_expr is not None:
        ctx = scope.context(mod, [decl.count_expr])
        n, d, is_unknown = _count(decl, ctx)
        diags.extend(d[:-1] if is_unknown and validate else d)
        if is_unknown and validate:
            phantom = True
            keys = [(None, {"count": object_val({"index": unknown(NUMBER)})})]
        elif n is not None:
            keys = [(i, {"count": object_val({"index": number_val(i)})}) for i in range(n)]
    elif decl.autoscale_block is not None:
        n, d = _autoscaled_count(decl, base, config.scale.get(decl.address))
        diags.extend(d)
        keys = [(i, {"count": object_val({"index": number_val(i)})}) for i in range(n)]
    else:
        keys = [(None, {})]

    instances: list[ResourceInstanceConfig] = []
    # Without count.index / each in the body, every instance evaluates to the same values (the functions are
    # pure): evaluate once and copy, so that 10,000 replicas cost one evaluation, not 10,000.
    shared: tuple[dict, set[Path]] | None = None
    same_for_all = len(keys) > 1 and not _uses_instance_key(exprs)
    for key, extra in keys:
        if shared is not None:
            values, sens = _plain_copy(shared[0]), set(shared[1])
            values["name"] = decl.name if key is None else f"{decl.name}-{key}"
            instances.append(ResourceInstanceConfig(ResourceAddress(decl.type, decl.name, key, decl.module),
                                                    decl, values, sens))
            continue
        ctx = base.child(extra) if extra else base
        ranges: dict[Path, A.Node] = {}
        sens: set[Path] = set()
        d: list[Diagnostic] = []
        data = _decode_body(decl.block.body, spec, ctx, (), skip, {"lifecycle"}, (), ranges, sens, d)
        diags.extend(d)
        normalized, errors = normalize(decl.type, data)
        for loc, message in errors:
            diags.append(_value_error(decl, loc, message, ranges))
        values = data if normalized is None else {
            k: v for k, v in normalized.items() if k not in spec.attributes or not spec.attributes[k].computed}
        _drop_computed(values, spec)
        values["name"] = decl.name if key is None else f"{decl.name}-{key}"
        sens |= sensitive_paths(model, values)
        if phantom:
            continue
        if same_for_all:
            shared = (_plain_copy(values), set(sens))
        address = ResourceAddress(decl.type, decl.name, key, decl.module)
        instances.append(ResourceInstanceConfig(address, decl, values, sens))
    return instances, unique(diags + scope.diags)


def _uses_instance_key(exprs: list[A.Node]) -> bool:
    """Whether any expression refers to ``count`` or ``each`` (values then differ per instance)."""
    return any(type(n) is A.ScopeTraversal and n.name in ("count", "each") for e in exprs for n in A.walk(e))


def _plain_copy(v: Any) -> Any:
    """A deep copy of plain data (dicts and lists; the rest is immutable)."""
    if type(v) is dict:
        return {k: _plain_copy(x) for k, x in v.items()}
    if type(v) is list:
        return [_plain_copy(x) for x in v]
    return v


def _drop_computed(values: dict, spec: ModelSpec) -> None:
    for name, a in spec.attributes.items():
        if a.computed:
            values.pop(name, None)
    for name, b in spec.blocks.items():
        v = values.get(name)
        if isinstance(v, list):
            for item in v:
                if isinstance(item, dict):
                    _drop_computed(item, b.spec)
        elif isinstance(v, dict):
            _drop_computed(v, b.spec)


def _all_exprs(body: A.Body, skip: set[str]) -> list[A.Node]:
    out: list[A.Node] = [a.expr for n, a in body.attributes.items() if n not in skip]
    for b in body.blocks:
        if b.type != "lifecycle":
            out.extend(_all_exprs(b.body, set()))
    return out


def _decode_body(body: A.Body, spec: ModelSpec, ctx: EvalContext, path: Path, skip_attrs: set[str],
                 skip_blocks: set[str], labels: tuple[str, ...], ranges: dict, sens: set[Path],
                 diags: list[Diagnostic]) -> dict[str, Any]:
    """Evaluate a block body into plain data shaped like the schema (paths -> nodes in ``ranges``)."""
    data: dict[str, Any] = {}
    for name, attr in body.attributes.items():
        if name in skip_attrs or name in labels:
            continue
        a = spec.attributes.get(name)
        if a is None or a.computed:
            continue  # reported when loading
        ranges[path + (name,)] = attr.expr
        v, d = evaluate(attr.expr, ctx)
        diags.extend(d)
        if any(x.is_error for x in d):
            data[name] = UNKNOWN
            continue
        try:
            v = convert(v, a.type)
        except ConversionError as e:
            steps, want, message = blame(v, a.type, e)
            node = narrow(attr.expr, steps)
            what = name + "".join(f"[{x}]" if isinstance(x, int) else f'["{x}"]' for x in steps)
            diags.append(Diagnostic.error("Incorrect attribute value type",
                                          f'Inappropriate value for attribute "{name}": {message}.', node.src,
                                          node.start, node.end, hint=f"{what} must be {_type_phrase(want)}"))
            data[name] = UNKNOWN
            continue
        data[name] = to_data(v, path + (name,), sens)
    counters: dict[str, int] = {}
    for b in body.blocks:
        if b.type in skip_blocks:
            continue
        bs = spec.blocks.get(b.type)
        if bs is None:
            continue
        if bs.nesting == "list":
            i = counters.get(b.type, 0)
            counters[b.type] = i + 1
            bpath = path + (b.type, i)
        else:
            bpath = path + (b.type,)
        ranges[bpath] = b
        child = _decode_body(b.body, bs.spec, ctx, bpath, set(), set(), bs.labels, ranges, sens, diags)
        for field, label, (s, e) in zip(bs.labels, b.labels, b.label_ranges):
            child[field] = label
            ranges[bpath + (field,)] = Span(b.src, s, e)
        if bs.nesting == "list":
            data.setdefault(b.type, []).append(child)
        else:
            data[b.type] = child
    return data


def blame(v: Value, want: Type, err: ConversionError) -> tuple[list[str | int], Type, str]:
    """Which element of ``v`` fails to convert to ``want``: (path, wanted type there, message)."""
    steps: list[str | int] = []
    message = str(err)
    path = conversion_path(err.path)
    if path:
        return path, want, err.message if err.path else message
    while v.raw is not None and v.raw is not EVAL_UNKNOWN:
        t = v.type
        if (want.is_list or want.is_set or want.is_map) and (t.is_tuple or t.is_list or t.is_set or t.is_object
                                                              or t.is_map):
            items = list(v.raw.items()) if isinstance(v.raw, dict) else list(enumerate(v.raw))
            sub = want.element
        elif want.is_object and (t.is_object or t.is_map):
            types = want.attr_types
            items = [(k, x) for k, x in v.raw.items() if k in types]
            sub = None
        else:
            break
        for k, x in items:
            target = sub if sub is not None else want.attr_types[k]
            try:
                convert(x, target)
            except ConversionError as e:
                steps.append(k)
                v, want, message = x, target, str(e)
                break
        else:
            break
    return steps, want, message


def _type_phrase(t) -> str:
    if t == STRING:
        return "a string"
    if t == NUMBER:
        return "a number"
    if t == BOOL:
        return "true or false"
    if t.is_object:
        required = [n for n, _ in t.attrs if n not in t.optional]
        optional = [n for n, _ in t.attrs if n in t.optional]
        text = "an object with " + ", ".join(required) if required else "an object"
        if optional:
            text += (", and optionally " if required else " with optional ") + ", ".join(optional)
        return text
    if t.is_list or t.is_set:
        return f"a list of {_type_phrase(t.element).removeprefix('a ').removeprefix('an ')}" + \
            ("s" if t.element.is_primitive else "")
    return t.type_expr()


_CONV_STEP = re.compile(r'\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]|\.([^.\[]+)')


def conversion_path(path: str) -> list[str | int]:
    """``[1].target`` (a ConversionError path) -> [1, "target"]."""
    out: list[str | int] = []
    for m in _CONV_STEP.finditer(path or ""):
        if m.group(1) is not None:
            out.append(int(m.group(1)))
        else:
            out.append(m.group(2) if m.group(2) is not None else m.group(3))
    return out


def narrow(node: A.Node, path: list | tuple) -> A.Node:
    """The sub-expression of a literal tuple/object at ``path``, as far as the literal goes."""
    for step in path:
        while type(node) is A.Parens:
            node = node.expr
        if type(node) is A.Tuple and isinstance(step, int) and 0 <= step < len(node.exprs):
            node = node.exprs[step]
        elif type(node) is A.Object and isinstance(step, str):
            for k, v in node.items:
                inner = k.wrapped if type(k) is A.ObjectKey else k
                name = inner.name if type(inner) is A.ScopeTraversal and not inner.steps else \
                    inner.value if type(inner) is A.Literal else None
                if name == step:
                    node = v
                    break
            else:
                return node
        else:
            return node
    return node


def _value_error(decl: ResourceDecl, loc: tuple, message: str, ranges: dict) -> Diagnostic:
    loc = tuple(loc)
    node = None
    rest: tuple = ()
    for i in range(len(loc), -1, -1):
        node = ranges.get(loc[:i])
        if node is not None:
            rest = loc[i:]
            break
    where = _path_text(loc)
    if node is None or isinstance(node, A.Block):
        block = node if isinstance(node, A.Block) else decl.block
        end = block.label_ranges[-1][1] if block.label_ranges else block.start + len(block.type)
        if rest and message == "Field required":
            return Diagnostic.error("Missing required argument",
                                    f'The argument "{rest[-1]}" is required, but it is null.', block.src,
                                    block.start, end, hint=f"give {rest[-1]} a value")
        detail = f"{message}." if not where or not rest else f"{_path_text(loc)}: {message}."
        return Diagnostic.error("Invalid argument value", detail.replace("..", "."), block.src, block.start, end,
                                hint=f"check the arguments of this {block.type} block")
    target = narrow(node, list(rest))
    if message == "Field required":
        return Diagnostic.error("Missing required argument", f'The argument "{loc[-1]}" is required, but it is null.',
                                target.src, target.start, target.end, hint=f"give {loc[-1]} a non-null value")
    return Diagnostic.error("Invalid argument value", f"{where}: {message}.".replace("..", "."), target.src,
                            target.start, target.end, hint=_hint_for(loc, message))


def _hint_for(loc: tuple, message: str) -> str:
    last = next((x for x in reversed(loc) if isinstance(x, str)), "")
    if last in ("memory",):
        return 'write memory as bytes with a unit: "64Mi", "1Gi", "512M"'
    if last == "cpu":
        return 'write cpu in cores (0.25) or millicores ("250m")'
    if last in ("interval", "timeout", "start_period", "stop_timeout"):
        return 'write a duration like "5s", "1m30s" or "500ms"'
    if last == "volume":
        return 'meanwhile, mount a directory of the node (host_path = "/srv/NAME") or a tmpfs (tmpfs = true)'
    if last in ("target", "host_path", "working_dir") and "absolute" in message:
        return 'write an absolute path, e.g. "/data"'
    if "Input should be" in message:
        return message.replace("Input should be", "use").rstrip(".")
    return ""


def _path_text(loc: tuple) -> str:
    out = ""
    for x in loc:
        out += f"[{x}]" if isinstance(x, int) else (f".{x}" if out else str(x))
    return out


def autoscale_bounds(decl: ResourceDecl, ctx: EvalContext) -> tuple[int, int, list[Diagnostic]]:
    """An autoscaled pod's (min_replicas, max_replicas), evaluated in its module (variables and locals; not
    per replica). Values that are not whole numbers are reported by the schema; here they fall back."""
    assert decl.autoscale_block is not None
    out: dict[str, int] = {"min_replicas": 1, "max_replicas": 1}
    diags: list[Diagnostic] = []
    for name in out:
        attr = decl.autoscale_block.body.attributes.get(name)
        if attr is None:
            continue
        v, d = evaluate(attr.expr, ctx)
        diags.extend(x for x in d if x.is_error)
        if isinstance(v.raw, (int, float)) and not isinstance(v.raw, bool) and v.raw >= 1:
            out[name] = min(int(v.raw), MAX_INSTANCES)
    if "max_replicas" not in decl.autoscale_block.body.attributes:
        out["max_replicas"] = out["min_replicas"]
    return out["min_replicas"], max(out["min_replicas"], out["max_replicas"]), diags


def _autoscaled_count(decl: ResourceDecl, ctx: EvalContext, now: int | None) -> tuple[int, list[Diagnostic]]:
    """How many replicas an autoscaled pod has: as it is now (or as the reconciler decided), within its
    bounds; min_replicas when it has none yet."""
    low, high, diags = autoscale_bounds(decl, ctx)
    return (low if now is None else min(max(now, low), high)), diags


def _count(decl: ResourceDecl, ctx: EvalContext) -> tuple[int | None, list[Diagnostic], bool]:
    expr = decl.count_expr
    arg = decl.count_argument
    v, d = evaluate(expr, ctx)
    if any(x.is_error for x in d):
        return None, d, False

    def bad(detail: str, hint: str = "") -> tuple[None, list[Diagnostic], bool]:
        return None, d + [Diagnostic.error(f"Invalid {arg} argument", detail, expr.src, expr.start, expr.end,
                                           hint=hint)], False

    if v.sensitive:
        return bad(f'Sensitive values, or values derived from sensitive values, cannot be used as "{arg}": they '
                   "would show in instance addresses.", hint="use a value that is not sensitive")
    if v.raw is None:
        return bad(f'The given "{arg}" argument value is null. An integer is required.')
    try:
        v = convert(v, NUMBER)
    except ConversionError as e:
        return bad(f'The given "{arg}" argument value is unsuitable: {e}.', hint=f"{arg} must be a whole number")
    if v.raw is EVAL_UNKNOWN:
        return None, d + [Diagnostic.error(
            f"Invalid {arg} argument",
            f'The "{arg}" value depends on resource attributes that cannot be determined until apply, so orch '
            "cannot predict how many instances will be created.", expr.src, expr.start, expr.end,
            hint=f"compute {arg} from variables and local values known before apply, not from attributes of "
                 "other resources; or apply the resources it depends on first")], True
    n = v.raw
    if not isinstance(n, int):
        return bad(f'The given "{arg}" argument value is unsuitable: it must be a whole number, not {n}.',
                   hint="round it with floor() or ceil()")
    if n < 0:
        return bad(f'The given "{arg}" argument value is unsuitable: it must not be negative ({n}).')
    if n > MAX_INSTANCES:
        return bad(f'The given "{arg}" argument value is unsuitable: a resource block has at most '
                   f"{MAX_INSTANCES:,} instances ({n:,} asked).",
                   hint="split the instances over several resource blocks if you really need more")
    return n, d, False


def _for_each_items(decl: ResourceDecl, ctx: EvalContext) -> tuple[list[tuple[str, Value]] | None,
                                                                   list[Diagnostic], bool]:
    expr = decl.for_each_expr
    v, d = evaluate(expr, ctx)
    if any(x.is_error for x in d):
        return None, d, False

    def bad(detail: str, hint: str = "") -> tuple[None, list[Diagnostic], bool]:
        return None, d + [Diagnostic.error("Invalid for_each argument", detail, expr.src, expr.start, expr.end,
                                           hint=hint)], False

    def not_known() -> tuple[None, list[Diagnostic], bool]:
        return None, d + [Diagnostic.error(
            "Invalid for_each argument",
            'The "for_each" value depends on resource attributes that cannot be determined until apply, so orch '
            "cannot predict how many instances will be created.", expr.src, expr.start, expr.end,
            hint="compute for_each keys from variables and local values known before apply, not from attributes "
                 "of other resources; or apply the resources it depends on first")], True

    if v.sensitive:
        return bad("Sensitive values, or values derived from sensitive values, cannot be used as for_each "
                   "arguments: they would show in instance addresses.", hint="use a value that is not sensitive")
    if v.raw is None:
        return bad('The given "for_each" argument value is unsuitable: the value is null. A map, or set of '
                   "strings is allowed.")
    t = v.type
    if t == DYNAMIC and v.raw is EVAL_UNKNOWN:
        return not_known()
    def too_many(n: int) -> tuple[None, list[Diagnostic], bool]:
        return bad(f'The given "for_each" argument value is unsuitable: a resource block has at most '
                   f"{MAX_INSTANCES:,} instances ({n:,} keys given).",
                   hint="split the instances over several resource blocks if you really need more")

    if t.is_map or t.is_object:
        if v.raw is EVAL_UNKNOWN:
            return not_known()
        if len(v.raw) > MAX_INSTANCES:
            return too_many(len(v.raw))
        return [(k, x) for k, x in v.raw.items()], d, False
    if t.is_set:
        if v.raw is EVAL_UNKNOWN or not v.is_wholly_known:
            return not_known()
        if len(v.raw) > MAX_INSTANCES:
            return too_many(len(v.raw))
        items = []
        for e in v.raw:
            if e.raw is None:
                return bad('The given "for_each" argument value is unsuitable: "for_each" sets must not contain '
                           "null values.")
            try:
                s = convert(e, STRING)
            except ConversionError:
                return bad('The given "for_each" argument value is unsuitable: "for_each" supports maps and sets '
                           f"of strings, but you have provided a set containing type {e.type.friendly_name()}.")
            items.append((s.raw, s))
        return items, d, False
    what = t.friendly_name()
    return bad('The given "for_each" argument value is unsuitable: the "for_each" argument must be a map, or set '
               f"of strings, and you have provided a value of type {what}.",
               hint="convert a list with toset(...), or build a map with a for expression")


# ---- outputs and validation --------------------------------------------------------------------------------

def evaluate_outputs(config: Config, ctx_values: dict) -> tuple[dict[str, OutputValue], list[Diagnostic]]:
    """The root module's outputs, as plain data (UNKNOWN where unknown)."""
    scope = Scope(config, ctx_values)
    out: dict[str, OutputValue] = {}
    root = config.root
    for name, decl in root.outputs.items():
        v = scope.output(root, name)
        sens: set[Path] = set()
        data = to_data(v, (), sens)
        out[name] = OutputValue(name, data, decl.sensitive or v.is_deeply_sensitive, sens, decl)
    return out, unique(scope.diags)


def validate(config: Config) -> list[Diagnostic]:
    """Evaluate everything once with every resource unknown: what can be checked before a plan."""
    scope = Scope(config, {})
    diags: list[Diagnostic] = []
    for mod in config.modules.values():
        for name in mod.variables:
            if mod.path:
                scope.var(mod, name)
        for name in mod.locals:
            scope.local(mod, name)
        for name in mod.outputs:
            scope.output(mod, name)
    nodes: dict[ResourceAddress, dict] = {}
    pods: dict[ResourceAddress, dict] = {}
    services: dict[ResourceAddress, dict] = {}
    volumes: set[str] = set()
    pod_decls: list[tuple[ResourceDecl, list[ResourceInstanceConfig]]] = []
    all_nodes = True  # every node instance is known (no count or for_each waiting for a value)
    for decl in config.resources.values():
        instances, d = expand(decl, {}, validate=True, scope=scope)
        diags.extend(d)
        if decl.type == "node":
            nodes.update((i.address, i.values) for i in instances)
            all_nodes = all_nodes and (bool(instances) or decl.mode == "single")
        elif decl.type == "pod":
            pods.update((i.address, i.values) for i in instances)
            diags.extend(_secrets_in_env(decl, instances))
            pod_decls.append((decl, instances))
        elif decl.type == "volume":
            volumes.update(str(i.values.get("name")) for i in instances)
        elif decl.type == "service":
            services.update((i.address, i.values) for i in instances)
    for decl, instances in pod_decls:
        diags.extend(_undeclared_volumes(decl, instances, volumes))
    if not any(x.is_error for x in diags):
        diags.extend(_whole_configuration_checks(config, nodes, pods, all_nodes, services))
    return unique(scope.diags + diags)


def _undeclared_volumes(decl: ResourceDecl, instances: list[ResourceInstanceConfig], volumes: set[str]
                        ) -> list[Diagnostic]:
    """A mount naming a volume no `volume` block declares: Docker would create it on first use, and nothing
    would ever remove it."""
    import difflib

    out = []
    seen: set[str] = set()
    for inst in instances:
        containers = inst.values.get("container")
        for c in containers if isinstance(containers, list) else []:
            mounts = c.get("mounts") if isinstance(c, dict) else None
            for m in mounts if isinstance(mounts, list) else []:
                name = m.get("volume") if isinstance(m, dict) else None
                if not isinstance(name, str) or name in volumes or name in seen:
                    continue
                seen.add(name)
                close = next(iter(difflib.get_close_matches(name, sorted(volumes), n=1, cutoff=0.6)), None)
                out.append(Diagnostic.error(
                    "Undeclared volume", f'{decl.address} mounts volume "{name}", which no volume block declares: '
                    "Docker would create it on first use and nothing would ever remove it.", decl.block.src,
                    decl.block.start, decl.block.start + len(decl.type),
                    hint=(f'did you mean "{close}"? ' if close else "") +
                         f'declare it (volume "{name}" {{}}) and mount it with volume = volume.{name}.name'))
    return out


def _secrets_in_env(decl: ResourceDecl, instances: list[ResourceInstanceConfig]) -> list[Diagnostic]:
    """A sensitive value in a container's environment works, but anyone who can inspect the container reads
    it: said once per variable, with the way to keep it secret (a file on a tmpfs)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for inst in instances[:1]:  # every replica has the same containers
        containers = inst.values.get("container")
        if not isinstance(containers, list):
            continue
        for path in sorted(inst.sensitive_paths, key=str):
            if len(path) < 3 or path[0] != "container" or path[2] != "env" or not isinstance(path[1], int):
                continue
            if path[1] >= len(containers):
                continue
            cname = str(containers[path[1]].get("name"))
            var = str(path[3]) if len(path) > 3 else "*"
            if (cname, var) in seen:
                continue
            seen.add((cname, var))
            d = Diagnostic.error(
                "Sensitive value in an environment variable",
                f'{decl.address}: container "{cname}" gets a sensitive value in env {var}: anyone who can run '
                "docker inspect on the node reads it.", decl.block.src, decl.block.start,
                decl.block.start + len(decl.type),
                hint=f'deliver it as a file instead: file "/run/secrets/{var.lower()}" {{ content = ... }} '
                     "(on a tmpfs, mode 0400; see docs/resources.md#file-blocks)")
            d.severity = "warning"
            out.append(d)
    return out


def static_instances(config: Config, types: frozenset[str]) -> tuple[dict[ResourceAddress, dict], list[Diagnostic]]:
    """Every instance of the given resource types with what the configuration alone says (no state, no host:
    what is known only after apply is unknown) -- for questions asked of the configuration (orch explain)."""
    scope = Scope(config, {})
    out: dict[ResourceAddress, dict] = {}
    diags: list[Diagnostic] = []
    for decl in config.resources.values():
        if decl.type not in types:
            continue
        instances, d = expand(decl, {}, validate=True, scope=scope)
        diags.extend(d)
        out.update((i.address, i.values) for i in instances)
    return out, unique(scope.diags + diags)


def _whole_configuration_checks(config: Config, nodes: dict[ResourceAddress, dict],
                                pods: dict[ResourceAddress, dict], all_nodes: bool,
                                services: dict[ResourceAddress, dict] | None = None) -> list[Diagnostic]:
    """What the planner checks across resources, with what is known before any plan (the derivations check it
    all again with planned values): two node resources of one name or of one Docker engine, two pod instances
    of one name, replicas that no node can ever run (when every node is known: ``all_nodes``), and addresses:
    pod subnets and cluster IPs outside their ranges or taken twice, one node port for two services."""
    from ..cluster.derive import Inputs
    from ..cluster.ipam import IPAM
    from ..cluster.placement import duplicate_nodes, never_placeable, node_name_clashes, pod_name_clashes
    from ..engine.planner import cluster_settings

    found = node_name_clashes(nodes) + duplicate_nodes(nodes) + pod_name_clashes(pods)
    if not found and nodes and all_nodes:
        found = never_placeable(nodes, pods, config.scheduler_strategy)
    if not found:  # the state is not read: only what the configuration itself says can clash
        found = IPAM.derive(Inputs({}, {**nodes, **(services or {})}, {}, cluster_settings(config))).diagnostics
    out = []
    for d in found:
        addr = ResourceAddress.parse(d.address) if d.address else None
        decl = config.resources.get(addr.config) if addr is not None else None
        if decl is not None:
            b = decl.block
            d.subject = b.src.range(b.start, b.label_ranges[-1][1] if b.label_ranges else b.start + len(b.type))
            d.source = b.src
        out.append(d)
    return out
