"""`deploykit lb run` end to end: the real CLI daemon, real HAProxy, the devcluster as Marathon,
real ZooKeeper for leader discovery. Apps are PUT as Marathon JSON (the shape `deploykit render`
produces for the routing labels), which is what the daemon sees from any deploy tool.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from deploykit.errors import UnreachableError
from deploykit.lb.haproxy import parse_show_proc, socket_command
from tests.harness.common import free_port, wait_until
from tests.harness.devcluster import wait_for
from tests.harness.zookeeper import ZooKeeper, require_zookeeper

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def web_app(app_id: str, vhost: str, instances: int, version: str = "v1", **extra) -> dict:
    """A busybox httpd task answering /id with its task id and version; HTTP health on /health.

    Like any app meant for zero-downtime deploys it keeps serving for a moment after SIGTERM
    (it ignores TERM and Marathon's SIGKILL follows after taskKillGracePeriodSeconds): the
    load balancer takes it out of rotation on TASK_KILLING, before the process is gone.
    """
    return {
        "id": app_id,
        "instances": instances,
        "cpus": 0.01,
        "mem": 16,
        "cmd": (
            "trap '' TERM; echo ok > health && echo \"$MESOS_TASK_ID $VERSION\" > id && "
            "exec busybox httpd -f -p 127.0.0.1:$PORT0 -h ."
        ),
        "taskKillGracePeriodSeconds": 1,
        "env": {"VERSION": version},
        "portDefinitions": [{"port": 0, "name": "http"}],
        "healthChecks": [
            {
                "protocol": "HTTP",
                "path": "/health",
                "portIndex": 0,
                "gracePeriodSeconds": 10,
                "intervalSeconds": 1,
                "timeoutSeconds": 0,
                "maxConsecutiveFailures": 3,
            }
        ],
        "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0},
        "labels": {
            "HAPROXY_GROUP": "external",
            "HAPROXY_0_VHOST": vhost,
            "DEPLOYKIT_0_CHECK_PATH": "/health",
            "DEPLOYKIT_0_CHECK_INTERVAL_MS": "500",
            "DEPLOYKIT_0_CHECK_RISE": "1",
            "DEPLOYKIT_0_CHECK_FALL": "2",
        },
        **extra,
    }


def put_app(base: str, app: dict) -> None:
    r = requests.put(f"{base}/v2/apps{app['id']}", json=app, params={"force": "true"}, timeout=10)
    assert r.status_code in (200, 201), r.text


def healthy_tasks(base: str, app_id: str) -> list[str]:
    r = requests.get(f"{base}/v2/apps{app_id}", params={"embed": "app.tasks"}, timeout=5)
    if r.status_code != 200:
        return []
    app = r.json()["app"]
    return sorted(
        t["id"]
        for t in app.get("tasks", [])
        if t.get("state") == "TASK_RUNNING"
        and t.get("healthCheckResults")
        and all(h.get("alive") for h in t["healthCheckResults"])
    )


def settled(base: str, app_id: str, n: int) -> list[str]:
    """Wait until Marathon has exactly n healthy tasks and no deployment for the app."""

    def check():
        deps = requests.get(f"{base}/v2/deployments", timeout=5).json()
        busy = any(app_id in d.get("affectedApps", []) for d in deps)
        tasks = healthy_tasks(base, app_id)
        return tasks if not busy and len(tasks) == n else None

    return wait_for(check, 60, f"{app_id} settled at {n} healthy tasks", interval=0.2)


class LbRun:
    """`deploykit lb run` as a subprocess, with its own env file, HAProxy paths and ports."""

    def __init__(
        self,
        workdir: Path,
        marathon_urls: list[str],
        zk: str | None = None,
        extra: list[str] = (),
        quick_start: bool = False,
        tls_cert: Path | None = None,
    ):
        self.dir = workdir
        self.quick_start = quick_start  # no --haproxy-config: the env file's relative paths, run from `workdir`
        self.http_port = free_port()
        self.metrics_port = free_port()
        env = json.loads((REPO / "chef_attrs" / "local.json").read_text())
        dk = env["default_attributes"]["deploykit"]
        dk["marathon"]["urls"] = marathon_urls or ["http://127.0.0.1:1"]  # ZK-only: a dead fallback URL
        dk["haproxy"]["http_port"] = self.http_port
        dk["haproxy"]["bind_address"] = "127.0.0.1"
        self.https_port = free_port() if tls_cert is not None else None
        if tls_cert is not None:
            dk["haproxy"]["ssl_certs"] = [str(tls_cert)]
            dk["haproxy"]["https_port"] = self.https_port
        (workdir / "env").mkdir(parents=True, exist_ok=True)
        (workdir / "env" / "local.json").write_text(json.dumps(env))
        self.config = (
            workdir / ".deploykit" / "haproxy" / "haproxy.cfg" if quick_start else workdir / "haproxy" / "haproxy.cfg"
        )
        self.cmd = [
            str(Path(sys.executable).parent / "deploykit"),
            "lb",
            "run",
            "--env",
            "local",
            "--env-dir",
            str(workdir / "env"),
            "--haproxy-config",
            str(self.config),
            "--metrics-addr",
            f"127.0.0.1:{self.metrics_port}",
            "--heartbeat-interval",
            "1s",
            "--resync-interval",
            "30s",
            "--stop-haproxy",
            "--log-level",
            "debug",
            *extra,
        ]
        if zk:
            self.cmd += ["--zk", zk]
        if quick_start:
            i = self.cmd.index("--haproxy-config")
            del self.cmd[i : i + 2]
        self.log = workdir / "lb.log"
        self.proc: subprocess.Popen | None = None
        self.session = requests.Session()

    def start(self) -> LbRun:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir if self.quick_start else REPO
            )
        wait_until(lambda: self.healthz()[0] == 200, 30, f"lb run healthy; log:\n{self.log_tail()}", interval=0.2)
        return self

    def healthz(self) -> tuple[int, dict]:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"lb run exited {self.proc.returncode}:\n{self.log_tail()}")
        r = requests.get(f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=2)
        return r.status_code, r.json()

    def metric(self, name: str) -> float:
        text = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and (len(line) == len(name) or line[len(name)] in " {"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def reloads(self) -> int:
        # the master re-executes itself on every reload: its CLI refuses connections for that moment
        for _ in range(50):
            with contextlib.suppress(UnreachableError):
                return parse_show_proc(socket_command(self.config.parent / "master.sock", "show proc")).master.reloads
            time.sleep(0.05)
        return parse_show_proc(socket_command(self.config.parent / "master.sock", "show proc")).master.reloads

    def get(self, vhost: str, path: str = "/id") -> requests.Response:
        return self.session.get(f"http://127.0.0.1:{self.http_port}{path}", headers={"Host": vhost}, timeout=5)

    def routed(self, vhost: str, n: int = 20) -> set[str]:
        out = set()
        for _ in range(n):
            r = self.get(vhost)
            if r.status_code == 200:
                out.add(r.text.split()[0])
        return out

    def log_events(self, event: str) -> list[dict]:
        """The daemon's JSON log lines for `event` (e.g. "reloaded"), oldest first."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if f'"{event}"' in line:
                with contextlib.suppress(ValueError):
                    doc = json.loads(line)
                    if doc.get("event") == event:
                        out.append(doc)
        return out

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # belt and braces: HAProxy is a daemonised process of its own
        pidfile = self.config.parent / "haproxy.pid"
        if pidfile.exists():
            for pid in pidfile.read_text().split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        self.proc = None


def task_ports() -> list[str]:
    """A random 200-port block for a devcluster's tasks, away from the default 31000-32000 that other
    test suites' devclusters use at the same time on this machine (a taken port fails a task)."""
    import random

    lo = random.randrange(21000, 30800, 200)
    return ["--task-port-range", f"{lo}-{lo + 199}"]


@pytest.fixture
def dc(devcluster_factory):
    """One devcluster (no ZooKeeper) with its own task port block."""
    return devcluster_factory(extra_args=task_ports())


@pytest.fixture
def lb_factory(tmp_path):
    made: list[LbRun] = []

    def make(marathon_urls: list[str], zk: str | None = None, extra: list[str] = (), quick_start=False,
             tls_cert: Path | None = None) -> LbRun:
        lb = LbRun(tmp_path / f"lb{len(made)}", marathon_urls, zk, extra, quick_start, tls_cert)
        made.append(lb)
        return lb.start()

    yield make
    for lb in made:
        lb.stop()


def test_two_vhosts_scale_without_reload_and_bad_label_skipped(dc, lb_factory):
    base = dc.marathon_url
    put_app(base, web_app("/shop/a", "a.test", 2))
    put_app(base, web_app("/shop/b", "b.test", 1))
    put_app(base, web_app("/shop/evil", "evil.test\n    bind :1", 1))
    a_tasks = settled(base, "/shop/a", 2)
    b_tasks = settled(base, "/shop/b", 1)
    lb = lb_factory([base])

    wait_for(lambda: lb.routed("a.test") == set(a_tasks), 20, "a.test routed to both tasks")
    assert lb.routed("b.test") == set(b_tasks)
    assert lb.metric("deploykit_lb_apps_rejected") == 1
    assert "evil" not in lb.config.read_text()
    reloads = lb.reloads()

    put_app(base, {**web_app("/shop/a", "a.test", 5)})
    five = settled(base, "/shop/a", 5)
    wait_for(lambda: lb.routed("a.test", 40) == set(five), 20, "a.test routed to 5 tasks")
    put_app(base, {**web_app("/shop/a", "a.test", 2)})
    two = settled(base, "/shop/a", 2)
    wait_for(lambda: lb.routed("a.test") == set(two), 20, "a.test back to 2 tasks")
    assert lb.reloads() == reloads, "scaling must go through the Runtime API only"
    assert lb.metric("deploykit_lb_runtime_commands_total") > 0
    assert lb.routed("b.test") == set(b_tasks)

    syncs = lb.metric("deploykit_lb_full_syncs_total")
    lb.proc.send_signal(signal.SIGHUP)  # resync: nothing changed, so nothing is reloaded
    wait_for(lambda: lb.metric("deploykit_lb_full_syncs_total") > syncs, 10, "SIGHUP resync")
    assert lb.reloads() == reloads
    lb.proc.send_signal(signal.SIGTERM)
    assert lb.proc.wait(20) == 0


class LoadGen:
    """A bounded load generator: `rate` requests/s in total, spread over `threads` client threads.

    Each thread keeps its own schedule (a late request is followed at once by the ones it
    delayed), so the achieved rate is the target unless HAProxy or the backends stall.
    """

    def __init__(self, port: int, vhosts: list[str], rate: float = 100.0, threads: int = 8, path: str = "/id",
                 https_port: int | None = None):
        self.port, self.vhosts, self.rate, self.threads, self.path = port, vhosts, rate, threads, path
        self.https_port = https_port  # given: 2 of 8 threads go through TLS (keep-alive)
        self.ok = 0
        self.tls_ok = 0
        self.failed: list[str] = []
        self.done_at: list[float] = []  # wall-clock end of every successful request
        self.started = self.stopped = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    @property
    def total(self) -> int:
        return self.ok + len(self.failed)

    @property
    def seconds(self) -> float:
        return (self.stopped or time.monotonic()) - self.started

    def _run(self, i: int) -> None:
        session = requests.Session()
        # half the threads reuse one keep-alive connection, half open a new one per request, so both
        # idle connections held across a reload and connects during the listener hand-over are tested
        headers = {} if i % 2 == 0 else {"Connection": "close"}
        # keep-alive ones: each reload closes their connection (idle-close-on-response), so they handshake
        # again with the new worker; a handshake per request would cost the shared 2 cores too much
        tls = self.https_port is not None and i % 4 == 2
        base = f"https://127.0.0.1:{self.https_port}" if tls else f"http://127.0.0.1:{self.port}"
        period = self.threads / self.rate
        n = 0
        next_at = self.started + i * period / self.threads
        self._stop.wait(max(0.0, next_at - time.monotonic()))
        while not self._stop.is_set():
            vhost = self.vhosts[(i + n) % len(self.vhosts)]
            n += 1
            try:
                # verify=False per request: a CA bundle from the environment would override a session setting
                r = session.get(base + self.path, headers={"Host": vhost, **headers}, timeout=5, verify=not tls)
                good = r.status_code == 200
                detail = f"{time.monotonic() - self.started:.2f}s {vhost}: HTTP {r.status_code}"
            except requests.RequestException as exc:
                good, detail = False, f"{time.monotonic() - self.started:.2f}s {vhost}: {exc!r}"[:300]
            with self._lock:
                if good:
                    self.ok += 1
                    self.tls_ok += tls
                    self.done_at.append(time.time())
                else:
                    self.failed.append(detail)
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def served_near(self, moments: list[float], window: float) -> list[int]:
        """For each wall-clock moment, how many requests succeeded within `window` seconds of it."""
        return [sum(1 for t in self.done_at if abs(t - m) <= window) for m in moments]

    def __enter__(self) -> LoadGen:
        self.started = time.monotonic()
        for w in self._workers:
            w.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for w in self._workers:
            w.join(10)
        self.stopped = time.monotonic()


def delete_app(base: str, app_id: str) -> None:
    r = requests.delete(f"{base}/v2/apps{app_id}", params={"force": "true"}, timeout=10)
    assert r.status_code in (200, 202), r.text


LOAD_SECONDS = 60.0
LOAD_RATE = 100.0


def test_zero_drop_during_rolling_redeploys_scaling_and_reloads(dc, lb_factory, record_summary, tmp_path):
    """100 req/s for 60 s through 10 rolling redeploys, 10 scale changes and 10 real HAProxy reloads,
    a quarter of it over TLS (the https frontend, a self-signed certificate made here).

    The redeploys and scale changes fit the backends' slots (Runtime API only); the reloads are
    forced by adding and removing a third vhost app (a backend appears / disappears), so the load
    crosses seamless reloads too. Every request must succeed, and the counters must show that
    each kind of change really happened.
    """
    base = dc.marathon_url
    put_app(base, web_app("/zd/a", "za.test", 2))
    put_app(base, web_app("/zd/b", "zb.test", 2))
    settled(base, "/zd/a", 2)
    settled(base, "/zd/b", 2)
    cert = tmp_path / "tls.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "k"),
                    "-out", str(tmp_path / "c"), "-days", "1", "-subj", "/CN=zd.test"], check=True, capture_output=True,
                   timeout=60)
    cert.write_bytes((tmp_path / "c").read_bytes() + (tmp_path / "k").read_bytes())
    lb = lb_factory([base], tls_cert=cert)
    wait_for(lambda: len(lb.routed("za.test")) == 2 and len(lb.routed("zb.test")) == 2, 20, "both apps routed")
    reloads0 = lb.reloads()
    commands0 = lb.metric("deploykit_lb_runtime_commands_total")
    load_wall0 = time.time()
    redeploys = scales = forced = 0
    step = LOAD_SECONDS / 10
    with LoadGen(lb.http_port, ["za.test", "zb.test"], rate=LOAD_RATE, https_port=lb.https_port) as load:
        time.sleep(1.0)  # traffic is flowing before the first change
        for i in range(10):
            before = lb.reloads()
            put_app(base, web_app("/zd/a", "za.test", 2, version=f"v{i + 2}"))  # rolling redeploy
            put_app(base, web_app("/zd/b", "zb.test", 3 if i % 2 == 0 else 2))  # scale change
            if i % 2 == 0:  # a new backend: HAProxy must reload
                put_app(base, web_app("/zd/c", "zc.test", 1))
            else:  # the backend goes away: another reload
                delete_app(base, "/zd/c")
            settled(base, "/zd/a", 2)
            settled(base, "/zd/b", 3 if i % 2 == 0 else 2)
            wait_for(lambda before=before: lb.reloads() > before, 15, f"reload #{i + 1}", interval=0.1)
            redeploys, scales, forced = redeploys + 1, scales + 1, forced + 1
            time.sleep(max(0.0, load.started + step * (i + 1) - time.monotonic()))  # pace over LOAD_SECONDS
        wait_for(
            lambda: {t.split()[0] for t in lb.routed("za.test")} == set(healthy_tasks(base, "/zd/a")),
            15,
            "za.test on the final version",
        )
        time.sleep(max(0.0, load.started + LOAD_SECONDS - time.monotonic()))
    reloads = lb.reloads() - reloads0
    reloaded_at = [e["ts"] for e in lb.log_events("reloaded") if e["ts"] >= load_wall0]
    near = load.served_near(reloaded_at, 0.5)
    summary = {
        "requests": load.total,
        "ok": load.ok,
        "ok_over_tls": load.tls_ok,
        "failed": len(load.failed),
        "seconds": round(load.seconds, 2),
        "target_rps": LOAD_RATE,
        "achieved_rps": round(load.total / load.seconds, 1),
        "rolling_redeploys": redeploys,
        "scale_changes": scales,
        "forced_reloads": forced,
        "haproxy_reloads": reloads,
        "runtime_commands": int(lb.metric("deploykit_lb_runtime_commands_total") - commands0),
        "requests_ok_within_0.5s_of_each_reload": near,
        "first_failures": load.failed[:10],
    }
    record_summary("lb_zero_drop", summary)
    print(f"\nzero-drop: {json.dumps(summary)}")
    assert load.failed == [], summary
    assert load.tls_ok >= 0.2 * load.total, summary
    assert load.total >= 0.9 * LOAD_RATE * load.seconds, f"the load generator fell behind its rate: {summary}"
    assert load.seconds >= LOAD_SECONDS - 1, summary
    assert reloads == forced == 10, f"each added/removed app is exactly one reload, nothing else: {summary}"
    assert summary["runtime_commands"] > 0, summary
    assert len(near) == 10 and min(near) >= 50, f"traffic must flow right across every reload: {summary}"
    versions = {lb.get("za.test").text.split()[1] for _ in range(6)}
    assert versions == {"v11"}


def test_leader_failover_followed(zookeeper, devcluster_factory, lb_factory):
    zk = f"zk://{zookeeper.hosts}/lbfail{free_port()}"
    state = devcluster_factory(start=False).workdir / "shared-state"
    first = devcluster_factory(zk=zk, state_dir=state, extra_args=task_ports())
    first.wait_leader()
    second = devcluster_factory(zk=zk, state_dir=state, extra_args=task_ports())
    put_app(first.marathon_url, web_app("/fo/a", "foa.test", 1))
    a1 = settled(first.marathon_url, "/fo/a", 1)
    lb = lb_factory([], zk=zk)
    wait_for(lambda: lb.routed("foa.test") == set(a1), 20, "foa.test routed via the ZK leader")
    assert lb.healthz()[1]["leader"] == first.ident

    first.stop()  # leader leaves: the standby takes over
    second.wait_leader(30)
    wait_for(lambda: lb.healthz()[1]["leader"] == second.ident, 20, "daemon follows the new leader")
    put_app(second.marathon_url, web_app("/fo/b", "fob.test", 1))
    b1 = settled(second.marathon_url, "/fo/b", 1)
    wait_for(lambda: lb.routed("fob.test") == set(b1), 20, "a change on the new leader is routed")
    assert lb.metric("deploykit_lb_leader_changes_total") >= 2


def test_zookeeper_outage_keeps_serving_then_resyncs(tmp_path, devcluster_factory, lb_factory):
    require_zookeeper()
    server = ZooKeeper(tmp_path / "zk")
    server.start()
    try:
        zk = f"zk://{server.hosts}/marathon"
        dc = devcluster_factory(zk=zk, extra_args=task_ports())
        dc.wait_leader()
        put_app(dc.marathon_url, web_app("/zo/a", "zoa.test", 2))
        tasks = settled(dc.marathon_url, "/zo/a", 2)
        lb = lb_factory([], zk=zk)
        wait_for(lambda: lb.routed("zoa.test") == set(tasks), 20, "routed via ZK")
        syncs = lb.metric("deploykit_lb_full_syncs_total")

        server.stop()
        wait_for(lambda: lb.metric("deploykit_lb_zookeeper_connected") == 0, 30, "daemon sees ZK gone")
        for _ in range(3):
            assert lb.routed("zoa.test") == set(tasks)  # the last good config keeps serving
            time.sleep(0.5)

        server.start()
        wait_for(lambda: lb.metric("deploykit_lb_zookeeper_connected") == 1, 30, "daemon sees ZK back")
        wait_for(lambda: lb.metric("deploykit_lb_full_syncs_total") > syncs, 20, "resync after ZK is back")
        dc.wait_leader(30)
        put_app(dc.marathon_url, web_app("/zo/a", "zoa.test", 3))
        three = settled(dc.marathon_url, "/zo/a", 3)
        wait_for(lambda: lb.routed("zoa.test", 30) == set(three), 20, "changes flow again")
    finally:
        server.stop()


def test_zookeeper_down_at_start_serves_from_url_list(dc, lb_factory):
    base = dc.marathon_url
    put_app(base, web_app("/zs/a", "zsa.test", 1))
    tasks = settled(base, "/zs/a", 1)
    lb = lb_factory([base], zk=f"zk://127.0.0.1:{free_port()}/marathon")
    wait_for(lambda: lb.routed("zsa.test") == set(tasks), 20, "routed from the URL list")
    assert lb.metric("deploykit_lb_zookeeper_connected") == 0


def _hello_spec(appdir: Path, app_id: str, vhost: str, greeting: str, instances: int) -> Path:
    """examples/hello's app.yaml, renamed, with its own vhost and quick health checks."""
    import shutil

    import yaml

    hello = REPO / "examples" / "hello"
    if not (appdir / "server.py").exists():
        shutil.copy(hello / "server.py", appdir / "server.py")
        shutil.copytree(hello / "config", appdir / "config")
    from tests.harness.devcluster import HELLO_AS_COMMAND

    doc = yaml.safe_load((hello / "app.yaml").read_text())
    doc.update(id=app_id, instances=instances, env={"GREETING": greeting})
    doc["environments"]["local"] = dict(HELLO_AS_COMMAND)
    doc["ports"][0]["service"] = 0
    doc["health"] = {
        "path": "/health",
        "port": "http",
        "grace": "5s",
        "interval": "2s",
        "timeout": "1s",
        "max_failures": 3,
    }
    doc.pop("readiness", None)
    doc["upgrade"] = {"minimum_health_capacity": 1.0, "maximum_over_capacity": 1.0}
    doc["haproxy"] = {
        "group": "external",
        "vhost": [vhost],
        "mode": "http",
        "balance": "roundrobin",
        "check": {"path": "/health", "interval": "1s", "rise": 1, "fall": 2},
    }
    path = appdir / f"{app_id.strip('/').replace('/', '-')}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _deploy(dc, spec: Path) -> None:
    deploykit = str(Path(sys.executable).parent / "deploykit")
    proc = subprocess.run(
        [deploykit, "deploy", str(spec), "--env", "local", "--env-dir", str(dc.env_dir), "--output", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _ready_ports(lb: LbRun, backend: str) -> set[int]:
    out = set()
    text = socket_command(lb.config.parent / "stats.sock", f"show servers state {backend}")
    for line in text.splitlines()[2:]:
        cols = line.split()
        if len(cols) > 18 and cols[5] == "2" and int(cols[6]) & 0x23 == 0:
            out.add(int(cols[18]))
    return out


def _running_tasks(base: str, app_id: str) -> dict[str, int]:
    """Task id -> first host port, for the app's running tasks."""
    app = requests.get(f"{base}/v2/apps{app_id}", params={"embed": "app.tasks"}, timeout=5).json()["app"]
    return {t["id"]: t["ports"][0] for t in app["tasks"] if t["state"] == "TASK_RUNNING"}


def _task_ports(base: str, app_id: str) -> set[int]:
    return set(_running_tasks(base, app_id).values())


def _responders(lb: LbRun, vhost: str, requests_: int) -> set[str]:
    """Task ids that answered `requests_` requests through HAProxy (hello's X-Task-Id header); any failure raises."""
    seen = set()
    for _ in range(requests_):
        r = lb.get(vhost, "/")
        assert r.status_code == 200, (r.status_code, r.text)
        seen.add(r.headers["X-Task-Id"])
    return seen


def test_apps_deployed_with_deploykit_deploy(dc, lb_factory, tmp_path):
    base = dc.marathon_url
    specs = tmp_path / "specs"
    specs.mkdir()
    _deploy(dc, _hello_spec(specs, "/web/alpha", "alpha.test", "alpha", 2))
    _deploy(dc, _hello_spec(specs, "/web/beta", "beta.test", "beta", 2))
    lb = lb_factory([base])
    wait_for(lambda: lb.get("alpha.test", "/").text.strip().endswith("greeting=alpha"), 20, "alpha routed")
    assert all(lb.get("beta.test", "/").text.strip().endswith("greeting=beta") for _ in range(4))
    assert _ready_ports(lb, "web_alpha_0") == _task_ports(base, "/web/alpha")
    # every task answers through HAProxy (roundrobin: 4 requests per task are plenty)
    wait_for(lambda: _responders(lb, "alpha.test", 8) == set(_running_tasks(base, "/web/alpha")), 20,
             "both alpha tasks answer through HAProxy")
    assert _responders(lb, "beta.test", 8) == set(_running_tasks(base, "/web/beta"))
    reloads = lb.reloads()

    for n in (5, 2):
        _deploy(dc, _hello_spec(specs, "/web/alpha", "alpha.test", "alpha", n))
        wait_for(
            lambda n=n: (
                len(_task_ports(base, "/web/alpha")) == n
                and _ready_ports(lb, "web_alpha_0") == _task_ports(base, "/web/alpha")
            ),
            30,
            f"alpha at {n}",
        )
        tasks = set(_running_tasks(base, "/web/alpha"))
        seen = _responders(lb, "alpha.test", 4 * n)
        assert seen == tasks, f"tasks that answered through HAProxy {sorted(seen)} != running tasks {sorted(tasks)}"
    assert lb.reloads() == reloads, "scaling through deploykit deploy must not reload HAProxy"


def gated_app(app_id: str, vhost: str, instances: int, version: str, gate: Path) -> dict:
    """web_app whose tasks are healthy at once but ready (GET /ready answers 200) only once `gate` exists."""
    app = web_app(app_id, vhost, instances, version)
    app["env"]["GATE"] = str(gate)
    app["cmd"] = (
        "trap '' TERM; echo ok > health; echo \"$MESOS_TASK_ID $VERSION\" > id; "
        "(while [ ! -e \"$GATE\" ]; do sleep 0.2; done; echo ok > ready) & "
        "exec busybox httpd -f -p 127.0.0.1:$PORT0 -h ."
    )
    app["readinessChecks"] = [
        {"name": "ready", "protocol": "HTTP", "path": "/ready", "portName": "http", "intervalSeconds": 1,
         "timeoutSeconds": 1, "httpStatusCodesForReady": [200]}
    ]
    return app


def test_healthy_but_not_ready_tasks_get_no_traffic(dc, lb_factory, tmp_path):
    """During a deployment the new tasks pass their health checks long before they are ready:
    HAProxy must keep sending every request to the old tasks until Marathon reports them ready."""
    base = dc.marathon_url
    gate1, gate2 = tmp_path / "gate-v1", tmp_path / "gate-v2"
    gate1.touch()
    put_app(base, gated_app("/rd/a", "rda.test", 2, "v1", gate1))
    old = set(settled(base, "/rd/a", 2))
    lb = lb_factory([base])
    wait_for(lambda: lb.routed("rda.test") == old, 20, "v1 routed")

    put_app(base, gated_app("/rd/a", "rda.test", 2, "v2", gate2))

    def new_healthy_not_ready():
        app = requests.get(f"{base}/v2/apps/rd/a", params=[("embed", "app.tasks"), ("embed", "app.readiness")],
                           timeout=5).json()["app"]
        new = set(healthy_tasks(base, "/rd/a")) - old
        waiting = {r["taskId"] for r in app.get("readinessCheckResults", []) if not r["ready"]}
        return new if len(new) == 2 and new <= waiting else None

    new = wait_for(new_healthy_not_ready, 30, "v2 tasks healthy but not ready")
    time.sleep(1.5)  # the daemon has seen the health events by now (it routes a healthy task within ~0.5 s)
    seen: set[str] = set()
    t_end = time.monotonic() + 3
    requests_sent = 0
    while time.monotonic() < t_end:
        r = lb.get("rda.test")
        assert r.status_code == 200, r.text
        seen.add(r.text.split()[0])
        requests_sent += 1
    assert seen == old, f"{requests_sent} requests reached {sorted(seen)}; not-ready tasks {sorted(new)} got traffic"
    ports = {p for t, p in _running_tasks(base, "/rd/a").items() if t in new}
    assert not ports & _ready_ports(lb, "rd_a_0"), "a not-ready task's server is enabled in HAProxy"
    assert new_healthy_not_ready() == new, "the v2 tasks became ready while traffic was sampled (gate still shut)"

    gate2.touch()  # now ready: the deployment goes on, traffic moves to v2
    settled(base, "/rd/a", 2)
    wait_for(lambda: lb.routed("rda.test") == new, 20, "v2 tasks routed once ready")


def test_quick_start_paths_from_the_env_file(dc, lb_factory):
    """`deploykit lb run --env local` alone: HAProxy files under ./.deploykit/haproxy, reloads work."""
    base = dc.marathon_url
    put_app(base, web_app("/qs/a", "qsa.test", 1))
    a = settled(base, "/qs/a", 1)
    lb = lb_factory([base], quick_start=True)
    wait_for(lambda: lb.routed("qsa.test") == set(a), 20, "routed")
    assert lb.config.exists() and (lb.config.parent / "master.sock").exists()
    before = lb.reloads()
    put_app(base, web_app("/qs/b", "qsb.test", 1))  # a new backend: a reload, which re-reads the files
    b = settled(base, "/qs/b", 1)
    wait_for(lambda: lb.routed("qsb.test") == set(b), 20, "new app routed after a reload")
    assert lb.reloads() == before + 1


def test_marathon_down_keeps_last_config_then_resyncs(dc, lb_factory):
    base = dc.marathon_url
    put_app(base, web_app("/md/a", "mda.test", 2))
    settled(base, "/md/a", 2)
    lb = lb_factory([base])
    wait_for(lambda: len(lb.routed("mda.test")) == 2, 20, "routed")
    assert lb.metric("deploykit_lb_event_stream_connected") == 1
    servers = lb.metric("deploykit_lb_servers")
    config = lb.config.read_text()

    dc.stop()  # Marathon gone (its tasks too)
    wait_for(lambda: lb.metric("deploykit_lb_event_stream_connected") == 0, 15, "stream seen down")
    time.sleep(2)
    assert lb.metric("deploykit_lb_servers") == servers  # nothing removed on a failed sync
    assert lb.config.read_text() == config
    assert lb.healthz()[1]["last_error"]

    dc.start()  # state is back; tasks are relaunched on new ports
    now = settled(base, "/md/a", 2)
    wait_for(lambda: lb.metric("deploykit_lb_event_stream_connected") == 1, 20, "stream back")
    wait_for(lambda: lb.routed("mda.test") == set(now), 20, "resynced onto the relaunched tasks")
