"""Daemon decisions against a real HAProxy, Marathon state injected directly (no event stream).

What is real: HAProxy 2.6 (master-worker, runtime API, reloads), the renderer and templates,
the backends (local HTTP servers). The Marathon side is an in-memory source object with
the same two calls the daemon makes (`snapshot`, `app`), so each test sets the exact state.
End-to-end runs against the devcluster live in test_lb_e2e*.py.
"""

from __future__ import annotations

import queue
import urllib.request

import pytest

from deploykit.clients.marathon_events import Event
from deploykit.lb.daemon import Daemon, DaemonOptions
from deploykit.lb.haproxy import HAProxy
from deploykit.lb.render import Renderer
from deploykit.lb.settings import LbSettings
from deploykit.lb.source import LeaderSource
from tests.harness.common import NamedHTTPServer, free_port, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def web_servers():
    servers = []

    def make(n: int) -> list[int]:
        ports = []
        for _ in range(n):
            srv = NamedHTTPServer(f"t{len(servers)}")
            servers.append(srv)
            ports.append(srv.port)
        return ports

    yield make
    for s in servers:
        s.close()


class MemorySource:
    """Stands in for MarathonSource: the daemon reads `apps` exactly as /v2/apps would return them."""

    def __init__(self):
        self.apps: dict[str, dict] = {}
        self.leader = LeaderSource(["http://127.0.0.1:1"])
        self.stream_connected = True

    def start_stream(self):
        pass

    def stop(self):
        pass

    def snapshot(self):
        return [dict(a) for a in self.apps.values()]

    def app(self, app_id):
        return self.apps.get(app_id)


def app(app_id: str, ports: list[int], vhost: str, service_port: int, labels: dict | None = None) -> dict:
    tasks = [
        {"id": f"{app_id.strip('/')}.{p}", "host": "127.0.0.1", "ports": [p], "state": "TASK_RUNNING", "appId": app_id}
        for p in ports
    ]
    lab = {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": vhost, **(labels or {})}
    return {"id": app_id, "labels": lab, "portDefinitions": [{"port": service_port}], "tasks": tasks}


def get(port: int, host: str) -> str:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.read().decode()


@pytest.fixture
def rig(haproxy_factory, tmp_path):
    inst = haproxy_factory()  # paths only: the daemon starts HAProxy itself
    settings = LbSettings(
        http_port=free_port(),
        bind_address="127.0.0.1",
        config=str(inst.config_path),
        master_socket=str(inst.master_socket),
        stats_socket=str(inst.stats_socket),
        state_file=str(inst.state_file),
        groups=("external",),
        min_slots=8,
        hard_stop_after="10s",
        app_id_port=0,  # marathon-lb's fixed 9091 would collide with parallel tests
        service_ports=False,  # vhost apps on http_in only: these tests are about slots (test_lb_parity binds them)
    )
    source = MemorySource()
    events: queue.Queue = queue.Queue()
    hap = HAProxy(
        settings.config, settings.master_socket, settings.stats_socket, settings.state_file, pidfile=inst.pidfile
    )
    daemon = Daemon(
        settings=settings,
        renderer=Renderer(),
        haproxy=hap,
        source=source,
        events=events,
        options=DaemonOptions(resync_interval=3600, coalesce=0.05),
    )
    yield inst, settings, source, events, daemon


def test_scale_within_slots_uses_runtime_api_only(rig, web_servers):
    inst, settings, source, events, daemon = rig
    source.apps["/a"] = app("/a", web_servers(2), "a.example.com", 10001)
    source.apps["/b"] = app("/b", web_servers(1), "b.example.com", 10002)
    assert daemon.full_sync()
    assert {get(settings.http_port, "a.example.com") for _ in range(4)} == {"t0", "t1"}
    assert get(settings.http_port, "b.example.com") == "t2"
    reloads = inst.reload_count()

    more = web_servers(3)
    source.apps["/a"] = app(
        "/a",
        [*source.apps["/a"]["tasks"][0]["ports"], *source.apps["/a"]["tasks"][1]["ports"], *more],
        "a.example.com",
        10001,
    )
    events.put(Event("status_update_event", {"appId": "/a", "taskStatus": "TASK_RUNNING"}))
    daemon.step(timeout=0.5)
    seen = {get(settings.http_port, "a.example.com") for _ in range(20)}
    assert seen == {"t0", "t1", "t3", "t4", "t5"}

    source.apps["/a"] = app("/a", more[:2], "a.example.com", 10001)
    events.put(Event("status_update_event", {"appId": "/a", "taskStatus": "TASK_KILLED"}))
    daemon.step(timeout=0.5)
    assert {get(settings.http_port, "a.example.com") for _ in range(10)} == {"t3", "t4"}
    assert inst.reload_count() == reloads  # scaling 2 -> 5 -> 2 never reloaded
    assert daemon.metrics.runtime_commands.labels("ok")._value.get() > 0


def test_new_app_reloads_bad_app_is_skipped(rig, web_servers):
    inst, settings, source, events, daemon = rig
    source.apps["/a"] = app("/a", web_servers(1), "a.example.com", 10001)
    assert daemon.full_sync()
    reloads = inst.reload_count()
    source.apps["/evil"] = app("/evil", web_servers(1), "evil.example.com\n    bind :1", 10003)
    source.apps["/b"] = app("/b", web_servers(1), "b.example.com", 10002)
    events.put(Event("api_post_event", {"appDefinition": {"id": "/evil"}}))
    events.put(Event("api_post_event", {"appDefinition": {"id": "/b"}}))
    daemon.step(timeout=0.5)
    assert inst.reload_count() == reloads + 1
    assert get(settings.http_port, "b.example.com") == "t2"
    assert get(settings.http_port, "a.example.com") == "t0"
    assert "bind :1" not in inst.config_path.read_text()
    assert daemon.metrics.apps_rejected._value.get() == 1


def test_broken_template_never_replaces_running_config(rig, web_servers, tmp_path):
    inst, settings, source, events, daemon = rig
    source.apps["/a"] = app("/a", web_servers(1), "a.example.com", 10001)
    assert daemon.full_sync()
    good = inst.config_path.read_text()
    templates = tmp_path / "tpl"
    templates.mkdir()
    shipped = daemon.renderer.template_dir
    for f in shipped.iterdir():
        (templates / f.name).write_text(f.read_text())
    (templates / "backend.cfg.j2").write_text((shipped / "backend.cfg.j2").read_text() + "    no_such_keyword 1\n")
    daemon.renderer = Renderer(templates)
    source.apps["/b"] = app("/b", web_servers(1), "b.example.com", 10002)
    events.put(Event("api_post_event", {"appDefinition": {"id": "/b"}}))
    daemon.step(timeout=0.5)
    assert inst.config_path.read_text() == good
    assert daemon.metrics.config_rejected._value.get() >= 1
    assert get(settings.http_port, "a.example.com") == "t0"


def test_mass_removal_is_held_until_confirmed(rig, web_servers):
    _inst, settings, source, _events, daemon = rig
    daemon.opts.held_recheck = 0.0
    source.apps["/a"] = app("/a", web_servers(4), "a.example.com", 10001)
    assert daemon.full_sync()
    source.apps["/a"] = app("/a", [], "a.example.com", 10001)  # e.g. a new leader that lost its tasks view
    assert not daemon.full_sync()
    assert daemon.metrics.held_syncs._value.get() == 1
    assert len({get(settings.http_port, "a.example.com") for _ in range(8)}) == 4  # still serving
    assert daemon.full_sync()  # the second sync agrees: now it is applied
    assert daemon.live.server_count == 0


def test_adopts_an_haproxy_that_is_already_running(rig, web_servers):
    inst, settings, source, _events, daemon = rig
    inst.start(
        inst.base_global().replace(str(inst.stats_socket), settings.stats_socket)
        + f"frontend other\n    bind 127.0.0.1:{free_port()}\n"
    )
    before = inst.reload_count()
    source.apps["/a"] = app("/a", web_servers(1), "a.example.com", 10001)
    assert daemon.full_sync()
    assert inst.reload_count() == before + 1  # managed through the master socket, not started again
    assert get(settings.http_port, "a.example.com") == "t0"


def test_haproxy_killed_is_restarted_on_the_next_change(rig, web_servers):
    inst, settings, source, events, daemon = rig
    ports = web_servers(2)
    source.apps["/a"] = app("/a", ports[:1], "a.example.com", 10001)
    assert daemon.full_sync()
    inst.kill()  # master and workers gone, sockets left behind
    wait_until(lambda: not daemon.haproxy.master_alive(), 5, "the killed master gone")
    source.apps["/a"] = app("/a", ports, "a.example.com", 10001)
    events.put(Event("status_update_event", {"appId": "/a", "taskStatus": "TASK_RUNNING"}))
    daemon.step(timeout=0.5)
    assert daemon.haproxy.running()
    assert {get(settings.http_port, "a.example.com") for _ in range(6)} == {"t0", "t1"}
    # found down by the liveness check before the change was applied (no runtime command sent into the void)
    assert daemon.metrics.haproxy_restarts._value.get() == 1


def test_haproxy_worker_killed_is_restarted_without_any_change(rig, web_servers):
    """The master exits when its worker dies: the daemon starts HAProxy again within a second, no event needed."""
    inst, settings, source, _events, daemon = rig
    source.apps["/a"] = app("/a", web_servers(1), "a.example.com", 10001)
    assert daemon.full_sync()
    inst.kill()
    wait_until(lambda: not daemon.haproxy.master_alive(), 5, "the killed master gone")
    daemon.step(timeout=0.1)
    assert daemon.haproxy.running() and daemon.metrics.haproxy_restarts._value.get() == 1
    assert get(settings.http_port, "a.example.com") == "t0"


def test_failed_reload_is_isolated_to_the_app_that_causes_it(rig, web_servers, monkeypatch):
    """A reload that passes `haproxy -c` and still fails (here: a port taken after the probe could see it)
    is bisected to the app that causes it; the other changed apps are installed, the culprit rejected."""
    import socket

    inst, settings, source, _events, daemon = rig
    source.apps["/a"] = app("/a", web_servers(1), "a.example.com", 10001)
    assert daemon.full_sync()
    squat = socket.socket()
    squat.bind(("127.0.0.1", 0))
    squat.listen()
    taken = squat.getsockname()[1]
    monkeypatch.setattr("deploykit.lb.lbhost.unbindable", lambda address, ports: {})  # the probe misses it
    tcp = {"HAPROXY_0_MODE": "tcp"}
    free = [free_port() for _ in range(3)]
    for i, port in enumerate([free[0], taken, free[1], free[2]]):
        doc = app(f"/t{i}", web_servers(1), "", port, labels=tcp)
        del doc["labels"]["HAPROXY_0_VHOST"]
        source.apps[f"/t{i}"] = doc
    try:
        assert daemon.full_sync()
        text = inst.config_path.read_text()
        assert f":{taken}\n" not in text and all(f"127.0.0.1:{p}\n" in text for p in free)
        assert {r.app_id: r.reason for r in daemon.model.rejected} == {
            "/t1": "its routing made HAProxy fail to reload"}
        assert get(settings.http_port, "a.example.com") == "t0"
        for port, name in zip(free, ["t1", "t3", "t4"], strict=True):
            assert get(port, "any") == name
        assert daemon.metrics.config_rejected._value.get() == 1
        # the culprit is not tried again while its routing is the same: no further failed reload
        failed = daemon.metrics.reloads.labels("failed")._value.get()
        assert daemon.full_sync() and daemon.metrics.reloads.labels("failed")._value.get() == failed
        assert "/t1" in {r.app_id for r in daemon.model.rejected}
    finally:
        squat.close()


def test_host_named_agents_scale_through_the_runtime_api(rig, web_servers):
    """Tasks on agents Marathon knows by host name ("localhost") are resolved once (cached), so scaling them
    stays in the Runtime API, which only takes addresses: no reload for 1 -> 3 -> 1."""
    inst, settings, source, events, daemon = rig

    def named(ports: list[int]) -> dict:
        doc = app("/n", ports, "n.example.com", 10001)
        for t in doc["tasks"]:
            t["host"] = "localhost"
        return doc

    ports = web_servers(3)
    source.apps["/n"] = named(ports[:1])
    assert daemon.full_sync()
    assert get(settings.http_port, "n.example.com") == "t0"
    reloads, sent = inst.reload_count(), daemon.status.runtime_commands
    for step in (ports, ports[2:]):
        source.apps["/n"] = named(step)
        events.put(Event("status_update_event", {"appId": "/n", "taskStatus": "TASK_RUNNING"}))
        daemon.step(timeout=0.5)
        want = {f"t{ports.index(p)}" for p in step}
        assert {get(settings.http_port, "n.example.com") for _ in range(12)} == want
    assert inst.reload_count() == reloads and daemon.status.runtime_commands > sent
    assert "server s1 127.0.0.1:" in inst.config_path.read_text()
    assert daemon.resolver.lookups == 1  # one look-up for every task on that agent


def test_vhost_app_keeps_its_vhost_when_its_service_port_is_taken(rig, web_servers):
    """marathon-lb binds vhost apps' service ports too; one taken on this host drops only that frontend
    (reported), the vhost keeps routing; a free one is bound."""
    import socket

    _inst, settings, source, _events, daemon = rig
    daemon.settings = settings._replace(service_ports=True)
    squat = socket.socket()
    squat.bind(("127.0.0.1", 0))
    squat.listen()
    taken, free = squat.getsockname()[1], free_port()
    try:
        source.apps["/a"] = app("/a", web_servers(1), "a.example.com", taken)
        source.apps["/b"] = app("/b", web_servers(1), "b.example.com", free)
        assert daemon.full_sync()
        assert get(settings.http_port, "a.example.com") == "t0" and get(settings.http_port, "b.example.com") == "t1"
        assert get(free, "anything") == "t1"  # east-west: lb-host:servicePort
        assert [d.app_id for d in daemon.live.dropped] == ["/a"] and not daemon.live.rejected
        assert daemon.metrics.port_conflicts._value.get() == 1
    finally:
        squat.close()


def test_certificates_haproxy_cannot_load(rig, web_servers, tmp_path):
    """An app's HAPROXY_0_SSL_CERT that does not load rejects that app only; the operator's own certificate
    broken means nothing is installed (the running config stays) until it is fixed."""
    import subprocess

    inst, settings, source, events, daemon = rig
    key, crt, pem = tmp_path / "k", tmp_path / "c", tmp_path / "default.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(crt), "-days", "1", "-subj", "/CN=default.test"], check=True, capture_output=True, timeout=60)
    pem.write_bytes(crt.read_bytes() + key.read_bytes())
    daemon.settings = settings._replace(ssl_certs=(str(pem),), https_port=free_port())
    broken = tmp_path / "app.pem"
    broken.write_text("not a certificate")
    source.apps["/a"] = app("/a", web_servers(1), "a.example.com", 10001)
    source.apps["/b"] = app("/b", web_servers(1), "b.example.com", 10002, labels={"HAPROXY_0_SSL_CERT": str(broken)})
    assert daemon.full_sync()
    assert {r.app_id for r in daemon.live.rejected} == {"/b"} and "SSL_CERT" in daemon.live.rejected[0].reason
    good = inst.config_path.read_text()
    assert "https_in" in good and str(broken) not in good
    pem.write_text("damaged")
    source.apps["/c"] = app("/c", web_servers(1), "c.example.com", 10003)
    events.put(Event("api_post_event", {"appDefinition": {"id": "/c"}}))
    daemon.step(timeout=0.5)
    assert inst.config_path.read_text() == good and "/c" not in daemon.live.owners
    assert str(pem) in (daemon.status.last_error or "")
    assert get(settings.http_port, "a.example.com") == "t0"
