"""Parse speed and memory: orch vs python-hcl2 vs Go HCL (pygohcl), same inputs, same run.

Inputs are real Terraform: the accepted files of the HCL corpus, concatenated
(repeated when needed) up to 1 MB and 10 MB. Only files that every contender
parses are used, so all of them do the same work. Each measurement runs in a
fresh subprocess; memory is the peak of Python allocations (tracemalloc) in a
separate run, because tracing slows parsing down.

    pip install python-hcl2 pygohcl
    python benchmarks/parse_bench.py [--corpus DIR] [--sizes 1,10] [--repeat 3] [--skip python-hcl2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
MB = 1_000_000

PARSERS = {
    "orch": "from orchdsl.lang import parse as p\nrun = lambda t: p(t, 'bench.tf')",
    "python-hcl2": "import hcl2\nrun = hcl2.loads",
    "pygohcl": "import pygohcl\nrun = pygohcl.loads",
}

CHILD = r"""
import gc, json, sys, time, tracemalloc
{setup}
text = open(sys.argv[1], encoding='utf-8', errors='surrogateescape').read()
mode = sys.argv[2]
if mode == 'time':
    run('a = 1\n')  # warm up (grammar tables, imports)
    best = None
    for _ in range(int(sys.argv[3])):
        gc.collect()
        t = time.perf_counter(); run(text); dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    print(json.dumps({{'seconds': best}}))
else:
    run('a = 1\n')
    tracemalloc.start()
    result = run(text)
    _, peak = tracemalloc.get_traced_memory()
    print(json.dumps({{'peak_bytes': peak}}))
"""


def usable_files(corpus: Path, contenders: list[str]) -> list[Path]:
    """Accepted corpus files that every contender parses (cached: python-hcl2 is slow)."""
    oracle = json.loads((corpus / "oracle.json").read_text())
    files = sorted(corpus / k for k, v in oracle.items() if v["verdict"] == "accept")
    cache = OUT / f"usable-{'-'.join(sorted(contenders))}.json"
    if cache.exists():
        return [corpus / p for p in json.loads(cache.read_text())]
    keep = []
    checks = {name: _loader(name) for name in contenders if name != "orch"}
    for f in files:
        text = f.read_text(encoding="utf-8", errors="surrogateescape")
        try:
            for fn in checks.values():
                fn(text)
        except Exception:
            continue
        keep.append(f)
    OUT.mkdir(exist_ok=True)
    cache.write_text(json.dumps([str(p.relative_to(corpus)) for p in keep]))
    return keep


def _loader(name: str):
    ns: dict = {}
    exec(PARSERS[name], ns)
    return ns["run"]


def build_input(files: list[Path], size: int) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"input-{size // MB}MB.tf"
    parts: list[str] = []
    total = 0
    while total < size:
        for f in files:
            t = f.read_text(encoding="utf-8", errors="surrogateescape")
            if not t.endswith("\n"):
                t += "\n"
            # Each file in a block of its own: top-level arguments of different
            # files must not collide (Go HCL rejects a redefined argument).
            t = f"file_{len(parts)} {{\n{t}}}\n"
            parts.append(t)
            total += len(t.encode("utf-8", "surrogateescape"))
            if total >= size:
                break
    path.write_text("".join(parts), encoding="utf-8", errors="surrogateescape")
    return path


def measure(name: str, path: Path, mode: str, repeat: int) -> dict:
    code = CHILD.format(setup=PARSERS[name])
    out = subprocess.run([sys.executable, "-c", code, str(path), mode, str(repeat)], capture_output=True,
                         text=True, timeout=3600)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines()[-1] if out.stderr else "failed")[:200]}
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=str(HERE.parents[1] / "shared" / "hcl-corpus"))
    ap.add_argument("--sizes", default="1,10", help="input sizes in MB")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (best is kept)")
    ap.add_argument("--skip", action="append", default=[], help="contender to skip")
    args = ap.parse_args()
    contenders = [c for c in PARSERS if c not in args.skip]
    files = usable_files(Path(args.corpus), contenders)
    rows = []
    for mb in (int(s) for s in args.sizes.split(",")):
        path = build_input(files, mb * MB)
        size = path.stat().st_size
        for name in contenders:
            t = measure(name, path, "time", args.repeat if mb < 5 or name == "orch" else 1)
            m = measure(name, path, "memory", 1) if name != "pygohcl" else {}
            row = {"parser": name, "input_mb": round(size / MB, 2), **t, **m}
            if "seconds" in t:
                row["mb_per_s"] = round(size / MB / t["seconds"], 2)
            if "peak_bytes" in m:
                row["peak_x_input"] = round(m["peak_bytes"] / size, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "parse_bench.json").write_text(json.dumps(rows, indent=2))
    print("\n| parser | input | time | MB/s | peak memory / input |\n|---|---|---|---|---|")
    for r in rows:
        secs = f"{r['seconds']:.2f} s" if "seconds" in r else r.get("error", "-")
        print(f"| {r['parser']} | {r['input_mb']} MB | {secs} | {r.get('mb_per_s', '-')} | "
              f"{str(r['peak_x_input']) + '×' if 'peak_x_input' in r else '-'} |")


if __name__ == "__main__":
    main()
