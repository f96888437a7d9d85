"""A fake Docker Engine with the methods of ``orch_provider_docker.transport.Engine``.

It keeps containers in memory, records every call, enforces name uniqueness
(409) and answers ``list`` with the same shape as ``GET /containers/json``.
"""

from __future__ import annotations

import hashlib
import itertools
import threading

from orch_provider_docker.transport import Conflict, EngineError, NodeError, NodeSettings, NotFound

_ids = itertools.count(1)


def _new_id() -> str:
    return hashlib.sha256(str(next(_ids)).encode()).hexdigest()


class FakeEngine:
    def __init__(self, node: str, images: tuple[str, ...] = ("orch/busybox:test",), subnet: int = 1):
        self.node = node
        self.endpoint = f"fake://{node}"
        self.images = set(images)
        self.containers: dict[str, dict] = {}  # id -> container record
        self.calls: list[tuple] = []
        self.fail_start: set[str] = set()  # container names whose start fails
        self.subnet = subnet
        self._ip = itertools.count(2)
        self._lock = threading.Lock()
        self.version_info = {"ApiVersion": "1.41", "Version": "20.10.24"}
        self.architecture = "x86_64"
        self.imported: dict[str, bytes] = {}  # image ref -> the tar it was imported from

    # -- helpers for tests ---------------------------------------------------------------------------
    def by_name(self, name: str) -> dict:
        for c in self.containers.values():
            if c["Name"] == name:
                return c
        raise KeyError(name)

    def names(self) -> list[str]:
        return sorted(c["Name"] for c in self.containers.values())

    def add_raw(self, name: str, labels: dict, state: str = "running", image: str = "orch/busybox:test",
                status: str = "") -> str:
        cid = _new_id()
        self.containers[cid] = {"Id": cid, "Name": name, "Config": {"Image": image, "Labels": dict(labels)},
                                "HostConfig": {}, "State": state, "Status": status, "Image": image,
                                "Created": next(_ids), "IP": f"198.19.{self.subnet}.{next(self._ip)}"}
        return cid

    def _find(self, ref: str) -> dict:
        if ref in self.containers:
            return self.containers[ref]
        for c in self.containers.values():
            if c["Name"] == ref or c["Id"].startswith(ref) and len(ref) >= 12:
                return c
        raise NotFound(f"No such container: {ref}", 404)

    def _entry(self, c: dict) -> dict:
        return {"Id": c["Id"], "Names": ["/" + c["Name"]], "Image": c["Image"], "ImageID": "sha256:x",
                "Labels": dict(c["Config"]["Labels"]), "State": c["State"], "Status": c["Status"],
                "Created": c["Created"],
                "HostConfig": {"NetworkMode": c["HostConfig"].get("NetworkMode", "bridge")},
                "NetworkSettings": {"Networks": {"bridge": {"IPAddress": c["IP"]}}
                                    if c["HostConfig"].get("NetworkMode", "bridge") == "bridge" else {}}}

    # -- Engine methods --------------------------------------------------------------------------------
    def version(self) -> dict:
        return self.version_info

    def info(self) -> dict:
        self.calls.append(("info",))
        return {"ID": f"ENGINE-{self.node}", "NCPU": 4, "MemTotal": 8 << 30, "ServerVersion": "20.10.24",
                "Architecture": self.architecture}

    def list_containers(self, labels) -> list[dict]:
        labels = list(labels)
        self.calls.append(("list", tuple(labels)))
        out = []
        for c in self.containers.values():
            lb = c["Config"]["Labels"]
            ok = True
            for f in labels:
                k, eq, v = f.partition("=")
                if (eq and lb.get(k) != v) or (not eq and k not in lb):
                    ok = False
            if ok:
                out.append(self._entry(c))
        return out

    def create(self, config: dict, name: str) -> str:
        with self._lock:
            self.calls.append(("create", name, config))
            if any(c["Name"] == name for c in self.containers.values()):
                raise Conflict(f'Conflict. The container name "/{name}" is already in use', 409)
            if config["Image"] not in self.images:
                raise NotFound(f"No such image: {config['Image']}", 404)
            cid = _new_id()
            self.containers[cid] = {"Id": cid, "Name": name, "Config": dict(config, Labels=dict(config["Labels"])),
                                    "HostConfig": dict(config.get("HostConfig") or {}), "State": "created",
                                    "Status": "Created", "Image": config["Image"], "Created": next(_ids),
                                    "IP": f"198.19.{self.subnet}.{next(self._ip)}"}
            return cid

    def start(self, cid: str) -> None:
        c = self._find(cid)
        self.calls.append(("start", c["Name"]))
        if c["Name"] in self.fail_start:
            raise EngineError(f"failed to start {c['Name']}: exec: not found", 500)
        c["State"], c["Status"] = "running", "Up 1 second"

    def inspect(self, cid: str) -> dict:
        c = self._find(cid)
        self.calls.append(("inspect", c["Name"]))
        return {"Id": c["Id"], "Name": "/" + c["Name"], "Config": c["Config"], "HostConfig": c["HostConfig"],
                "State": {"Running": c["State"] == "running", "Paused": c["State"] == "paused",
                          "Status": c["State"]},
                "NetworkSettings": {"Networks": {"bridge": {"IPAddress": c["IP"]}}}}

    def remove(self, cid: str) -> None:
        with self._lock:
            try:
                c = self._find(cid)
            except NotFound:
                return
            self.calls.append(("remove", c["Name"]))
            del self.containers[c["Id"]]

    def update(self, cid: str, body: dict) -> None:
        c = self._find(cid)
        self.calls.append(("update", c["Name"], body))
        c["HostConfig"].update(body)

    def rename(self, cid: str, name: str) -> None:
        c = self._find(cid)
        self.calls.append(("rename", c["Name"], name))
        c["Name"] = name

    def unpause(self, cid: str) -> None:
        c = self._find(cid)
        self.calls.append(("unpause", c["Name"]))
        c["State"] = "running"

    def image_present(self, ref: str) -> bool:
        self.calls.append(("image", ref))
        return ref in self.images

    def import_image(self, data: bytes, repository: str, tag: str, changes: list[str]) -> None:
        self.calls.append(("import", f"{repository}:{tag}", tuple(changes)))
        self.imported[f"{repository}:{tag}"] = data
        self.images.add(f"{repository}:{tag}")

    def pull(self, ref: str) -> None:
        self.calls.append(("pull", ref))
        raise EngineError(f"pull of {ref} refused: the fake has no registry")

    def close(self) -> None:
        pass

    # -- drift made "by hand" ----------------------------------------------------------------------------
    def stop(self, name: str, code: int = 137) -> None:
        c = self.by_name(name)
        c["State"], c["Status"] = "exited", f"Exited ({code}) 2 seconds ago"


class FakeCluster:
    """Engines by node name; a connect function for DockerProvider(connect=...)."""

    def __init__(self, *names: str, unreachable: tuple[str, ...] = ()):
        self.engines = {n: FakeEngine(n, subnet=i + 1) for i, n in enumerate(names)}
        self.unreachable = set(unreachable)
        self.connects: list[str] = []

    def connect(self, settings: NodeSettings) -> FakeEngine:
        self.connects.append(settings.name)
        if settings.name in self.unreachable:
            raise NodeError(settings.name, "Cannot reach node",
                            f"root@{settings.address}:22: [Errno 111] Connection refused", kind="unreachable")
        return self.engines[settings.name]

    def __getitem__(self, name: str) -> FakeEngine:
        return self.engines[name]
