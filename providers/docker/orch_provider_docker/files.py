"""A container's ``file`` blocks, as Docker takes them (pure: no I/O).

A file is put into the container before its process starts:

* a plain file goes into the container's own filesystem, as a tar extracted into the created container
  (``PUT /containers/{id}/archive``), with its mode;
* a file whose content is sensitive (a secret) never touches the node's disk, the container's configuration,
  labels or environment: it lives on a tmpfs — a Docker volume of the local driver with ``type=tmpfs``, one per
  (container, directory) — written through the pod's infra container, which mounts each such volume under
  :data:`SECRETS_ROOT` and starts first; the app container mounts the volume read-only at the file's directory
  (what a Kubernetes secret volume does: the directory shows the secret files only).
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

SECRETS_ROOT = "/.orch-secrets"  # in the infra container only
DEFAULT_MODE = 0o644
SECRET_MODE = 0o400
TMPFS_OPTS = {"type": "tmpfs", "device": "tmpfs", "o": "size=4m,mode=0755"}


@dataclass(frozen=True)
class FileSpec:
    path: str
    content: bytes
    mode: int
    sensitive: bool


@dataclass(frozen=True)
class SecretGroup:
    """Sensitive files of one container in one directory: one tmpfs volume."""

    key: int
    container: str
    directory: str
    files: tuple[FileSpec, ...]


def covered(paths: Iterable[Sequence[Any]], target: tuple[Any, ...]) -> bool:
    """Whether ``target`` (a path in the planned values) is sensitive: a sensitive path covers what is below."""
    return any(tuple(p) == target[:len(p)] for p in paths)


def files_of(attrs: dict[str, Any], sensitive: Iterable[Sequence[Any]] = ()) -> dict[str, list[FileSpec]]:
    """Each container's files (by container name), with their mode and whether they are sensitive."""
    marks = [tuple(p) for p in sensitive]
    out: dict[str, list[FileSpec]] = {}
    for ci, c in enumerate(attrs.get("container") or []):
        if not isinstance(c, dict):
            continue
        specs = []
        for fi, f in enumerate(c.get("file") or []):
            if not isinstance(f, dict) or not isinstance(f.get("path"), str):
                continue
            secret = covered(marks, ("container", ci, "file", fi, "content")) or covered(marks, ("container", ci))
            mode = f.get("mode")
            specs.append(FileSpec(f["path"], str(f.get("content") or "").encode(),
                                  int(mode, 8) if isinstance(mode, str) else (SECRET_MODE if secret else DEFAULT_MODE),
                                  secret))
        if specs:
            out[str(c.get("name"))] = specs
    return out


def secret_groups(files: dict[str, list[FileSpec]]) -> list[SecretGroup]:
    groups: dict[tuple[str, str], list[FileSpec]] = {}
    for container in sorted(files):
        for f in files[container]:
            if f.sensitive:
                groups.setdefault((container, posixpath.dirname(f.path)), []).append(f)
    return [SecretGroup(k, c, d, tuple(fs)) for k, ((c, d), fs) in enumerate(sorted(groups.items()))]


def tar_of(entries: Iterable[tuple[str, bytes, int]]) -> bytes:
    """A tar of (relative path, content, mode), with the parent directories (0755) first."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        dirs: set[str] = set()
        for path, content, mode in entries:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d and d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(content), mode
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def plain_tar(files: Sequence[FileSpec]) -> bytes | None:
    """The container's plain files, to extract at ``/``; None when it has none."""
    plain = [(f.path.lstrip("/"), f.content, f.mode) for f in files if not f.sensitive]
    return tar_of(plain) if plain else None


def group_tar(group: SecretGroup) -> bytes:
    """A secret group's files, to extract at the root of its volume."""
    return tar_of((posixpath.basename(f.path), f.content, f.mode) for f in group.files)


def without_contents(attrs: dict[str, Any]) -> dict[str, Any]:
    """The attributes with each file's content replaced by its hash: what may go into a label."""
    conts = []
    for c in attrs.get("container") or []:
        if isinstance(c, dict) and c.get("file"):
            c = {**c, "file": [{**f, "content": {"sha256": hashlib.sha256(
                str(f.get("content") or "").encode()).hexdigest()}} if isinstance(f, dict) else f
                for f in c["file"]]}
        conts.append(c)
    return {**attrs, "container": conts} if "container" in attrs else attrs


__all__ = ["DEFAULT_MODE", "FileSpec", "SECRETS_ROOT", "SECRET_MODE", "SecretGroup", "TMPFS_OPTS", "covered",
           "files_of", "group_tar", "plain_tar", "secret_groups", "tar_of", "without_contents"]
