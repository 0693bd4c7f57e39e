"""The devcluster under hostile sizes and crashes (issue 18 items 2, 3, 8, 9), as a real process."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.harness.devcluster import Devcluster, wait_for

pytestmark = pytest.mark.integration

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
