"""Pure parts of the devcluster: plans, events framing, env, ports, versions, ZK URLs, label selectors."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from deploykit.devcluster.api import _label_selector
from deploykit.devcluster.appdef import parse_app
from deploykit.devcluster.deployments import plan_steps
from deploykit.devcluster.events import EventBus
from deploykit.devcluster.leader import _seq
from deploykit.devcluster.scheduler import Scheduler
from deploykit.devcluster.tasks import LaunchError, PortAllocator, Task, command_argv, fetch_artifacts, task_env
from deploykit.devcluster.util import VersionClock, app_id_slug, instance_id_for, iso_ms, parse_zk_url
from deploykit.durations import parse_seconds as parse_duration


def _versioned(doc: dict, version: str, config_version: str | None = None) -> dict:
    app = parse_app(doc)
    app["version"] = version
    app["versionInfo"] = {"lastScalingAt": version, "lastConfigChangeAt": config_version or version}
    return app


def test_plan_steps_per_change_kind():
    v1 = _versioned({"id": "/a", "cmd": "x", "instances": 2}, "v1")
    assert plan_steps(None, v1) == [[{"action": "StartApplication", "app": "/a"}],
                                    [{"action": "ScaleApplication", "app": "/a"}]]
    assert plan_steps(v1, None) == [[{"action": "StopApplication", "app": "/a"}]]
    scaled = {**v1, "instances": 5, "version": "v2"}
    assert plan_steps(v1, scaled) == [[{"action": "ScaleApplication", "app": "/a"}]]
    changed = _versioned({"id": "/a", "cmd": "y", "instances": 2}, "v3")
    assert plan_steps(v1, changed) == [[{"action": "RestartApplication", "app": "/a"}]]
    assert plan_steps(v1, {**v1, "version": "v4"}) == []
    assert plan_steps(None, _versioned({"id": "/z", "cmd": "x", "instances": 0}, "v1")) == [
        [{"action": "StartApplication", "app": "/z"}]]


def test_event_framing_is_crlf_sse_with_event_type_and_timestamp():
    async def go() -> bytes:
        bus = EventBus()
        q = bus.subscribe()
        bus.publish("deployment_success", id="d1", plan={"id": "d1"})
        return (await q.get())[1]

    data = asyncio.run(go())
    assert data.startswith(b"event: deployment_success\r\ndata: {") and data.endswith(b"}\r\n\r\n")
    doc = json.loads(data.split(b"\r\n")[1][6:])
    assert doc["eventType"] == "deployment_success" and doc["id"] == "d1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["timestamp"])


def test_slow_consumer_is_cut_off():
    async def go() -> list:
        bus = EventBus(max_outstanding=3)
        q = bus.subscribe()
        for i in range(5):
            bus.publish("x", n=i)
        return [q.get_nowait() for _ in range(q.qsize())]

    items = asyncio.run(go())
    assert len(items) == 4 and items[-1] is None


def test_version_clock_is_strictly_increasing_and_formatted():
    clock = VersionClock()
    versions = [clock.next() for _ in range(50)]
    assert versions == sorted(versions) and len(set(versions)) == 50
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", iso_ms(0)) and iso_ms(0).startswith("1970")


def test_instance_ids_follow_marathon_1_10():
    assert app_id_slug("/shop/cart") == "shop_cart"
    assert re.fullmatch(r"shop_cart\.instance-[0-9a-f-]{36}", instance_id_for("/shop/cart"))


def test_task_env_has_marathon_variables(tmp_path: Path):
    app = _versioned({"id": "/a", "cmd": "x", "env": {"X": "1", "S": {"secret": "s1"}}, "labels": {"team": "t"},
                      "portDefinitions": [{"port": 10001, "name": "http"}, {"port": 0}]}, "v1")
    task = Task(instance_id="a.instance-1", app_id="/a", version="v1", config_version="v1", app=app,
                host_ports=[31000, 31001], service_ports=[10001, 10002], sandbox=tmp_path)
    env = task_env(task, app, app["portDefinitions"])
    assert env["PORT0"] == "31000" and env["PORT1"] == "31001" and env["PORTS"] == "31000,31001"
    assert env["PORT_HTTP"] == "31000" and env["PORT_10001"] == "31000" and env["PORT"] == "31000"
    assert env["MESOS_TASK_ID"] == "a.instance-1._app.1" and env["MARATHON_APP_VERSION"] == "v1"
    assert env["MARATHON_APP_LABELS"] == "team" and env["MARATHON_APP_LABEL_TEAM"] == "t"
    assert env["X"] == "1" and "S" not in env  # secrets need a secret store


def test_command_argv():
    assert command_argv({"cmd": "echo $PORT0"}) == ["sh", "-c", "echo $PORT0"]
    assert command_argv({"args": ["/bin/echo", "a b"]}) == ["/bin/echo", "a b"]
    with pytest.raises(LaunchError, match="neither cmd nor args"):
        command_argv({})


def _docker_app(**extra) -> dict:
    app = {"id": "/a", "cpus": 0.25, "mem": 64, "labels": {"team": "web"},
           "container": {"type": "DOCKER", "docker": {"image": "reg:5000/a@sha256:" + "1" * 64, "parameters": [
               {"key": "cap-drop", "value": "ALL"}, {"key": "read-only", "value": "true"}]},
               "portMappings": [{"containerPort": 8080, "hostPort": 0, "protocol": "tcp"},
                                {"containerPort": 0, "hostPort": 0, "protocol": "udp,tcp"}]},
           "networks": [{"mode": "container/bridge"}]}
    app.update(extra)
    return app


def _argv(app: dict, ports=(31001, 31002)) -> list[str]:
    from deploykit.devcluster.appdef import host_port_specs
    from deploykit.devcluster.docker_tasks import run_argv

    return run_argv(app, task_id="a.instance-1._app.1", sandbox=Path("/sb"), host_ports=list(ports),
                    port_specs=host_port_specs(app), env_names=["PORT0", "SECRET"], state_dir=Path("/state"),
                    node_port=8080, host="127.0.0.1")


def test_docker_run_argv_is_what_mesos_passes():
    argv = _argv(_docker_app())
    joined = " ".join(argv)
    assert argv[:4] == ["run", "-d", "--name", "mesos-a.instance-1._app.1"]
    assert "--label deploykit.devcluster=/state" in joined and "--label team=web" in joined
    assert "--cpu-shares 256 --memory 64m" in joined
    assert "-e PORT0 -e SECRET" in joined  # names only: values travel in the client's environment
    assert "-v /sb:/mnt/mesos/sandbox" in joined and "--network bridge" in joined
    # published on the task host address only; containerPort 0 means "same as the host port"
    assert "-p 127.0.0.1:31001:8080/tcp -p 127.0.0.1:31002:31002/udp -p 127.0.0.1:31002:31002/tcp" in joined
    assert "0.0.0.0" not in joined
    assert argv[-3:] == ["--cap-drop=ALL", "--read-only=true", "reg:5000/a@sha256:" + "1" * 64]


def test_docker_run_argv_host_network_cmd_and_legacy_shapes():
    host = _docker_app(networks=[{"mode": "host"}], cmd="exec server --port $PORT0")
    host["container"].pop("portMappings")
    argv = _argv(host, ports=(31005,))
    assert "--network host" in " ".join(argv) and "-p" not in argv
    assert argv[-5:] == ["--entrypoint", "/bin/sh", "reg:5000/a@sha256:" + "1" * 64, "-c", "exec server --port $PORT0"]
    legacy = _docker_app(args=["--verbose"])
    legacy["container"]["docker"]["network"] = "BRIDGE"
    legacy["container"]["docker"]["portMappings"] = legacy["container"].pop("portMappings")[:1]
    argv = _argv(legacy, ports=(31007,))
    assert "-p 127.0.0.1:31007:8080/tcp" in " ".join(argv) and argv[-1] == "--verbose"
    from deploykit.devcluster.docker_tasks import is_docker_app

    assert is_docker_app(legacy) and not is_docker_app({"id": "/p", "cmd": "x"})


def test_fetch_refuses_unknown_schemes_escapes_and_missing(tmp_path: Path):
    with pytest.raises(LaunchError, match="unsupported URI scheme"):
        fetch_artifacts(tmp_path, [{"uri": "s3://bucket/x.tgz"}])
    (tmp_path / "f").write_text("x")
    with pytest.raises(LaunchError, match="leaves the sandbox"):
        fetch_artifacts(tmp_path / "sb", [{"uri": str(tmp_path / "f"), "destPath": "../../f"}])
    with pytest.raises(LaunchError, match="does not exist"):
        fetch_artifacts(tmp_path, [{"uri": "file:///nonexistent/x"}])


def test_port_allocator_skips_used_and_wraps():
    alloc = PortAllocator(41000, 41003)
    first = alloc.allocate(3)
    assert len(set(first)) == 3 and all(41000 <= p <= 41003 for p in first)
    alloc.release(first[:1])
    again = alloc.allocate(2)
    assert set(again) <= {first[0], *(set(range(41000, 41004)) - set(first))}
    assert alloc.allocate(1, fixed=[45555]) == [45555]
    with pytest.raises(LaunchError):
        alloc.allocate(3)


def test_kill_order_unhealthy_first_then_youngest():
    def task(i: int, staged: str, healthy: bool) -> Task:
        t = Task(instance_id=f"i{i}", app_id="/a", version="v", config_version="v", app={}, host_ports=[],
                 service_ports=[], sandbox=Path("/tmp"), staged_at=staged)
        t.state = "TASK_RUNNING" if healthy else "TASK_STAGING"
        return t

    class Rt:
        app = {"killSelection": "YOUNGEST_FIRST"}

    tasks = [task(1, "2020-01-01", True), task(2, "2020-01-03", True), task(3, "2020-01-02", False)]
    assert [t.instance_id for t in Scheduler._kill_order(Rt, tasks)] == ["i3", "i2", "i1"]
    Rt.app = {"killSelection": "OLDEST_FIRST"}
    assert [t.instance_id for t in Scheduler._kill_order(Rt, tasks)] == ["i3", "i1", "i2"]


def test_zk_url_and_latch_sequence():
    assert parse_zk_url("zk://h1:2181,h2:2181/marathon") == ("h1:2181,h2:2181", "/marathon")
    assert parse_zk_url("zk://h1:2181") == ("h1:2181", "/marathon")
    with pytest.raises(ValueError):
        parse_zk_url("http://h1/x")
    names = ["_c_b-latch-0000000010", "_c_a-latch-0000000002"]
    assert sorted(names, key=_seq)[0] == "_c_a-latch-0000000002"


@pytest.mark.parametrize("expr,labels,ok", [
    ("team", {"team": "a"}, True), ("team", {}, False), ("team==a", {"team": "a"}, True),
    ("team!=a", {"team": "b"}, True), ("team in (a, b)", {"team": "b"}, True),
    ("team notin (a,b)", {"team": "c"}, True), ("team notin (a,b)", {"team": "a"}, False),
    ("team==a,env==prod", {"team": "a", "env": "dev"}, False),
])
def test_label_selector(expr, labels, ok):
    assert _label_selector(expr)(labels) is ok


@pytest.mark.parametrize("text,seconds", [("10", 10.0), ("10s", 10.0), ("500ms", 0.5), ("2m", 120.0)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_local_up_options_report_every_problem(tmp_path):
    from deploykit.devcluster.control import UpOptions

    bad = UpOptions(state_dir=tmp_path, marathon_port=70000, consul_port=70000, zk="zk:/nohost",
                    event_heartbeat="soon", registry_port=0)  # 0: no registry (5000 may be in use here)
    assert sorted(p.path for p in bad.problems()) == ["--consul-port", "--consul-port", "--event-heartbeat",
                                                      "--marathon-port", "--zk"]
    ok = UpOptions(state_dir=tmp_path, marathon_port=0, consul_port=0, registry_port=0)
    assert [p.path for p in ok.problems()] == ["--marathon-port"]  # 0 is not a port; consul 0 = off
    assert "--log-file" in UpOptions(state_dir=tmp_path).argv() and "--log-file" not in UpOptions(
        state_dir=tmp_path).argv(log_file=False)


def test_port_in_time_wait_is_free_a_listener_is_named(tmp_path):
    """Issue 18 item 3: connections left in TIME_WAIT by a killed server do not make its port look taken;
    a real listener does, and the message names the process."""
    import os
    import socket

    from deploykit.devcluster.control import UpOptions
    from deploykit.devcluster.util import port_free

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    clients = []
    for _ in range(3):
        c = socket.create_connection(("127.0.0.1", port))
        conn, _addr = server.accept()
        conn.close()  # the server side closes first: its end of the connection goes to TIME_WAIT
        clients.append(c)
    assert "--marathon-port" in [p.path for p in UpOptions(state_dir=tmp_path, marathon_port=port, consul_port=0,
                                                              registry_port=0).problems()]
    problem = next(p for p in UpOptions(state_dir=tmp_path, marathon_port=port, consul_port=0,
                                        registry_port=0).problems() if p.path == "--marathon-port")
    assert f"pid {os.getpid()} (" in problem.message  # the listener is named
    server.close()
    for c in clients:
        c.close()
    assert port_free("127.0.0.1", port)  # TIME_WAIT only: free, as the server will bind it (SO_REUSEADDR)
    assert [p.path for p in UpOptions(state_dir=tmp_path, marathon_port=port, consul_port=0,
                                      registry_port=0).problems()] == []
