"""Benchmark `deploykit lb render` against json.load of the same /v2/apps response and marathon-lb's generator.

In ONE run, for 1,000 and 3,000 apps x 5 tasks (synthetic responses from bench/gen_apps.py), interleaved
and repeated (medians):
  * json.load of the file, timed inside a fresh interpreter (also the wall time of that whole `python -c`
    process), and the two fast decoders measured for lb.marathon_json, in the same kind of process:
    orjson.loads and msgspec's typed decode (lb.marathon_json.decode_apps) of the same bytes,
  * marathon-lb's in-process generator (bench/mlb_generate.py: json.loads + get_apps + config, timed
    inside its process after its imports; vendored code in bench/marathon_lb/, Apache-2.0),
  * the whole `deploykit lb render` command in a subprocess, file to haproxy.cfg (interpreter start,
    imports, decode, model, render, write), and the same command on an empty list (its fixed cost).
Also the incremental path the daemon uses: one task's status change among all apps ->
apply_app + diff -> Runtime API commands, a routing change with a warm Renderer, and `haproxy -c`.

    .venv/bin/python bench/lb_render.py [--runs 7] [--sizes 1000,3000] [--dir /tmp/dk-bench]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from gen_apps import make_apps  # noqa: E402

_LOAD = """
import json, sys, time
decoder = sys.argv[2]
if decoder == "orjson":
    import orjson
    load = orjson.loads
elif decoder == "msgspec":
    from deploykit.lb.marathon_json import decode_apps as load
else:
    load = None
t, c = time.perf_counter(), time.process_time()
with open(sys.argv[1], "rb") as f:
    json.load(f) if load is None else load(f.read())
print(time.perf_counter() - t, time.process_time() - c)
"""


@dataclass
class Sample:
    wall: float
    cpu: float  # user + system CPU seconds: what the machine's other load disturbs least


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _child_env(workdir: Path) -> dict[str, str]:
    """Children keep compiled bytecode (in a cache outside the source tree), as an installed deploykit has it.

    This machine sets PYTHONDONTWRITEBYTECODE, which would make every run compile deploykit's modules from
    source (about 6 ms CPU); click, jinja2 and the standard library are precompiled either way.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    return env


CHILD_ENV: dict[str, str] = {}


def _run(argv: list[str]) -> tuple[Sample, str]:
    cpu0, start = _child_cpu(), time.perf_counter()
    out = subprocess.run(argv, check=True, capture_output=True, text=True, env=CHILD_ENV or None).stdout
    return Sample(time.perf_counter() - start, _child_cpu() - cpu0), out


def _decode(path: Path, decoder: str) -> tuple[Sample, Sample]:
    """(json / orjson / msgspec decode timed inside a fresh interpreter, that whole `python -c` process)."""
    proc, out = _run([sys.executable, "-c", _LOAD, str(path), decoder])
    wall, cpu = (float(x) for x in out.split())
    return Sample(wall, cpu), proc


def _marathon_lb(path: Path) -> Sample:
    """marathon-lb's generator, timed inside its own process after its imports."""
    _, out = _run([sys.executable, str(HERE / "mlb_generate.py"), str(path)])
    wall, cpu = (float(x) for x in out.split())
    return Sample(wall, cpu)


def _command(path: Path, out: Path) -> Sample:
    deploykit = Path(sys.executable).parent / "deploykit"
    return _run([str(deploykit), "lb", "render", "--apps-json", str(path), "--out", str(out), "-q"])[0]


def _incremental(path: Path, samples: int = 200) -> tuple[float, float, int]:
    """p50/p99 ms of apply_app + diff for one task replaced in one app, and the op count."""
    from deploykit.lb.changes import diff
    from deploykit.lb.model import apply_app, build_model
    from deploykit.lb.settings import LbSettings

    with open(path) as f:
        apps = json.load(f)["apps"]
    model = build_model(apps, LbSettings())
    times = []
    ops = 0
    for i in range(samples):
        app = copy.deepcopy(apps[(i * 37) % len(apps)])
        app["tasks"][0] = {**app["tasks"][0], "id": f"replacement-{i}", "ports": [32000 + i]}
        start = time.perf_counter()
        new, changed = apply_app(model, app)
        changes = diff(model, new, only=changed)
        commands = [op.command() for op in changes.server_ops]
        times.append(time.perf_counter() - start)
        assert not changes.reload_needed and commands, (changes.reasons, commands)
        ops = len(commands)
        model = new
    times.sort()
    return times[len(times) // 2] * 1000, times[int(len(times) * 0.99) - 1] * 1000, ops


def _structural(path: Path, samples: int = 20) -> float:
    """Median ms of one routing change (an app's vhost) -> apply_app + diff + full haproxy.cfg text, with a warm
    Renderer (only the changed backend is rendered again; the rest is cached text)."""
    from deploykit.lb.changes import diff
    from deploykit.lb.model import apply_app, build_model
    from deploykit.lb.render import Renderer
    from deploykit.lb.settings import LbSettings

    with open(path) as f:
        apps = json.load(f)["apps"]
    model = build_model(apps, LbSettings())
    renderer = Renderer()
    renderer.render(model)
    times = []
    for i in range(samples):
        app = copy.deepcopy(apps[(i * 37) % len(apps)])
        app["labels"]["HAPROXY_0_VHOST"] = f"moved{i}.example.com"
        app["labels"].pop("HAPROXY_0_MODE", None)
        start = time.perf_counter()
        new, changed = apply_app(model, app)
        changes = diff(model, new, only=changed)
        renderer.render(new)
        times.append(time.perf_counter() - start)
        assert changes.reload_needed, changes
        model = new
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sizes", default="1000,3000")
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--dir", default="/tmp/dk-bench")
    args = parser.parse_args()
    workdir = Path(args.dir)
    workdir.mkdir(parents=True, exist_ok=True)
    CHILD_ENV.update(_child_env(workdir))
    rows = []
    empty = workdir / "apps-empty.json"
    empty.write_text('{"apps": []}')
    for size in (int(s) for s in args.sizes.split(",")):
        path = workdir / f"apps-{size}x{args.tasks}.json"
        if not path.exists():
            path.write_text(json.dumps(make_apps(size, args.tasks), separators=(",", ":")))
        out = workdir / f"haproxy-{size}.cfg"
        _command(path, out)  # warm the page cache and .pyc files
        samples: dict[str, list[Sample]] = {
            k: [] for k in ("load", "load_proc", "orjson", "msgspec", "mlb", "cmd", "fixed")}
        for _ in range(args.runs):  # interleaved, so machine load hits all alike
            load, proc = _decode(path, "json")
            samples["load"].append(load)
            samples["load_proc"].append(proc)
            samples["orjson"].append(_decode(path, "orjson")[0])
            samples["msgspec"].append(_decode(path, "msgspec")[0])
            samples["mlb"].append(_marathon_lb(path))
            samples["cmd"].append(_command(path, out))
            samples["fixed"].append(_command(empty, workdir / "empty.cfg"))
        valid = "n/a (no haproxy)"
        haproxy = shutil.which("haproxy")
        if haproxy:
            check = subprocess.run([haproxy, "-c", "-q", "-f", str(out)], capture_output=True, text=True)
            valid = "valid" if check.returncode == 0 else f"INVALID: {check.stdout}{check.stderr}"
        p50, p99, ops = _incremental(path)
        structural = _structural(path)
        med = {k: Sample(statistics.median(x.wall for x in v), statistics.median(x.cpu for x in v))
               for k, v in samples.items()}
        rows.append((size, path.stat().st_size / 1e6, med, p50, p99, ops, structural, valid))
    print(f"python {sys.version.split()[0]}, {args.runs} interleaved runs, medians of wall-clock time "
          "(CPU time in brackets); decoders and marathon-lb are timed inside a fresh interpreter")
    print("| apps x tasks | file MB | json.load | orjson.loads | msgspec typed (decode_apps) "
          "| `python -c` json.load, whole process | marathon-lb generator, in-process "
          "| `lb render`, whole command | `lb render` of an empty list (fixed cost) "
          "| **marathon-lb / command** | command / json.load | one task event: apply_app + diff p50 / p99 "
          "| one routing change: apply_app + diff + render (warm) | haproxy -c |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")

    def ms(x: Sample) -> str:
        return f"{x.wall * 1000:.0f} ms ({x.cpu * 1000:.0f})"

    def ratio(a: Sample, b: Sample) -> str:
        return f"{a.wall / b.wall:.2f}x ({a.cpu / b.cpu:.2f}x)"

    for size, mb, m, p50, p99, ops, structural, valid in rows:
        print(f"| {size} x {args.tasks} | {mb:.1f} | {ms(m['load'])} | {ms(m['orjson'])} | {ms(m['msgspec'])} "
              f"| {ms(m['load_proc'])} | {ms(m['mlb'])} | {ms(m['cmd'])} | {ms(m['fixed'])} "
              f"| **{ratio(m['mlb'], m['cmd'])}** | {ratio(m['cmd'], m['load'])} "
              f"| {p50:.2f} / {p99:.2f} ms ({ops} commands) | {structural:.1f} ms | {valid} |")


if __name__ == "__main__":
    main()
