"""Issue 17 reproductions that need a devcluster: what a new user typed and what broke or misled."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from tests.harness.devcluster import Devcluster

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
