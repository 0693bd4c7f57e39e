"""`deploykit deploy` end to end: the real CLI against the devcluster (Marathon + Consul API),
real ZooKeeper for locks, examples/hello as the app (HELLO_FAIL_HEALTH=1 breaks its /health).

One devcluster for the module; every test uses its own app id and service port.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml

from deploykit.clients.consul import ConsulClient
from tests.harness.common import free_port, wait_until
from tests.harness.devcluster import HELLO_AS_COMMAND, Devcluster

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello"
DEPLOYKIT = [str(Path(sys.executable).parent / "deploykit")]


# --------------------------------------------------------------------------- fixtures and helpers
@pytest.fixture(scope="module")
def dc(tmp_path_factory):
    # Our own host-port window: other devclusters on this machine default to 31000-32000, and a
    # port taken between allocation and bind makes a task fail for reasons unrelated to the test.
    low = random.randrange(20000, 29000, 500)
    cluster = Devcluster(tmp_path_factory.mktemp("deploy-dc"), heartbeat="1s",
                         extra_args=["--task-port-range", f"{low}-{low + 499}"])
    cluster.start()
    try:
        yield cluster
    finally:
        # SIGKILL + the harness's task-group cleanup: a graceful stop of this devcluster build
        # hangs ~20 s when a deployment was left running (as several tests here do on purpose).
        cluster.kill()


@pytest.fixture(scope="module")
def appdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("apps")
    shutil.copy(HELLO / "server.py", d / "server.py")
    shutil.copytree(HELLO / "config", d / "config")
    return d


def write_app(appdir: Path, name: str, app_id: str, port: int, *, env: dict | None = None, grace: str = "2s",
              config: dict | None = None, secrets: dict | None = None, instances: int = 2,
              vhost: str | None = None) -> Path:
    doc = yaml.safe_load((HELLO / "app.yaml").read_text())
    doc["id"] = app_id
    # every app its own vhost: a vhost another app holds is refused by deploy (lb.claims)
    doc["haproxy"]["vhost"] = [vhost or f"{app_id.strip('/').replace('/', '-')}.test"]
    doc["instances"] = instances
    doc["ports"][0]["service"] = port
    doc["env"] = {"GREETING": "hello", **(env or {})}
    doc["health"] = {"path": "/health", "port": "http", "grace": grace, "interval": "2s", "timeout": "1s",
                     "max_failures": 2}
    doc["readiness"] = {"path": "/ready", "port": "http", "interval": "2s", "timeout": "1s"}
    doc["upgrade"] = {"minimum_health_capacity": 0.5, "maximum_over_capacity": 0.5}
    doc["environments"]["local"] = dict(HELLO_AS_COMMAND)
    if config is not None:
        doc["config"]["values"] = config
    if secrets:
        doc["secrets"] = secrets
    path = appdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def run_cli(*args: str, env: dict | None = None, timeout: float = 120) -> tuple[int, dict | None, str, str]:
    full_env = {**os.environ, **(env or {}), "NO_COLOR": "1"}
    proc = subprocess.run([*DEPLOYKIT, *args], capture_output=True, text=True, env=full_env, timeout=timeout,
                          cwd=REPO)
    doc = None
    if "--output" in args or "-o" in args:
        try:
            doc = json.loads(proc.stdout)
        except ValueError:
            pytest.fail(f"stdout is not one JSON document:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    # stderr comes back with stdout appended, so `assert rc == 0, err` shows the whole story
    return proc.returncode, doc, proc.stdout, f"{proc.stderr}\n--- stdout ---\n{proc.stdout}"


def deploy(dc: Devcluster, app: Path, *extra: str, env: dict | None = None, env_dir: Path | None = None):
    return run_cli("deploy", str(app), "--env", "local", "--env-dir", str(env_dir or dc.env_dir), "--output", "json",
                   *extra, env=env)


def get_app(dc: Devcluster, app_id: str) -> dict:
    return requests.get(f"{dc.marathon_url}/v2/apps{app_id}", params={"embed": "app.tasks"}, timeout=5).json()["app"]


def deployments_of(dc: Devcluster, app_id: str) -> list[dict]:
    deps = requests.get(f"{dc.marathon_url}/v2/deployments", timeout=5).json()
    return [d for d in deps if app_id in d.get("affectedApps", [])]


def task_answers(dc: Devcluster, app_id: str) -> list[str]:
    out = []
    for t in get_app(dc, app_id).get("tasks", []):
        if t.get("state") == "TASK_RUNNING":
            out.append(requests.get(f"http://127.0.0.1:{t['ports'][0]}/", timeout=3).text)
    return out


def remove_app(dc: Devcluster, app_id: str) -> None:
    requests.delete(f"{dc.marathon_url}/v2/apps{app_id}", params={"force": "true"}, timeout=5)


def zk_env(dc: Devcluster, zookeeper, tmp_path: Path) -> Path:
    doc = json.loads((dc.env_dir / "local.json").read_text())
    dk = doc["default_attributes"]["deploykit"]
    dk["zookeeper"] = {"hosts": zookeeper.hosts, "lock_root": "/deploykit/locks"}
    dk["lock"] = "zookeeper"
    d = tmp_path / "zkenv"
    d.mkdir()
    (d / "local.json").write_text(json.dumps(doc))
    return d


class Sampler(threading.Thread):
    """Acts like a load balancer following Marathon: every 100 ms, asks a healthy task."""

    def __init__(self, dc: Devcluster, app_id: str):
        super().__init__(daemon=True)
        self.dc, self.app_id = dc, app_id
        self.rounds = 0
        self.failed_rounds: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                tasks = [t for t in get_app(self.dc, self.app_id).get("tasks", [])
                         if t.get("state") == "TASK_RUNNING" and all(h.get("alive") for h in
                                                                       t.get("healthCheckResults") or [{}])
                         and t.get("healthCheckResults")]
                answered = 0
                for t in tasks:
                    try:
                        if requests.get(f"http://127.0.0.1:{t['ports'][0]}/", timeout=2).status_code == 200:
                            answered += 1
                    except requests.RequestException:
                        pass  # a task being replaced right now; another healthy one must answer
                self.rounds += 1
                if not answered:
                    self.failed_rounds.append(f"{len(tasks)} healthy tasks, none answered")
            except requests.RequestException as exc:
                self.failed_rounds.append(f"Marathon: {exc}")
            time.sleep(0.1)


# --------------------------------------------------------------------------- tests
def test_happy_path_v1_v2_no_change_and_rollback_of_rollback(dc, appdir):
    app_id = "/it/happy"
    v1 = write_app(appdir, "happy1", app_id, 10611, config={"greeting": "v1"})
    v2 = write_app(appdir, "happy2", app_id, 10611, env={"GREETING": "v2"}, config={"greeting": "v2"})

    rc, doc1, _, err = deploy(dc, v1)
    assert rc == 0, err
    assert doc1["ok"] and doc1["result"] == "success" and doc1["deploymentId"]
    assert doc1["versions"]["from"] is None and doc1["versions"]["to"]
    p1 = doc1["config"]["prefix"]

    sampler = Sampler(dc, app_id)
    sampler.start()
    rc, doc2, _, err = deploy(dc, v2)
    sampler.halt.set()
    sampler.join(5)
    assert rc == 0, err
    for key in ("result", "deploymentId", "versions", "timings", "errors", "config", "plan", "lock", "image"):
        assert key in doc2
    assert doc2["lock"]["name"] == "local/it/happy" and doc2["lock"]["holder"]["pid"] > 0
    assert doc2["versions"]["from"] == doc1["versions"]["to"] and doc2["versions"]["to"] != doc2["versions"]["from"]
    t = doc2["timings"]
    assert t["timeout_budget_seconds"] > 0 and t["rollback_budget_seconds"] > 0 and t["total_seconds"] > 0
    assert sampler.rounds >= 3 and not sampler.failed_rounds, sampler.failed_rounds
    p2 = doc2["config"]["prefix"]
    assert p1 != p2

    # both config versions in Consul; each task points at its own (all at v2 now)
    consul = ConsulClient(dc.consul_url)
    hashes = {h for h, _ in consul.list_config_versions("config/it/happy")}
    assert {p1.rsplit("/", 1)[1], p2.rsplit("/", 1)[1]} <= hashes
    assert consul.tree(p1 + "/")[p1 + "/greeting"] == b"v1"
    answers = task_answers(dc, app_id)
    assert len(answers) == 2 and all(f"config={p2} " in a and "greeting=v2" in a for a in answers), answers

    # the same file again: nothing to change, no deployment
    versions_before = requests.get(f"{dc.marathon_url}/v2/apps{app_id}/versions", timeout=5).json()["versions"]
    rc, doc3, _, err = deploy(dc, v2)
    assert rc == 0 and doc3["result"] == "unchanged", err
    assert requests.get(f"{dc.marathon_url}/v2/apps{app_id}/versions", timeout=5).json()["versions"] == versions_before

    # diff shows the change without making it
    rc, ddoc, _, _ = run_cli("diff", str(v1), "--env", "local", "--env-dir", str(dc.env_dir), "--output", "json")
    assert rc == 0 and ddoc["result"] == "changes"
    rc, _, out, _ = run_cli("diff", str(v1), "--env", "local", "--env-dir", str(dc.env_dir), "--detailed-exitcode")
    assert rc == 2 and '~ env.GREETING: "v2" -> "hello"' in out
    assert any(c["path"] == "env.GREETING" for c in ddoc["plan"]["changes"])
    assert requests.get(f"{dc.marathon_url}/v2/apps{app_id}/versions", timeout=5).json()["versions"] == versions_before

    # rollback -> v1; rollback of the rollback -> v2
    common = ["--env", "local", "--env-dir", str(dc.env_dir), "--output", "json"]
    rc, rb1, _, err = run_cli("rollback", app_id, *common)
    assert rc == 0 and rb1["result"] == "success", err
    assert all(f"config={p1} " in a for a in task_answers(dc, app_id))
    rc, rb2, _, err = run_cli("rollback", app_id, *common)
    assert rc == 0 and rb2["result"] == "success", err
    assert all(f"config={p2} " in a for a in task_answers(dc, app_id))

    rc, hist, _, _ = run_cli("history", app_id, *common)
    assert rc == 0 and len(hist["versions"]) >= 4
    results = {v["version"]: v["result"] for v in hist["versions"]}
    assert results[doc1["versions"]["to"]] == "success" and results[doc2["versions"]["to"]] == "success"
    assert results[rb2["versions"]["to"]].startswith("rollback to ")
    assert {v["config_hash"] for v in hist["versions"]} >= {p1.rsplit("/", 1)[1], p2.rsplit("/", 1)[1]}
    rc, st, _, _ = run_cli("status", str(v2), *common)
    assert rc == 0 and st["exists"] and st["instances"] == 2 and st["deployments"] == []

    # scale only: no restart of the running tasks
    v2x3 = write_app(appdir, "happy3", app_id, 10611, env={"GREETING": "v2"}, config={"greeting": "v2"}, instances=3)
    before = {t["id"] for t in get_app(dc, app_id)["tasks"]}
    rc, doc4, _, err = deploy(dc, v2x3)
    assert rc == 0 and doc4["plan"]["kind"] == "scale", err
    after = {t["id"] for t in get_app(dc, app_id)["tasks"]}
    assert before < after and len(after) == 3
    rc, doc5, _, err = deploy(dc, v2x3)  # the same file again: the kept labels must not look like a change
    assert rc == 0 and doc5["result"] == "unchanged", (doc5, err)
    remove_app(dc, app_id)


def test_broken_version_fails_fast_and_rolls_back(dc, appdir):
    app_id = "/it/broken"
    good = write_app(appdir, "broken-good", app_id, 10612, config={"greeting": "good"})
    bad = write_app(appdir, "broken-bad", app_id, 10612, env={"HELLO_FAIL_HEALTH": "1"}, config={"greeting": "bad"})
    rc, gdoc, _, err = deploy(dc, good)
    assert rc == 0, err
    good_prefix = gdoc["config"]["prefix"]
    consul = ConsulClient(dc.consul_url)
    good_tree = consul.tree(good_prefix + "/")

    t0 = time.monotonic()
    rc, doc, _, err = deploy(dc, bad)
    took = time.monotonic() - t0
    assert rc == 1, err
    # grace 2s + 2 x 2s checks, a couple of tasks, plus the rollback: far below the derived timeout
    assert took < 30, took
    assert doc["timings"]["timeout_budget_seconds"] >= 60
    assert doc["result"] == "rolled_back"
    assert doc["failure"]["reason"] in ("health_failures", "unhealthy_kill", "task_failed")
    assert "health" in doc["failure"]["message"] or "unhealthy" in doc["failure"]["message"]
    assert doc["rollback"]["ok"] is True and doc["rollback"]["deploymentId"]
    answers = task_answers(dc, app_id)
    assert len(answers) == 2 and all(f"config={good_prefix} " in a for a in answers), answers
    assert consul.tree(good_prefix + "/") == good_tree
    assert deployments_of(dc, app_id) == []
    rc, hist, _, _ = run_cli("history", app_id, "--env", "local", "--env-dir", str(dc.env_dir), "--output", "json")
    results = {v["version"]: (v["result"], v["reason"]) for v in hist["versions"]}
    assert results[doc["deployedVersion"]] == ("rolled_back", doc["failure"]["reason"])
    assert results[doc["rollback"]["version"]] == ("rollback succeeded", None)
    remove_app(dc, app_id)


def test_no_rollback_leaves_the_deployment_and_says_how_to_proceed(dc, appdir):
    app_id = "/it/norb"
    good = write_app(appdir, "norb-good", app_id, 10613)
    bad = write_app(appdir, "norb-bad", app_id, 10613, env={"HELLO_FAIL_HEALTH": "1"})
    assert deploy(dc, good)[0] == 0
    rc, doc, _, err = deploy(dc, bad, "--no-rollback")
    assert rc == 1, (doc, err)
    assert doc["rollback"]["attempted"] is False
    assert "deploykit rollback /it/norb --env local" in doc["message"]
    assert [d["id"] for d in deployments_of(dc, app_id)] == [doc["deploymentId"]]
    # a person takes over: status shows the stuck deployment; rollback cancels it only when told to (--force)
    common = ["--env", "local", "--env-dir", str(dc.env_dir), "--output", "json"]
    rc, st, _, err = run_cli("status", app_id, *common)
    assert rc == 0 and [d["id"] for d in st["deployments"]] == [doc["deploymentId"]], (st, err)
    assert st["deployments"][0]["age"].startswith("started ") and st["versions"]
    rc, locked, _, err = run_cli("rollback", app_id, *common)
    assert rc == 3 and doc["deploymentId"] in locked["message"], (locked, err)
    rc, rb, _, err = run_cli("rollback", app_id, "--to", doc["versions"]["from"], "--force", *common)
    assert rc == 0, (rb, err)
    wait_until(lambda: deployments_of(dc, app_id) == [], 5, "no deployment left")
    remove_app(dc, app_id)


def test_timeout_rolls_back_with_reason_timeout(dc, appdir):
    app_id = "/it/timeout"
    good = write_app(appdir, "to-good", app_id, 10614)
    # failing health inside a long grace period: nothing to fail fast on, only the clock
    slow = write_app(appdir, "to-slow", app_id, 10614, env={"HELLO_FAIL_HEALTH": "1"}, grace="60s")
    assert deploy(dc, good)[0] == 0
    t0 = time.monotonic()
    rc, doc, _, err = deploy(dc, slow, "--timeout", "4s", "--max-failures", "50")
    took = time.monotonic() - t0
    assert rc == 1, (doc, err)
    assert took < 25, (took, doc)
    assert doc["failure"]["reason"] == "timeout" and doc["timings"]["timeout_budget_seconds"] == 4, doc
    assert doc["rollback"]["ok"] and doc["result"] == "rolled_back", doc
    wait_until(lambda: deployments_of(dc, app_id) == [], 5, "no deployment left")
    remove_app(dc, app_id)


def test_marathon_unreachable_before_any_change(dc, appdir, tmp_path):
    app = write_app(appdir, "unreach", "/it/unreach", 10615, config={"greeting": "never"})
    doc = json.loads((dc.env_dir / "local.json").read_text())
    doc["default_attributes"]["deploykit"]["marathon"]["urls"] = [f"http://127.0.0.1:{free_port()}"]
    (tmp_path / "local.json").write_text(json.dumps(doc))
    rc, out, _, _ = deploy(dc, app, env_dir=tmp_path)
    assert rc == 4 and "unreachable" in out["message"].lower() and out["error"] == "UnreachableError"
    assert out["deploymentId"] is None and out["result"] == "error"
    assert ConsulClient(dc.consul_url).ls("config/it/unreach/", separator=None) == []


def test_consul_failure_leaves_marathon_untouched(dc, appdir, consul_server, zookeeper):
    """Consul dies right before the config write (after validation, Marathon check and lock)."""
    from deploykit.clients import zk as zkc
    from deploykit.clients.locks import Holder, ZkDeployLock
    from deploykit.clients.marathon import MarathonClient
    from deploykit.deploy import Clients, DeployOptions
    from deploykit.deploy import deploy as run_deploy

    app_id = "/it/consulfail"
    app = write_app(appdir, "consulfail", app_id, 10616, config={"greeting": "x"})
    kz = zkc.connect(zookeeper.hosts)
    consul = ConsulClient(consul_server.url, timeout=2)
    clients = Clients(
        marathon=MarathonClient([dc.marathon_url]),
        consul=consul,
        lock_factory=lambda a: ZkDeployLock(kz, "/deploykit/locks", "local", a, Holder.current()),
    )

    def progress(phase: str, info: dict) -> None:
        if phase == "config":
            consul_server.kill()

    try:
        with pytest.raises(Exception) as ei:
            run_deploy(DeployOptions(app_path=str(app), env_name="local", env_dir=str(dc.env_dir)),
                       clients=clients, progress=progress)
    finally:
        clients.marathon.close()
        kz.stop()
        kz.close()
    assert getattr(ei.value, "exit_code", None) == 4, repr(ei.value)
    assert ei.value.to_dict()["deploymentId"] is None
    assert requests.get(f"{dc.marathon_url}/v2/apps{app_id}", timeout=5).status_code == 404
    consul_server.start()
    assert ConsulClient(consul_server.url).ls("config/it/consulfail/", separator=None) == []


def test_consul_txn_rolled_back_leaves_marathon_and_consul_untouched(dc, appdir, consul_factory, zookeeper):
    """Consul answers the config write with a real 409 transaction rollback (a token that may read but not
    write config/): the deploy stops at the config step with a clear error, nothing reaches Marathon and no
    key of the new version exists in Consul."""
    from deploykit.clients import zk as zkc
    from deploykit.clients.locks import Holder, ZkDeployLock
    from deploykit.clients.marathon import MarathonClient
    from deploykit.deploy import Clients, DeployOptions
    from deploykit.deploy import deploy as run_deploy

    consul = consul_factory(acl={"tokens": {"reader": {"": "read"}, "admin": "management"},
                                 "default_policy": "deny"})
    app_id = "/it/txnfail"
    app = write_app(appdir, "txnfail", app_id, 10624, config={"greeting": "x"})
    kz = zkc.connect(zookeeper.hosts)
    clients = Clients(
        marathon=MarathonClient([dc.marathon_url]),
        consul=ConsulClient(consul.url, token="reader"),
        lock_factory=lambda a: ZkDeployLock(kz, "/deploykit/locks", "local", a, Holder.current()),
    )
    try:
        with pytest.raises(Exception) as ei:
            run_deploy(DeployOptions(app_path=str(app), env_name="local", env_dir=str(dc.env_dir)), clients=clients)
    finally:
        clients.marathon.close()
        clients.consul.close()
        kz.stop()
        kz.close()
    doc = ei.value.to_dict()
    # a refused write is fixed by a token, not by retrying: exit 2, like a 403 on a plain PUT
    assert doc["error"] == "TxnDenied" and ei.value.exit_code == 2, doc
    assert "Permission denied" in doc["message"] and "check the token" in doc["message"], doc
    assert doc["deploymentId"] is None, doc
    assert requests.get(f"{dc.marathon_url}/v2/apps{app_id}", timeout=5).status_code == 404
    assert ConsulClient(consul.url, token="admin").ls("config/", separator=None) == []


def test_concurrent_deploys_exactly_one_proceeds(dc, appdir, zookeeper, tmp_path):
    from deploykit.clients import zk as zkc
    from deploykit.clients.locks import Holder, ZkDeployLock

    env_dir = zk_env(dc, zookeeper, tmp_path)
    app_id = "/it/conc"
    good = write_app(appdir, "conc-good", app_id, 10617)
    slow = write_app(appdir, "conc-slow", app_id, 10617, env={"HELLO_FAIL_HEALTH": "1"}, grace="60s")
    assert deploy(dc, good, env_dir=env_dir)[0] == 0

    first = subprocess.Popen([*DEPLOYKIT, "deploy", str(slow), "--env", "local", "--env-dir", str(env_dir),
                              "--output", "json", "--timeout", "6s", "--max-failures", "50"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    kz = zkc.connect(zookeeper.hosts)
    try:
        wait_until(lambda: bool(kz.exists("/deploykit/locks/local/it/conc")
                                and kz.get_children("/deploykit/locks/local/it/conc")), 20, "first deploy's lock")
        rc, doc, _, _ = deploy(dc, good, env_dir=env_dir)
        assert rc == 3
        assert doc["lock"]["holder"]["pid"] == first.pid
        assert str(first.pid) in doc["message"] and doc["deploymentId"] is None
        out, err = first.communicate(timeout=60)
        assert first.returncode == 1, err
        assert json.loads(out)["failure"]["reason"] == "timeout"

        # a waiting deployer proceeds once the holder lets go
        held = ZkDeployLock(kz, "/deploykit/locks", "local", app_id,
                            Holder("alice", "laptop", 1, "https://ci.example/job/9/", "2026-01-01T00:00:00+00:00"))
        held.acquire(5)
        threading.Timer(2.0, held.release).start()
        v3 = write_app(appdir, "conc-v3", app_id, 10617, env={"GREETING": "v3"})
        rc, doc, _, err = deploy(dc, v3, "--lock-timeout", "20s", env_dir=env_dir)
        assert rc == 0, err
        assert doc["timings"]["lock_seconds"] >= 0.5  # it waited for the release
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        kz.stop()
        kz.close()
    remove_app(dc, app_id)


def test_losing_the_zk_session_mid_deploy_stops_safely(dc, appdir, zookeeper):
    from kazoo.client import KazooClient

    from deploykit.clients import zk as zkc
    from deploykit.clients.locks import Holder, ZkDeployLock
    from deploykit.clients.marathon import MarathonClient
    from deploykit.deploy import Clients, DeployLocked, DeployOptions
    from deploykit.deploy import deploy as run_deploy

    app_id = "/it/zklost"
    good = write_app(appdir, "zklost-good", app_id, 10618)
    slow = write_app(appdir, "zklost-slow", app_id, 10618, env={"HELLO_FAIL_HEALTH": "1"}, grace="60s")
    assert deploy(dc, good)[0] == 0
    versions_before = len(requests.get(f"{dc.marathon_url}/v2/apps{app_id}/versions", timeout=5).json()["versions"])
    kz = zkc.connect(zookeeper.hosts, timeout=4)
    clients = Clients(
        marathon=MarathonClient([dc.marathon_url]),
        consul=ConsulClient(dc.consul_url),
        lock_factory=lambda a: ZkDeployLock(kz, "/deploykit/locks", "local", a, Holder.current()),
    )
    expired = []

    def progress(phase: str, info: dict) -> None:
        if phase == "deploy_wait" and not expired:
            sid, pw = kz.client_id
            thief = KazooClient(hosts=zookeeper.hosts, client_id=(sid, pw))
            thief.start(5)
            thief.stop()
            thief.close()
            expired.append(time.monotonic())

    opts = DeployOptions(app_path=str(slow), env_name="local", env_dir=str(dc.env_dir), timeout=60, max_failures=50)
    try:
        with pytest.raises(DeployLocked) as ei:
            run_deploy(opts, clients=clients, progress=progress)
    finally:
        clients.marathon.close()
        clients.consul.close()
        kz.stop()
        kz.close()
    assert expired and time.monotonic() - expired[0] < 20
    doc = ei.value.to_dict()
    assert ei.value.exit_code == 3 and "lost the deploy lock" in doc["message"]
    assert doc["result"] == "lock_lost" and "rollback" not in doc
    # no further change: the deployment is left running, no rollback version was PUT
    assert [d["id"] for d in deployments_of(dc, app_id)] == [doc["deploymentId"]]
    versions_after = len(requests.get(f"{dc.marathon_url}/v2/apps{app_id}/versions", timeout=5).json()["versions"])
    assert versions_after == versions_before + 1
    remove_app(dc, app_id)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_leaves_deployment_running_exit_130(dc, appdir, sig):
    app_id = f"/it/intr-{sig.name.lower()}"
    port = 10619 if sig == signal.SIGINT else 10622
    good = write_app(appdir, f"intr-good-{sig.name}", app_id, port)
    slow = write_app(appdir, f"intr-slow-{sig.name}", app_id, port, env={"HELLO_FAIL_HEALTH": "1"}, grace="60s")
    assert deploy(dc, good)[0] == 0
    proc = subprocess.Popen([*DEPLOYKIT, "deploy", str(slow), "--env", "local", "--env-dir", str(dc.env_dir),
                             "--output", "json", "--max-failures", "50"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        wait_until(lambda: bool(deployments_of(dc, app_id)), 20, "the deployment")
        time.sleep(0.5)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    doc = json.loads(out)
    assert doc["result"] == "interrupted" and f"deploykit rollback {app_id}" in doc["instructions"]
    assert [d["id"] for d in deployments_of(dc, app_id)] == [doc["deploymentId"]]
    remove_app(dc, app_id)


def test_force_deploy_by_someone_else_is_reported_by_id(dc, appdir):
    app_id = "/it/super"
    good = write_app(appdir, "super-good", app_id, 10620)
    slow = write_app(appdir, "super-slow", app_id, 10620, env={"HELLO_FAIL_HEALTH": "1"}, grace="60s")
    assert deploy(dc, good)[0] == 0
    proc = subprocess.Popen([*DEPLOYKIT, "deploy", str(slow), "--env", "local", "--env-dir", str(dc.env_dir),
                             "--output", "json", "--max-failures", "50"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        wait_until(lambda: bool(deployments_of(dc, app_id)), 20, "our deployment")
        theirs = get_app(dc, app_id)
        for k in ("version", "versionInfo", "tasks", "deployments", "tasksRunning", "tasksHealthy", "tasksStaged",
                  "tasksUnhealthy", "lastTaskFailure"):
            theirs.pop(k, None)
        theirs["env"] = {**theirs["env"], "HELLO_FAIL_HEALTH": "0", "GREETING": "someone else"}
        r = requests.put(f"{dc.marathon_url}/v2/apps{app_id}", params={"force": "true"}, json=theirs, timeout=5)
        other_id = r.json()["deploymentId"]
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3, err
    doc = json.loads(out)
    assert doc["failure"]["reason"] == "superseded" and doc["failure"]["other_deployment"] == other_id
    assert other_id in doc["message"] and doc["rollback"]["attempted"] is False
    remove_app(dc, app_id)


def test_secret_never_leaks(dc, appdir):
    canary = "canary-Zq7xK2pw9"
    app_id = "/it/secret"
    app = write_app(appdir, "secret", app_id, 10621, secrets={"DB_PASSWORD": {"from_env": "DK_IT_CANARY"}})
    env = {"DK_IT_CANARY": canary}
    outputs = []
    common = ["--env", "local", "--env-dir", str(dc.env_dir)]
    for args in (["deploy", str(app), *common, "--dry-run"], ["diff", str(app), *common],
                 ["deploy", str(app), *common, "--output", "json"], ["deploy", str(app), *common],
                 ["status", app_id, *common, "--output", "json"], ["history", app_id, *common],
                 ["deploy", str(app), *common, "--dry-run", "--output", "json"]):
        rc, _, out, err = run_cli(*args, env=env)
        assert rc == 0, err
        outputs += [out, err]
    assert outputs and not any(canary in o for o in outputs)
    app_json = get_app(dc, app_id)
    assert app_json["env"]["DB_PASSWORD"] == canary  # it did reach Marathon, as it must
    assert canary not in json.dumps(app_json.get("labels"))
    keys = ConsulClient(dc.consul_url).ls("", separator=None)
    assert keys and not any(canary in k for k in keys)
    # a changed secret shows as a changed digest, never as the value
    rc, _, out, err = run_cli("diff", str(app), *common, env={"DK_IT_CANARY": canary + "-2"})
    assert rc == 0 and "env.DB_PASSWORD" in out and "redacted" in out and canary not in out + err
    remove_app(dc, app_id)


def test_rollback_refused_when_previous_config_is_gone(dc, appdir):
    app_id = "/it/nocfg"
    good = write_app(appdir, "nocfg-good", app_id, 10623, config={"greeting": "good"})
    bad = write_app(appdir, "nocfg-bad", app_id, 10623, env={"HELLO_FAIL_HEALTH": "1"}, config={"greeting": "bad"})
    rc, gdoc, _, err = deploy(dc, good)
    assert rc == 0, err
    ConsulClient(dc.consul_url).delete(gdoc["config"]["prefix"] + "/", recurse=True)  # someone removed it
    rc, doc, _, err = deploy(dc, bad)
    assert rc == 5, (doc, err)
    assert doc["result"] == "rollback_failed" and doc["rollback"]["attempted"] is False
    assert gdoc["config"]["hash"] in doc["message"] and "human" in doc["message"]
    remove_app(dc, app_id)


def test_task_failures_fail_fast_with_the_task_message(dc, appdir):
    """A Docker app whose image cannot be pulled (nothing listens at its registry): every task fails ->
    TASK_FAILED counted."""
    app = write_app(appdir, "dockerish", "/it/dockerish", 10624)
    doc = yaml.safe_load(app.read_text())
    doc["image"] = "127.0.0.1:9/it/unpullable"
    doc["environments"]["local"] = {}
    app.write_text(yaml.safe_dump(doc))
    t0 = time.monotonic()
    rc, out, _, err = deploy(dc, app, "--image-tag", "1.0")
    assert rc == 1, (out, err)
    assert time.monotonic() - t0 < 30
    assert out["failure"]["reason"] == "task_failed" and "TASK_FAILED" in out["failure"]["message"]
    assert out["rollback"] == {"attempted": False, "why": "the app is new, there is no previous version"}
    remove_app(dc, "/it/dockerish")


def test_config_gc_keeps_newest_and_every_version_marathon_knows(dc, appdir):
    app_id = "/it/gc"
    consul = ConsulClient(dc.consul_url)
    first = write_app(appdir, "gc-1", app_id, 10625, config={"greeting": "first"})
    rc, d1, _, err = deploy(dc, first)
    assert rc == 0, err
    # seven trees pushed but never deployed (e.g. `deploykit config push`), older than the next deploy
    pushed = [f"{i:016x}" for i in range(7)]
    for h in pushed:
        consul.write_config_tree(f"config/it/gc/{h}", {"greeting": h.encode()})
    second = write_app(appdir, "gc-2", app_id, 10625, config={"greeting": "second"})
    rc, d2, _, err = deploy(dc, second)
    assert rc == 0, err
    left = {h for h, _ in consul.list_config_versions("config/it/gc")}
    # keep_versions=5 newest (second + the 4 newest pushed) plus the first, which a Marathon version uses
    assert d1["config"]["hash"] in left and d2["config"]["hash"] in left
    assert left - {d1["config"]["hash"], d2["config"]["hash"]} == set(pushed[-4:])
    assert sorted(d2["config"]["gc_deleted"]) == pushed[:3]
    remove_app(dc, app_id)


def test_rollback_on_interrupt_for_ci_aborts(dc, appdir):
    app_id = "/it/intr-rb"
    good = write_app(appdir, "intr-rb-good", app_id, 10626)
    slow = write_app(appdir, "intr-rb-slow", app_id, 10626, env={"HELLO_FAIL_HEALTH": "1"}, grace="60s")
    assert deploy(dc, good)[0] == 0
    proc = subprocess.Popen([*DEPLOYKIT, "deploy", str(slow), "--env", "local", "--env-dir", str(dc.env_dir),
                             "--output", "json", "--max-failures", "50", "--rollback-on-interrupt"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        wait_until(lambda: bool(deployments_of(dc, app_id)), 20, "the deployment")
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    doc = json.loads(out)
    assert proc.returncode == 1, (doc, err)
    assert doc["failure"]["reason"] == "interrupted" and doc["rollback"]["ok"] and doc["result"] == "rolled_back"
    wait_until(lambda: deployments_of(dc, app_id) == [], 5, "no deployment left")
    assert all("greeting=hello" in a for a in task_answers(dc, app_id))
    remove_app(dc, app_id)


def test_409_from_a_deployment_started_meanwhile_names_it_with_its_age(dc, appdir):
    """Someone starts a deployment between our checks and our PUT: Marathon's 409 is reported, exit 3."""
    from deploykit.clients.locks import ConsulDeployLock, Holder
    from deploykit.clients.marathon import MarathonClient
    from deploykit.deploy import Clients, DeployLocked, DeployOptions
    from deploykit.deploy import deploy as run_deploy

    app_id = "/it/race"
    good = write_app(appdir, "race-good", app_id, 10627)
    v2 = write_app(appdir, "race-v2", app_id, 10627, env={"GREETING": "v2"})
    assert deploy(dc, good)[0] == 0
    theirs = {k: v for k, v in get_app(dc, app_id).items() if k not in (
        "version", "versionInfo", "tasks", "deployments", "tasksRunning", "tasksHealthy", "tasksStaged",
        "tasksUnhealthy", "lastTaskFailure")}
    theirs["env"] = {**theirs["env"], "HELLO_FAIL_HEALTH": "1"}
    theirs["healthChecks"][0]["gracePeriodSeconds"] = 60  # stays deploying
    started = []

    def progress(phase: str, info: dict) -> None:
        if phase == "deploy" and not started:
            r = requests.put(f"{dc.marathon_url}/v2/apps{app_id}", json=theirs, timeout=5)
            started.append(r.json()["deploymentId"])

    consul = ConsulClient(dc.consul_url)
    marathon = MarathonClient([dc.marathon_url])
    clients = Clients(marathon=marathon, consul=consul, lock_factory=lambda a: ConsulDeployLock(
        consul, "deploykit/locks", "local", a, Holder.current()))
    try:
        with pytest.raises(DeployLocked) as ei:
            run_deploy(DeployOptions(app_path=str(v2), env_name="local", env_dir=str(dc.env_dir)), clients=clients,
                       progress=progress)
    finally:
        marathon.close()
        consul.close()
    doc = ei.value.to_dict()
    assert ei.value.exit_code == 3 and started[0] in doc["message"] and "started " in doc["message"]
    assert "--force" in doc["message"] and doc["result"] == "locked"
    remove_app(dc, app_id)


def test_deploy_refuses_a_vhost_or_service_port_another_app_holds(dc, appdir):
    """Issue 18 item 1: before any change, an app may not claim a route another app holds (exit 2, the holder
    named); nothing reaches Consul or Marathon."""
    port = free_port()
    holder = write_app(appdir, "claims-holder", "/claims/holder", port, vhost="shared.test", instances=1)
    rc, _, _, err = deploy(dc, holder)
    assert rc == 0, err
    squatter = write_app(appdir, "claims-aaa", "/claims/aaa", free_port(), vhost="shared.test", instances=1,
                         config={"other": "value"})
    rc, _, _, err = deploy(dc, squatter)
    assert rc == 2, err
    assert "host shared.test path / is already routed to /claims/holder" in err
    assert "free it in /claims/holder" in err
    assert requests.get(f"{dc.marathon_url}/v2/apps/claims/aaa", timeout=5).status_code == 404
    assert ConsulClient(dc.consul_url).ls("config/claims/aaa/", separator=None) == []
    # the holder itself redeploys fine
    rc, _, _, err = deploy(dc, write_app(appdir, "claims-holder", "/claims/holder", port, vhost="shared.test",
                                           instances=1, env={"X": "2"}))
    assert rc == 0, err
