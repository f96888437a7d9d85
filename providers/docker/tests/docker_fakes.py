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
        self.stats_docs: dict[str, dict] = {}  # container name or id -> the document its stats call returns
        self.archives: list[tuple[str, str, bytes]] = []  # (container name, path, tar) put into containers
        self.volumes_made: dict[str, dict] = {}  # volume name -> {"opts", "labels"}

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
                "NetworkSettings": {"Networks": {c["HostConfig"].get("NetworkMode", "bridge"): {"IPAddress": c["IP"]}}
                                    if c["HostConfig"].get("NetworkMode", "bridge") in ("bridge", "orch") else {}}}

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

    def stats(self, cid: str) -> dict:
        """``stats?stream=false``: the document set in ``stats_docs`` for the container (by name or id), else
        what Docker says of an idle running container (two samples, no use) or of a stopped one (no samples)."""
        c = self._find(cid)
        self.calls.append(("stats", c["Name"]))
        doc = self.stats_docs.get(c["Name"], self.stats_docs.get(c["Id"]))
        if doc is not None:
            return doc
        if c["State"] != "running":
            return {"cpu_stats": {"cpu_usage": {"total_usage": 0}}, "precpu_stats": {"cpu_usage": {"total_usage": 0}},
                    "memory_stats": {}}
        return {"cpu_stats": {"cpu_usage": {"total_usage": 5000}, "system_cpu_usage": 2_000_000_000, "online_cpus": 4},
                "precpu_stats": {"cpu_usage": {"total_usage": 5000}, "system_cpu_usage": 1_000_000_000,
                                 "online_cpus": 4},
                "memory_stats": {"usage": 0, "stats": {"inactive_file": 0}}}

    def put_archive(self, cid: str, path: str, data: bytes) -> None:
        with self._lock:
            c = self._find(cid)
            self.calls.append(("put_archive", c["Name"], path))
            self.archives.append((c["Name"], path, data))

    def create_volume(self, name: str, driver_opts: dict, labels: dict, driver: str = "local") -> None:
        with self._lock:
            self.calls.append(("create_volume", name))
            self.volumes_made.setdefault(name, {"opts": dict(driver_opts), "labels": dict(labels),
                                                "driver": driver})

    def volumes(self, label: str) -> list[dict]:
        key, _, value = label.partition("=")
        return [{"Name": n, "Labels": v["labels"]} for n, v in self.volumes_made.items()
                if key in v["labels"] and (not value or v["labels"][key] == value)]

    def remove_volume(self, name: str) -> None:
        with self._lock:
            self.calls.append(("remove_volume", name))
            self.volumes_made.pop(name, None)

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

    # -- Docker networks and the node's commands (podnet) ------------------------------------------------
    @property
    def nets(self) -> dict[str, dict]:
        """Docker networks by id (besides the default bridge, 198.19.SUBNET.0/24)."""
        return self.__dict__.setdefault("_nets", {})

    def host(self, become: bool = False):
        """The node's FakeHost (made on first use; ``engine.fake_host = None`` plays a node not reached over
        SSH, which has none)."""
        if "fake_host" not in self.__dict__:
            self.fake_host = FakeHost(self.node)
        return self.fake_host

    def networks(self, label: str) -> list[dict]:
        self.calls.append(("networks", label))
        k, eq, v = label.partition("=")
        return [dict(n) for n in self.nets.values()
                if (n["Labels"].get(k) == v if eq else k in n["Labels"])]

    def create_network(self, name: str, body: dict) -> str:
        import ipaddress

        self.calls.append(("create_network", name, body))
        if any(n["Name"] == name for n in self.nets.values()):
            raise Conflict(f"network with name {name} already exists", 409)
        cfg = (body.get("IPAM") or {}).get("Config") or []
        subnet = cfg[0]["Subnet"] if cfg else f"198.19.{200 + len(self.nets)}.0/24"
        taken = [f"198.19.{self.subnet}.0/24"] + [n["IPAM"]["Config"][0]["Subnet"] for n in self.nets.values()]
        if any(ipaddress.ip_network(subnet).overlaps(ipaddress.ip_network(t)) for t in taken):
            raise EngineError("Pool overlaps with other one on this address space", 403)
        nid = _new_id()
        self.nets[nid] = {"Id": nid, "Name": name, "Driver": body.get("Driver", "bridge"),
                          "IPAM": {"Driver": "default", "Config": [dict(cfg[0]) if cfg else {"Subnet": subnet}]},
                          "Options": dict(body.get("Options") or {}), "Labels": dict(body.get("Labels") or {})}
        return nid

    def _net(self, ref: str) -> dict:
        for n in self.nets.values():
            if ref in (n["Id"], n["Name"]):
                return n
        raise NotFound(f"network {ref} not found", 404)

    def inspect_network(self, nid: str) -> dict:
        n = self._net(nid)
        self.calls.append(("inspect_network", n["Name"]))
        running = {c["Id"]: {"Name": c["Name"], "IPv4Address": c["IP"] + "/24"} for c in self.containers.values()
                   if c["HostConfig"].get("NetworkMode") in (n["Name"], n["Id"]) and c["State"] == "running"}
        return dict(n, Containers=running)

    def remove_network(self, nid: str) -> None:
        try:
            n = self._net(nid)
        except NotFound:
            return
        self.calls.append(("remove_network", n["Name"]))
        if self.inspect_network(n["Id"])["Containers"]:
            raise EngineError(f"error while removing network: network {n['Name']} id {n['Id']} has active endpoints",
                              403)
        del self.nets[n["Id"]]


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


class FakeHost:
    """A node that runs commands (hostexec.Host): records each (argv, stdin) and plays the node's pod-network
    state (routes with proto 211, nftables tables, iptables filter chains, the sysctls and tools that podnet's
    probe reads). ``fail[argv0] = CommandResult(...)`` makes every command starting with argv0 fail that way."""

    def __init__(self, node: str = "n1", uid: int = 0,
                 tools: tuple[str, ...] = ("ip", "nft", "iptables", "iptables-restore", "conntrack")):
        from orch_provider_docker.hostexec import CommandResult

        self.node = node
        self.uid = uid
        self.tools = set(tools)
        self.sysctl = {"bridge-nf-call-iptables": "1", "ip_forward": "1"}
        self.routes: dict[str, str] = {}  # proto 211: destination -> gateway
        self.nft: dict[str, list[str]] = {}  # table ip NAME -> its body lines, as written
        self.chains: dict[str, list[str]] = {"FORWARD": ["-A FORWARD -j DOCKER-USER"],
                                             "DOCKER-USER": ["-A DOCKER-USER -j RETURN"]}  # filter table
        self.calls: list[tuple[tuple[str, ...], bytes | None]] = []
        self.fail: dict[str, CommandResult] = {}
        self.other_tables: dict[str, dict] = {}  # other namespaces' service tables: name -> `nft -j list table`
        self._result = CommandResult

    # -- for tests
    def argvs(self) -> list[tuple[str, ...]]:
        return [a for a, _ in self.calls]

    @staticmethod
    def probes(argv: tuple[str, ...]) -> bool:
        """Whether ``argv`` is a read-only probe: podnet's, or a script that starts with one and adds sections of
        its own (a refresh: podnet.DRIFT_PROBE and the services' read-back; a plan's check: PROBE and the other
        namespaces' tables), in one exec."""
        from orch_provider_docker.podnet import DRIFT_PROBE, PROBE, PROBE_ARGV

        return argv == PROBE_ARGV or (argv[:2] == ("sh", "-c") and len(argv) > 2
                                      and argv[2].startswith((PROBE, DRIFT_PROBE)))

    def changing_calls(self) -> list[tuple[str, ...]]:
        """The commands other than the read-only probes."""
        return [a for a, _ in self.calls if not self.probes(a)]

    def iptables_s(self, chain: str) -> str:
        head = f"-P {chain} ACCEPT" if chain == "FORWARD" else f"-N {chain}"
        return "\n".join([head, *self.chains[chain]]) + "\n"

    # -- hostexec.Host
    def run(self, argv, stdin: bytes | None = None, check: bool = True, timeout: float = 30.0):
        from orch_provider_docker.hostexec import HostCommandError

        argv = tuple(argv)
        self.calls.append((argv, stdin))
        res = self.fail.get(argv[0]) or self._play(argv, (stdin or b"").decode())
        if check and res.rc != 0:
            raise HostCommandError(self.node, argv, res.rc, res.stderr)
        return res

    def _play(self, argv: tuple[str, ...], stdin: str):
        from orch_provider_docker.podnet import PROBE_ARGV

        ok = self._result(0, "", "")
        if argv == PROBE_ARGV:
            return self._result(0, self._probe(), "")
        if self.probes(argv):  # a refresh or a plan's check: the probe's sections, and sections of its own
            import json

            extra = ""
            if '"@@ services"' in argv[2]:  # the services' read-back: this fake keeps no service table
                extra += "@@ services\n@@ rc 0\n"
            if '"@@ others"' in argv[2]:
                extra += "@@ others\n" + "".join(f"@{name} {json.dumps(listing)}\n" for name, listing
                                                  in sorted(self.other_tables.items()) if name != argv[4]) + "@@ rc 0\n"
            return self._result(0, self._probe() + extra, "")
        if argv[0] not in self.tools and argv[0] != "sh":
            return self._result(127, "", f"sh: 1: {argv[0]}: not found\n")
        if self.uid != 0:
            return self._result(1, "", "Operation not permitted\n")
        if argv == ("ip", "-batch", "-"):
            for k, line in enumerate(stdin.splitlines(), start=1):
                w = line.split()
                if w[:2] == ["route", "replace"] and w[3] == "via" and w[5:] == ["proto", "211"]:
                    self.routes[w[2]] = w[4]
                elif w[:2] == ["route", "del"] and w[2] in self.routes:
                    del self.routes[w[2]]
                else:
                    return self._result(1, "", f"RTNETLINK answers: No such process\nCommand failed -:{k}\n")
            return ok
        if argv == ("ip", "route", "flush", "proto", "211"):
            self.routes.clear()
            return ok
        if argv == ("nft", "-f", "-"):
            return self._nft_script(stdin)
        if argv[:3] == ("nft", "delete", "table") and argv[3] == "ip":
            if self.nft.pop(argv[4], None) is None:
                return self._result(1, "", "Error: No such file or directory\n")
            return ok
        if argv[0] == "iptables-restore" and "--noflush" in argv:
            return self._restore(stdin)
        return self._result(2, "", f"FakeHost: unexpected command {argv}\n")

    def _nft_script(self, text: str):
        tables = {k: list(v) for k, v in self.nft.items()}
        lines = iter(text.splitlines())
        for line in lines:
            w = line.split()
            if not w:
                continue
            if w[:3] == ["delete", "table", "ip"]:
                if tables.pop(w[3], None) is None:
                    return self._result(1, "", "Error: No such file or directory\n")
            elif w[:2] == ["table", "ip"] and w[3:] == ["{"]:
                body, depth = [], 1
                for inner in lines:
                    depth += inner.count("{") - inner.count("}")
                    if depth == 0:
                        break
                    body.append(inner)
                tables[w[2]] = tables.get(w[2], []) + body
            elif w[:2] == ["table", "ip"] and len(w) == 3:
                tables.setdefault(w[2], [])
            else:
                return self._result(1, "", f"Error: syntax error: {line}\n")
        self.nft = tables
        return self._result(0, "", "")

    def _restore(self, text: str):
        chains = {k: list(v) for k, v in self.chains.items()}
        table = None
        for k, line in enumerate(text.splitlines(), start=1):
            w = line.split()
            if not w or line.startswith("#"):
                continue
            bad = self._result(2, "", f"iptables-restore: line {k} failed\n")
            if w[0].startswith("*"):
                table = w[0][1:]
            elif w[0] == "COMMIT":
                table = None
            elif table != "filter":
                return bad
            elif w[0].startswith(":"):
                chains[w[0][1:]] = []
            elif w[0] in ("-A", "-I", "-D") and w[1] in chains:
                if "-j" in w and w[w.index("-j") + 1] not in chains and w[w.index("-j") + 1].isupper() \
                        and w[w.index("-j") + 1] not in ("ACCEPT", "DROP", "RETURN", "REJECT"):
                    return bad
                if w[0] == "-A":
                    chains[w[1]].append(" ".join(w))
                elif w[0] == "-D":
                    rule = " ".join(["-A", *w[1:]])
                    if rule not in chains[w[1]]:
                        return bad
                    chains[w[1]].remove(rule)
                else:
                    pos, spec = (int(w[2]), w[3:]) if len(w) > 2 and w[2].isdigit() else (1, w[2:])
                    chains[w[1]].insert(pos - 1, " ".join(["-A", w[1], *spec]))
            elif w[0] == "-F" and w[1] in chains:
                chains[w[1]] = []
            elif w[0] == "-X" and w[1] in chains:
                if any(f"-j {w[1]}" in r for rs in chains.values() for r in rs):
                    return bad
                del chains[w[1]]
            else:
                return bad
        self.chains = chains
        return self._result(0, "", "")

    def _probe(self) -> str:
        import json

        def section(name: str, tool: str, text: str, rc: int = 0) -> list[str]:
            if tool not in self.tools:
                text, rc = f"sh: 1: {tool}: not found", 127
            elif self.uid != 0 and tool != "ip":
                text, rc = "iptables v1.8.9 (nf_tables): Permission denied (you must be root)", 4
            return [f"@@ {name}", *([text] if text else []), f"@@ rc {rc}"]

        out = ["@@ env", f"uid={self.uid}"]
        out += [f"have.{t}={int(t in self.tools)}" for t in ("ip", "nft", "iptables", "iptables-restore",
                                                             "conntrack")]
        out += [f"{k}={v}" for k, v in self.sysctl.items()]
        out += ["@@ rc 0"]
        routes = [{"dst": d, "gateway": g, "dev": "eth0", "protocol": "211", "flags": []}
                  for d, g in sorted(self.routes.items())]
        out += section("routes", "ip", json.dumps(routes))
        for name, chain in (("docker-user", "DOCKER-USER"), ("orch-forward", "ORCH-FORWARD")):
            if chain in self.chains:
                out += section(name, "iptables", self.iptables_s(chain).rstrip("\n"))
            else:
                out += section(name, "iptables", "iptables: No chain/target/match by that name.", 1)
        tables = [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}]
        tables += [{"table": {"family": "ip", "name": t, "handle": k}} for k, t in enumerate(self.nft, start=1)]
        out += section("tables", "nft", json.dumps({"nftables": tables}))
        if "orch" in self.nft:
            body = [x.replace("priority 100;", "priority srcnat;") for x in self.nft["orch"]]
            listing = ["table ip orch {", *body, "}"]
            out += section("orch-table", "nft", "\n".join(listing))
        else:
            out += section("orch-table", "nft", "Error: No such file or directory", 1)
        return "\n".join(out) + "\n"
