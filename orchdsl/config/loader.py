"""``load_config``: a configuration directory (and its modules) -> Config + diagnostics.

Stages:

1. read every module: each ``.orch`` file of the directory; ``module``
   blocks load their ``source`` directory recursively. Blocks are decoded
   into declarations; resource blocks are checked against their schema
   (unknown arguments and blocks, missing required ones, labels, counts);
2. root variable values from defaults, environment, ``.orchvars`` files,
   ``--var-file`` and ``--var`` (see ``variables.py``);
3. every reference in every expression is checked (``var.nope``,
   ``pod.nope``, ``module.app.nope``, ``pod.web.nope``, ``count.index``
   outside a counted resource, ...);
4. ``depends_on`` lists are resolved, and each resource's ``references`` are
   computed through locals, module outputs and module inputs;
5. everything is evaluated once with resources unknown (what ``orch
   validate`` reports: types of arguments, quantities, validation rules).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
import os
import re
from pathlib import Path

from ..addrs import ConfigAddress, ModulePath, ModuleStep
from ..diagnostics import Diagnostic, unique
from ..eval.ops import suggest
from ..lang import ast as A
from ..schema import RESOURCE_TYPES, describe
from ..schema.base import ModelSpec
from ..schema.planned import attribute_detail, planned_attribute, planned_type, type_detail
from .files import load_directory
from .model import (Config, Lifecycle, LocalDecl, Module, ModuleCall, OutputDecl, Path as AttrPath,
                    ResourceDecl, module_prefix)
from .refs import DYNAMIC_KEY, Ref, _steps, classify, references
from .variables import constant_bool, constant_string, decode_variable, header_error, root_variable_values

META_ARGS = ("count", "for_each", "depends_on")
META_BLOCKS = ("lifecycle",)
_NOT_SUPPORTED_META = {"provider": "orch has no provider configurations: resources are realised by the nodes "
                                   "they are placed on",
                       "provisioner": "provisioners are not supported", "connection": "connections are set on "
                                                                                     "node blocks"}
_TOP_LEVEL = ("variable", "locals", "output", "module")
_MODULE_META = ("source", "count", "for_each", "depends_on", "providers", "version")
_RESERVED_VARIABLE_NAMES = ("count", "for_each", "source", "depends_on", "lifecycle", "providers", "version",
                            "locals")
_IDENT = re.compile(r"^[^\W\d][\w-]*$")
# The summary of every use of what the resource model plans but nothing realises (orchdsl/schema/planned.py).
NOT_SUPPORTED = "Not supported yet"
_MAX_MODULE_DEPTH = 32


def load_config(directory: str | os.PathLike, var_overrides: Mapping[str, str] | None = None,
                var_files: Iterable[str] = (), env: Mapping[str, str] | None = None, *,
                unset_required_unknown: bool = False) -> tuple[Config, list[Diagnostic]]:
    """Load, check and validate the configuration in ``directory``. Never raises on bad input.

    ``unset_required_unknown`` (``orch validate``, as ``terraform validate``): a required root variable
    given no value is unknown rather than an error, so that a configuration validates without its inputs."""
    root = Path(directory)
    config = Config(root)
    loader = _Loader(config)
    loader.load_module(root, (), None, [])
    diags = loader.diags
    if () not in config.modules or any(d.summary == "No configuration directory" for d in diags):
        return config, diags
    values, d = root_variable_values(root, config.root.variables, dict(var_overrides or {}), list(var_files),
                                     os.environ if env is None else env, unset_required_unknown)
    config.variables = values
    diags.extend(d)
    loader.check_all_references()
    loader.resolve_dependencies()
    loader.check_cycles()
    if not any(x.is_error for x in diags):
        from .evaluate import validate
        diags.extend(validate(config))
    return config, unique(diags)


def _usable_types() -> list[str]:
    """The resource types a configuration can use today, for hints (not the planned ones)."""
    return [t for t in RESOURCE_TYPES if planned_type(t) is None]


def _err(diags: list[Diagnostic], node: A.Node, summary: str, detail: str, hint: str = "",
         end: int | None = None) -> None:
    diags.append(Diagnostic.error(summary, detail, node.src, node.start, node.end if end is None else end,
                                  hint=hint))


def _type_error(diags: list[Diagnostic], block: A.Block, summary: str, detail: str, hint: str = "") -> None:
    diags.append(Diagnostic.error(summary, detail, block.src, block.start, block.start + len(block.type),
                                  hint=hint))


class _Loader:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.diags: list[Diagnostic] = []
        self._pending_depends: list[tuple[object, Module, A.Attribute]] = []
        self._memo: dict[tuple, set[ConfigAddress]] = {}
        self._visiting: set[tuple] = set()

    # ---- stage 1: reading modules --------------------------------------------------------------------------
    def load_module(self, directory: Path, path: ModulePath, call: ModuleCall | None, stack: list[Path]) -> None:
        files, d = load_directory(directory)
        self.diags.extend(d)
        mod = Module(path, directory, files)
        self.config.modules[path] = mod
        functions = self.config.functions(path)
        seen: dict[tuple[str, str], A.Block] = {}
        for body in files.bodies:
            for attr in body.attributes.values():
                _err(self.diags, attr, "Unsupported argument",
                     f'An argument named "{attr.name}" is not expected at the top level of a configuration.',
                     hint=f"to name a value, put it in a locals block: locals {{ {attr.name} = ... }}",
                     end=attr.name_end)
            for block in body.blocks:
                kind = block.type
                if kind == "locals":
                    self._decode_locals(block, mod)
                    continue
                if kind == "scheduler":
                    self._decode_scheduler(block, mod)
                    continue
                if kind == "orch":
                    self._decode_orch(block, mod)
                    continue
                if kind not in _TOP_LEVEL and kind not in RESOURCE_TYPES:
                    kinds = _usable_types() + list(_TOP_LEVEL) + ["locals", "scheduler", "orch"]
                    _type_error(self.diags, block, "Unsupported block type",
                                f'Blocks of type "{kind}" are not expected here.',
                                hint=suggest(kind, kinds) or "the block types are " + ", ".join(kinds))
                    continue
                if not self._check_single_label(block, mod):
                    continue
                name = block.labels[0]
                key = (kind, name)
                if key in seen:
                    first = seen[key].range
                    what = f'{kind} "{name}"'
                    _type_error(self.diags, block, f"Duplicate {kind} {'block' if kind in _TOP_LEVEL else 'resource'}",
                                f"A {what} was already declared at {first.filename}:{first.start.line}. Names "
                                f"must be unique per block type in a module.", hint="rename one of them")
                    continue
                seen[key] = block
                if kind == "variable":
                    decl, d = decode_variable(block, path, functions)
                    self.diags.extend(d)
                    if decl is not None:
                        mod.variables[name] = decl
                elif kind == "output":
                    self._decode_output(block, mod)
                elif kind == "module":
                    self._decode_module_call(block, mod, stack)
                else:
                    self._decode_resource(block, mod)
        for name, decl in mod.locals.items():
            self.config.locals[(path, name)] = decl
        for name, out in mod.outputs.items():
            self.config.outputs[(path, name)] = out

    def _check_single_label(self, block: A.Block, mod: Module) -> bool:
        kind = block.type
        what = "resource" if kind in RESOURCE_TYPES else kind
        if not block.labels:
            _type_error(self.diags, block, f"Missing name for {what}",
                        f"All {kind} blocks must have 1 label (the name).", hint=f'write {kind} "NAME" {{ ... }}')
            return False
        if len(block.labels) > 1:
            s, e = block.label_ranges[1]
            self.diags.append(Diagnostic.error(f"Extraneous label for {what}",
                                               f"Only 1 label (the name) is expected for {kind} blocks.",
                                               block.src, s, e, hint="remove the extra label"))
            return False
        name = block.labels[0]
        s, e = block.label_ranges[0]
        if not _IDENT.match(name):
            self.diags.append(Diagnostic.error(f"Invalid {what} name",
                                               "A name must start with a letter or underscore and may contain only "
                                               "letters, digits, underscores, and dashes.", block.src, s, e))
            return False
        if kind == "variable" and name in _RESERVED_VARIABLE_NAMES:
            self.diags.append(Diagnostic.error("Invalid variable name",
                                               f'The variable name "{name}" is reserved due to its special meaning '
                                               "inside module blocks.", block.src, s, e,
                                               hint="choose another name"))
            return False
        return True

    def _decode_locals(self, block: A.Block, mod: Module) -> None:
        if block.labels:
            s, e = block.label_ranges[0]
            self.diags.append(Diagnostic.error("Extraneous label for locals", "No labels are expected for locals "
                                               "blocks.", block.src, s, e, hint="write locals { name = value }"))
        for b in block.body.blocks:
            _type_error(self.diags, b, "Unsupported block type", "A locals block holds arguments only.",
                        hint=f"write {b.type} = {{ ... }} to define an object value")
        for attr in block.body.attributes.values():
            if attr.name in mod.locals:
                first = mod.locals[attr.name].range
                _err(self.diags, attr, "Duplicate local value definition",
                     f'A local value named "{attr.name}" was already defined at {first.filename}:'
                     f"{first.start.line}. Local value names must be unique within a module.", end=attr.name_end)
                continue
            mod.locals[attr.name] = LocalDecl(attr.name, mod.path, attr)

    def _root_settings_block(self, block: A.Block, mod: Module, kind: str, in_module: tuple[str, str, str],
                             example: str, args: Iterable[str], nested: tuple[str, ...] = ()) -> bool:
        """What the root's settings blocks (``scheduler``, ``orch``) share: read only in the root module, once,
        without labels or nested blocks, with known arguments. False when the block is not to be read."""
        if mod.path:
            _type_error(self.diags, block, *in_module[:2], hint=in_module[2])
            return False
        first_block = getattr(self.config, f"{kind}_block")
        if first_block is not None:
            first = first_block.range
            _type_error(self.diags, block, f"Duplicate {kind} block",
                        f"A{'n' if kind[0] in 'aeiou' else ''} {kind} block was already declared at "
                        f"{first.filename}:{first.start.line}.", hint="merge them into one")
            return False
        setattr(self.config, f"{kind}_block", block)
        if block.labels:
            s, e = block.label_ranges[0]
            self.diags.append(Diagnostic.error(f"Extraneous label for {kind}", "No labels are expected for the "
                                               f"{kind} block.", block.src, s, e, hint=f"write {example}"))
        self._unexpected_args(block.body, tuple(args), f"the {kind} block")
        for b in block.body.blocks:
            if b.type not in nested:
                _type_error(self.diags, b, "Unsupported block type",
                            f"The {kind} block holds arguments{' and ' + ', '.join(nested) if nested else ''} only.",
                            hint=suggest(b.type, list(nested)))
        return True

    def _decode_scheduler(self, block: A.Block, mod: Module) -> None:
        """``scheduler { strategy = "binpack" }``: cluster-wide scheduling defaults, root module only, literals
        only (like Terraform's ``terraform`` block)."""
        if not self._root_settings_block(
                block, mod, "scheduler",
                ("Scheduler block in a module", "The scheduler block sets cluster-wide defaults; it is read only in "
                 "the root module.", "move it to the root module, or set placement on the pods of this module"),
                'scheduler { strategy = "spread" }', ("strategy",)):
            return
        attr = block.body.attributes.get("strategy")
        if attr is not None:
            strategy = constant_string(attr, self.diags)
            if strategy and strategy not in ("spread", "binpack"):
                self.diags.append(Diagnostic.error(
                    "Invalid scheduler strategy", f'"{strategy}" is not a strategy.', attr.src, attr.expr.start,
                    attr.expr.end, hint=suggest(strategy, ["spread", "binpack"]) or 'use "spread" or "binpack"'))
            elif strategy:
                self.config.scheduler_strategy = strategy

    def _decode_orch(self, block: A.Block, mod: Module) -> None:
        """``orch { namespace = "shop" pod_cidr = "..." service_cidr = "..." }``: settings of the whole
        configuration, root module only, literals only (like Terraform's ``terraform`` block)."""
        from ..cluster.settings import SETTINGS_ARGS, check_setting

        if not self._root_settings_block(
                block, mod, "orch",
                ("orch block in a module", "The orch block holds settings of the whole configuration; it is read "
                 "only in the root module.", "move it to the root module"),
                'orch { namespace = "shop" }', SETTINGS_ARGS, nested=("backend",)):
            return
        for name in SETTINGS_ARGS:
            attr = block.body.attributes.get(name)
            if attr is None:
                continue
            value = constant_string(attr, self.diags)
            if not value:
                continue
            problem, hint = check_setting(name, value)
            if problem:
                self.diags.append(Diagnostic.error("Invalid orch setting", problem, attr.src, attr.expr.start,
                                                   attr.expr.end, hint=hint))
            else:
                self.config.settings[name] = value
        self._decode_backend(block)

    def _decode_backend(self, block: A.Block) -> None:
        from ..state.backends import decode_backend_block

        backends = [b for b in block.body.blocks if b.type == "backend"]
        for extra in backends[1:]:
            _type_error(self.diags, extra, "Duplicate backend block", "The orch block takes one backend block.",
                        hint="keep one")
        if backends:
            choice = decode_backend_block(backends[0], self.config.settings.get("namespace", ""), self.diags)
            if choice is not None:
                self.config.backend = choice

    def _unexpected_args(self, body: A.Body, allowed: Iterable[str], where: str) -> None:
        allowed = list(allowed)
        for attr in body.attributes.values():
            if attr.name not in allowed:
                _err(self.diags, attr, "Unsupported argument",
                     f'An argument named "{attr.name}" is not expected in {where}.',
                     hint=suggest(attr.name, allowed), end=attr.name_end)

    def _decode_output(self, block: A.Block, mod: Module) -> None:
        body = block.body
        self._unexpected_args(body, ("value", "description", "sensitive", "depends_on"), "an output block")
        for b in body.blocks:
            _type_error(self.diags, b, "Unsupported block type",
                        f'Blocks of type "{b.type}" are not expected in an output block.')
        value = body.attributes.get("value")
        if value is None:
            self.diags.append(header_error(block, "Missing required argument",
                                           'The argument "value" is required, but no definition was found.',
                                           hint="add value = EXPRESSION"))
        out = OutputDecl(block.labels[0], mod.path, value.expr if value else None,
                         constant_string(body.attributes.get("description"), self.diags),
                         constant_bool(body.attributes.get("sensitive"), False, self.diags), [], block)
        mod.outputs[out.name] = out
        if "depends_on" in body.attributes:
            self._pending_depends.append((out, mod, body.attributes["depends_on"]))

    def _decode_module_call(self, block: A.Block, mod: Module, stack: list[Path]) -> None:
        body = block.body
        name = block.labels[0]
        for b in body.blocks:
            _type_error(self.diags, b, "Unsupported block type",
                        f'Blocks of type "{b.type}" are not expected in a module block.')
        for meta in ("count", "for_each", "providers", "version"):
            attr = body.attributes.get(meta)
            if attr is not None:
                _err(self.diags, attr, "Unsupported argument",
                     f'The "{meta}" argument is not supported in module blocks yet.',
                     hint="declare a module block per instance" if meta in ("count", "for_each") else
                     "only local module sources are supported", end=attr.name_end)
        source_attr = body.attributes.get("source")
        if source_attr is None:
            self.diags.append(header_error(block, "Missing required argument",
                                           'The argument "source" is required, but no definition was found.',
                                           hint='add source = "./path/to/module"'))
            return
        source = constant_string(source_attr, self.diags)
        if not source:
            return
        if not source.startswith(("./", "../")):
            _err(self.diags, source_attr.expr, "Invalid module source",
                 f'The module source "{source}" is not a local path.',
                 hint='orch loads modules from local directories: start the path with "./" or "../"')
            return
        directory = (mod.directory / source).resolve()
        child_path = mod.path + (ModuleStep(name),)
        if directory in stack or directory == mod.directory.resolve() or len(stack) >= _MAX_MODULE_DEPTH:
            _err(self.diags, source_attr.expr, "Module recursion",
                 f'module.{name} loads "{source}", which is already being loaded: a module cannot include '
                 "itself.", hint="remove the module block that closes the loop")
            return
        if not directory.is_dir():
            _err(self.diags, source_attr.expr, "Module not found",
                 f'The module directory "{source}" does not exist (looked in {directory}).',
                 hint="check the path; it is relative to the directory of the calling module")
            return
        inputs = {n: a for n, a in body.attributes.items() if n not in _MODULE_META}
        call = ModuleCall(name, mod.path, child_path, source, directory, inputs, [], block)
        mod.calls[name] = call
        self.config.module_calls[child_path] = call
        if "depends_on" in body.attributes:
            self._pending_depends.append((call, mod, body.attributes["depends_on"]))
        self.load_module(directory, child_path, call, stack + [mod.directory.resolve()])
        child = self.config.modules[child_path]
        for n, attr in inputs.items():
            if n not in child.variables:
                _err(self.diags, attr, "Unsupported argument",
                     f'An argument named "{n}" is not expected here: module.{name} declares no variable "{n}".',
                     hint=suggest(n, child.variables) or f'declare it in the module: variable "{n}" {{}}',
                     end=attr.name_end)
        for n, var in child.variables.items():
            if var.required and n not in inputs:
                self.diags.append(header_error(block, "Missing required argument",
                                               f'The argument "{n}" is required, but no definition was found.',
                                               hint=f"module.{name} has a variable \"{n}\" without default: add "
                                                    f"{n} = VALUE"))

    # ---- resources ----------------------------------------------------------------------------------------
    def _decode_resource(self, block: A.Block, mod: Module) -> None:
        rtype, name = block.type, block.labels[0]
        model = RESOURCE_TYPES[rtype]
        planned = planned_type(rtype)
        if planned is not None:
            # Still declared below, so that references to it resolve: one error for the block, not one more
            # "undeclared resource" per reference.
            self.diags.append(header_error(block, NOT_SUPPORTED, type_detail(rtype, planned),
                                           hint=planned.hint))
        spec = describe(model)
        body = block.body
        decl = ResourceDecl(ConfigAddress(rtype, name, mod.path), block, config=self.config)
        count = body.attributes.get("count")
        for_each = body.attributes.get("for_each")
        replicas = body.attributes.get(model.count_attribute) if model.count_attribute else None
        if count is not None and for_each is not None:
            _err(self.diags, for_each, 'Invalid combination of "count" and "for_each"',
                 'The "count" and "for_each" meta-arguments are mutually-exclusive, only one should be used to be '
                 "explicit about the number of resources to be created.", hint="remove one of them",
                 end=for_each.name_end)
        if replicas is not None and (count is not None or for_each is not None):
            other = count or for_each
            _err(self.diags, other, f'Invalid combination of "{replicas.name}" and "{other.name}"',
                 f'A {rtype} with "{replicas.name}" already has one instance per replica.',
                 hint=f'use either {replicas.name} or {other.name}', end=other.name_end)
        if for_each is not None:
            decl.for_each_expr = for_each.expr
        elif count is not None:
            decl.count_expr = count.expr
        elif replicas is not None:
            decl.count_expr, decl.count_argument = replicas.expr, replicas.name
        scaled = next((b for b in body.blocks if b.type == "autoscale"), None) if model.count_attribute else None
        if scaled is not None:
            given = replicas or count or for_each
            if given is not None:
                _err(self.diags, given, f'Invalid combination of "{given.name}" and "autoscale"',
                     f'The autoscaler owns the number of replicas of an autoscaled {rtype}: it starts at '
                     "min_replicas and orch reconcile changes it within min_replicas..max_replicas.",
                     hint=f"remove {given.name}; set autoscale {{ min_replicas = N }} instead",
                     end=given.name_end)
            else:
                decl.autoscale_block = scaled
        if "depends_on" in body.attributes:
            self._pending_depends.append((decl, mod, body.attributes["depends_on"]))
        lifecycles = [b for b in body.blocks if b.type == "lifecycle"]
        for extra in lifecycles[1:]:
            _type_error(self.diags, extra, "Duplicate lifecycle block",
                        "This resource already has a lifecycle block.", hint="merge the two blocks")
        if lifecycles:
            decl.lifecycle = self._decode_lifecycle(lifecycles[0], spec)
        for b in body.blocks:
            if b.type in _NOT_SUPPORTED_META:
                _type_error(self.diags, b, "Unsupported block type",
                            f'Blocks of type "{b.type}" are not expected here.', hint=_NOT_SUPPORTED_META[b.type])
        skip_attrs = set(META_ARGS) | ({model.count_attribute} if model.count_attribute else set())
        if planned is None:  # the body of a planned type would only add noise to its one error
            self.check_body(body, spec, block, skip_attrs, set(META_BLOCKS) | set(_NOT_SUPPORTED_META), (),
                            (rtype,))
        mod.resources[decl.address] = decl
        self.config.resources[decl.address] = decl

    def check_body(self, body: A.Body, spec: ModelSpec, owner: A.Block, skip_attrs: set[str],
                   skip_blocks: set[str], label_fields: tuple[str, ...], path: tuple[str, ...]) -> None:
        """Arguments and blocks of ``body`` against ``spec`` (recursively).

        ``path``: the resource type and the block types down to ``body``, where planned (not supported yet)
        arguments and blocks are looked up."""
        settable = [n for n, a in spec.attributes.items() if not a.computed and n not in label_fields]
        for attr in body.attributes.values():
            n = attr.name
            if n in skip_attrs:
                continue
            planned = planned_attribute(path + (n,))
            if planned is not None:
                self.diags.append(Diagnostic.error(NOT_SUPPORTED, attribute_detail(path + (n,), planned),
                                                   attr.src, attr.start, attr.end, hint=planned.hint))
                continue
            a = spec.attributes.get(n)
            if n in label_fields:
                _err(self.diags, attr, "Unsupported argument",
                     f'The {n} of a {owner.type} block is its label, not an argument.',
                     hint=f'write {owner.type} "{attr.name.upper()}" {{ ... }}', end=attr.name_end)
            elif a is None and n in spec.blocks:
                _err(self.diags, attr, "Unsupported argument",
                     f'An argument named "{n}" is not expected here. Did you mean to define a block of type '
                     f'"{n}"?', hint=f"write it as a block: {n} {{ ... }}", end=attr.name_end)
            elif a is None:
                _err(self.diags, attr, "Unsupported argument", f'An argument named "{n}" is not expected here.',
                     hint=suggest(n, settable + list(spec.blocks)), end=attr.name_end)
            elif a.computed:
                _err(self.diags, attr, "Unsupported argument",
                     f'The attribute "{n}" is set by orch and cannot be configured.',
                     hint=f"remove it; other blocks can read it as {owner.type}.NAME.{n}"
                     if owner.type in RESOURCE_TYPES else "remove it", end=attr.name_end)
        for n in settable:
            a = spec.attributes[n]
            if a.required and n not in body.attributes:
                self.diags.append(header_error(owner, "Missing required argument",
                                               f'The argument "{n}" is required, but no definition was found.',
                                               hint=f"add {n} = ... to this {owner.type} block"))
        counts: dict[str, list[A.Block]] = {}
        for b in body.blocks:
            if b.type in skip_blocks:
                continue
            planned = planned_attribute(path + (b.type,))
            if planned is not None:
                self.diags.append(header_error(b, NOT_SUPPORTED, attribute_detail(path + (b.type,), planned),
                                               hint=planned.hint))
                continue
            bs = spec.blocks.get(b.type)
            if bs is None:
                if b.type == "dynamic":
                    hint = "dynamic blocks are not supported yet: write the blocks out"
                elif b.type in spec.attributes and not spec.attributes[b.type].computed:
                    _type_error(self.diags, b, "Unsupported block type",
                                f'Blocks of type "{b.type}" are not expected here. Did you mean to define argument '
                                f'"{b.type}"? If so, use the equals sign to assign it a value.',
                                hint=f"write {b.type} = {{ ... }}")
                    continue
                else:
                    hint = suggest(b.type, list(spec.blocks) + settable)
                _type_error(self.diags, b, "Unsupported block type",
                            f'Blocks of type "{b.type}" are not expected here.', hint=hint)
                continue
            counts.setdefault(b.type, []).append(b)
            want = len(bs.labels)
            if want and len(b.labels) == want:
                twin = next((o for o in counts[b.type][:-1] if o.labels == b.labels), None)
                if twin is not None:
                    s, e = b.label_ranges[0]
                    self.diags.append(Diagnostic.error(
                        f"Duplicate {b.type} block",
                        f'A {b.type} block labelled "{b.labels[0]}" was already defined at '
                        f"{twin.src.filename}:{twin.range.start.line}; {b.type} names must be unique here.",
                        b.src, s, e, hint=f"rename one of the {b.type} blocks"))
            if len(b.labels) < want:
                _type_error(self.diags, b, f"Missing name for {b.type}",
                            f"All {b.type} blocks must have {want} label{'s' if want > 1 else ''} "
                            f"({', '.join(bs.labels)}).", hint=f'write {b.type} "NAME" {{ ... }}')
            elif len(b.labels) > want:
                s, e = b.label_ranges[want]
                detail = f"No labels are expected for {b.type} blocks." if not want else \
                    f"Only {want} label{'s' if want > 1 else ''} ({', '.join(bs.labels)}) are expected for " \
                    f"{b.type} blocks."
                self.diags.append(Diagnostic.error(f"Extraneous label for {b.type}", detail, b.src, s, e,
                                                   hint="remove the label"))
            self.check_body(b.body, bs.spec, b, set(), set(), bs.labels, path + (b.type,))
        for n, bs in spec.blocks.items():
            got = counts.get(n, [])
            if len(got) < bs.min_items:
                self.diags.append(header_error(owner, f"Insufficient {n} blocks",
                                               f'At least {bs.min_items} "{n}" '
                                               f'block{"s are" if bs.min_items > 1 else " is"} '
                                               "required.", hint=f"add a {n} block"))
            if bs.max_items is not None and len(got) > bs.max_items:
                _type_error(self.diags, got[bs.max_items], f"Too many {n} blocks",
                            f'No more than {bs.max_items} "{n}" block{"s are" if bs.max_items > 1 else " is"} '
                            "allowed.", hint=f"merge the {n} blocks into one")

    def _decode_lifecycle(self, block: A.Block, spec: ModelSpec) -> Lifecycle:
        body = block.body
        self._unexpected_args(body, ("create_before_destroy", "prevent_destroy", "ignore_changes"),
                              "a lifecycle block")
        for b in body.blocks:
            _type_error(self.diags, b, "Unsupported block type", "A lifecycle block holds arguments only.")
        lc = Lifecycle(constant_bool(body.attributes.get("create_before_destroy"), False, self.diags),
                       constant_bool(body.attributes.get("prevent_destroy"), False, self.diags))
        attr = body.attributes.get("ignore_changes")
        if attr is None:
            return lc
        expr = attr.expr
        if type(expr) is A.ScopeTraversal and expr.name == "all" and not expr.steps:
            lc.ignore_all_changes = True
            return lc
        if type(expr) is not A.Tuple:
            _err(self.diags, expr, "Invalid ignore_changes",
                 "ignore_changes must be a list of attribute references, or the keyword all.",
                 hint="write ignore_changes = [labels, container[0].env]")
            return lc
        names = [n for n, a in spec.attributes.items() if not a.computed] + list(spec.blocks)
        for item in expr.exprs:
            if type(item) is A.Literal and isinstance(item.value, str):
                _err(self.diags, item, "Invalid ignore_changes",
                     "ignore_changes takes attribute references, not strings.",
                     hint=f"remove the quotes: {item.value}")
                continue
            if type(item) is not A.ScopeTraversal:
                _err(self.diags, item, "Invalid ignore_changes",
                     "Each item of ignore_changes must be an attribute name, optionally followed by attributes "
                     "and literal indexes (labels, container[0].env).")
                continue
            path: AttrPath = (item.name,) + tuple(s.name if type(s) is A.GetAttr else s.key for s in item.steps)
            if item.name not in names:
                _err(self.diags, item, "Unsupported attribute",
                     f'This resource has no argument or block named "{item.name}".',
                     hint=suggest(item.name, names), end=item.start + len(item.name))
                continue
            if self._planned_reference(spec.model.type_name, item.name, item, item.start + len(item.name)):
                continue
            lc.ignore_changes.append(path)
        return lc

    # ---- stage 3: references -------------------------------------------------------------------------------
    def check_all_references(self) -> None:
        for mod in self.config.modules.values():
            for local in mod.locals.values():
                self.check_refs(mod, local.expr)
            for out in mod.outputs.values():
                self.check_refs(mod, out.expr)
            for call in mod.calls.values():
                for attr in call.inputs.values():
                    self.check_refs(mod, attr.expr)
            for decl in mod.resources.values():
                self.check_refs(mod, decl.count_expr, self_addr=decl.address, meta=decl.count_argument)
                self.check_refs(mod, decl.for_each_expr, self_addr=decl.address, meta="for_each")
                allow_count = decl.count_expr is not None
                allow_each = decl.for_each_expr is not None
                skip = set(META_ARGS) | {decl.count_argument}
                for expr in _body_exprs(decl.block.body, skip):
                    self.check_refs(mod, expr, count=allow_count, each=allow_each, self_addr=decl.address)

    def check_refs(self, mod: Module, expr: A.Node | None, count: bool = False, each: bool = False,
                   self_addr: ConfigAddress | None = None, meta: str = "") -> None:
        if expr is None:
            return
        for trav, steps in references(expr):
            ref = classify(trav, steps, mod.path, set(RESOURCE_TYPES))
            self._check_ref(mod, ref, count, each, self_addr, meta)

    def _check_ref(self, mod: Module, ref: Ref, count: bool, each: bool, self_addr: ConfigAddress | None,
                   meta: str) -> None:
        d = self.diags
        node = ref.node
        where = "the root module" if not mod.path else module_prefix(mod.path)[:-1]
        k = ref.kind
        if k in ("var", "local", "module", "count", "each", "path") and not ref.name:
            _err(d, node, "Invalid reference", f'The "{k}" object cannot be accessed directly. Instead, access '
                 "one of its attributes.", hint=f"write {k}.NAME", end=ref.end)
            return
        if k == "var":
            if ref.name not in mod.variables:
                _err(d, node, "Reference to undeclared input variable",
                     f'An input variable with the name "{ref.name}" has not been declared in {where}.',
                     hint=suggest(ref.name, mod.variables) or f'declare it: variable "{ref.name}" {{}}', end=ref.end)
        elif k == "local":
            if ref.name not in mod.locals:
                _err(d, node, "Reference to undeclared local value",
                     f'A local value with the name "{ref.name}" has not been declared in {where}.',
                     hint=suggest(ref.name, mod.locals) or f"declare it: locals {{ {ref.name} = ... }}",
                     end=ref.end)
        elif k == "module":
            call = mod.calls.get(ref.name)
            if call is None:
                _err(d, node, "Reference to undeclared module",
                     f'No module call named "{ref.name}" is declared in {where}.',
                     hint=suggest(ref.name, mod.calls) or f'declare it: module "{ref.name}" {{ source = "./..." }}',
                     end=ref.end)
                return
            out = ref.first_attr
            child = self.config.modules.get(call.path)
            if out is not None and child is not None and out not in child.outputs:
                step = ref.steps[0].node
                d.append(Diagnostic.error("Unsupported attribute",
                                          f'An output value with the name "{out}" has not been declared in '
                                          f"module.{ref.name}.", step.src, step.start, step.end,
                                          hint=suggest(out, child.outputs) or
                                          f'declare it in the module: output "{out}" {{ value = ... }}'))
        elif k == "resource":
            self._check_resource_ref(mod, ref, self_addr, meta, where)
        elif k == "count":
            if not count:
                _err(d, node, 'Reference to "count" in non-counted context',
                     'The "count" object can only be used in a resource block, and only when the "count" argument '
                     "(or a pod's replicas) is set.", hint="set count on this resource, or remove the reference",
                     end=ref.end)
            elif ref.name != "index":
                _err(d, node, 'Invalid "count" attribute',
                     f'The "count" object does not have an attribute named "{ref.name}". The only supported '
                     "attribute is count.index, the index of each instance.", hint="write count.index",
                     end=ref.end)
        elif k == "each":
            if not each:
                _err(d, node, 'Reference to "each" in context without for_each',
                     'The "each" object can be used only in a resource block, and only when the "for_each" '
                     "argument is set.", hint="set for_each on this resource, or remove the reference",
                     end=ref.end)
            elif ref.name not in ("key", "value"):
                _err(d, node, 'Invalid "each" attribute',
                     f'The "each" object does not have an attribute named "{ref.name}". The supported attributes '
                     "are each.key and each.value, the current key and value pair of the for_each collection.",
                     hint=suggest(ref.name, ["key", "value"]) or "write each.key or each.value", end=ref.end)
        elif k == "path":
            if ref.name not in ("module", "root", "cwd"):
                _err(d, node, 'Invalid "path" attribute',
                     f'The "path" object does not have an attribute named "{ref.name}". The supported attributes '
                     "are path.module, path.root and path.cwd.", hint=suggest(ref.name, ["module", "root", "cwd"]),
                     end=ref.end)
        elif k == "self":
            _err(d, node, 'Invalid "self" reference', 'The "self" object is not available in this context.',
                 hint="refer to the resource by its address, e.g. pod.web", end=ref.end)
        else:
            names = ["var", "local", "module", "count", "each", "path"] + sorted(_usable_types())
            _err(d, node, "Unknown variable",
                 f'There is no variable named "{ref.name}": a reference starts with var, local, module, count, '
                 "each, path or a resource type (" + ", ".join(sorted(_usable_types())) + ").",
                 hint=suggest(ref.name, names), end=ref.end)

    def _check_resource_ref(self, mod: Module, ref: Ref, self_addr: ConfigAddress | None, meta: str,
                            where: str) -> None:
        d = self.diags
        node = ref.node
        rtype = node.name
        if not ref.name:
            _err(d, node, "Invalid reference", "A reference to a resource type must be followed by at least one "
                 "attribute access, specifying the resource name.", hint=f"write {rtype}.NAME", end=ref.end)
            return
        addr = ref.address
        assert addr is not None
        decl = mod.resources.get(addr)
        planned = planned_type(rtype)
        if decl is None and planned is not None:
            # "declare it" would be bad advice: the declaration would be rejected too.
            _err(d, node, NOT_SUPPORTED, type_detail(rtype, planned), hint=planned.hint, end=ref.end)
            return
        if decl is None:
            same_type = [a.name for a in mod.resources if a.type == rtype]
            other = [str(a) for a in mod.resources if a.name == ref.name]
            close = difflib.get_close_matches(ref.name, same_type, n=1, cutoff=0.6)
            hint = f"did you mean {rtype}.{close[0]}?" if close else f"did you mean {other[0]}?" if other else \
                f'declare it: {rtype} "{ref.name}" {{ ... }}'
            _err(d, node, "Reference to undeclared resource",
                 f'A {rtype} resource named "{ref.name}" has not been declared in {where}.', hint=hint, end=ref.end)
            return
        if addr == self_addr:
            if meta:
                _err(d, node, f'Invalid {meta} argument',
                     f'The "{meta}" argument of {addr} cannot refer to {addr} itself.', end=ref.end)
            else:
                _err(d, node, "Self-referential block", f"Configuration for {addr} may not refer to itself.",
                     hint="use count.index, each.key or a local value instead", end=ref.end)
            return
        steps = list(ref.steps)
        if not steps:
            return
        first = steps[0]
        if decl.mode == "single":
            if first.kind == "index":
                _err(d, node, "Unexpected resource instance key",
                     f'Because {addr} does not have "count" or "for_each" set, references to it must not include '
                     "an index key.", hint=f"remove the brackets: {addr}.ATTRIBUTE", end=first.node.end)
                return
            attr_step = first if first.kind == "attr" else None
        else:
            if first.kind == "attr":
                example = f'{addr}[0].{first.value}' if decl.mode == "count" else f'{addr}["KEY"].{first.value}'
                arg = decl.count_argument if decl.mode == "count" else "for_each"
                _err(d, node, "Missing resource instance key",
                     f'Because {addr} has "{arg}" set, its attributes must be accessed on specific instances.',
                     hint=f"for example {example}, or {addr}[*].{first.value} for all of them"
                     if decl.mode == "count" else f"for example {example}, or "
                     f"values({addr})[*].{first.value} for all of them", end=first.node.end)
                return
            attr_step = steps[1] if len(steps) > 1 and steps[1].kind == "attr" else None
            if first.kind == "index" and first.value is not DYNAMIC_KEY:
                key = first.value
                if decl.mode == "count" and isinstance(key, str):
                    _err(d, first.node, "Invalid resource instance key",
                         f"{addr} has {decl.count_argument} set: its instances are numbered, not named.",
                         hint=f"write {addr}[0]")
                    return
                if decl.mode == "for_each" and isinstance(key, int) and not isinstance(key, bool):
                    _err(d, first.node, "Invalid resource instance key",
                         f'{addr} has "for_each" set: its instances are keyed by string.',
                         hint=f'write {addr}["KEY"]')
                    return
        if attr_step is not None:
            names = describe(RESOURCE_TYPES[addr.type]).names()
            n = attr_step.node
            if attr_step.value not in names:
                d.append(Diagnostic.error("Unsupported attribute",
                                          f'This object has no argument, nested block, or exported attribute named '
                                          f'"{attr_step.value}".', n.src, n.start, n.end,
                                          hint=suggest(attr_step.value, names)))
            else:
                self._planned_reference(addr.type, attr_step.value, n, n.end)

    def _planned_reference(self, resource_type: str, name: str, node: A.Node, end: int) -> bool:
        """A reference to a planned attribute (``pod.web.autoscale``, ``ignore_changes = [strategy]``) is a
        use of it too: an error, since the value is never set. True when reported."""
        planned = planned_attribute((resource_type, name))
        if planned is None:
            return False
        _err(self.diags, node, NOT_SUPPORTED, attribute_detail((resource_type, name), planned),
             hint=planned.hint, end=end)
        return True

    # ---- stage 4: dependencies -----------------------------------------------------------------------------
    def resolve_dependencies(self) -> None:
        for owner, mod, attr in self._pending_depends:
            owner.depends_on = self._decode_depends_on(attr, mod)
        for decl in self.config.resources.values():
            mod = self.config.modules[decl.module]
            refs: set[ConfigAddress] = set()
            skip = set(META_ARGS) | {decl.count_argument}
            for expr in [decl.count_expr, decl.for_each_expr, *_body_exprs(decl.block.body, skip)]:
                refs |= self.refs_of_expr(mod, expr)
            refs.discard(decl.address)
            decl.references = refs
            # depends_on of the module calls around this resource apply to it too
            path = decl.module
            extra: list[ConfigAddress] = []
            while path:
                call = self.config.module_calls[path]
                extra.extend(call.depends_on)
                path = call.parent
            for a in extra:
                if a not in decl.depends_on:
                    decl.depends_on.append(a)
        for (path, name), local in self.config.locals.items():
            local.references = self._refs_of_local(self.config.modules[path], name)
        for (path, name), out in self.config.outputs.items():
            out.references = self._refs_of_output(self.config.modules[path], name)

    def _decode_depends_on(self, attr: A.Attribute, mod: Module) -> list[ConfigAddress]:
        expr = attr.expr
        out: list[ConfigAddress] = []
        if type(expr) is not A.Tuple:
            _err(self.diags, expr, "Invalid depends_on", "depends_on must be a list of references to resources "
                 "or modules.", hint="write depends_on = [pod.db, module.app]")
            return out
        for item in expr.exprs:
            if type(item) is not A.ScopeTraversal:
                _err(self.diags, item, "Invalid depends_on reference",
                     "Each item of depends_on must be a reference to a resource or a module.",
                     hint="write a resource address like pod.db")
                continue
            ref = classify(item, _steps(item.steps), mod.path, set(RESOURCE_TYPES))
            before = len(self.diags)
            self._check_ref(mod, ref, False, False, None, "")
            if len(self.diags) != before:
                continue
            rest = [s for s in ref.steps if s.kind == "attr"]
            if ref.kind == "resource" and ref.address is not None:
                if rest:
                    _err(self.diags, item, "Invalid depends_on reference",
                         "References in depends_on must be to a whole object (resource, etc), not to an attribute "
                         "of an object.", hint=f"write {ref.address}", end=item.end)
                    continue
                out.append(ref.address)
            elif ref.kind == "module" and ref.name in mod.calls:
                if ref.steps:
                    _err(self.diags, item, "Invalid depends_on reference",
                         "References in depends_on must be to a whole module, not to one of its outputs.",
                         hint=f"write module.{ref.name}", end=item.end)
                    continue
                out.extend(a for a in sorted(self.config.resources)
                           if a.module[:len(mod.calls[ref.name].path)] == mod.calls[ref.name].path)
            else:
                _err(self.diags, item, "Invalid depends_on reference",
                     "depends_on can refer only to resources and modules.", hint="write a resource address like "
                     "pod.db", end=item.end)
        return out

    def refs_of_expr(self, mod: Module, expr: A.Node | None) -> set[ConfigAddress]:
        out: set[ConfigAddress] = set()
        if expr is None:
            return out
        for trav, steps in references(expr):
            ref = classify(trav, steps, mod.path, set(RESOURCE_TYPES))
            if ref.kind == "resource" and ref.address in mod.resources:
                out.add(ref.address)
            elif ref.kind == "local" and ref.name in mod.locals:
                out |= self._refs_of_local(mod, ref.name)
            elif ref.kind == "module" and ref.name in mod.calls:
                child = self.config.modules.get(mod.calls[ref.name].path)
                if child is None:
                    continue
                attr = ref.first_attr
                for n in ([attr] if attr in child.outputs else list(child.outputs)):
                    out |= self._refs_of_output(child, n)
            elif ref.kind == "var" and mod.path and ref.name in mod.variables:
                out |= self._refs_of_var(mod, ref.name)
        return out

    def check_cycles(self) -> None:
        from .cycles import cycle_diagnostics

        self.diags.extend(cycle_diagnostics(self.config))

    def _memoized(self, key: tuple, compute) -> set[ConfigAddress]:
        if key in self._memo:
            return self._memo[key]
        if key in self._visiting:  # a cycle: reported elsewhere (locals) or by the graph
            return set()
        self._visiting.add(key)
        try:
            result = compute()
        finally:
            self._visiting.discard(key)
        self._memo[key] = result
        return result

    def _refs_of_local(self, mod: Module, name: str) -> set[ConfigAddress]:
        return self._memoized((mod.path, "local", name), lambda: self.refs_of_expr(mod, mod.locals[name].expr))

    def _refs_of_output(self, mod: Module, name: str) -> set[ConfigAddress]:
        out = mod.outputs[name]
        return self._memoized((mod.path, "output", name),
                              lambda: self.refs_of_expr(mod, out.expr) | set(out.depends_on))

    def _refs_of_var(self, mod: Module, name: str) -> set[ConfigAddress]:
        call = self.config.module_calls[mod.path]
        attr = call.inputs.get(name)
        if attr is None:
            return set()
        parent = self.config.modules[call.parent]
        return self._memoized((mod.path, "var", name), lambda: self.refs_of_expr(parent, attr.expr))


def _body_exprs(body: A.Body, skip: set[str]) -> list[A.Expr]:
    """Every argument expression of a resource body and its nested blocks (not lifecycle)."""
    out = [a.expr for n, a in body.attributes.items() if n not in skip]
    for b in body.blocks:
        if b.type in META_BLOCKS:
            continue
        out.extend(_body_exprs(b.body, set()))
    return out
