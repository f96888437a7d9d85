"""Configuration: the .orch files of a directory and the scope they define."""

from .files import ConfigFiles, load_directory
from .static_scope import static_scope

__all__ = ["ConfigFiles", "load_directory", "static_scope"]
