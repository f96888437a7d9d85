"""The lab's base image ``orch/busybox:test``: a root file system made of Debian's busybox-static.

Nothing is ever pulled: the image is ``docker import``-ed on every node from a folder holding
``bin/busybox`` and one link per applet (``sh``, ``httpd``, ``nc``, ``sleep``, ...), i.e. the
equivalent of ``tar -C rootfs -c . | docker import -c 'CMD ["/bin/sh"]' - orch/busybox:test``.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import tarfile
from pathlib import Path

IMAGE = "orch/busybox:test"
IMAGE_CMD = '["/bin/sh"]'
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
# Applets the lab's tests, docs and examples rely on; every other applet busybox offers is linked too.
REQUIRED_APPLETS = ("sh", "httpd", "nc", "sleep", "cat", "echo", "ip", "hostname", "ls", "env", "wget", "ps",
                    "kill", "true", "false", "printf")
_STAMP = ".orch-lab-rootfs"


def find_busybox() -> Path | None:
    for c in BUSYBOX_CANDIDATES:
        if os.access(c, os.X_OK):
            return Path(c)
    found = shutil.which("busybox")
    return Path(found) if found else None


def is_static_elf(path: Path) -> bool:
    """True if ``path`` is an ELF executable without a program interpreter (statically linked)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if len(head) < 52 or head[:4] != b"\x7fELF":
            return False
        is64, little = head[4] == 2, head[5] == 1
        e = "<" if little else ">"
        if is64:
            phoff, = struct.unpack(e + "Q", head[32:40])
            phentsize, phnum = struct.unpack(e + "HH", head[54:58])
        else:
            phoff, = struct.unpack(e + "I", head[28:32])
            phentsize, phnum = struct.unpack(e + "HH", head[42:46])
        for k in range(phnum):
            f.seek(phoff + k * phentsize)
            p_type, = struct.unpack(e + "I", f.read(4))
            if p_type == 3:  # PT_INTERP: dynamically linked
                return False
        return True


def applets(busybox: Path) -> list[str]:
    out = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=False).stdout
    names = {a.strip() for a in out.split() if a.strip() and "/" not in a and a.strip() != "busybox"}
    return sorted(names | set(REQUIRED_APPLETS))


def build_rootfs(dest: Path, busybox: Path) -> Path:
    """Create (or refresh, if busybox changed) the rootfs folder ``dest``; returns it."""
    stamp = dest / _STAMP
    st = busybox.stat()
    want = f"{busybox} {st.st_size} {int(st.st_mtime)}\n"
    if stamp.is_file() and stamp.read_text() == want and (dest / "bin" / "busybox").is_file():
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    for d in ("bin", "etc", "dev", "proc", "sys", "tmp", "root", "www", "var/www"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    os.chmod(dest / "tmp", 0o1777)
    shutil.copy2(busybox, dest / "bin" / "busybox")
    os.chmod(dest / "bin" / "busybox", 0o755)
    for a in applets(busybox):
        (dest / "bin" / a).symlink_to("busybox")
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                         "nobody:x:65534:65534:nobody:/:/bin/false\n")
    (dest / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (dest / "www" / "index.html").write_text("hello from the orch lab\n")
    stamp.write_text(want)
    return dest


def rootfs_tar(rootfs: Path) -> bytes:
    """The rootfs as an uncompressed tar (paths relative to the root, owned by root)."""
    buf = io.BytesIO()

    def owned_by_root(ti: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if ti.name.lstrip("./") == _STAMP:
            return None
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        return ti

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.add(str(rootfs), arcname=".", filter=owned_by_root)
    return buf.getvalue()
