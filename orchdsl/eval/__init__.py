"""Expression evaluation for the .orch language (HCL / cty semantics).

Typical use::

    from orchdsl.lang import parse_expression
    from orchdsl.eval import EvalContext, evaluate, standard_functions, from_python, format_value

    expr, diags = parse_expression('upper("${var.name}-x")')
    ctx = EvalContext({"var": from_python({"name": "web"})}, standard_functions("."))
    value, diags = evaluate(expr, ctx)
    print(format_value(value))     # "WEB-X"

Public API:

* ``Value`` and constructors (``string_val``, ``number_val``, ``bool_val``,
  ``list_val``, ``set_val``, ``map_val``, ``tuple_val``, ``object_val``,
  ``null``, ``unknown``), constants ``TRUE``, ``FALSE``, ``NULL``,
  ``DYNAMIC_VAL``, the ``UNKNOWN`` payload sentinel;
* types: ``STRING``, ``NUMBER``, ``BOOL``, ``DYNAMIC``, ``ListType``,
  ``SetType``, ``MapType``, ``TupleType``, ``ObjectType``;
* ``convert(value, type)`` (raises ``ConversionError``), ``unify(types)``;
* ``EvalContext(variables, functions)``, ``evaluate(expr, ctx)``;
* ``standard_functions(base_dir)``;
* ``format_value(v)`` (terraform console style), ``to_json(v)``;
* ``from_python(obj)``, ``to_python(v)``;
* ``parse_template(text, filename)``: a whole file as a template;
* ``parse_type_constraint(expr)`` -> (Type, Defaults, diagnostics) for
  ``variable`` type constraints, ``apply_defaults(value, defaults)``.
"""

from .convert import ConversionError, convert, unify
from .evaluator import evaluate
from .format import format_value, to_json
from .functions import Function, FunctionError, standard_functions
from .interop import from_python, to_python
from .scope import EvalContext
from .template_source import parse_template
from .typeexpr import Defaults, apply_defaults, parse_type_constraint
from .types import (BOOL, DYNAMIC, NUMBER, STRING, ListType, MapType, ObjectType, SetType, TupleType, Type)
from .values import (DYNAMIC_VAL, FALSE, NULL, TRUE, UNKNOWN, Value, bool_val, list_val, map_val, null,
                     number_val, object_val, set_val, string_val, tuple_val, unknown)

__all__ = [
    "Value", "UNKNOWN", "TRUE", "FALSE", "NULL", "DYNAMIC_VAL",
    "string_val", "number_val", "bool_val", "list_val", "set_val", "map_val", "tuple_val", "object_val",
    "null", "unknown",
    "Type", "STRING", "NUMBER", "BOOL", "DYNAMIC", "ListType", "SetType", "MapType", "TupleType", "ObjectType",
    "convert", "unify", "ConversionError",
    "EvalContext", "evaluate", "standard_functions", "Function", "FunctionError",
    "format_value", "to_json", "from_python", "to_python", "parse_template",
    "parse_type_constraint", "apply_defaults", "Defaults",
]
