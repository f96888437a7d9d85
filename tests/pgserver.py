"""A real PostgreSQL server for the pg backend's tests: a private cluster in /tmp/orch-pg on 127.0.0.1:55432.

Made with Debian's postgresql package (``.ci/install`` installs it): ``initdb`` (as the ``postgres`` user when we
are root: initdb refuses root), trust authentication on loopback only, superuser ``orch``. Started once and left
running for the next test run (pytest workers share it; a file lock serialises the start). fsync is off: the
tests kill clients, never the server.
"""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
import subprocess
import time
from pathlib import Path

PG_DIR = Path(os.environ.get("ORCH_TEST_PG_DIR", "/tmp/orch-pg"))
PORT = int(os.environ.get("ORCH_TEST_PG_PORT", "55432"))
CONNINFO = f"host=127.0.0.1 port={PORT} user=orch dbname=postgres"


class NoServer(Exception):
    pass


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise NoServer(f"PostgreSQL's {name} is not installed (apt-get install postgresql; .ci/install does it)")
    return path


def _as_owner(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def ready() -> bool:
    try:
        import psycopg

        with psycopg.connect(CONNINFO, connect_timeout=2):
            return True
    except Exception:  # noqa: BLE001
        return False


def ensure() -> str:
    """The server's conninfo, starting it (and making it) if needed. Raises NoServer."""
    if ready():
        return CONNINFO
    PG_DIR.mkdir(parents=True, exist_ok=True)
    with open(f"{PG_DIR}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready():
            return CONNINFO
        data = PG_DIR / "data"
        if os.geteuid() == 0:
            shutil.chown(PG_DIR, "postgres", "postgres")
        if not (data / "PG_VERSION").exists():
            out = subprocess.run(_as_owner([_bin("initdb"), "-D", str(data), "-U", "orch", "-A", "trust",
                                            "-E", "UTF8", "--no-sync"]), capture_output=True, text=True)
            if out.returncode != 0:
                raise NoServer(f"initdb failed: {out.stderr.strip()[-500:]}")
        options = f"-p {PORT} -k {PG_DIR} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off " \
                  "-c full_page_writes=off -c max_connections=200"
        out = subprocess.run(_as_owner([_bin("pg_ctl"), "-D", str(data), "-l", str(PG_DIR / "server.log"),
                                        "-o", options, "-w", "-t", "60", "start"]), capture_output=True, text=True)
        if out.returncode != 0:
            log = (PG_DIR / "server.log").read_text(errors="replace")[-800:] \
                if (PG_DIR / "server.log").exists() else ""
            raise NoServer(f"pg_ctl start failed: {out.stderr.strip()[-500:]} {log}")
        deadline = time.monotonic() + 30
        while not ready():
            if time.monotonic() > deadline:
                raise NoServer("the server did not accept connections within 30 s")
            time.sleep(0.2)
    return CONNINFO


if __name__ == "__main__":
    print(ensure())
