"""Deploy benchmarks on a local devcluster.

1. success -> exit: time from Marathon's `deployment_success` event (seen by an independent
   event-stream listener in this process) to the `deploykit deploy` process exiting.
2. no-change overhead: wall time of a whole `deploykit deploy` CLI run when nothing changed
   (validation, Marathon GET, plan, Consul check), and of the library call alone.

Run: .venv/bin/python bench/deploy_latency.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deploykit.clients.marathon import MarathonClient  # noqa: E402
from deploykit.clients.marathon_events import Event  # noqa: E402

DEPLOYKIT = str(Path(sys.executable).parent / "deploykit")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_devcluster(work: Path) -> tuple[subprocess.Popen, str, Path]:
    mport, cport = free_port(), free_port()
    low = random.randrange(20000, 29000, 500)
    with open(work / "devcluster.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deploykit.devcluster", "--marathon-port", str(mport), "--consul-port", str(cport),
             "--state-dir", str(work / "state"), "--event-heartbeat", "1s",
             # a host-port window of our own: other devclusters on the machine use 31000-32000
             "--task-port-range", f"{low}-{low + 499}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO,
        )
    url = f"http://127.0.0.1:{mport}"
    m = MarathonClient([url], retries=0)
    deadline = time.monotonic() + 30
    while True:
        try:
            m.ping()
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    env = json.loads((REPO / "chef_attrs" / "local.json").read_text())
    dk = env["default_attributes"]["deploykit"]
    dk["marathon"]["urls"] = [url]
    dk["consul"]["url"] = f"http://127.0.0.1:{cport}"
    env_dir = work / "env"
    env_dir.mkdir()
    (env_dir / "local.json").write_text(json.dumps(env))
    return proc, url, env_dir


def write_app(work: Path, greeting: str) -> Path:
    doc = yaml.safe_load((REPO / "examples" / "hello" / "app.yaml").read_text())
    doc["id"] = "/bench/hello"
    doc["env"] = {"GREETING": greeting}
    doc["health"] = {"path": "/health", "port": "http", "grace": "2s", "interval": "2s", "timeout": "1s",
                     "max_failures": 2}
    doc["readiness"] = {"path": "/ready", "port": "http", "interval": "2s", "timeout": "1s"}
    path = work / f"app-{greeting}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dk-bench-deploy-"))
    for name in ("server.py", "config"):
        src = REPO / "examples" / "hello" / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    proc, url, env_dir = start_devcluster(work)
    successes: dict[str, float] = {}
    stream = MarathonClient([url]).events(event_types=["deployment_success"], heartbeat_interval=1)

    def listen() -> None:
        for item in stream:
            if isinstance(item, Event):
                successes[item.data.get("id")] = time.time()

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    env = {**os.environ, "NO_COLOR": "1"}
    try:
        base = [DEPLOYKIT, "deploy", "--env", "local", "--env-dir", str(env_dir), "--output", "json"]
        apps = [write_app(work, "a"), write_app(work, "b")]
        subprocess.run([*base[:2], str(apps[1]), *base[2:]], check=True, capture_output=True, env=env)
        gaps, totals = [], []
        for i in range(args.rounds):
            app = apps[i % 2]
            t0 = time.time()
            out = subprocess.run([*base[:2], str(app), *base[2:]], capture_output=True, text=True, env=env)
            t_exit = time.time()
            doc = json.loads(out.stdout)
            assert doc["result"] == "success", doc
            dep = doc["deploymentId"]
            deadline = time.time() + 2
            while dep not in successes and time.time() < deadline:
                time.sleep(0.01)
            gaps.append(t_exit - successes[dep])
            totals.append(t_exit - t0)
        same = apps[(args.rounds - 1) % 2]
        nochange = []
        for _ in range(args.rounds):
            t0 = time.time()
            out = subprocess.run([*base[:2], str(same), *base[2:]], capture_output=True, text=True, env=env)
            nochange.append(time.time() - t0)
            assert json.loads(out.stdout)["result"] == "unchanged"
        from deploykit.deploy import DeployOptions, deploy

        lib = []
        for _ in range(args.rounds):
            t0 = time.time()
            r = deploy(DeployOptions(app_path=str(same), env_name="local", env_dir=str(env_dir)))
            lib.append(time.time() - t0)
            assert r["result"] == "unchanged"
        t0 = time.time()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        python_start = time.time() - t0
    finally:
        stream.stop()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "rounds": args.rounds,
        "success_event_to_exit_s": {"median": round(statistics.median(gaps), 3), "p95": round(pct(gaps, 0.95), 3),
                                    "max": round(max(gaps), 3)},
        "deploy_total_s": {"median": round(statistics.median(totals), 3), "max": round(max(totals), 3)},
        "no_change_cli_s": {"median": round(statistics.median(nochange), 3), "p95": round(pct(nochange, 0.95), 3),
                            "max": round(max(nochange), 3)},
        "no_change_library_s": {"median": round(statistics.median(lib), 3), "max": round(max(lib), 3)},
        "python_c_pass_s": round(python_start, 3),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
