"""Load the .orch files of a configuration directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..diagnostics import Diagnostic
from ..lang import ast as A
from ..lang import parse_file

SUFFIX = ".orch"


@dataclass
class ConfigFiles:
    directory: Path
    bodies: list[A.Body] = field(default_factory=list)

    def blocks(self, block_type: str) -> list[A.Block]:
        return [b for body in self.bodies for b in body.blocks if b.type == block_type]


def load_directory(directory: str | Path) -> tuple[ConfigFiles, list[Diagnostic]]:
    """Parse every ``*.orch`` file of ``directory`` (sorted by name, not recursive)."""
    d = Path(directory)
    config = ConfigFiles(d)
    if not d.is_dir():
        return config, [Diagnostic.error("No configuration directory", f"{d} is not a directory.",
                                         hint="pass the directory that holds your .orch files")]
    diags: list[Diagnostic] = []
    for path in sorted(d.glob(f"*{SUFFIX}")):
        try:
            body, file_diags = parse_file(path)
        except OSError as e:
            diags.append(Diagnostic.error("Failed to read file", f"{path}: {e.strerror or e}"))
            continue
        config.bodies.append(body)
        diags.extend(file_diags)
    return config, diags
