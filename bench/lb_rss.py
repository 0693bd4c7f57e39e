"""Benchmark: resident memory and full-resync time of `deploykit lb run` following N apps x 5 tasks.

Runs the real command as a subprocess against the stand-in Marathon of bench/lb_latency.py
(synthetic state, event stream), waits until /healthz says the first full sync is applied,
sends a burst of task events and SIGHUP resyncs, then reads VmRSS / VmHWM from /proc for the
daemon process (HAProxy is a separate process and not counted). Full-resync times come from
the daemon's own `full_sync` log lines (GET /v2/apps?embed=apps.tasks, decode, model, diff,
apply): the first one includes rendering and starting HAProxy, the SIGHUP ones are the
steady state (nothing changed, nothing reloaded).

    .venv/bin/python bench/lb_rss.py [--apps 3000] [--tasks 5] [--resyncs 3]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import free_port
from lb_latency import StandInMarathon, bench_apps, bench_templates

ROOT = Path(__file__).resolve().parent.parent


def rss_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def _syncs(log: Path) -> list[dict]:
    """The daemon's `full_sync` log lines (JSON), in order."""
    out = []
    for line in log.read_text().splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("event") == "full_sync":
            out.append(doc)
    return out


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=3000)
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--resyncs", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dk-lb-rss-"))
    marathon = StandInMarathon(bench_apps(args.apps, args.tasks))
    env_dir = work / "env"
    env_dir.mkdir()
    env = json.loads((ROOT / "chef_attrs" / "local.json").read_text())
    env["default_attributes"]["deploykit"]["haproxy"]["http_port"] = free_port()
    (env_dir / "local.json").write_text(json.dumps(env))
    metrics_port = free_port()
    cmd = [
        str(ROOT / ".venv" / "bin" / "deploykit"),
        "lb",
        "run",
        "--env",
        "local",
        "--env-dir",
        str(env_dir),
        "--marathon",
        marathon.url,
        "--haproxy-config",
        str(work / "haproxy" / "haproxy.cfg"),
        "--templates",
        str(bench_templates(work)),
        "--metrics-addr",
        f"127.0.0.1:{metrics_port}",
        "--heartbeat-interval",
        "1s",
        "--stop-haproxy",
        "--log-level",
        "info",
    ]
    t0 = time.monotonic()
    log = (work / "daemon.log").open("w")
    proc = subprocess.Popen(cmd, stderr=log)
    try:
        while not healthy(metrics_port):
            if proc.poll() is not None or time.monotonic() - t0 > 300:
                raise SystemExit(f"daemon did not become healthy; log: {work / 'daemon.log'}")
            time.sleep(0.2)
        synced = time.monotonic() - t0
        after_sync = rss_kib(proc.pid)
        ids = sorted(marathon.apps)
        for n in range(200):
            app = copy.deepcopy(marathon.apps[ids[(n * 13) % len(ids)]])
            app["tasks"][0]["id"] += f"-r{n}"
            app["tasks"][0]["ports"] = [41000 + n]
            marathon.set_app(app)
            marathon.emit("status_update_event", {"appId": app["id"], "taskStatus": "TASK_RUNNING"})
        for _ in range(args.resyncs):  # full resyncs on top, one at a time
            before = len(_syncs(work / "daemon.log"))
            os.kill(proc.pid, signal.SIGHUP)
            deadline = time.monotonic() + 120
            while len(_syncs(work / "daemon.log")) == before and time.monotonic() < deadline:
                time.sleep(0.1)
        time.sleep(2)
        after_events = rss_kib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        marathon.stop()
        log.close()
    syncs = _syncs(work / "daemon.log")
    print(
        json.dumps(
            {
                "full_sync_seconds": [s["seconds"] for s in syncs],
                "of_which_fetch_and_decode_seconds": [s.get("fetch_seconds") for s in syncs],
                "full_sync_applied": [s["applied"] for s in syncs],
                "apps": args.apps,
                "tasks_per_app": args.tasks,
                "start_to_healthy_s": round(synced, 2),
                "rss_after_first_sync_mib": round(after_sync["VmRSS"] / 1024, 1),
                "rss_after_200_events_and_resync_mib": round(after_events["VmRSS"] / 1024, 1),
                "peak_rss_mib": round(after_events["VmHWM"] / 1024, 1),
                "daemon_exit_code": proc.returncode,
            },
            indent=2,
        )
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
