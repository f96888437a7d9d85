"""The standard function library (Terraform's function names and semantics).

``standard_functions(base_dir)`` returns a fresh name -> Function table:
every pure function plus the file functions bound to ``base_dir``.
"""

from __future__ import annotations

import os

from . import collections, conversion, encoding, network, numeric, strings  # noqa: F401  (they register)
from . import filesystem
from .base import REGISTRY, ArgError, Function, FunctionError, Param, make_function, register

__all__ = ["standard_functions", "Function", "Param", "FunctionError", "ArgError", "make_function", "register",
           "REGISTRY"]


def standard_functions(base_dir: str | os.PathLike = ".") -> dict[str, Function]:
    funcs: dict[str, Function] = dict(REGISTRY)
    funcs.update(filesystem.file_functions(str(base_dir), funcs))
    return funcs
