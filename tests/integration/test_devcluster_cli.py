"""`deploykit local up|status|down`, and the quick start path: deploy examples/hello to a devcluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.harness.common import free_port, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEPLOYKIT = [sys.executable, "-m", "deploykit.cli"] if not (Path(sys.executable).parent / "deploykit").exists() \
    else [str(Path(sys.executable).parent / "deploykit")]


def run(*args: str, timeout: float = 60, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([*DEPLOYKIT, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def test_local_up_status_down(tmp_path):
    state = tmp_path / "state"
    mport, cport = free_port(), free_port()
    up = run("local", "up", "--detach", "--marathon-port", str(mport), "--consul-port", str(cport),
             "--state-dir", "state", "--output", "json", cwd=tmp_path)  # relative, as the default is
    try:
        assert up.returncode == 0, up.stderr
        info = json.loads(up.stdout)
        assert info["marathon_url"] == f"http://127.0.0.1:{mport}" and (state / "devcluster.log").exists()
        again = run("local", "up", "--detach", "--marathon-port", str(mport), "--state-dir", str(state))
        assert again.returncode == 3 and "already runs" in again.stderr
        req = urllib.request.Request(f"http://127.0.0.1:{mport}/v2/apps", method="POST",
                                     data=json.dumps({"id": "/s", "cmd": "echo $MESOS_SANDBOX > sb; exec sleep 60",
                                                      "instances": 2}).encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=5).close()

        def two_running() -> bool:
            doc = json.loads(run("local", "status", "--state-dir", str(state), "--output", "json").stdout)
            return doc["apps"][0]["tasksRunning"] == 2

        wait_until(two_running, 20, "two tasks")
        text = run("local", "status", "--state-dir", str(state))
        assert text.returncode == 0 and "/s" in text.stdout and "running" in text.stdout
        wait_until(lambda: len(list(state.glob("marathon/sandboxes/*/sb"))) == 2, 10, "sandboxes")
        for sb in state.glob("marathon/sandboxes/*/sb"):
            assert sb.read_text().strip() == str(sb.parent)  # MESOS_SANDBOX is absolute
    finally:
        down = run("local", "down", "--state-dir", str(state), "--output", "json")
    assert down.returncode == 0 and json.loads(down.stdout)["stopped"] is True
    assert not (state / "devcluster.json").exists()
    gone = run("local", "status", "--state-dir", str(state))
    assert gone.returncode == 4 and "no devcluster running" in gone.stderr


def test_local_up_foreground_stops_on_sigterm(tmp_path):
    mport = free_port()
    proc = subprocess.Popen([*DEPLOYKIT, "local", "up", "--marathon-port", str(mport), "--consul-port", "0",
                             "--state-dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=REPO, start_new_session=True)
    try:
        wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{mport}/ping", timeout=1).status == 200, 30,
                   "foreground devcluster")
        assert json.loads((tmp_path / "devcluster.json").read_text())["pid"] == proc.pid
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert not (tmp_path / "devcluster.json").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_local_up_rejects_bad_options_before_starting_anything(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = run("local", "up", "--detach", "--marathon-port", str(port), "--consul-port", "0", "--zk", "zk:/x",
                  "--state-dir", str(tmp_path / "s"), "--output", "json")
    assert res.returncode == 2
    paths = {p["path"] for p in json.loads(res.stdout)["problems"]}
    assert paths == {"--marathon-port", "--zk"}
    assert not (tmp_path / "s" / "devcluster.json").exists()
