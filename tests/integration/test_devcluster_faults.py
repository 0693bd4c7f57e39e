"""The devcluster under hostile sizes and crashes (issue 18 items 2, 3, 8, 9), as a real process."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.harness.devcluster import Devcluster, wait_for
from tests.integration import test_lb_e2e as e2e
from tests.integration.test_lb_e2e import LoadGen, put_app, settled, task_ports, web_app

pytestmark = pytest.mark.integration

lb_factory = e2e.lb_factory  # fixture: `deploykit lb run` subprocesses

MEMORY_CAP = 3 << 30  # address space of the devcluster process under test (prlimit --as)


class CappedDevcluster(Devcluster):
    """A devcluster whose address space is capped: a runaway allocation fails instead of exhausting the host."""

    def command(self) -> list[str]:
        return ["prlimit", f"--as={MEMORY_CAP}", "--", *super().command()]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_huge_instances_is_bounded_paced_and_survives_a_restart(tmp_path, record_summary):
    """Item 8: instances beyond int32 is 422; int32's maximum is accepted (as Marathon does) and the launches are
    paced and bounded by the task port range, under a memory cap, and a restart resumes without a crash loop."""
    dc = CappedDevcluster(tmp_path / "dc", extra_args=["--task-port-range", "27100-27119"])
    dc.start()
    try:
        base = dc.marathon_url
        r = requests.put(f"{base}/v2/apps/huge", json={"id": "/huge", "cmd": "sleep 600", "cpus": 0.01, "mem": 8,
                                                       "instances": 9223372036854775808}, timeout=10)
        assert r.status_code == 422 and r.json()["details"] == [{"path": "/instances",
                                                                  "errors": ["error.expected.int"]}]
        assert requests.get(f"{base}/v2/apps", timeout=5).json()["apps"] == []
        r = requests.put(f"{base}/v2/apps/huge", json={"id": "/huge", "cmd": "sleep 600", "cpus": 0.01, "mem": 8,
                                                       "instances": 2**31 - 1}, timeout=10)
        assert r.status_code in (200, 201), r.text

        def running() -> int:
            app = requests.get(f"{base}/v2/apps/huge", params={"embed": "app.tasks"}, timeout=5).json()["app"]
            return sum(t["state"] == "TASK_RUNNING" for t in app["tasks"])

        wait_for(lambda: running() == 20, 30, "the 20 ports of the task range in use")
        time.sleep(3)
        peak = rss_mib(dc.proc.pid)
        assert running() == 20 and dc.proc.poll() is None
        # the app and its deployment are persisted: a crash and restart must not resume into a crash loop
        dc.kill()
        dc.start()
        wait_for(lambda: running() == 20, 30, "relaunched after the restart, still bounded")
        time.sleep(2)
        assert dc.proc.poll() is None
        r = requests.delete(f"{base}/v2/apps/huge", params={"force": "true"}, timeout=10)
        assert r.status_code in (200, 202), r.text
        wait_for(lambda: requests.get(f"{base}/v2/apps/huge", timeout=5).status_code == 404, 30, "deleted")
        record_summary("devcluster_huge_instances", {"rss_mib_with_20_tasks": round(peak, 1),
                                                     "memory_cap_mib": MEMORY_CAP >> 20})
        assert peak < 500, peak
    finally:
        dc.kill()


def test_bad_ids_and_ports_are_422_and_never_listed(devcluster):
    base = devcluster.marathon_url
    long_id = "/" + "x" * 300
    r = requests.put(f"{base}/v2/apps{long_id}", json={"cmd": "sleep 1"}, timeout=10)
    assert r.status_code == 422 and "too long" in r.text and "marathon/apps" not in r.text
    for port in (70000, -1):
        r = requests.post(f"{base}/v2/apps", json={"id": "/ports", "cmd": "sleep 1",
                                                   "portDefinitions": [{"port": port}]}, timeout=10)
        assert r.status_code == 422, r.text
    assert requests.get(f"{base}/v2/apps", timeout=5).json()["apps"] == []


def test_restart_mid_deployment_restores_the_old_versions_capacity(tmp_path, lb_factory, record_summary):
    """Item 2: kill -9 during a deployment whose new version never becomes healthy; the restarted devcluster
    brings back the old version's healthy task as well (Mesos keeps tasks across a Marathon crash), so the
    capacity rule holds and HAProxy keeps an old server, under bounded load."""
    dc = Devcluster(tmp_path / "dc", extra_args=task_ports())
    dc.start()
    try:
        base = dc.marathon_url
        v1 = web_app("/restore/web", "restore.test", 2, "v1")
        v1["upgradeStrategy"] = {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.0}
        put_app(base, v1)
        old = set(settled(base, "/restore/web", 2))
        lb = lb_factory([base])
        wait_for(lambda: lb.routed("restore.test") == old, 20, "v1 routed")
        v2 = {**v1, "env": {"VERSION": "v2"}}
        v2["healthChecks"] = [{**v1["healthChecks"][0], "path": "/missing", "gracePeriodSeconds": 0}]

        def by_version() -> dict[str, int]:
            app = requests.get(f"{base}/v2/apps/restore/web", params={"embed": "app.tasks"}, timeout=5).json()["app"]
            out: dict[str, int] = {}
            for t in app["tasks"]:
                if t["state"] == "TASK_RUNNING":
                    key = ("v2" if t["version"] == app["version"] else "v1") + (
                        "+" if all(h.get("alive") for h in t.get("healthCheckResults") or [{}]) else "-")
                    out[key] = out.get(key, 0) + 1
            return out

        with LoadGen(lb.http_port, ["restore.test"], rate=20, threads=2) as load:
            put_app(base, v2)
            before = wait_for(lambda: (c := by_version()).get("v1+") == 1 and c.get("v2-") and c, 30,
                              "deployment stuck: 1 old healthy, new unhealthy")
            dc.kill()
            crashed_at = time.monotonic() - load.started
            dc.start()
            after = wait_for(lambda: (c := by_version()).get("v1+", 0) >= 1 and c, 30, "old version healthy again")
            recovered_at = time.monotonic() - load.started
            wait_for(lambda: any(lb.get("restore.test").status_code == 200 for _ in range(3)), 20, "routed again")
            routed_at = time.monotonic() - load.started
            time.sleep(3)
        late = [f for f in load.failed if float(f.split("s ", 1)[0]) > routed_at + 0.5]
        record_summary("devcluster_restart_mid_deployment", {
            "before_crash": before, "after_restart": after, "requests": load.total, "failed": len(load.failed),
            "failed_after_routed_again": len(late), "crashed_at_s": round(crashed_at, 2),
            "old_healthy_again_after_s": round(recovered_at - crashed_at, 2)})
        assert late == [], late[:5]
        answers = {lb.get("restore.test").text.split()[-1] for _ in range(10)}
        assert answers == {"v1"}, answers  # the new version never became healthy: only old tasks serve
        assert after.get("v1+", 0) + after.get("v1-", 0) >= 1 and not after.get("v2+")
    finally:
        dc.kill()
