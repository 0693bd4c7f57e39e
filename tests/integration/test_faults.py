"""Fault injection over a scripted deploy (issue 18): kill -9 each long-lived process in turn at a random
moment of `deploykit deploy` v1 -> v2, then check the invariants once the survivors are restarted:

- one version (the old or the new) is fully serving: Marathon runs `instances` healthy tasks of it and no
  deployment is left, and every request through HAProxy is answered by that version;
- no lock outlives its owner by more than the session timeout: a plain `deploykit deploy` (no --force)
  of the same spec finishes, and waits for the lock no longer than that;
- Consul holds the config of every version a running task still references;
- nothing is orphaned: the task processes alive are exactly Marathon's running tasks.

Real ZooKeeper (Marathon leader latch, deploy locks), devcluster, `deploykit lb run` and HAProxy. The kill
moments come from a fixed seed (always) and a rotating one (the date, or DEPLOYKIT_FAULT_SEED); both are in
the test id and in the summary, so a failure can be replayed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from deploykit.clients.consul import ConsulClient
from deploykit.lb.haproxy import parse_show_proc, socket_command
from tests.harness.devcluster import Devcluster, wait_for
from tests.harness.zookeeper import ZooKeeper, require_zookeeper
from tests.integration.test_lb_e2e import LbRun, LoadGen, task_ports

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEPLOYKIT = str(Path(sys.executable).parent / "deploykit")
ZK_SESSION_TIMEOUT = 10.0  # kazoo's default, what the deploy lock uses
FIXED_SEED = 18
ROTATING_SEED = int(os.environ.get("DEPLOYKIT_FAULT_SEED") or time.strftime("%Y%m%d"))
VICTIMS = ["deploy", "devcluster", "lb", "haproxy-worker", "zookeeper"]
APP_ID = "/faults/web"
VHOST = "faults.test"


def write_spec(folder: Path, greeting: str) -> Path:
    """A command app (the hello server fetched into the sandbox), quick checks, one task replaced at a time."""
    shutil.copy(REPO / "examples" / "hello" / "server.py", folder / "server.py")
    doc = {
        "id": APP_ID,
        "instances": 2,
        "cpus": 0.1,
        "mem": 64,
        "cmd": "python3 server.py",
        "fetch": ["server.py"],
        "ports": [{"name": "http", "container": 8080, "service": 0}],
        "env": {"GREETING": greeting},
        "health": {"path": "/health", "port": "http", "grace": "5s", "interval": "2s", "timeout": "1s",
                   "max_failures": 3},
        "upgrade": {"minimum_health_capacity": 0.5, "maximum_over_capacity": 0.5},
        "haproxy": {"group": "external", "vhost": [VHOST], "mode": "http",
                    "check": {"path": "/health", "interval": "1s", "rise": 1, "fall": 2}},
        "config": {"values": {"greeting": greeting}},
    }
    path = folder / f"app-{greeting}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


class Rig:
    """ZooKeeper + devcluster (leader via ZooKeeper) + lb run + HAProxy, and an env file using ZooKeeper locks."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.zk = ZooKeeper(tmp / "zk")
        self.zk.start()
        zk_url = f"zk://{self.zk.hosts}/marathon"
        self.dc = Devcluster(tmp / "dc", zk=zk_url, heartbeat="1s", extra_args=task_ports())
        self.dc.start(wait_leader=True)
        env = json.loads((self.dc.env_dir / "local.json").read_text())
        dk = env["default_attributes"]["deploykit"]
        dk["lock"] = "zookeeper"
        dk["zookeeper"] = {"hosts": self.zk.hosts, "lock_root": "/deploykit/locks"}
        (self.dc.env_dir / "local.json").write_text(json.dumps(env))
        self.lb = LbRun(tmp / "lb", [self.dc.marathon_url], zk=zk_url)
        self.lb.start()

    def deploy_proc(self, spec: Path, *extra: str) -> subprocess.Popen:
        return subprocess.Popen(
            [DEPLOYKIT, "deploy", str(spec), "--env", "local", "--env-dir", str(self.dc.env_dir), "--output", "json",
             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)

    def deploy(self, spec: Path, *extra: str, timeout: float = 120) -> tuple[int, dict, str]:
        proc = self.deploy_proc(spec, *extra)
        out, err = proc.communicate(timeout=timeout)
        try:
            doc = json.loads(out)
        except ValueError:
            doc = {}
        return proc.returncode, doc, err + out

    def app(self) -> dict:
        r = requests.get(f"{self.dc.marathon_url}/v2/apps{APP_ID}", params={"embed": "app.tasks"}, timeout=5)
        return r.json()["app"] if r.status_code == 200 else {}

    def kill(self, victim: str, deploy: subprocess.Popen) -> None:
        if victim == "deploy":
            deploy.send_signal(signal.SIGKILL)
            deploy.wait()
        elif victim == "devcluster":
            self.dc.kill()
            time.sleep(1)
            self.dc.start(wait_leader=True)
        elif victim == "lb":
            self.lb.proc.send_signal(signal.SIGKILL)
            self.lb.proc.wait()
            self.lb.proc = None
            self.lb.start()
        elif victim == "haproxy-worker":
            table = parse_show_proc(socket_command(self.lb.config.parent / "master.sock", "show proc"))
            for w in table.workers:
                os.kill(w.pid, signal.SIGKILL)
        elif victim == "zookeeper":
            os.killpg(self.zk.proc.pid, signal.SIGKILL)
            self.zk.proc.wait()
            time.sleep(2)
            self.zk.start()

    def close(self) -> None:
        self.lb.stop()
        self.dc.kill()
        self.zk.stop()


def settled_version(rig: Rig, timeout: float = 90) -> str:
    """Wait until one version runs `instances` healthy tasks with no deployment left; return that version."""

    def check():
        try:
            app = rig.app()
            deps = requests.get(f"{rig.dc.marathon_url}/v2/deployments", timeout=5).json()
        except requests.RequestException:
            return None
        if not app or any(APP_ID in d.get("affectedApps", []) for d in deps):
            return None
        tasks = [t for t in app.get("tasks", []) if t.get("state") == "TASK_RUNNING"]
        healthy = [t for t in tasks if t.get("healthCheckResults") and all(h["alive"] for h in t["healthCheckResults"])]
        versions = {t["version"] for t in tasks}
        if len(healthy) == app["instances"] == len(tasks) and versions == {app["version"]}:
            return app["version"]
        return None

    return wait_for(check, timeout, "one version fully running", interval=0.5)


def served_by(rig: Rig, version: str) -> None:
    def check():
        answers = []
        for _ in range(20):
            try:
                r = rig.lb.get(VHOST, "/")
            except requests.RequestException:
                return False
            answers.append(r.status_code == 200 and f"hello from {version} " in r.text)
        return all(answers)

    wait_for(check, 30, f"every request answered by {version} through HAProxy", interval=0.5)


def task_processes(state_dir: Path) -> set[str]:
    """MESOS_TASK_ID of every task process alive for APP_ID whose sandbox is under this devcluster's state dir."""
    out = set()
    slug = APP_ID.strip("/").replace("/", "_")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if not os.readlink(f"/proc/{pid}/cwd").startswith(str(state_dir)):
                continue
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in environ:
            if item.startswith(b"MESOS_TASK_ID=") and item[14:].decode(errors="replace").startswith(slug):
                out.add(item[14:].decode())
    return out


def check_invariants(rig: Rig, spec: Path) -> dict:
    version = settled_version(rig)
    served_by(rig, version)
    # no stale lock: a plain deploy of the same spec goes through, waiting at most the session timeout
    t0 = time.monotonic()
    rc, doc, out = rig.deploy(spec, "--lock-timeout", f"{ZK_SESSION_TIMEOUT + 5:.0f}s")
    waited = time.monotonic() - t0
    assert rc == 0, out
    assert doc.get("result") in ("success", "unchanged"), out
    version = settled_version(rig)
    served_by(rig, version)
    # Consul holds the config every running task references
    app = rig.app()
    consul = ConsulClient(rig.dc.consul_url)
    prefixes = {t.get("env", {}).get("DEPLOYKIT_CONFIG_PREFIX") for t in [app]} - {None}
    prefixes |= {app["env"].get("DEPLOYKIT_CONFIG_PREFIX")} - {None}
    for prefix in prefixes:
        assert consul.ls(prefix.rstrip("/") + "/", separator=None), f"config {prefix} referenced but gone"
    # nothing orphaned
    running = {t["id"] for t in app["tasks"] if t["state"] == "TASK_RUNNING"}
    deadline = time.monotonic() + 15
    while (alive := task_processes(rig.dc.state_dir)) != running and time.monotonic() < deadline:
        time.sleep(0.5)
    assert alive == running, f"task processes {sorted(alive)} != Marathon's running tasks {sorted(running)}"
    return {"version": version, "redeploy_seconds": round(waited, 2), "redeploy_result": doc.get("result")}


# every victim at the fixed seed's moment, and one more round whose victim and moment the rotating seed picks
SCENARIOS = [(victim, FIXED_SEED) for victim in VICTIMS] + [
    (random.Random(ROTATING_SEED).choice(VICTIMS), ROTATING_SEED)]


@pytest.mark.parametrize(("victim", "seed"), SCENARIOS, ids=[f"{v}-seed{s}" for v, s in SCENARIOS])
def test_kill_each_process_during_a_deploy(victim, seed, tmp_path, record_summary):
    require_zookeeper()
    rig = Rig(tmp_path)
    rounds = []
    try:
        v1 = write_spec(tmp_path, "v1")
        rc, _, out = rig.deploy(v1)
        assert rc == 0, out
        served_by(rig, settled_version(rig))
        for greeting in ("v2",):
            moment = random.Random(f"{seed}-{victim}").uniform(0.3, 6.0)
            spec = write_spec(tmp_path, greeting)
            with LoadGen(rig.lb.http_port, [VHOST], rate=20, threads=2, path="/") as load:
                proc = rig.deploy_proc(spec)
                time.sleep(moment)
                rig.kill(victim, proc)
                try:
                    proc.communicate(timeout=120)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    pytest.fail("deploykit deploy did not finish within 120 s after the fault")
            result = check_invariants(rig, spec)
            rounds.append({"seed": seed, "kill_at_s": round(moment, 2), "deploy_exit": proc.returncode,
                           "requests": load.total, "failed": len(load.failed), **result})
    finally:
        record_summary(f"faults_{victim}_{seed}", {"victim": victim, "rounds": rounds})
        rig.close()
