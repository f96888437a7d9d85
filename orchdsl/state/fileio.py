"""Small durable-I/O helpers shared by the state file, its backup and its journal."""

from __future__ import annotations

import os
from pathlib import Path


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def append_durably(fd: int, data: bytes) -> None:
    """Write ``data`` and flush it to disk (fdatasync: the data and the file size, not the times)."""
    write_all(fd, data)
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


def fsync_dir(directory: Path) -> None:
    """Make the creation, rename or deletion of a file in ``directory`` durable."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # platforms that cannot open directories: the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def unlink_quietly(path: str | os.PathLike[str]) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
