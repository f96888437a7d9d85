"""``orch`` in a forked child of the test process: no interpreter start-up (everything is imported already), so
that tests killing many applies (SIGKILL at random points) stay fast."""

from __future__ import annotations

import os
import sys
from typing import TextIO


def forked_orch(argv: list[str]) -> tuple[int, TextIO]:
    """Run ``orch ARGV`` in a forked child, its standard output on a pipe: (pid, reader). The child inherits
    the environment (set it with monkeypatch before); reap it with ``os.waitpid``."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read_end)
            os.dup2(write_end, 1)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
            sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - the child never returns
            from orchdsl.cli import main

            code = main(argv)
        finally:
            os._exit(code or 0)
    os.close(write_end)
    return pid, os.fdopen(read_end)
