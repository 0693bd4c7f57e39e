"""lb.source: which apps an event touches, and leader URL ordering / failover bookkeeping."""

from __future__ import annotations

import queue

from deploykit.clients.marathon_events import Event
from deploykit.lb.source import LeaderChanged, LeaderSource, ZkReconnected, apps_touched


def test_apps_touched_by_event_kind():
    assert apps_touched(Event("status_update_event", {"appId": "/a"})) == (["/a"], False)
    assert apps_touched(Event("instance_health_changed_event", {"runSpecId": "/b"})) == (["/b"], False)
    assert apps_touched(Event("api_post_event", {"appDefinition": {"id": "/c"}})) == (["/c"], False)
    assert apps_touched(Event("app_terminated_event", {"appId": "/d"})) == (["/d"], False)
    plan = {
        "steps": [
            {"actions": [{"action": "RestartApplication", "app": "/y"}, {"app": "/x"}]},
            {"actions": [{"app": "/y"}]},
        ]
    }
    assert apps_touched(Event("deployment_success", {"plan": plan})) == (["/x", "/y"], False)
    assert apps_touched(Event("event_stream_attached", {})) == ([], False)


def test_event_without_app_id_asks_for_full_resync():
    assert apps_touched(Event("status_update_event", {"taskId": "x"})) == ([], True)
    assert apps_touched(Event("deployment_failed", {"plan": {}})) == ([], True)


def test_leader_first_then_static_urls():
    src = LeaderSource(["http://m1:8080/", "http://m2:8080"])
    assert src.urls() == ["http://m1:8080", "http://m2:8080"]
    src.leader = "m2:8080"
    assert src.urls() == ["http://m2:8080", "http://m1:8080"]


def test_leader_changes_are_posted_and_a_vanished_leader_is_kept():
    sink: queue.Queue = queue.Queue()
    src = LeaderSource([], sink=sink)
    src._on_leader("10.0.0.1:8080")
    src._on_leader("10.0.0.1:8080")  # no change, no item
    src._on_leader(None)  # between leaders: keep the last one, post nothing
    src._on_leader("10.0.0.2:8080")
    items = []
    while not sink.empty():
        items.append(sink.get_nowait())
    assert items == [LeaderChanged("10.0.0.1:8080"), LeaderChanged("10.0.0.2:8080")]
    assert src.urls() == ["http://10.0.0.2:8080"]


def test_zk_reconnect_after_loss_requests_resync():
    sink: queue.Queue = queue.Queue()
    src = LeaderSource([], sink=sink)
    src._on_zk_state("CONNECTED")  # first connect: nothing to catch up on
    src._on_zk_state("SUSPENDED")
    src._on_zk_state("CONNECTED")
    assert sink.get_nowait() == ZkReconnected()
    assert sink.empty()
