"""`deploykit lb run` under faults and hostile apps (issue 18): real devcluster, real HAProxy, bounded load.

Every test that drives load reports its failed-request count through `record_summary`.
"""

from __future__ import annotations

import signal
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
