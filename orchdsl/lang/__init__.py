"""The .orch language front end: lexer, parser, syntax tree, formatter."""

from .parser import parse, parse_expression, parse_file, parse_source
from .source import Pos, Range, SourceFile

__all__ = ["parse", "parse_expression", "parse_file", "parse_source", "Pos", "Range", "SourceFile"]
