"""Small durable-I/O helpers shared by the state file, its backup and its journal."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
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


def replace_atomically(path: Path, data: bytes, mode: int | None,
                       before_replace: Callable[[], None] | None = None) -> None:
    """Write ``data`` to a temporary file beside ``path`` (``mode``, else mkstemp's 0600), flush it to disk and
    rename it over ``path``: a reader sees the old file or the new one, complete. Raises OSError; leaves no
    temporary file behind. The rename is not yet durable: call :func:`fsync_dir` when it must be."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            write_all(fd, data)
            os.fsync(fd)  # the data must be on disk before the rename makes it the file
        finally:
            os.close(fd)
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        unlink_quietly(tmp)
        raise
