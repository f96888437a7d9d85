"""Configuration: the .orch files of a directory, its modules, and what they declare.

API (what the engine builds the graph and the planner on)::

    from orchdsl.config import load_config, expand, evaluate_outputs

    config, diags = load_config("app/", var_overrides={"replicas": "3"}, var_files=["prod.orchvars"],
                                env=os.environ)

``load_config(directory, var_overrides={}, var_files=[], env=os.environ)``
reads the directory's ``*.orch`` files and, recursively, the local modules
they call; checks every block against the resource schemas
(``orchdsl.schema``) and every reference; computes the root variables'
values (precedence: default < ``ORCH_VAR_name`` < ``*.orchvars`` files <
``--var-file`` < ``--var``); and evaluates everything once with resources
unknown, as ``orch validate`` does. It never raises on bad input: problems
are diagnostics with file:line:col and hints. When ``diags`` has errors the
Config may be partial.

``Config``:

* ``variables: dict[str, Value]``: the root variables' final values (typed,
  sensitive ones marked);
* ``resources: dict[ConfigAddress, ResourceDecl]``: every resource block of
  every module (``module.app.pod.web`` has ``module=(ModuleStep("app"),)``);
* ``locals``/``outputs``: ``dict[(ModulePath, name), LocalDecl/OutputDecl]``
  (``root_outputs`` for the root's, by name); ``module_calls: dict[ModulePath,
  ModuleCall]`` keyed by the child module's path; ``modules: dict[ModulePath,
  Module]`` with each module's declarations.

``ResourceDecl``: ``address`` (ConfigAddress), ``type``, ``name``, ``block``
(syntax tree), ``count_expr`` (``count``, or a pod's ``replicas`` — see
``count_argument``) / ``for_each_expr`` (or None), ``mode`` (``single`` /
``count`` / ``for_each``), ``depends_on: list[ConfigAddress]`` (checked;
``module.x`` entries expanded to the module's resources; depends_on of
enclosing module calls included), ``lifecycle`` (``create_before_destroy``,
``prevent_destroy``, ``ignore_changes: list[Path]`` with ``Path`` a tuple like
``("container", 0, "env")``, ``ignore_all_changes``), ``references:
set[ConfigAddress]`` (every resource its expressions use, through local
values, module outputs and module arguments, transitively), ``range``.

``expand(decl, ctx_values) -> (list[ResourceInstanceConfig], diags)``
evaluates ``count``/``for_each`` (which must be known: otherwise "Invalid
count argument" / "Invalid for_each argument") and each instance's
arguments. ``ctx_values`` maps the ConfigAddress of other resources to
their current or planned values as plain data with
``orchdsl.plan.UNKNOWN`` leaves: one dict per instance, in a ``list`` for a
resource with count (or replicas), in a ``dict`` by key for for_each.
Missing resources are unknown; missing computed attributes (a pod's ``ip``)
are unknown. Each ``ResourceInstanceConfig`` has ``address``
(ResourceAddress: ``pod.web[2]``, ``pod.web["a"]``), ``values`` (plain
data normalised by the schema: memory in bytes, cpu in cores, durations in
seconds, shorthands expanded, defaults filled, ``UNKNOWN`` where unknown,
``name`` set to the instance name, other computed attributes absent),
``sensitive_paths: set[Path]``.

``evaluate_outputs(config, ctx_values) -> (dict[str, OutputValue], diags)``:
the root outputs (``value`` plain data, ``sensitive``).

``load_directory`` and ``static_scope`` serve ``orch console``.
"""

from .evaluate import Scope, evaluate_outputs, expand, instance_value
from .files import ConfigFiles, load_directory
from .loader import load_config, unique
from .model import (Config, Lifecycle, LocalDecl, Module, ModuleCall, OutputDecl, OutputValue, ResourceDecl,
                    ResourceInstanceConfig, VariableDecl)
from .static_scope import static_scope
from .typeexpr import TypeConstraint, parse_type

__all__ = ["load_config", "expand", "evaluate_outputs", "Config", "ResourceDecl", "ResourceInstanceConfig",
           "Lifecycle", "LocalDecl", "OutputDecl", "OutputValue", "ModuleCall", "Module", "VariableDecl",
           "TypeConstraint", "parse_type", "Scope", "instance_value", "unique",
           "ConfigFiles", "load_directory", "static_scope"]
