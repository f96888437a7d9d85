"""The syntax tree of the .orch language.

Every node carries ``src`` (the SourceFile) and ``start``/``end`` character
offsets; ``node.range`` turns them into a Range with line, column and byte.
Node classes mirror Go HCL's hclsyntax AST, so that evaluation can follow
the specification rule for rule.

Literal values: numbers are ``int`` or ``decimal.Decimal``, strings ``str``,
``True``/``False``, and ``None`` for null.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .source import Range, SourceFile


class Node:
    __slots__ = ("src", "start", "end")
    # Fields that hold the node's meaning (compared by ``shape``).
    fields: tuple[str, ...] = ()

    src: SourceFile
    start: int
    end: int

    @property
    def range(self) -> Range:
        return self.src.range(self.start, self.end)

    def children(self) -> Iterator[Node]:
        for f in self.fields:
            v = getattr(self, f)
            if isinstance(v, Node):
                yield v
            elif isinstance(v, (list, tuple)):
                for x in v:
                    if isinstance(x, Node):
                        yield x
                    elif isinstance(x, tuple):
                        yield from (y for y in x if isinstance(y, Node))

    def __repr__(self) -> str:
        args = ", ".join(f"{f}={getattr(self, f)!r}" for f in self.fields)
        return f"{type(self).__name__}({args})"


def shape(node: Any) -> Any:
    """The meaning of a tree without positions: equal shapes, equal programs."""
    if isinstance(node, Node):
        return (type(node).__name__,) + tuple(shape(getattr(node, f)) for f in node.fields)
    if isinstance(node, (list, tuple)):
        return tuple(shape(x) for x in node)
    if isinstance(node, dict):
        return tuple((k, shape(v)) for k, v in node.items())
    return node


def _node(name: str, fields: tuple[str, ...], doc: str, base: type = Node) -> type:
    def __init__(self, src, start, end, *values):
        self.src = src
        self.start = start
        self.end = end
        for f, v in zip(fields, values):
            setattr(self, f, v)

    return type(name, (base,), {"__slots__": fields, "fields": fields, "__init__": __init__, "__doc__": doc})


# ---- structure ---------------------------------------------------------------

class Body(Node):
    """Attributes and blocks, in source order.

    ``attributes`` (name -> Attribute) and ``blocks`` are computed on first
    use: most bodies of a large file are never asked, and a dict per body
    would dominate the tree's memory.
    """

    __slots__ = ("items", "_attributes", "_blocks")
    fields = ("items",)

    def __init__(self, src, start, end, items):
        self.src, self.start, self.end = src, start, end
        self.items = items
        self._attributes = None
        self._blocks = None

    @property
    def attributes(self) -> dict[str, Attribute]:
        if self._attributes is None:
            self._attributes = {i.name: i for i in self.items if type(i) is Attribute}
        return self._attributes

    @property
    def blocks(self) -> list[Block]:
        if self._blocks is None:
            self._blocks = [i for i in self.items if type(i) is Block]
        return self._blocks


class Attribute(Node):
    __slots__ = ("name", "expr")
    fields = ("name", "expr")

    def __init__(self, src, start, end, name, expr):
        self.src, self.start, self.end = src, start, end
        self.name, self.expr = name, expr

    @property
    def name_end(self) -> int:
        return self.start + len(self.name)

    @property
    def name_range(self) -> Range:
        return self.src.range(self.start, self.name_end)


class Block(Node):
    __slots__ = ("type", "labels", "body", "label_ranges")
    fields = ("type", "labels", "body")

    def __init__(self, src, start, end, type_, labels, body, label_ranges):
        self.src, self.start, self.end = src, start, end
        self.type, self.labels, self.body = type_, labels, body
        self.label_ranges = label_ranges  # [(start, end)] per label

    @property
    def type_range(self) -> Range:
        return self.src.range(self.start, self.start + len(self.type))


# ---- expressions ---------------------------------------------------------------

class Expr(Node):
    __slots__ = ()


def _expr(name: str, fields: tuple[str, ...], doc: str) -> type:
    return _node(name, fields, doc, Expr)


# A literal number, string, bool or null.
Literal = _expr("Literal", ("value",), "A literal value (number, string, bool, null).")
# A root variable followed by static attribute/index steps: var.x, each.value[0]
ScopeTraversal = _expr("ScopeTraversal", ("name", "steps"),
                       "A variable and its static traversal steps (GetAttr / IndexKey).")
# Traversal steps applied to any expression: f(x).a, [1,2][0]
RelativeTraversal = _expr("RelativeTraversal", ("source", "steps"), "Static steps applied to an expression.")
Index = _expr("Index", ("collection", "key"), "collection[key] with a non-literal key.")
Splat = _expr("Splat", ("source", "each", "attr_only"),
              "source[*].each or source.*.each; `each` is evaluated with AnonSymbol bound to an element.")
AnonSymbol = _expr("AnonSymbol", (), "The element placeholder inside a splat.")
FunctionCall = _expr("FunctionCall", ("name", "args", "expand_final"), "name(args...)")
Tuple = _expr("Tuple", ("exprs",), "[a, b, c]")
Object = _expr("Object", ("items",), "{k = v, ...}; items is a list of (ObjectKey, Expr).")
ObjectKey = _expr("ObjectKey", ("wrapped", "force_non_literal"),
                  "A key: a bare identifier is a literal string unless parenthesised.")
Conditional = _expr("Conditional", ("condition", "true_expr", "false_expr"), "c ? a : b")
BinaryOp = _expr("BinaryOp", ("op", "lhs", "rhs"), "lhs op rhs")
UnaryOp = _expr("UnaryOp", ("op", "operand"), "-x, !x")
Parens = _expr("Parens", ("expr",), "(expr)")
For = _expr("For", ("key_var", "val_var", "coll", "key_expr", "val_expr", "cond", "group"),
            "[for ...] or {for ...}; key_expr is None for a tuple.")
Template = _expr("Template", ("parts",), "A template producing a string from its parts.")
TemplateWrap = _expr("TemplateWrap", ("wrapped",), "\"${x}\": the value of x, unconverted.")
TemplateJoin = _expr("TemplateJoin", ("tuple",), "%{for} directive: joins the strings of a For.")
TemplateIf = _expr("TemplateIf", ("condition", "true_tpl", "false_tpl"), "%{if}...%{else}...%{endif}")
Invalid = _expr("Invalid", (), "Placeholder where a syntax error was found.")


class GetAttr(Node):
    """Traversal step: .name"""

    __slots__ = ("name",)
    fields = ("name",)

    def __init__(self, src, start, end, name):
        self.src, self.start, self.end, self.name = src, start, end, name


class IndexKey(Node):
    """Traversal step: [literal] or legacy .0"""

    __slots__ = ("key",)
    fields = ("key",)

    def __init__(self, src, start, end, key):
        self.src, self.start, self.end, self.key = src, start, end, key


BINARY_PRECEDENCE = {
    "||": 1, "&&": 2, "==": 3, "!=": 3, ">": 4, ">=": 4, "<": 4, "<=": 4,
    "+": 5, "-": 5, "*": 6, "/": 6, "%": 6,
}


def walk(node: Node) -> Iterator[Node]:
    """Every node of a tree, parents first."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(list(n.children())))


def traversal_refs(expr: Node) -> Iterator[ScopeTraversal]:
    """Every variable reference in an expression (for dependency graphs)."""
    for n in walk(expr):
        if type(n) is ScopeTraversal:
            yield n
