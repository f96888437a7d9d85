"""The expression evaluator: syntax tree + context -> Value and diagnostics.

Semantics follow HCL's hclsyntax specification. Two conventions run through
the whole module:

* errors never raise: each becomes a Diagnostic at the offending node's
  range, and the failed sub-expression evaluates to ``DYNAMIC_VAL`` (unknown
  of unknown type). Every operation passes unknowns through silently, so one
  mistake produces one diagnostic, not a cascade;
* unknown values propagate: an operation on an unknown yields an unknown of
  the result type.
"""

from __future__ import annotations

from collections.abc import Callable

from ..diagnostics import Diagnostic
from ..lang import ast as A
from . import ops
from .convert import ConversionError, convert, describe_mismatch, unify, unify_values
from .functions.base import ArgError, ArityError, Function, FunctionError
from .scope import ANON, EvalContext
from .types import BOOL, DYNAMIC, STRING, ListType, TupleType, Type
from .values import (DYNAMIC_VAL, EMPTY_TUPLE_VAL, NULL, UNKNOWN, NumberRangeError, Value, ValueTooLarge, bool_val,
                     list_val, number_val, object_val, string_val, tuple_val, unknown)


def evaluate(expr: A.Node | None, ctx: EvalContext) -> tuple[Value, list[Diagnostic]]:
    """Evaluate ``expr`` in ``ctx``. Never raises; problems are returned as diagnostics."""
    if expr is None:
        return DYNAMIC_VAL, []
    ev = Evaluator()
    try:
        value = ev.eval(expr, ctx)
    except RecursionError:
        ev.error(expr, "Expression too deeply nested", "The expression nests too deeply to be evaluated.")
        value = DYNAMIC_VAL
    return value, ev.diags


# Iterations of for expressions (and template %{for}) in one evaluation: nested loops multiply, so that
# `[for i in range(1000) : [for j in range(1000) : [for k in range(1000) : k]]]` would never end.
MAX_ITERATIONS = 100_000
# Characters the templates of one evaluation produce, in all: each string is at most 16 Mi characters, but a
# loop of 100,000 iterations could make one each.
MAX_TEMPLATE_CHARACTERS = 256 << 20


class Evaluator:
    """Holds the diagnostics of one evaluation; methods evaluate one node kind each."""

    def __init__(self, budget: list[int] | None = None) -> None:
        self.diags: list[Diagnostic] = []
        # iterations and template characters so far, shared with sub-evaluators (try, can)
        self.budget = budget if budget is not None else [0, 0]

    # ---- plumbing ----------------------------------------------------------------
    def error(self, node: A.Node, summary: str, detail: str = "", hint: str = "") -> Value:
        self.diags.append(Diagnostic.error(summary, detail, node.src, node.start, node.end, hint=hint))
        return DYNAMIC_VAL

    def first_error(self, known: bool, node: A.Node, summary: str, detail: str = "", hint: str = "") -> None:
        """Report an error of a loop iteration unless an earlier iteration already failed (as HCL)."""
        if known:
            self.error(node, summary, detail, hint)

    def errors_since(self, mark: int) -> bool:
        return any(d.is_error for d in self.diags[mark:])

    def eval(self, node: A.Node, ctx: EvalContext) -> Value:
        method = _DISPATCH.get(type(node).__name__)
        if method is None:
            return self.error(node, "Unsupported expression", f"Cannot evaluate a {type(node).__name__}.")
        try:
            return method(self, node, ctx)
        except ValueTooLarge as e:
            return self.error(node, "Value too large", f"{_sentence(str(e))}",
                              hint="values this large are not supported; check for a repetition that doubles")

    def op_error(self, err: ops.OpError, whole: A.Node, parts: dict[str, A.Node] | None = None) -> Value:
        target = (parts or {}).get(err.operand or "", whole)
        return self.error(target, err.summary, err.detail, err.hint)

    # ---- leaves --------------------------------------------------------------------
    def literal(self, node, ctx: EvalContext) -> Value:
        try:
            return _literal_value(node.value)
        except NumberRangeError as e:  # the parser reports literals out of range; a tree built otherwise
            return self.error(node, "Number out of range", f"{e}.")

    def invalid(self, node, ctx: EvalContext) -> Value:
        return DYNAMIC_VAL  # the parser has reported it

    def anon(self, node, ctx: EvalContext) -> Value:
        v = ctx.lookup(ANON)
        if v is None:
            return self.error(node, "Invalid splat placeholder", "The splat item is not available here.")
        return v

    def scope_traversal(self, node, ctx: EvalContext) -> Value:
        v = ctx.lookup(node.name)
        if v is None:
            return self.error(node, "Unknown variable", f'There is no variable named "{node.name}".',
                              hint=ops.suggest(node.name, ctx.variable_names()))
        return self.traverse(v, node.steps, node)

    def traverse(self, v: Value, steps: list, whole: A.Node) -> Value:
        for step in steps:
            try:
                if type(step) is A.GetAttr:
                    v = ops.get_attr(v, step.name)
                else:
                    v = ops.index(v, _literal_value(step.key))
            except ops.OpError as e:
                return self.error(step, e.summary, e.detail, e.hint)
        return v

    # ---- structure ---------------------------------------------------------------------
    def relative_traversal(self, node, ctx: EvalContext) -> Value:
        return self.traverse(self.eval(node.source, ctx), node.steps, node)

    def index(self, node, ctx: EvalContext) -> Value:
        coll = self.eval(node.collection, ctx)
        key = self.eval(node.key, ctx)
        try:
            return ops.index(coll, key)
        except ops.OpError as e:
            return self.op_error(e, node, {"key": node.key})

    def parens(self, node, ctx: EvalContext) -> Value:
        return self.eval(node.expr, ctx)

    def tuple(self, node, ctx: EvalContext) -> Value:
        return tuple_val(self.eval(e, ctx) for e in node.exprs)

    def object(self, node, ctx: EvalContext) -> Value:
        attrs: dict[str, Value] = {}
        known = True
        sensitive = False
        for key_node, value_node in node.items:
            mark = len(self.diags)
            key_val = self.object_key(key_node, ctx)
            key_failed = self.errors_since(mark)
            value = self.eval(value_node, ctx)
            if key_failed:
                known = False
                continue
            if key_val.raw is None:
                self.error(value_node, "Null value as key", "Can't use a null value as a key.")
                known = False
                continue
            try:
                kv = convert(key_val, STRING)
            except ConversionError as e:
                self.error(key_node, "Incorrect key type", f"Can't use this value as a key: {e}.")
                known = False
                continue
            if kv.raw is UNKNOWN:
                known = False
                continue
            sensitive = sensitive or kv.sensitive
            attrs[kv.raw] = value  # a repeated key overrides the earlier one, as in HCL
        if not known:
            return DYNAMIC_VAL
        return object_val(attrs).mark(sensitive)

    def object_key(self, node, ctx: EvalContext) -> Value:
        wrapped = node.wrapped
        if not node.force_non_literal:
            if type(wrapped) is A.ScopeTraversal:
                if wrapped.steps:
                    return self.error(node, "Ambiguous attribute key",
                                      "If this expression is intended to be a reference, wrap it in parentheses. "
                                      "If it's instead intended as a literal name containing periods, wrap it in "
                                      "quotes to create a string literal.")
                return string_val(wrapped.name)  # a bare identifier is a literal key
            if type(wrapped) is A.Literal and (wrapped.value is None or isinstance(wrapped.value, bool)):
                # The keywords null/true/false are names here, not values.
                return string_val("null" if wrapped.value is None else str(wrapped.value).lower())
        return self.eval(wrapped, ctx)

    # ---- operators -------------------------------------------------------------------------
    def binary_op(self, node, ctx: EvalContext) -> Value:
        op = node.op
        if op in ops.LOGICAL:
            return self.logical_op(node, ctx)
        lhs = self.eval(node.lhs, ctx)
        rhs = self.eval(node.rhs, ctx)
        try:
            return ops.binary(op, lhs, rhs)
        except ops.OpError as e:
            return self.op_error(e, node, {"lhs": node.lhs, "rhs": node.rhs})

    def logical_op(self, node, ctx: EvalContext) -> Value:
        """``&&`` and ``||`` short-circuit on diagnostics too, as HCL does.

        Both sides are evaluated, but when one side decides the result the
        other side's errors are dropped, so ``x != null && x.a`` is safe.
        """
        m0 = len(self.diags)
        lhs = self.eval(node.lhs, ctx)
        m1 = len(self.diags)
        rhs = self.eval(node.rhs, ctx)
        lhs_diags, rhs_diags = self.diags[m0:m1], self.diags[m1:]
        del self.diags[m0:]
        conv: list[Value] = []
        for side, v, n in (("left", lhs, node.lhs), ("right", rhs, node.rhs)):
            try:
                conv.append(convert(v, BOOL))
            except ConversionError as e:
                self.error(n, "Invalid operand", f"Unsuitable value for {side} operand: {e}.")
        if len(conv) < 2:
            self.diags.extend(lhs_diags + rhs_diags)
            return unknown(BOOL)
        a, b = conv
        sensitive = a.sensitive or b.sensitive
        decisive = node.op == "||"  # the value that settles the result on its own
        ak, bk = a.raw is not UNKNOWN, b.raw is not UNKNOWN
        forced: tuple[Value, list[Diagnostic]] | None = None
        if not ak and not bk:
            if not any(d.is_error for d in lhs_diags):
                forced = (unknown(BOOL), lhs_diags)
        elif ak and a.raw is decisive:
            forced = (bool_val(decisive), lhs_diags)
        elif bk and b.raw is decisive:
            forced = (bool_val(decisive), rhs_diags)
        elif not ak:
            forced = (unknown(BOOL), lhs_diags)
        elif not bk:
            forced = (unknown(BOOL), rhs_diags)
        if forced is not None:
            self.diags.extend(forced[1])
            return forced[0].mark(sensitive)
        self.diags.extend(lhs_diags + rhs_diags)
        if any(d.is_error for d in lhs_diags + rhs_diags):
            return unknown(BOOL)
        try:
            return ops.binary(node.op, a, b)
        except ops.OpError as e:
            return self.op_error(e, node, {"lhs": node.lhs, "rhs": node.rhs})

    def unary_op(self, node, ctx: EvalContext) -> Value:
        v = self.eval(node.operand, ctx)
        try:
            return ops.unary(node.op, v)
        except ops.OpError as e:
            return self.op_error(e, node, {"unary": node.operand})

    def conditional(self, node, ctx: EvalContext) -> Value:
        m0 = len(self.diags)
        t = self.eval(node.true_expr, ctx)
        m1 = len(self.diags)
        f = self.eval(node.false_expr, ctx)
        true_diags, false_diags = self.diags[m0:m1], self.diags[m1:]
        del self.diags[m0:]
        # A literal null on one side takes the other side's type (HCL special case).
        if t.type == DYNAMIC and t.raw is None:
            rtype: Type | None = f.type
        elif f.type == DYNAMIC and f.raw is None:
            rtype = t.type
        elif t.type == DYNAMIC or f.type == DYNAMIC:
            rtype = DYNAMIC
        else:
            rtype = unify([t.type, f.type])
        if rtype is None:
            self.diags.append(Diagnostic.error(
                "Inconsistent conditional result types",
                "The true and false result expressions must have consistent types. "
                f"{describe_mismatch(t.type, f.type)}.", node.src, node.true_expr.start, node.false_expr.end,
                hint="convert both results to one type, e.g. with tostring(), tolist() or tomap()"))
            return DYNAMIC_VAL
        cond = self.eval(node.condition, ctx)
        if cond.raw is None:
            return self.error(node.condition, "Null condition",
                              "The condition value is null. Conditions must either be true or false.")
        try:
            cb = convert(cond, BOOL)
        except ConversionError:
            return self.error(node.condition, "Incorrect condition type",
                              "The condition expression must be of type bool.")
        if cb.raw is UNKNOWN:
            # Neither branch is taken yet, so neither branch's errors are reported (as HCL).
            return Value(rtype, UNKNOWN, cond.sensitive or t.sensitive or f.sensitive)
        chosen, chosen_diags = (t, true_diags) if cb.raw else (f, false_diags)
        self.diags.extend(chosen_diags)
        try:
            out = convert(chosen, rtype)
        except ConversionError as e:
            return self.error(node.true_expr if cb.raw else node.false_expr,
                              "Inconsistent conditional result types",
                              f"The {'true' if cb.raw else 'false'} result value has the wrong type: {e}.")
        return out.mark(cond.sensitive)

    # ---- functions -----------------------------------------------------------------------------
    def function_call(self, node, ctx: EvalContext) -> Value:
        fn = ctx.function(node.name)
        if fn is None and not ctx.allows_functions:
            return self.error(node, "Function calls not allowed", "Functions may not be called here.")
        if fn is None:
            hint = ops.suggest(node.name, ctx.functions.keys())
            if "::" in node.name:
                detail = f'There is no function named "{node.name}" (provider functions are not supported).'
            else:
                detail = f'There is no function named "{node.name}".'
            return self.error(node, "Call to unknown function", detail, hint=hint)
        if fn.lazy:
            return self.lazy_call(fn, node, ctx)
        mark = len(self.diags)
        args = [self.eval(a, ctx) for a in node.args]
        arg_nodes: list[A.Node] = list(node.args)
        if self.errors_since(mark):
            return Value(fn.returns, UNKNOWN)
        if node.expand_final and args:
            last, last_node = args.pop(), arg_nodes.pop()
            if last.raw is None:
                return self.error(last_node, "Invalid expanding argument value",
                                  "The expanding argument (indicated by ...) must not be null.")
            if not (last.type.is_list or last.type.is_tuple or last.type.is_set or last.type == DYNAMIC):
                return self.error(last_node, "Invalid expanding argument value",
                                  "The expanding argument (indicated by ...) must be of a tuple, list, or set "
                                  "type.")
            if last.raw is UNKNOWN:
                return Value(fn.returns, UNKNOWN, last.sensitive)
            args.extend(e.mark(last.sensitive) for e in last.raw)
            arg_nodes.extend([last_node] * len(last.raw))
        return self.apply(fn, args, arg_nodes, node)

    def apply(self, fn: Function, args: list[Value], arg_nodes: list[A.Node], node: A.Node) -> Value:
        mark = len(self.diags)
        value = self._apply(fn, args, arg_nodes, node)
        if len(self.diags) > mark and any(a.is_deeply_sensitive for a in args):
            # A function's message may quote what it was given: never a sensitive argument.
            from ..redact import redact_by_values

            for d in self.diags[mark:]:
                d.detail = redact_by_values(d.detail, args)
        return value

    def _apply(self, fn: Function, args: list[Value], arg_nodes: list[A.Node], node: A.Node) -> Value:
        try:
            return fn.call(args)
        except ArityError as e:
            target = arg_nodes[len(fn.params)] if e.summary.startswith("Too many") and fn.params is not None \
                and len(arg_nodes) > len(fn.params) else node
            return self.error(target, e.summary, e.message, hint=f"the signature is {fn.signature}")
        except ArgError as e:
            p = fn.param_for(e.index)
            target = arg_nodes[e.index] if e.index < len(arg_nodes) else node
            return self.error(target, "Invalid function argument",
                              f'Invalid value for "{p.name}" parameter: {_sentence(e.message)}',
                              hint=f"the signature is {fn.signature}")
        except FunctionError as e:
            return self.error(node, "Error in function call",
                              f'Call to function "{fn.name}" failed: {_sentence(e.message)}')
        except ValueTooLarge as e:
            return self.error(node, "Error in function call", f'Call to function "{fn.name}" failed: '
                              f"{_sentence(str(e))}", hint="values this large are not supported")
        except NumberRangeError as e:
            message = str(e).replace("the number", "the result", 1)
            return self.error(node, "Error in function call", f'Call to function "{fn.name}" failed: '
                              f"{_sentence(message)}", hint="numbers this large (or small) are not supported")
        except RecursionError:
            raise
        except Exception as e:  # a bug in a function must not crash the caller
            return self.error(node, "Error in function call",
                              f'Call to function "{fn.name}" failed: internal error: {type(e).__name__}: {e}.')

    def lazy_call(self, fn: Function, node, ctx: EvalContext) -> Value:
        """try() and can(): their arguments' errors are results, not diagnostics."""
        if node.expand_final:
            return self.error(node, "Invalid expanding argument value",
                              f'The "{fn.name}" function does not accept an expanded argument.')
        if fn.name == "can" and len(node.args) != 1:
            return self.error(node, "Not enough function arguments" if not node.args else
                              "Too many function arguments",
                              'Function "can" expects 1 argument(s).', hint=f"the signature is {fn.signature}")
        if not node.args:
            return self.error(node, "Not enough function arguments",
                              f'Function "{fn.name}" requires at least one argument.',
                              hint=f"the signature is {fn.signature}")
        failures: list[Diagnostic] = []
        for arg in node.args:
            if self.depends_on_unknowns(arg, ctx):
                return unknown(BOOL) if fn.name == "can" else DYNAMIC_VAL
            sub = Evaluator(self.budget)
            v = sub.eval(arg, ctx)
            if any(d.is_error for d in sub.diags):
                if fn.name == "can":
                    return bool_val(False)
                failures.extend(d for d in sub.diags if d.is_error)
                continue
            self.diags.extend(sub.diags)  # warnings
            if fn.name == "can":
                return bool_val(True)
            return v
        lines = ["no expression succeeded:"]
        for d in failures:
            where = f" (at {d.subject})" if d.subject is not None else ""
            lines.append(f"- {d.summary}{where}\n  {d.detail}")
        lines.append("\nAt least one expression must produce a successful result")
        return self.error(node, "Error in function call",
                          'Call to function "try" failed: ' + "\n".join(lines) + ".")

    def depends_on_unknowns(self, expr: A.Node, ctx: EvalContext) -> bool:
        """Does ``expr`` read a value that is not known yet? (Then try/can cannot decide.)"""
        for ref in A.traversal_refs(expr):
            if ctx.lookup(ref.name) is None:
                continue  # a for-expression variable or a genuine error
            sub = Evaluator(self.budget)
            v = sub.scope_traversal(ref, ctx)
            if not sub.diags and not v.is_wholly_known:
                return True
        return False

    # ---- splat and for -----------------------------------------------------------------------------
    def splat(self, node, ctx: EvalContext) -> Value:
        mark = len(self.diags)
        src = self.eval(node.source, ctx)
        if self.errors_since(mark):
            return DYNAMIC_VAL
        t = src.type
        # Any value but a sequence acts as a one-element tuple (or an empty one when null).
        upgrade = not (t.is_tuple or t.is_list or t.is_set)
        if src.raw is None:
            if upgrade:
                return EMPTY_TUPLE_VAL
            return self.error(node.source, "Splat of null value",
                              "Splat expressions (with the * symbol) cannot be applied to null sequences.")
        if t == DYNAMIC:
            return DYNAMIC_VAL
        upgraded_unknown = False
        if upgrade:
            # An unknown single value might become null (zero elements) or not (one).
            upgraded_unknown = src.raw is UNKNOWN
            src = tuple_val([src.unmark()]).mark(src.sensitive)
            t = src.type
        if src.raw is UNKNOWN:
            return Value(self.splat_result_type(node, t, ctx, report=True), UNKNOWN, src.sensitive)
        mark = len(self.diags)
        out = [self.eval(node.each, ctx.child({ANON: e.mark(src.sensitive)})) for e in src.raw]
        if upgraded_unknown:
            return DYNAMIC_VAL
        if self.errors_since(mark):
            return Value(self.splat_result_type(node, t, ctx), UNKNOWN)
        if t.is_list or t.is_set:
            if not out:
                return list_val([], self.splat_result_type(node, t, ctx, report=True).element)
            unified = unify_values(out)
            if unified is not None:
                return list_val(unified[1], unified[0]).mark(src.sensitive)
        return tuple_val(out).mark(src.sensitive)

    def splat_result_type(self, node, t: Type, ctx: EvalContext, report: bool = False) -> Type:
        """The type a splat yields: `each` applied to unknown elements of the source's element types."""
        sub = self if report else Evaluator(self.budget)
        if t.is_tuple:
            return TupleType(sub.eval(node.each, ctx.child({ANON: unknown(et)})).type for et in t.elements)
        return ListType(sub.eval(node.each, ctx.child({ANON: unknown(t.element)})).type)

    def for_expr(self, node, ctx: EvalContext) -> Value:
        coll = self.eval(node.coll, ctx)
        if coll.raw is None:
            return self.error(node.coll, "Iteration over null value",
                              "A null value cannot be used as the collection in a 'for' expression.")
        t = coll.type
        if t == DYNAMIC or coll.raw is UNKNOWN:
            if t.is_primitive:
                return self._not_iterable(node, t)
            return DYNAMIC_VAL
        if t.is_primitive:
            return self._not_iterable(node, t)
        is_object = node.key_expr is not None
        known = True
        items: list[Value] = []
        groups: dict[str, list[Value]] = {}
        budget = self.budget
        if budget[0] > MAX_ITERATIONS:
            return self._out_of_budget(node)
        for k, v in coll.iter_items():
            budget[0] += 1
            if budget[0] > MAX_ITERATIONS:
                return self._out_of_budget(node)
            names = {node.val_var: v.mark(coll.sensitive)}
            if node.key_var is not None:
                names[node.key_var] = k
            child = ctx.child(names)
            if node.cond is not None:
                c = self._loop_value(node.cond, child, BOOL, known, "Invalid 'for' condition",
                                     "The value of the 'if' clause must not be null.",
                                     "The 'if' clause value is invalid: {}.")
                if c is None:
                    known = False
                    continue
                if not c.raw:
                    continue
            if is_object:
                kv = self._loop_value(node.key_expr, child, STRING, known, "Invalid object key",
                                      "Key expression in 'for' expression must not produce a null value.",
                                      "The key expression produced an invalid result: {}.")
                if kv is None:
                    known = False
                    continue
                key = kv.raw
                val = self.eval(node.val_expr, child)
                if key in groups and not node.group:
                    self.error(node.key_expr, "Duplicate object key",
                               f'Two different items produced the key "{key}" in this \'for\' expression. If '
                               "duplicates are expected, use the ellipsis (...) after the value expression to "
                               "enable grouping by key.", hint="add ... after the value expression")
                    known = False
                    continue
                groups.setdefault(key, []).append(val)
            else:
                items.append(self.eval(node.val_expr, child))
        if not known:
            return DYNAMIC_VAL
        if not is_object:
            return tuple_val(items).mark(coll.sensitive)
        if node.group:
            return object_val({k: tuple_val(vs) for k, vs in groups.items()}).mark(coll.sensitive)
        return object_val({k: vs[0] for k, vs in groups.items()}).mark(coll.sensitive)

    def _template_result(self, text: str, node) -> Value:
        self.budget[1] += len(text)
        if self.budget[1] > MAX_TEMPLATE_CHARACTERS:
            if any(d.summary == "Expression too expensive" for d in self.diags):
                return Value(STRING, UNKNOWN)
            self.error(node, "Expression too expensive",
                       f"The templates of this expression made more than {MAX_TEMPLATE_CHARACTERS >> 20} Mi "
                       "characters in all.", hint="make fewer or shorter strings, or compute them in steps")
            return Value(STRING, UNKNOWN)
        return string_val(text)

    def _out_of_budget(self, node) -> Value:
        """Reported once per evaluation (an inner loop ran out first: the outer ones stop quietly)."""
        if any(d.summary == "Expression too expensive" for d in self.diags):
            return DYNAMIC_VAL
        return self.error(node, "Expression too expensive",
                          f"The 'for' expressions of this expression ran more than {MAX_ITERATIONS:,} iterations "
                          "(nested loops multiply).",
                          hint="iterate over smaller collections, or compute the result in steps")

    def _loop_value(self, expr, ctx: EvalContext, want: Type, known: bool, summary: str, null_detail: str,
                    invalid_detail: str) -> Value | None:
        """A for loop's per-item condition or key as ``want``; None when unusable (its error is reported
        once per loop, as HCL does) or unknown."""
        mark = len(self.diags)
        v = self.eval(expr, ctx)
        if self.errors_since(mark):
            return None
        if v.raw is None:
            self.first_error(known, expr, summary, null_detail)
            return None
        try:
            v = convert(v, want)
        except ConversionError as e:
            self.first_error(known, expr, summary, invalid_detail.format(e))
            return None
        return None if v.raw is UNKNOWN else v

    def _not_iterable(self, node, t: Type) -> Value:
        return self.error(node.coll, "Iteration over non-iterable value",
                          f"A value of type {t.friendly_name()} cannot be used as the collection in a 'for' "
                          "expression.")

    # ---- templates ----------------------------------------------------------------------------
    def template(self, node, ctx: EvalContext) -> Value:
        out: list[str] = []
        is_known = True
        sensitive = False
        for part in node.parts:
            if type(part) is A.Literal and isinstance(part.value, str):
                out.append(part.value)
                continue
            mark = len(self.diags)
            v = self.eval(part, ctx)
            if self.errors_since(mark):
                is_known = False
                continue
            sensitive = sensitive or v.is_deeply_sensitive
            if v.raw is None:
                self.error(part, "Invalid template interpolation value",
                           "The expression result is null. Cannot include a null value in a string template.",
                           hint='use coalesce(x, "") or a conditional to supply a default')
                is_known = False
                continue
            try:
                s = convert(v.unmark_deep(), STRING)
            except ConversionError as e:
                self.error(part, "Invalid template interpolation value",
                           f"Cannot include the given value in a string template: {e}.",
                           hint="use jsonencode() or join() to turn a collection into a string")
                is_known = False
                continue
            if s.raw is UNKNOWN:
                is_known = False
                continue
            out.append(s.raw)
        if not is_known:
            return Value(STRING, UNKNOWN, sensitive)
        return self._template_result("".join(out), node).mark(sensitive)

    def template_wrap(self, node, ctx: EvalContext) -> Value:
        return self.eval(node.wrapped, ctx)

    def template_if(self, node, ctx: EvalContext) -> Value:
        cond = self.eval(node.condition, ctx)
        if cond.raw is None:
            return self.error(node.condition, "Null condition",
                              "The condition value is null. Conditions must either be true or false.")
        try:
            cb = convert(cond, BOOL)
        except ConversionError:
            return self.error(node.condition, "Incorrect condition type",
                              "The condition expression must be of type bool.")
        if cb.raw is UNKNOWN:
            return Value(STRING, UNKNOWN, cond.sensitive)
        return self.eval(node.true_tpl if cb.raw else node.false_tpl, ctx).mark(cond.sensitive)

    def template_join(self, node, ctx: EvalContext) -> Value:
        v = self.eval(node.tuple, ctx)
        if v.raw is UNKNOWN:
            return Value(STRING, UNKNOWN, v.sensitive)
        out = []
        is_known = True
        for e in v.raw:
            if e.raw is None:
                self.error(node, "Invalid template interpolation value",
                           "An iteration result is null. Cannot include a null value in a string template.")
                return DYNAMIC_VAL
            try:
                s = convert(e.unmark_deep(), STRING)
            except ConversionError as err:
                return self.error(node, "Invalid template interpolation value",
                                  f"Cannot include one of the interpolation results into the string template: "
                                  f"{err}.")
            if s.raw is UNKNOWN:
                is_known = False
            else:
                out.append(s.raw)
        if not is_known:
            return Value(STRING, UNKNOWN, v.is_deeply_sensitive)
        return self._template_result("".join(out), node).mark(v.is_deeply_sensitive)


def _literal_value(v) -> Value:
    if v is None:
        return NULL
    if isinstance(v, bool):
        return bool_val(v)
    if isinstance(v, str):
        return string_val(v)
    return number_val(v)


def _sentence(msg: str) -> str:
    return msg if msg.endswith((".", "?", "!", "\n")) else msg + "."


_DISPATCH: dict[str, Callable[[Evaluator, A.Node, EvalContext], Value]] = {
    "Literal": Evaluator.literal,
    "Invalid": Evaluator.invalid,
    "AnonSymbol": Evaluator.anon,
    "ScopeTraversal": Evaluator.scope_traversal,
    "RelativeTraversal": Evaluator.relative_traversal,
    "Index": Evaluator.index,
    "Parens": Evaluator.parens,
    "Tuple": Evaluator.tuple,
    "Object": Evaluator.object,
    "BinaryOp": Evaluator.binary_op,
    "UnaryOp": Evaluator.unary_op,
    "Conditional": Evaluator.conditional,
    "FunctionCall": Evaluator.function_call,
    "Splat": Evaluator.splat,
    "For": Evaluator.for_expr,
    "Template": Evaluator.template,
    "TemplateWrap": Evaluator.template_wrap,
    "TemplateIf": Evaluator.template_if,
    "TemplateJoin": Evaluator.template_join,
}
