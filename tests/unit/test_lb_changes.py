"""lb.changes: which model changes become Runtime API commands and which need a reload."""

from __future__ import annotations

from deploykit.lb.changes import diff
from deploykit.lb.model import apply_app, build_model
from deploykit.lb.settings import LbSettings

SETTINGS = LbSettings(http_port=18080)


def task(tid: str, port: int, state: str = "TASK_RUNNING", host: str = "10.0.0.1") -> dict:
    return {"id": tid, "host": host, "ports": [port], "state": state}


def app(app_id: str, tasks: list[dict], **labels: str) -> dict:
    return {"id": app_id, "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": f"{app_id[1:]}.example.com",
                                     **labels},
            "portDefinitions": [{"port": 10001}], "tasks": tasks}


def commands(changes) -> list[str]:
    return [op.command() for op in changes.server_ops]


def test_first_model_needs_a_reload() -> None:
    assert diff(None, build_model([], SETTINGS)).reload_needed


def test_identical_models_change_nothing() -> None:
    apps = [app("/a", [task("t1", 1)]), app("/b", [task("t2", 2)])]
    m1 = build_model(apps, SETTINGS)
    m2 = build_model(apps, SETTINGS, prev=m1)
    changes = diff(m1, m2)
    assert changes.empty and not changes.reasons


def test_scale_up_and_down_within_slots_is_runtime_only() -> None:
    m1 = build_model([app("/a", [task("t1", 1), task("t2", 2)])], SETTINGS)
    m2, changed = apply_app(m1, app("/a", [task("t1", 1), task("t2", 2), task("t3", 3), task("t4", 4)]))
    up = diff(m1, m2, only=changed)
    assert not up.reload_needed
    assert commands(up) == [
        "set server a_0/s3 addr 10.0.0.1 port 3", "set server a_0/s3 state ready",
        "set server a_0/s4 addr 10.0.0.1 port 4", "set server a_0/s4 state ready",
    ]
    assert diff(m1, m2).server_ops == up.server_ops  # same answer without the hint
    m3, changed = apply_app(m2, app("/a", [task("t1", 1), task("t4", 4)]))
    down = diff(m2, m3, only=changed)
    assert not down.reload_needed
    assert commands(down) == ["set server a_0/s2 state maint", "set server a_0/s3 state maint"]


def test_task_replaced_in_same_slot() -> None:
    m1 = build_model([app("/a", [task("t1", 1)])], SETTINGS)
    m2 = build_model([app("/a", [task("t2", 2, host="10.0.0.2")])], SETTINGS, prev=m1)
    changes = diff(m1, m2)
    assert not changes.reload_needed
    assert commands(changes) == ["set server a_0/s1 state maint", "set server a_0/s1 addr 10.0.0.2 port 2",
                                 "set server a_0/s1 state ready"]
    assert [op.task_id for op in changes.server_ops] == ["t1", "t2", "t2"]


def test_killing_task_is_drained_then_removed() -> None:
    m1 = build_model([app("/a", [task("t1", 1), task("t2", 2)])], SETTINGS)
    m2 = build_model([app("/a", [task("t1", 1, "TASK_KILLING"), task("t2", 2)])], SETTINGS, prev=m1)
    assert commands(diff(m1, m2)) == ["set server a_0/s1 state drain"]
    m3 = build_model([app("/a", [task("t2", 2)])], SETTINGS, prev=m2)
    assert commands(diff(m2, m3)) == ["set server a_0/s1 state maint"]


def test_outgrowing_slots_needs_reload() -> None:
    m1 = build_model([app("/a", [task("t1", 1)])], SETTINGS)
    m2 = build_model([app("/a", [task(f"t{i}", i) for i in range(1, SETTINGS.min_slots + 2)])], SETTINGS, prev=m1)
    changes = diff(m1, m2)
    assert changes.reload_needed and changes.reasons == ["backend a_0: slots 8 -> 16"]


def test_structure_changes_need_reload() -> None:
    base = build_model([app("/a", [task("t1", 1)])], SETTINGS)
    cases = {
        "settings changed": build_model([app("/a", [task("t1", 1)])], LbSettings(http_port=18081), prev=base),
        "http routes changed": build_model([app("/a", [task("t1", 1)], HAPROXY_0_PATH="/x")], SETTINGS, prev=base),
        "backend a_0: settings changed": build_model([app("/a", [task("t1", 1)], HAPROXY_0_BALANCE="leastconn")],
                                                     SETTINGS, prev=base),
        "backend b_0 added": build_model([app("/a", [task("t1", 1)]), app("/b", [])], SETTINGS, prev=base),
    }
    for reason, new in cases.items():
        changes = diff(base, new)
        assert changes.reload_needed and reason in changes.reasons, (reason, changes.reasons)
    gone = diff(base, build_model([], SETTINGS))
    assert "backend a_0 removed" in gone.reasons and "http routes changed" in gone.reasons


def test_change_lists_of_several_updates_can_be_merged() -> None:
    m1 = build_model([app("/a", [task("t1", 1)])], SETTINGS)
    m2, c2 = apply_app(m1, app("/b", [task("t2", 2)]))
    m3, c3 = apply_app(m2, {"id": "/b", "labels": {}})  # /b gone again
    changes = diff(m1, m3, only=set(c2) | set(c3))
    assert changes.empty and c2 == ["b_0"]
