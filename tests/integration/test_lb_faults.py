"""`deploykit lb run` under faults and hostile apps (issue 18): real devcluster, real HAProxy, bounded load.

Every test that drives load reports its failed-request count through `record_summary`.
"""

from __future__ import annotations

import signal
import socket
import time

import pytest
import requests

from tests.harness.devcluster import wait_for
from tests.integration import test_lb_e2e as e2e
from tests.integration.test_lb_e2e import LoadGen, put_app, settled, web_app

pytestmark = pytest.mark.integration

dc = e2e.dc  # fixtures: a devcluster with its own task port block, and `deploykit lb run` subprocesses
lb_factory = e2e.lb_factory


def squatter(app_id: str, vhost: str) -> dict:
    """An app that claims another app's vhost; it never needs to answer (the repro's `sleep 600`)."""
    doc = web_app(app_id, vhost, 1)
    doc["cmd"] = "sleep 600"
    doc.pop("healthChecks")
    return doc


def test_newcomer_cannot_take_a_held_vhost_even_across_a_restart(dc, lb_factory, record_summary):
    base = dc.marathon_url
    put_app(base, web_app("/accept/zweb", "web.test", 2))
    tasks = settled(base, "/accept/zweb", 2)
    lb = lb_factory([base])
    wait_for(lambda: lb.routed("web.test") == set(tasks), 20, "web.test routed")

    with LoadGen(lb.http_port, ["web.test"], rate=50, threads=4) as load:
        time.sleep(1)
        # sorts before /accept/zweb: with "first id wins" it would take the vhost
        put_app(base, squatter("/accept/aaa-dup", "web.test"))
        wait_for(lambda: lb.log_events("route_conflict"), 15, "conflict reported")
        time.sleep(2)
        # a restart of the daemon keeps the holder (its saved routing), even if the newcomer's config is older
        lb.proc.send_signal(signal.SIGKILL)
        lb.proc.wait(10)
        lb.proc = None
        lb.start()
        time.sleep(3)
    record_summary("lb_route_hijack", {"requests": load.total, "failed": len(load.failed)})
    assert load.total >= 150, load.total
    assert load.failed == [], load.failed[:5]
    (event, *_) = lb.log_events("route_conflict")
    assert event["app"] == "/accept/aaa-dup" and event["holder"] == "/accept/zweb"
    assert lb.metric("deploykit_lb_route_conflicts_total") >= 1
    assert lb.routed("web.test") == set(tasks)
    assert "accept_aaa-dup" not in lb.config.read_text()
    # the holder leaves: the newcomer gets the vhost
    r = requests.delete(f"{base}/v2/apps/accept/zweb", params={"force": "true"}, timeout=10)
    assert r.status_code in (200, 202)
    wait_for(lambda: "accept_aaa-dup_0" in lb.config.read_text(), 20, "newcomer routed once the holder is gone")


@pytest.mark.parametrize("how", ["kill"])  # SIGTERM ("stop") takes the same path; kill -9 is the harder case
def test_routing_follows_marathon_the_moment_it_returns(dc, lb_factory, record_summary, how):
    """Item 4: after a Marathon outage the health events after the (held) resync are applied at once (the issue's
    16 s outage is shortened: the cause was readiness, not the outage's length)."""
    base = dc.marathon_url
    slow = web_app("/back/web", "back.test", 2)
    # relaunched tasks turn healthy well after the first resync, and ready (the quick start's hello has a
    # readiness check too) after that: no Marathon event says "ready"
    slow["cmd"] = ("sleep 5; trap '' TERM; echo ok > health && echo \"$MESOS_TASK_ID $VERSION\" > id && "
                   "(sleep 2; echo ok > ready) & exec busybox httpd -f -p 127.0.0.1:$PORT0 -h .")
    slow["readinessChecks"] = [{"name": "ready", "protocol": "HTTP", "path": "/ready", "portName": "http",
                                "intervalSeconds": 1, "timeoutSeconds": 1, "httpStatusCodesForReady": [200]}]
    put_app(base, slow)
    settled(base, "/back/web", 2)
    lb = lb_factory([base])
    wait_for(lambda: len(lb.routed("back.test")) == 2, 20, "routed")

    dc.stop() if how == "stop" else dc.kill()
    time.sleep(8)
    status, detail = lb.healthz()  # still serving the last good config, but not ok: say why
    assert status == 200 and detail["ok"] is False and detail["status"] == "degraded", detail
    assert any("event stream down" in p for p in detail["degraded"]), detail
    with LoadGen(lb.http_port, ["back.test"], rate=40, threads=4) as load:
        dc.start()
        t0 = time.monotonic()
        now = settled(base, "/back/web", 2)
        healthy_after = time.monotonic() - t0
        wait_for(lambda: lb.routed("back.test") == set(now), 60, "routed onto the relaunched tasks", interval=0.2)
        routed_after = time.monotonic() - t0
        time.sleep(3)
    since_start = t0 - load.started
    late = [f for f in load.failed if float(f.split("s ", 1)[0]) - since_start > routed_after + 0.5]
    record_summary(f"lb_marathon_returns_{how}", {
        "healthy_after_s": round(healthy_after, 2), "routed_after_s": round(routed_after, 2),
        "requests": load.total, "failed": len(load.failed), "failed_after_routed": len(late)})
    assert late == [], late[:5]
    assert routed_after - healthy_after < 3, (healthy_after, routed_after, lb.log_tail(60))
    wait_for(lambda: lb.healthz()[1]["ok"], 10, "healthz ok again")
    status, detail = lb.healthz()
    assert status == 200 and detail["servers"] == 2 and detail["status"] == "ok" and detail["degraded"] == []


def test_healthz_degraded_while_a_routed_app_has_no_server(dc, lb_factory):
    base = dc.marathon_url
    put_app(base, web_app("/starve/ok", "ok.test", 1))
    settled(base, "/starve/ok", 1)
    lb = lb_factory([base])
    wait_for(lambda: lb.healthz()[1]["ok"], 20, "healthz ok")
    broken = web_app("/starve/web", "starve.test", 2)
    broken["healthChecks"][0]["path"] = "/missing"  # never healthy: no server is routed
    put_app(base, broken)
    detail = wait_for(lambda: (d := lb.healthz()[1])["status"] == "degraded" and d, 20, "degraded")
    assert detail["ok"] is False and any("/starve/web" in p for p in detail["degraded"]), detail


def test_app_whose_service_port_is_taken_on_the_lb_host_breaks_nothing(dc, lb_factory, record_summary):
    """Item 6: `haproxy -c` passes a bind another process holds; the reload would fail (and pause every
    listener ~2 s in HAProxy 2.6). The app is refused before any reload; later apps are routed."""
    base = dc.marathon_url
    put_app(base, web_app("/taken/web", "web.test", 1))
    settled(base, "/taken/web", 1)
    lb = lb_factory([base])
    wait_for(lambda: lb.routed("web.test"), 20, "web.test routed")
    squatter_sock = socket.socket()
    squatter_sock.bind(("127.0.0.1", 0))
    squatter_sock.listen()
    port = squatter_sock.getsockname()[1]
    try:
        with LoadGen(lb.http_port, ["web.test"], rate=40, threads=4) as load:
            time.sleep(1)
            tcp = web_app("/taken/tcp", "unused.test", 1)
            tcp["labels"] = {"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "tcp"}
            tcp["portDefinitions"] = [{"port": port, "name": "http"}]
            put_app(base, tcp)
            settled(base, "/taken/tcp", 1)
            wait_for(lambda: lb.log_events("port_unavailable"), 15, "port conflict reported")
            put_app(base, web_app("/taken/good", "good.test", 1))
            good = settled(base, "/taken/good", 1)
            wait_for(lambda: lb.routed("good.test") == set(good), 15, "an app deployed afterwards is routed")
            time.sleep(1)
    finally:
        squatter_sock.close()
    record_summary("lb_port_taken", {"requests": load.total, "failed": len(load.failed)})
    assert load.failed == [], load.failed[:5]
    (event,) = lb.log_events("port_unavailable")
    assert event["app"] == "/taken/tcp" and event["port"] == port and "in use" in event["reason"]
    assert lb.metric("deploykit_lb_port_conflicts_total") == 1
    assert lb.log_events("reload_failed") == []
    assert f":{port}" not in lb.config.read_text()
    assert any(r["app"] == "/taken/tcp" for r in lb.log_events("app_rejected"))
