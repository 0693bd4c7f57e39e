"""A `deploykit deploy` killed with SIGKILL during its wait (issue 18 items 5 and 7).

Real CLI subprocesses against the devcluster, with the devcluster's Consul lock and a real
ZooKeeper lock. The killed client's lock must expire with its session (never outlive it by more
than that), the next `status` says nobody watches the deployment, and the next `deploy` adopts
it (same definition: watched to the end, rolled back on failure, never "unchanged") or sees it
through and then deploys its own definition, without --force; history records the real outcome.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.harness.common import wait_until
from tests.harness.devcluster import Devcluster
from tests.integration import test_deploy
from tests.integration.test_deploy import (
    DEPLOYKIT,
    REPO,
    deployments_of,
    remove_app,
    run_cli,
    task_answers,
    write_app,
    zk_env,
)

pytestmark = pytest.mark.integration


# the deploy tests' fixtures: a module-scoped devcluster with its own task port window, and the hello app folder
dc = test_deploy.dc
appdir = test_deploy.appdir


def common(env_dir: Path) -> list[str]:
    return ["--env", "local", "--env-dir", str(env_dir), "--output", "json"]


def start_and_kill(dc: Devcluster, app: Path, env_dir: Path, app_id: str, *extra: str) -> tuple[int, str]:
    """Start `deploykit deploy`, SIGKILL it once its deployment runs (it is waiting); (pid, deployment id)."""
    proc = subprocess.Popen([*DEPLOYKIT, "deploy", str(app), *common(env_dir), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    seen: list[dict] = []
    try:
        wait_until(lambda: bool(seen.extend(deployments_of(dc, app_id)) or seen), 30,
                   "the deployment of the client to kill")
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return proc.pid, seen[0]["id"]


def history_rows(env_dir: Path, app_id: str) -> dict[str, tuple]:
    rc, doc, _, err = run_cli("history", app_id, *common(env_dir))
    assert rc == 0, err
    return {row["version"]: (row["result"], row["reason"]) for row in doc["versions"]}


def test_retried_deploy_of_a_broken_release_adopts_it_and_rolls_back(dc, appdir):
    """Item 7 (and 5, Consul lock): kill -9 after the PUT, run the same deploy again. It must not say
    "unchanged" (exit 0): it waits out the dead client's lock, watches that deployment as its own,
    sees it fail, rolls back (exit 1) and records the real outcome."""
    app_id = "/it/killed/adopt"
    good = write_app(appdir, "adopt-good", app_id, 10701)
    bad = write_app(appdir, "adopt-bad", app_id, 10701, env={"HELLO_FAIL_HEALTH": "1"})
    rc, _, _, err = run_cli("deploy", str(good), *common(dc.env_dir))
    assert rc == 0, err
    pid, dep_id = start_and_kill(dc, bad, dc.env_dir, app_id, "--max-failures", "50")

    # status right after the kill: the deployment runs, its client is gone (the lock names a dead pid)
    rc, st, _, err = run_cli("status", app_id, *common(dc.env_dir))
    assert rc == 0, err
    client = st["deployments"][0]["client"]
    assert client["state"] == "gone" and client["holder"]["pid"] == pid, st
    assert "is gone" in client["message"], client

    t0 = time.monotonic()
    rc, doc, _, err = run_cli("deploy", str(bad), *common(dc.env_dir), timeout=180)
    assert rc == 1, err
    assert doc["result"] == "rolled_back" and doc["orphan"]["action"] == "adopted", doc
    assert doc["orphan"]["deploymentId"] == dep_id and doc["deploymentId"] == dep_id, doc
    assert doc["failure"]["reason"] in ("health_failures", "unhealthy_kill"), doc
    assert doc["lock"]["gone_holder"]["pid"] == pid, doc  # it waited out the dead client's session
    assert f"pid {pid} no longer runs" in err, err
    # the dead client's Consul session (TTL 10 s, invalidated within 2x TTL) held the lock no longer
    assert doc["timings"]["lock_seconds"] <= 23, doc
    assert time.monotonic() - t0 < 150
    wait_until(lambda: deployments_of(dc, app_id) == [], 10, "no deployment left")
    assert task_answers(dc, app_id) and all("greeting=hello" in a for a in task_answers(dc, app_id))

    rows = history_rows(dc.env_dir, app_id)
    assert rows[doc["deployedVersion"]] == ("rolled_back", doc["failure"]["reason"]), rows
    assert rows[doc["rollback"]["version"]] == ("rollback succeeded", None), rows
    remove_app(dc, app_id)


def test_killed_deploy_is_seen_through_then_the_next_definition_deploys(dc, appdir, zookeeper, tmp_path):
    """Item 5 with a ZooKeeper lock: after kill -9 the lock expires with the client's session and status
    says nobody watches the deployment; a deploy of another definition then watches the left deployment
    to its end (it succeeds: a slow but good version), records that outcome, then deploys its own
    definition. No --force."""
    env_dir = zk_env(dc, zookeeper, tmp_path)
    app_id = "/it/killed/wait"
    good = write_app(appdir, "wait-good", app_id, 10702)
    slow = write_app(appdir, "wait-slow", app_id, 10702, env={"HELLO_HEALTHY_AFTER": "40", "GREETING": "slow"},
                     grace="60s", instances=1)
    v3 = write_app(appdir, "wait-v3", app_id, 10702, env={"GREETING": "v3"})
    rc, _, _, err = run_cli("deploy", str(good), *common(env_dir))
    assert rc == 0, err
    pid, dep_id = start_and_kill(dc, slow, env_dir, app_id)
    killed_at = time.monotonic()

    # the dead client's lock goes with its ZooKeeper session (10 s); then status still tells, from the
    # app's deploykit labels and the free lock, that nobody watches that deployment
    def client() -> dict:
        rc, st, _, err = run_cli("status", app_id, *common(env_dir))
        assert rc == 0 and st["deployments"], (st, err)
        return st["deployments"][0]["client"]

    first = client()
    assert first["state"] == "gone" and first["holder"]["pid"] == pid, first
    wait_until(lambda: client()["holder"] is None, 20, "the dead client's ZooKeeper session to expire")
    assert time.monotonic() - killed_at <= 16
    last = client()
    assert last["state"] == "gone" and "nobody is watching" in last["message"], last

    rc, doc, _, err = run_cli("deploy", str(v3), *common(env_dir), timeout=180)
    assert rc == 0, err
    assert doc["result"] == "success" and doc["orphan"]["action"] == "waited", doc
    assert doc["orphan"]["deploymentId"] == dep_id and doc["orphan"]["result"] == "success", doc
    assert "gone_holder" not in doc["lock"], doc
    assert doc["deploymentId"] != dep_id
    wait_until(lambda: deployments_of(dc, app_id) == [], 10, "no deployment left")
    assert task_answers(dc, app_id) and all("greeting=v3" in a for a in task_answers(dc, app_id))

    rows = history_rows(env_dir, app_id)
    assert rows[doc["orphan"]["version"]][0] == "success", rows  # the dead client's version: its real outcome
    assert rows[doc["deployedVersion"]][0] == "success", rows
    remove_app(dc, app_id)


def test_same_definition_still_deployed_by_a_live_client_is_not_unchanged(dc, appdir):
    """Item 7, the other branch: the same deploy while a live client still deploys that definition
    exits 3 naming that client, instead of 0 "unchanged"."""
    app_id = "/it/killed/live"
    good = write_app(appdir, "live-good", app_id, 10703)
    slow = write_app(appdir, "live-slow", app_id, 10703, env={"HELLO_FAIL_HEALTH": "1"}, grace="60s")
    rc, _, _, err = run_cli("deploy", str(good), *common(dc.env_dir))
    assert rc == 0, err
    proc = subprocess.Popen([*DEPLOYKIT, "deploy", str(slow), *common(dc.env_dir), "--timeout", "20s",
                             "--max-failures", "50"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        wait_until(lambda: bool(deployments_of(dc, app_id)), 30, "the live client's deployment")
        rc, doc, _, err = run_cli("deploy", str(slow), *common(dc.env_dir))
        assert rc == 3, err
        assert doc["result"] != "unchanged" and doc["lock"]["holder"]["pid"] == proc.pid, doc
        assert str(proc.pid) in doc["message"] and "gone" not in doc["message"], doc
        rc, st, _, err = run_cli("status", app_id, *common(dc.env_dir))
        assert st["deployments"][0]["client"]["state"] == "watching", st
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1 and json.loads(out)["result"] == "rolled_back"
    remove_app(dc, app_id)


def test_a_killed_clients_deployment_that_finished_alone_gets_its_outcome_recorded(dc, appdir):
    """Item 5, history: the deployment of a killed client finished before anyone came back; the next
    deploy records what Marathon shows for that version instead of leaving its result empty."""
    app_id = "/it/killed/alone"
    good = write_app(appdir, "alone-good", app_id, 10704)
    v2 = write_app(appdir, "alone-v2", app_id, 10704, env={"GREETING": "v2", "HELLO_HEALTHY_AFTER": "6"},
                   grace="60s", instances=1)
    v3 = write_app(appdir, "alone-v3", app_id, 10704, env={"GREETING": "v3"})
    rc, _, _, err = run_cli("deploy", str(good), *common(dc.env_dir))
    assert rc == 0, err
    start_and_kill(dc, v2, dc.env_dir, app_id)
    wait_until(lambda: deployments_of(dc, app_id) == [], 60, "the killed client's deployment to finish")
    killed_version = next(v for v, (result, _) in history_rows(dc.env_dir, app_id).items() if result is None)

    rc, doc, _, err = run_cli("deploy", str(v3), *common(dc.env_dir), timeout=120)
    assert rc == 0 and doc["result"] == "success" and "orphan" not in doc, err
    rows = history_rows(dc.env_dir, app_id)
    assert rows[killed_version] == ("success", "its deploy client was gone before it ended"), rows
    remove_app(dc, app_id)
