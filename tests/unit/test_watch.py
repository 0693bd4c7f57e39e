"""watch.py: which evidence ends a deployment, fed as made-up timelines."""

from __future__ import annotations

from deploykit import watch as w

V_OLD = "2026-01-01T00:00:00.000Z"
V_NEW = "2026-01-02T00:00:00.000Z"


def make(**kw) -> w.DeploymentWatch:
    spec = dict(app_id="/a", deployment_id="d1", version=V_NEW, instances=2, has_health=True, timeout=60.0)
    spec.update(kw)
    return w.DeploymentWatch(w.WatchSpec(**spec), started=0.0)


def task(tid: str, version: str, healthy: bool = True, state: str = "TASK_RUNNING") -> dict:
    return {"id": tid, "version": version, "state": state, "healthCheckResults": [{"alive": healthy}]}


def app(version: str, tasks: list[dict]) -> dict:
    return {"id": "/a", "version": version, "versionInfo": {"lastConfigChangeAt": version}, "tasks": tasks}


def test_success_only_on_our_deployment_success():
    wt = make()
    assert wt.feed_event({"eventType": "deployment_success", "id": "other"}, 1) is None
    out = wt.feed_event({"eventType": "deployment_success", "id": "d1"}, 2)
    assert out.ok and out.confirmed_by == "event"


def test_gone_from_deployments_is_not_success_without_app_state():
    wt = make()
    wt.feed_deployments([{"id": "d1", "affectedApps": ["/a"]}], 1)
    assert wt.feed_deployments([], 2) is None
    assert wt.wants_app
    # old tasks still there: not confirmed
    assert wt.feed_app(app(V_NEW, [task("t1", V_OLD), task("t2", V_NEW)]), 3) is None
    # nothing confirms it within the window -> vanished
    out = wt.tick(2 + 10)
    assert not out.ok and out.reason == w.VANISHED


def test_gone_and_confirmed_by_app_is_success():
    wt = make()
    wt.feed_deployments([{"id": "d1", "affectedApps": ["/a"]}], 1)
    wt.feed_deployments([], 2)
    out = wt.feed_app(app(V_NEW, [task("t1", V_NEW), task("t2", V_NEW)]), 3)
    assert out.ok and out.confirmed_by == "poll"


def test_unhealthy_new_tasks_are_not_confirmation():
    wt = make()
    wt.feed_deployments([], 5)  # never seen, past the appear grace
    assert wt.feed_app(app(V_NEW, [task("t1", V_NEW), task("t2", V_NEW, healthy=False)]), 6) is None


def test_deployment_not_yet_listed_right_after_put_is_not_gone():
    wt = make()
    assert wt.feed_deployments([], 0.5) is None
    assert not wt.wants_app


def test_deployment_failed_and_superseded_names_the_other():
    wt = make()
    out = wt.feed_event({"eventType": "deployment_failed", "id": "d1", "reason": "boom"}, 1)
    assert out.reason == w.DEPLOYMENT_FAILED and "boom" in out.message
    wt = make()
    wt.feed_event(
        {"eventType": "deployment_info", "plan": {"id": "d2", "steps": [{"actions": [{"app": "/a"}]}]}}, 1
    )
    out = wt.feed_event({"eventType": "deployment_failed", "id": "d1"}, 2)
    assert out.reason == w.SUPERSEDED and out.other_deployment == "d2" and "d2" in out.message


def test_superseded_seen_by_polling():
    wt = make()
    wt.feed_deployments([{"id": "d1", "affectedApps": ["/a"]}], 1)
    wt.feed_deployments([{"id": "d9", "affectedApps": ["/a"]}], 2)
    out = wt.feed_app(app("2026-01-03T00:00:00.000Z", []), 3)
    assert out.reason == w.SUPERSEDED and out.other_deployment == "d9"


def test_fail_fast_counts_only_new_version_failures():
    wt = make(max_failures=2)
    old_fail = {"eventType": "status_update_event", "appId": "/a", "taskId": "o1", "taskStatus": "TASK_FAILED",
                "version": V_OLD}
    assert wt.feed_event(old_fail, 1) is None
    killed = {"eventType": "status_update_event", "appId": "/a", "taskId": "n0", "taskStatus": "TASK_KILLED",
              "version": V_NEW}
    assert wt.feed_event(killed, 1) is None
    new_fail = {**old_fail, "taskId": "n1", "version": V_NEW, "message": "exit 1"}
    assert wt.feed_event(new_fail, 2) is None
    out = wt.feed_event({"eventType": "unhealthy_instance_kill_event", "appId": "/a", "taskId": "n2",
                         "instanceId": "n2", "version": V_NEW, "reason": "HTTP 500"}, 3)
    assert not out.ok and out.reason == w.UNHEALTHY_KILL and "HTTP 500" in out.message


def test_failed_health_checks_matched_to_version_through_task_ids():
    wt = make(max_health_failures=2)
    wt.feed_event({"eventType": "status_update_event", "appId": "/a", "taskId": "a.instance-1._app.1",
                   "taskStatus": "TASK_RUNNING", "version": V_NEW}, 0)
    wt.feed_event({"eventType": "status_update_event", "appId": "/a", "taskId": "a.instance-2._app.1",
                   "taskStatus": "TASK_RUNNING", "version": V_OLD}, 0)
    hc_old = {"eventType": "failed_health_check_event", "appId": "/a", "taskId": "a.instance-2",
              "healthCheck": {"path": "/health"}}
    assert wt.feed_event(hc_old, 1) is None and wt.feed_event(hc_old, 2) is None
    hc_new = {**hc_old, "taskId": "a.instance-1"}
    assert wt.feed_event(hc_new, 3) is None
    out = wt.feed_event(hc_new, 4)
    assert out.reason == w.HEALTH_FAILURES and "/health" in out.message


def test_timeout():
    wt = make(timeout=30)
    assert wt.tick(29.9) is None
    out = wt.tick(30)
    assert out.reason == w.TIMEOUT and "30s" in out.message
    assert wt.feed_event({"eventType": "deployment_success", "id": "d1"}, 31) is out  # final


def test_progress_counts_per_version():
    wt = make()
    wt.feed_app(app(V_NEW, [task("t1", V_OLD), task("t2", V_NEW, healthy=False), task("t3", V_NEW)]), 1)
    p = wt.progress(1.5)
    assert p["versions"][V_NEW] == {"running": 2, "healthy": 1}
    assert p["versions"][V_OLD] == {"running": 1, "healthy": 1}


def test_default_timeout_grows_with_batches_and_grace():
    base = {"instances": 2, "healthChecks": [{"gracePeriodSeconds": 30, "intervalSeconds": 10}]}
    small = w.default_timeout(base)
    big = w.default_timeout({**base, "instances": 10,
                             "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 0.1}})
    assert 60 <= small < big
    assert w.default_timeout({"instances": 1}) == 60.0
    assert w.fail_fast_budget(base, 2) == (30 + 10 * 3 + 1) * 2


def test_failure_named_after_the_deployment_that_took_over():
    wt = make()
    out = wt.feed_event({"eventType": "deployment_failed", "id": "d1", "reason": "superseded by a forced one"}, 1)
    deps = [{"id": "d7", "affectedApps": ["/a"]}, {"id": "d8", "affectedApps": ["/b"]}]
    named = w.name_superseder(out, wt.spec, deps)
    assert named.reason == w.SUPERSEDED and named.other_deployment == "d7" and "d7" in named.message
    assert w.name_superseder(out, wt.spec, []) is out
