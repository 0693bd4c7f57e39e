"""Issue 17 reproductions that need a devcluster: what a new user typed and what broke or misled."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from tests.harness.common import wait_until
from tests.harness.devcluster import HELLO_AS_COMMAND, Devcluster

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello"


def cli(*args: str, cwd: Path = REPO, timeout: float = 120) -> subprocess.CompletedProcess:
    """deploykit in a real process, through the click group (python -c, not the console script's fast paths)."""
    code = "import sys; from deploykit.cli import main; main(sys.argv[1:], prog_name='deploykit')"
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=timeout)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return proc


@pytest.fixture(scope="module")
def dc(tmp_path_factory):
    cluster = Devcluster(tmp_path_factory.mktemp("harden-dc"), heartbeat="1s")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.kill()


def _hello(tmp_path: Path, app_id: str, **changes) -> Path:
    shutil.copytree(HELLO, tmp_path / "app", dirs_exist_ok=True)
    doc = yaml.safe_load((HELLO / "app.yaml").read_text())
    doc.update(id=app_id, **changes)
    path = tmp_path / "app" / "app.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.mark.parametrize("changes", [{"cpus": float("nan")}, {"marathon": {"backoffFactor": float("inf")}}])
def test_a_body_marathon_would_refuse_writes_nothing_to_consul(dc, tmp_path, changes):
    """Issue 17: `cpus: .nan` wrote config/<app>/... to Consul, then Marathon refused the body (exit 4)."""
    app = _hello(tmp_path, "/harden/nan", **changes)
    assert ".nan" in app.read_text() or ".inf" in app.read_text()
    proc = cli("deploy", str(app), "--env", "local", "--env-dir", str(dc.env_dir), "--output", "json")
    assert proc.returncode == 2, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["error"] == "ValidationError" and "finite" in json.dumps(doc["problems"])
    keys = requests.get(f"{dc.consul_url}/v1/kv/", params={"keys": "true"}, timeout=5)
    assert keys.status_code == 404 or not [k for k in keys.json() if "harden/nan" in k]
    assert requests.get(f"{dc.marathon_url}/v2/apps/harden/nan", timeout=5).status_code == 404


# --------------------------------------------------------------------------- deploys left running by Ctrl-C
def _app(tmp_path: Path, name: str, app_id: str, port: int, *, env: dict | None = None, grace: str = "2s") -> Path:
    folder = tmp_path / "apps"
    if not folder.exists():
        shutil.copytree(HELLO, folder)
    doc = yaml.safe_load((HELLO / "app.yaml").read_text())
    doc.update(id=app_id, instances=2)
    doc["ports"][0]["service"] = port
    doc["haproxy"]["vhost"] = [app_id.strip("/").replace("/", "-") + ".local"]  # one route per app
    doc["env"] = {"GREETING": name, **(env or {})}
    doc["health"] = {"path": "/health", "port": "http", "grace": grace, "interval": "2s", "timeout": "1s",
                     "max_failures": 2}
    doc["readiness"] = {"path": "/ready", "port": "http", "interval": "2s", "timeout": "1s"}
    doc["environments"]["local"] = dict(HELLO_AS_COMMAND)  # a command task: no image to build here
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _deployments(dc: Devcluster, app_id: str) -> list[dict]:
    return [d for d in requests.get(f"{dc.marathon_url}/v2/deployments", timeout=5).json()
            if app_id in d.get("affectedApps", [])]


def _interrupted_deploy(dc: Devcluster, app: Path, app_id: str) -> dict:
    """`deploy` in a real process, Ctrl-C once Marathon has the deployment; returns its JSON report."""
    env = {**os.environ, "NO_COLOR": "1", "DEPLOYKIT_ENV_DIR": str(dc.env_dir)}
    code = "import sys; from deploykit.cli import main; main(sys.argv[1:], prog_name='deploykit')"
    proc = subprocess.Popen([sys.executable, "-c", code, "deploy", str(app), "--env", "local", "--output", "json",
                             "--max-failures", "50"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO, env=env)
    try:
        wait_until(lambda: bool(_deployments(dc, app_id)), 30, "the deployment")
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and "Traceback" not in err, err
    return json.loads(out)


def _local(dc: Devcluster, *args: str) -> subprocess.CompletedProcess:
    """A command as a person would type it, with the environment folder from DEPLOYKIT_ENV_DIR."""
    os.environ["DEPLOYKIT_ENV_DIR"] = str(dc.env_dir)
    try:
        return cli(*args)
    finally:
        del os.environ["DEPLOYKIT_ENV_DIR"]


def test_after_ctrl_c_the_suggested_rollback_works_and_status_shows_the_new_versions_health(dc, tmp_path):
    """Issue 17: the hint `deploykit rollback APP --env E` failed with exit 3 (the running deployment holds
    the app: --force was needed), and `status` showed the new version with the old tasks' health."""
    app_id = "/harden/intr"
    good = _app(tmp_path, "good", app_id, 10711)
    assert _local(dc, "deploy", str(good), "--env", "local").returncode == 0
    slow = _app(tmp_path, "slow", app_id, 10711, env={"HELLO_FAIL_HEALTH": "1"}, grace="60s")
    report = _interrupted_deploy(dc, slow, app_id)
    assert report["result"] == "interrupted"
    hint = re.search(r"`(deploykit rollback [^`]+)`", report["instructions"]).group(1)
    assert hint == f"deploykit rollback {app_id} --env local --force"

    status = json.loads(_local(dc, "status", app_id, "--env", "local", "-o", "json").stdout)
    assert status["deployments"] and status["healthy"] == 0  # the new tasks fail their health check
    assert status["healthy_all_versions"] >= 1  # the old ones still serve
    text = _local(dc, "status", app_id, "--env", "local").stdout
    assert "0/2 healthy (new version; old tasks are listed below)" in text

    rolled = _local(dc, *hint.split()[1:])
    assert rolled.returncode == 0, rolled.stderr
    wait_until(lambda: not _deployments(dc, app_id), 60, "the rollback to finish")
    assert json.loads(_local(dc, "status", app_id, "--env", "local", "-o", "json").stdout)["healthy"] == 2


def test_history_says_how_an_interrupted_deploy_ended(dc, tmp_path):
    """Issue 17: a deploy interrupted by Ctrl-C stayed `interrupted` in history after Marathon finished it."""
    app_id = "/harden/hist"
    assert _local(dc, "deploy", str(_app(tmp_path, "one", app_id, 10712)), "--env", "local").returncode == 0
    report = _interrupted_deploy(dc, _app(tmp_path, "two", app_id, 10712), app_id)
    assert report["result"] == "interrupted"
    wait_until(lambda: not _deployments(dc, app_id), 60, "Marathon to finish the deployment")
    doc = json.loads(_local(dc, "history", app_id, "--env", "local", "-o", "json").stdout)
    (row,) = [r for r in doc["versions"] if r["current"]]
    assert row["result"] == "success" and row["reason"] == "finished after the deploy was interrupted"

    typo = _local(dc, "history", "/harden/hits", "--env", "local", "-o", "json")
    assert typo.returncode == 2
    (problem,) = json.loads(typo.stdout)["problems"]
    assert "no app /harden/hits" in problem["message"] and problem["hint"] == "did you mean '/harden/hist'?"


def test_human_output_never_says_none(dc, tmp_path):
    """Issue 17: `version: None -> ...` on a first deploy and `image None` for process tasks."""
    app_id = "/harden/first"
    first = _local(dc, "deploy", str(_app(tmp_path, "first", app_id, 10713)), "--env", "local")
    assert first.returncode == 0, first.stderr
    assert "version: none (first deploy) -> " in first.stdout and "None" not in first.stdout
    status = _local(dc, "status", app_id, "--env", "local")
    assert "no image (process tasks)" in status.stdout and "None" not in status.stdout
