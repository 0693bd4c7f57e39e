"""lb.model: Marathon apps -> routing model (gating, slots, conflicts, incremental updates)."""

from __future__ import annotations

import random

import pytest

from deploykit.errors import ValidationError
from deploykit.lb.model import apply_app, build_model, remove_app, slot_count
from deploykit.lb.settings import LbSettings

SETTINGS = LbSettings(http_port=18080, groups=("external",))


def task(tid: str, port: int = 31000, *, state: str = "TASK_RUNNING", host: str = "10.0.0.1",
         alive: bool | None = None, **extra) -> dict:
    t = {"id": tid, "host": host, "ports": [port], "state": state, **extra}
    if alive is not None:
        t["healthCheckResults"] = [{"alive": alive, "consecutiveFailures": 0, "instanceId": tid}]
    return t


def app(app_id: str, tasks: list[dict] | None = None, *, vhost: str | None = None, service_port: int = 10001,
        labels: dict | None = None, health: bool = False, **extra) -> dict:
    lab = {"HAPROXY_GROUP": "external"}
    if vhost:
        lab["HAPROXY_0_VHOST"] = vhost
    lab.update(labels or {})
    doc = {"id": app_id, "labels": lab, "portDefinitions": [{"port": service_port}], "tasks": tasks or [], **extra}
    if health:
        doc["healthChecks"] = [{"protocol": "MESOS_HTTP", "path": "/health"}]
    return doc


def addresses(model, backend: str) -> list[tuple[str, str, int]]:
    return [(name, s.address, s.port) for name, s in model.backends[backend].servers]


def test_vhost_app_gets_http_route_tcp_app_gets_port_frontend() -> None:
    m = build_model([
        app("/web", [task("w1", 31001)], vhost="web.example.com"),
        app("/db", [task("d1", 5432)], service_port=10002),
    ], SETTINGS)
    assert [(r.backend, r.vhosts) for r in m.http_routes] == [("web_0", ("web.example.com",))]
    # marathon-lb binds every routed service port, the vhost app's too (east-west traffic)
    assert [(f.port, f.mode, f.backend) for f in m.port_frontends] == [(10001, "http", "web_0"), (10002, "tcp", "db_0")]
    assert m.backends["web_0"].mode == "http" and m.backends["db_0"].mode == "tcp"
    assert addresses(m, "web_0") == [("s1", "10.0.0.1", 31001)]
    assert len(m.backends["web_0"].slots) == SETTINGS.min_slots


def test_group_filter_and_unlabelled_apps() -> None:
    apps = [app("/a", labels={"HAPROXY_GROUP": "internal"}), app("/b", service_port=10002),
            {"id": "/plain", "portDefinitions": [{"port": 10003}]}]
    assert list(build_model(apps, SETTINGS).backends) == ["b_0"]
    assert list(build_model(apps, LbSettings(groups=("internal",))).backends) == ["a_0"]
    assert list(build_model(apps, LbSettings()).backends) == ["a_0", "b_0"]


def test_only_running_healthy_ready_tasks_are_routed() -> None:
    tasks = [
        task("ok", 1), task("staging", 2, state="TASK_STAGING"), task("sick", 3, alive=False),
        task("unknown", 4), task("notready", 5, alive=True), task("alive", 6, alive=True),
        task("failed", 7, state="TASK_FAILED", alive=True),
    ]
    tasks[0]["healthCheckResults"] = [{"alive": True}, {"alive": True}]
    a = app("/a", tasks, health=True, readinessCheckResults=[
        {"name": "r", "taskId": "notready", "ready": False}, {"name": "r", "taskId": "alive", "ready": True}])
    m = build_model([a], SETTINGS)
    assert sorted(s.task_id for _, s in m.backends["a_0"].servers) == ["alive", "ok"]
    assert m.health == {"ok": True, "sick": False, "notready": True, "alive": True}


def test_health_without_health_checks_is_not_required() -> None:
    m = build_model([app("/a", [task("t1")])], SETTINGS)
    assert [s.task_id for _, s in m.backends["a_0"].servers] == ["t1"]


def test_leader_failover_keeps_last_known_health() -> None:
    before = build_model([app("/a", [task("t1", 1, alive=True), task("t2", 2, alive=True)], health=True)], SETTINGS)
    # a new Marathon leader knows nothing about health yet: results are missing
    after = build_model([app("/a", [task("t1", 1), task("t2", 2), task("t3", 3)], health=True)], SETTINGS,
                        prev=before)
    assert [s.task_id for _, s in after.backends["a_0"].servers] == ["t1", "t2"]
    without_memory = build_model([app("/a", [task("t1", 1)], health=True)], SETTINGS, last_known_health={})
    assert without_memory.backends["a_0"].servers == []


def test_killing_task_drains_in_its_slot() -> None:
    m1 = build_model([app("/a", [task("t1", 1), task("t2", 2)])], SETTINGS)
    m2 = build_model([app("/a", [task("t1", 1, state="TASK_KILLING"), task("t2", 2)])], SETTINGS, prev=m1)
    assert [(n, s.task_id, s.draining) for n, s in m2.backends["a_0"].servers] == [("s1", "t1", True),
                                                                                     ("s2", "t2", False)]
    m3 = build_model([app("/a", [task("t9", 9, state="TASK_KILLING")])], SETTINGS)
    assert m3.backends["a_0"].servers == []  # never routed, so nothing to drain
    assert m2.server_count == 1


def test_slots_are_stable_and_new_tasks_fill_gaps() -> None:
    m1 = build_model([app("/a", [task("t1", 1), task("t2", 2), task("t3", 3)])], SETTINGS)
    assert [n for n, _ in m1.backends["a_0"].servers] == ["s1", "s2", "s3"]
    # t2 replaced by t4, scale up by one: t1/t3 keep s1/s3, t4 takes s2, t5 takes s4
    m2 = build_model([app("/a", [task("t5", 5), task("t3", 3), task("t1", 1), task("t4", 4)])], SETTINGS, prev=m1)
    assert [(n, s.task_id) for n, s in m2.backends["a_0"].servers] == [
        ("s1", "t1"), ("s2", "t4"), ("s3", "t3"), ("s4", "t5")]
    assert len(m2.backends["a_0"].slots) == len(m1.backends["a_0"].slots)


def test_slot_count_headroom_and_hysteresis() -> None:
    s = LbSettings(min_slots=8)
    assert slot_count(0, 0, s) == 8
    assert slot_count(5, 0, s) == 8
    assert slot_count(6, 0, s) == 16  # 9 -> 16
    assert slot_count(40, 0, s) == 64
    assert slot_count(9, 8, s) == 16  # outgrown: grow
    assert slot_count(2, 16, s) == 16  # still within 4x: keep (scaling back does not reload)
    assert slot_count(2, 64, s) == 8  # far too big: shrink
    assert slot_count(2, 0, LbSettings(min_slots=10)) == 10


def test_scale_2_to_5_and_back_fits_without_changing_slots() -> None:
    two = build_model([app("/a", [task(f"t{i}", i) for i in range(2)])], SETTINGS)
    five = build_model([app("/a", [task(f"t{i}", i) for i in range(5)])], SETTINGS, prev=two)
    back = build_model([app("/a", [task(f"t{i}", i) for i in range(2)])], SETTINGS, prev=five)
    assert len(two.backends["a_0"].slots) == len(five.backends["a_0"].slots) == len(back.backends["a_0"].slots)
    assert back.backends["a_0"] == two.backends["a_0"]


def test_malformed_app_is_skipped_others_keep_routing() -> None:
    apps = [
        app("/good", [task("g1")], vhost="good.example.com"),
        app("/evil", [task("e1")], vhost="evil.example.com\n  use_backend good_0", service_port=10002),
        app("/broken", [task("b1")], labels={"HAPROXY_0_BALANCE": "fastest"}, service_port=10003),
        app("/UPPER", [task("u1")], service_port=10004),
        app("/noports", portDefinitions=[]),
    ]
    m = build_model(apps, SETTINGS)
    assert list(m.backends) == ["good_0"]
    reasons = {r.app_id: r.reason for r in m.rejected}
    assert set(reasons) == {"/evil", "/broken", "/UPPER", "/noports"}
    assert "HAPROXY_0_VHOST" in reasons["/evil"] and "HAPROXY_0_BALANCE" in reasons["/broken"]


def test_conflicts_without_history_tie_break_by_id() -> None:
    """No routing to keep and no Marathon versions: the id only breaks the tie (deterministic)."""
    apps = [app("/b", service_port=10001), app("/a", service_port=10001),
            app("/d", vhost="x.example.com"), app("/c", vhost="x.example.com", labels={"HAPROXY_0_PATH": "/api"}),
            app("/e", vhost="x.example.com", service_port=10009),
            app("/f", service_port=18080)]
    m = build_model(apps, SETTINGS)
    assert sorted(m.backends) == ["a_0", "c_0", "d_0"]
    reasons = {r.app_id: r.reason for r in m.rejected}
    assert "already used by /a" in reasons["/b"]
    assert "already routed to /d" in reasons["/e"]
    assert "http frontend" in reasons["/f"]
    assert [r.backend for r in m.http_routes] == ["c_0", "d_0"]  # longer path first


def test_route_holder_keeps_vhost_against_newcomer_that_sorts_first() -> None:
    """Issue 18 item 1: /accept/aaa-dup claiming /accept/zweb's vhost must not take it over."""
    zweb = app("/accept/zweb", [task("z1", 31001)], vhost="web.example.com",
               versionInfo={"lastConfigChangeAt": "2026-12-04T10:00:00.000Z"})
    m1 = build_model([zweb], SETTINGS)
    dup = app("/accept/aaa-dup", [task("d1", 31002)], vhost="web.example.com", service_port=10002,
              versionInfo={"lastConfigChangeAt": "2026-12-04T09:00:00.000Z"})  # even an older config loses
    m2, changed = apply_app(m1, dup)
    assert list(m2.backends) == ["accept_zweb_0"] and changed == []
    (rej,) = m2.rejected
    assert rej.app_id == "/accept/aaa-dup" and rej.holder == "/accept/zweb"
    assert "already routed to /accept/zweb" in rej.reason
    # a full resync on top of the current routing agrees
    m3 = build_model([dup, zweb], SETTINGS, prev=m2)
    assert list(m3.backends) == ["accept_zweb_0"] and m3.rejected == m2.rejected
    # ... and so does a restarted daemon that saved its routing (holders) but has no model
    m4 = build_model([dup, zweb], SETTINGS, holders=dict(m2.claims))
    assert list(m4.backends) == ["accept_zweb_0"]
    # the holder's task churn does not hand the route over
    m5, _ = apply_app(m3, {**zweb, "tasks": [task("z2", 31003)]})
    assert list(m5.backends) == ["accept_zweb_0"] and m5.rejected[0].app_id == "/accept/aaa-dup"
    # the holder gives the vhost up: the newcomer gets it
    m6, changed = remove_app(m5, "/accept/zweb")
    assert list(m6.backends) == ["accept_aaa-dup_0"] and not m6.rejected


def test_route_holder_keeps_service_port_and_restart_uses_config_age() -> None:
    old = app("/zz/old", [task("o1")], service_port=10050, versionInfo={"lastConfigChangeAt": "2026-01-01T00:00:00Z"})
    new = app("/aa/new", [task("n1")], service_port=10050, versionInfo={"lastConfigChangeAt": "2026-06-01T00:00:00Z"})
    cold = build_model([new, old], SETTINGS)  # no routing to keep: the older configuration holds the port
    assert list(cold.backends) == ["zz_old_0"]
    assert "service port 10050 is already used by /zz/old" in cold.rejected[0].reason
    # a holder that changes its labels to claim another holder's port loses, the other keeps its own
    other = app("/mm/other", [task("m1")], service_port=10060,
                versionInfo={"lastConfigChangeAt": "2025-01-01T00:00:00Z"})
    m = build_model([old, other], SETTINGS)
    m2, _ = apply_app(m, {**other, "portDefinitions": [{"port": 10050}],
                          "versionInfo": {"lastConfigChangeAt": "2026-12-01T00:00:00Z"}})
    assert list(m2.backends) == ["zz_old_0"] and m2.rejected[0].holder == "/zz/old"


def test_tcp_mode_with_vhost_is_rejected() -> None:
    m = build_model([app("/a", vhost="a.example.com", labels={"HAPROXY_0_MODE": "tcp"})], SETTINGS)
    assert "needs mode http" in m.rejected[0].reason


def test_port_shapes_and_container_networking() -> None:
    bridge = {"id": "/bridge", "labels": {"HAPROXY_GROUP": "external"},
              "container": {"type": "DOCKER", "portMappings": [{"containerPort": 80, "servicePort": 10010}]},
              "networks": [{"mode": "container/bridge"}], "tasks": [task("b1", 31010)]}
    legacy = {"id": "/legacy", "labels": {"HAPROXY_GROUP": "external"},
              "container": {"docker": {"network": "BRIDGE",
                                       "portMappings": [{"containerPort": 80, "servicePort": 10011}]}},
              "tasks": [task("l1", 31011)]}
    user = {"id": "/user", "labels": {"HAPROXY_GROUP": "external"},
            "container": {"portMappings": [{"containerPort": 8080, "servicePort": 10012}]},
            "networks": [{"mode": "container", "name": "overlay"}],
            "tasks": [task("u1", 0, ipAddresses=[{"ipAddress": "192.168.5.7", "protocol": "IPv4"}])]}
    old = {"id": "/old", "labels": {"HAPROXY_GROUP": "external"}, "ports": [10013], "tasks": [task("o1", 31013)]}
    override = app("/override", [task("v1", 31014)], service_port=0, labels={"HAPROXY_0_PORT": "10014"})
    m = build_model([bridge, legacy, user, old, override], SETTINGS)
    assert [f.port for f in m.port_frontends] == [10010, 10011, 10012, 10013, 10014]
    assert addresses(m, "bridge_0") == [("s1", "10.0.0.1", 31010)]
    assert addresses(m, "legacy_0") == [("s1", "10.0.0.1", 31011)]
    assert addresses(m, "user_0") == [("s1", "192.168.5.7", 8080)]
    assert addresses(m, "old_0") == [("s1", "10.0.0.1", 31013)]
    assert addresses(m, "override_0") == [("s1", "10.0.0.1", 31014)]


def test_bad_task_address_is_skipped_not_the_app() -> None:
    m = build_model([app("/a", [task("t1", host="evil host\n"), task("t2", 2)])], SETTINGS)
    assert [s.task_id for _, s in m.backends["a_0"].servers] == ["t2"]


def test_labels_for_missing_port_index_are_ignored() -> None:
    m = build_model([app("/a", labels={"HAPROXY_3_MODE": "http", "HAPROXY_0_BACKEND_HEAD": "x"})], SETTINGS)
    assert [(i.label, "no port index 3" in i.reason or "raw" in i.reason) for i in m.ignored] == [
        ("HAPROXY_0_BACKEND_HEAD", True), ("HAPROXY_3_*", True)]


def test_build_is_deterministic_regardless_of_input_order() -> None:
    apps = [app(f"/app{i}", [task(f"t{i}-{k}", 31000 + k) for k in range(3)], vhost=f"a{i}.example.com",
                service_port=10000 + i) for i in range(30)]
    m1 = build_model(apps, SETTINGS)
    shuffled = [dict(a, tasks=random.sample(a["tasks"], len(a["tasks"]))) for a in random.sample(apps, len(apps))]
    m2 = build_model(shuffled, SETTINGS)
    assert m1.backends == m2.backends and m1.http_routes == m2.http_routes
    assert list(m1.backends) == sorted(m1.backends)


def test_apply_app_tasks_only_is_incremental_and_matches_full_build() -> None:
    apps = [app(f"/app{i}", [task(f"t{i}-{k}", 31000 + k) for k in range(3)], vhost=f"a{i}.example.com",
                service_port=10000 + i) for i in range(10)]
    m1 = build_model(apps, SETTINGS)
    changed_app = app("/app3", [task("t3-0", 31000), task("t3-9", 31009)], vhost="a3.example.com",
                      service_port=10003)
    m2, changed = apply_app(m1, changed_app)
    assert changed == ["app3_0"]
    assert m2.http_routes is m1.http_routes  # structure untouched
    assert all(m2.backends[n] is m1.backends[n] for n in m1.backends if n != "app3_0")
    full = build_model([changed_app if a["id"] == "/app3" else a for a in apps], SETTINGS, prev=m1)
    assert m2.backends == full.backends
    assert m1.backends["app3_0"].servers != m2.backends["app3_0"].servers  # m1 not mutated
    # unchanged app: nothing changes
    m3, changed3 = apply_app(m2, changed_app)
    assert changed3 == [] and m3.backends["app3_0"] is m2.backends["app3_0"]


def test_apply_app_structure_change_and_new_and_bad_apps() -> None:
    m1 = build_model([app("/a", [task("a1")], vhost="a.example.com"), app("/b", service_port=10002)], SETTINGS)
    m2, changed = apply_app(m1, app("/a", [task("a1")], vhost="new.example.com"))
    assert changed == [] and m2.http_routes[0].vhosts == ("new.example.com",)
    m3, changed = apply_app(m2, app("/c", [task("c1")], service_port=10003))
    assert changed == ["c_0"] and [f.port for f in m3.port_frontends] == [10001, 10002, 10003]
    m4, changed = apply_app(m3, app("/c", vhost="bad host"))
    assert changed == ["c_0"] and "c_0" not in m4.backends and m4.rejected[0].app_id == "/c"
    m5, changed = apply_app(m4, app("/c", [task("c1")], service_port=10003))
    assert not m5.rejected and "c_0" in m5.backends
    m6, changed = remove_app(m5, "/a")
    assert changed == ["a_0"] and m6.http_routes == ()
    # a conflict resolves when the app holding the port goes away
    m7, _ = apply_app(m6, app("/d", service_port=10002))
    assert m7.rejected[0].app_id == "/d"
    m8, changed = remove_app(m7, "/b")
    assert "d_0" in m8.backends and not m8.rejected and set(changed) == {"b_0", "d_0"}


def test_settings_from_environment_section() -> None:
    s = LbSettings.from_mapping({"http_port": 8000, "groups": ["external"], "bind_address": "127.0.0.1",
                                 "stats_socket": None, "server_slots": 10, "template_dir": None,
                                 "binary": "haproxy"})
    assert (s.http_port, s.groups, s.min_slots, s.stats_socket) == (8000, ("external",), 10, LbSettings().stats_socket)
    assert s.extra == {"binary": "haproxy"}
    with pytest.raises(ValidationError) as info:
        LbSettings.from_mapping({"http_port": 70000, "groups": "x", "maxconn": "lots", "stats_sockett": "/x",
                                 "state_file": "/x\nglobal"}, file="prod.json")
    paths = sorted(p.path for p in info.value.problems)
    assert paths == ["haproxy.http_port", "haproxy.maxconn", "haproxy.state_file", "haproxy.stats_sockett"]
    assert any(p.hint and "stats_socket" in p.hint for p in info.value.problems)


def test_app_without_id_is_rejected_not_fatal() -> None:
    m = build_model([{"labels": {"HAPROXY_GROUP": "external"}, "tasks": [task("t1", alive=True)],
                      "healthChecks": [{}]}, app("/ok", [task("t2")])], SETTINGS)
    assert list(m.backends) == ["ok_0"] and m.rejected[0].reason == "app has no id"


def test_apply_app_keeps_health_memory_per_app() -> None:
    m1 = build_model([app("/a", [task("a1", 1, alive=True)], health=True),
                      app("/b", [task("b1", 2, alive=True)], health=True, service_port=10002)], SETTINGS)
    # failover: /a comes back without health results; its last known health keeps a1 routed
    m2, changed = apply_app(m1, app("/a", [task("a1", 1), task("a2", 3)], health=True))
    assert changed == [] and m2.health == {"a1": True, "b1": True}
    m3, _ = remove_app(m2, "/a")
    assert m3.health == {"b1": True} and m2.health == {"a1": True, "b1": True}


def test_resolver_turns_agent_names_into_addresses() -> None:
    names = {"agent1.example.com": "10.1.1.1"}
    apps = [app("/a", [task("t1", 1, host="agent1.example.com"), task("t2", 2, host="gone.example.com"),
                       task("t3", 3, host="10.0.0.3")])]
    m = build_model(apps, SETTINGS, resolve=names.get)
    assert addresses(m, "a_0") == [("s1", "10.1.1.1", 1), ("s2", "10.0.0.3", 3)]
    agent = "agent1.example.com"
    m2, _ = apply_app(m, app("/a", [task("t1", 1, host=agent), task("t4", 4, host=agent)]))
    assert addresses(m2, "a_0") == [("s1", "10.1.1.1", 1), ("s2", "10.1.1.1", 4)]
    assert addresses(build_model(apps, SETTINGS), "a_0")[0] == ("s1", "agent1.example.com", 1)  # no resolver


def test_unlabelled_port_without_service_port_is_skipped_not_the_app() -> None:
    a = app("/a", [task("t1")], vhost="a.example.com")
    a["portDefinitions"] = [{"port": 10001}, {"port": 0}]
    a["labels"] = {"HAPROXY_GROUP": "external"}  # group only: every port is routed, as with marathon-lb
    m = build_model([a], SETTINGS)
    assert list(m.backends) == ["a_0"] and not m.rejected
    assert [i.label for i in m.ignored] == ["port 1"]
    a["labels"]["HAPROXY_1_MODE"] = "tcp"  # port 1 asked for explicitly: without a service port that is an error
    assert "no service port to bind" in build_model([a], SETTINGS).rejected[0].reason


def test_labelled_ports_only_when_some_port_is_labelled() -> None:
    a = app("/a", [{**task("t1"), "ports": [31001, 31002, 31003]}], vhost="a.example.com")
    a["portDefinitions"] = [{"port": 10001}, {"port": 10002}, {"port": 10003}]
    assert list(build_model([a], SETTINGS).backends) == ["a_0"]  # the admin ports stay off the load balancer
    a["labels"]["DEPLOYKIT_2_CHECK_PATH"] = "/health"
    m = build_model([a], SETTINGS)
    assert list(m.backends) == ["a_0", "a_2"] and [f.port for f in m.port_frontends] == [10001, 10003]
    a["labels"] = {"HAPROXY_GROUP": "external"}
    assert list(build_model([a], SETTINGS).backends) == ["a_0", "a_1", "a_2"]


def test_empty_label_values_mean_unset() -> None:
    m = build_model([app("/a", [task("t1")], labels={"HAPROXY_0_VHOST": "", "HAPROXY_0_PATH": " "})], SETTINGS)
    assert [f.port for f in m.port_frontends] == [10001] and not m.rejected


def test_settings_reject_spaces() -> None:
    with pytest.raises(ValidationError):
        LbSettings.from_mapping({"bind_address": "127.0.0.1:80 ssl crt /x"})


def test_port_mapping_without_service_port_is_not_a_crash() -> None:
    a = {"id": "/a", "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "a.example.com"},
         "container": {"portMappings": [{"containerPort": 80}]}, "tasks": [task("t1")]}
    assert list(build_model([a], SETTINGS).backends) == ["a_0"]
    del a["labels"]["HAPROXY_0_VHOST"]
    m = build_model([a], SETTINGS)
    assert not m.backends and "no port can be routed" in m.rejected[0].reason


def test_conflict_between_ports_of_one_app() -> None:
    a = app("/a", labels={"HAPROXY_1_MODE": "tcp", "HAPROXY_0_MODE": "tcp"})
    a["portDefinitions"] = [{"port": 10005}, {"port": 10005}]
    assert "already used by another port of this app" in build_model([a], SETTINGS).rejected[0].reason


def test_ipv6_task_addresses() -> None:
    m = build_model([app("/a", [task("t1", 1, host="fd00::5"), task("t2", 2, host="fd00::zz")])], SETTINGS)
    assert addresses(m, "a_0") == [("s1", "fd00::5", 1)]


def test_malformed_app_documents_reject_that_app_only() -> None:
    bad_tasks = app("/bad-tasks", [task("x1")], service_port=10002)
    bad_tasks["tasks"] = [["not", "a", "task"]]
    bad_health = app("/bad-health", [task("x2", alive=True)], health=True, service_port=10003)
    bad_health["tasks"][0]["healthCheckResults"] = ["yes"]
    bad_ports = app("/bad-ports", service_port=10004)
    bad_ports["portDefinitions"] = [7]
    m = build_model([app("/good", [task("g1")]), bad_tasks, bad_health, bad_ports, "junk"], SETTINGS)
    assert list(m.backends) == ["good_0"]
    reasons = {r.app_id: r.reason for r in m.rejected}
    assert {"/bad-tasks", "/bad-health", "/bad-ports"} <= set(reasons)
    assert all("malformed" in reasons[k] for k in ("/bad-tasks", "/bad-health", "/bad-ports"))
    assert "'junk'" in reasons
    m2, changed = apply_app(m, bad_tasks)
    assert changed == [] and m2.rejected == m.rejected
    assert apply_app(m, {"id": ["x"]}) == (m, [])


def test_enabled_false_keeps_a_port_off_the_load_balancer() -> None:
    a = app("/a", [{**task("t1"), "ports": [31001, 31002]}], labels={"HAPROXY_1_ENABLED": "false"})
    a["portDefinitions"] = [{"port": 10001}, {"port": 10002}]
    assert not build_model([a], SETTINGS).backends  # port 1 disabled, port 0 unlabelled
    a["labels"]["HAPROXY_0_MODE"] = "tcp"
    assert list(build_model([a], SETTINGS).backends) == ["a_0"]
    a["labels"]["HAPROXY_0_ENABLED"] = "no"
    m = build_model([a], SETTINGS)
    assert not m.backends and not m.rejected


def test_route_conflicts_for_a_deploy_name_the_holder() -> None:
    from deploykit.lb.model import route_conflicts

    holder = app("/team-a/web", [task("w1")], vhost="web.example.com",
                 versionInfo={"lastConfigChangeAt": "2026-12-01T00:00:00Z"})
    tcp = app("/team-a/db", service_port=10070)
    newcomer = app("/aaa/dup", vhost="web.example.com")
    (conflict,) = route_conflicts(newcomer, [holder, tcp])
    assert conflict.holder == "/team-a/web" and "host web.example.com path /" in conflict.reason
    assert route_conflicts(app("/aaa/port", service_port=10070), [holder, tcp])[0].holder == "/team-a/db"
    # a redeploy of the holder itself keeps what it holds; another group does not compete
    assert route_conflicts({**holder, "instances": 3}, [holder, tcp, newcomer]) == []
    other_group = app("/aaa/dup", vhost="web.example.com", labels={"HAPROXY_GROUP": "internal"})
    assert route_conflicts(other_group, [holder]) == []
    assert route_conflicts(app("/free", vhost="free.example.com"), [holder, tcp]) == []


def test_starved_apps_want_instances_but_have_no_server() -> None:
    from deploykit.lb.model import starved_apps

    m = build_model([
        app("/up", [task("u1", alive=True)], vhost="up.example.com", health=True, instances=1),
        app("/down", [task("d1", alive=False)], vhost="down.example.com", health=True, instances=2),
        app("/suspended", [], vhost="s.example.com", instances=0),
    ], SETTINGS)
    assert starved_apps(m) == ["/down"]
