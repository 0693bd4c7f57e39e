"""Marathon behind HTTP basic auth (devcluster --http-credentials): the password comes from the
variable the environment file names, goes to REST and the event stream, and never shows."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deploykit.clients.consul import ConsulClient
from tests.harness.devcluster import HELLO_AS_COMMAND

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello"
DEPLOYKIT = str(Path(sys.executable).parent / "deploykit")
PASSWORD = "pw-canary-8Hq2"


def test_deploy_with_marathon_basic_auth(devcluster_factory, tmp_path):
    low = random.randrange(20000, 29000, 500)
    dc = devcluster_factory(start=False, extra_args=["--http-credentials", f"ops:{PASSWORD}",
                                                     "--task-port-range", f"{low}-{low + 499}"])
    dc.start(wait_leader=False)
    env = json.loads((dc.env_dir / "local.json").read_text())
    env["default_attributes"]["deploykit"]["marathon"]["auth"] = {"user": "ops", "password_env": "DK_IT_MPW"}
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / "local.json").write_text(json.dumps(env))
    for name in ("server.py", "config"):
        src = HELLO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    doc = yaml.safe_load((HELLO / "app.yaml").read_text())
    doc.update(id="/it/auth", health={"path": "/health", "port": "http", "grace": "2s", "interval": "2s",
                                      "timeout": "1s", "max_failures": 2})
    doc["ports"][0]["service"] = 10641
    doc["environments"]["local"] = dict(HELLO_AS_COMMAND)
    app = tmp_path / "app.yaml"
    app.write_text(yaml.safe_dump(doc))

    def run(password: str | None) -> tuple[int, dict, str]:
        environ = {k: v for k, v in os.environ.items() if k != "DK_IT_MPW"}
        if password is not None:
            environ["DK_IT_MPW"] = password
        p = subprocess.run([DEPLOYKIT, "deploy", str(app), "--env", "local", "--env-dir", str(env_dir),
                            "--output", "json"], capture_output=True, text=True, env=environ, timeout=120)
        return p.returncode, json.loads(p.stdout), p.stdout + p.stderr

    rc, out, text = run(None)
    assert rc == 2 and "DK_IT_MPW" in text
    rc, out, text = run("wrong")
    assert rc == 2 and out["error"] == "AuthError" and "Invalid username or password" in out["message"], text
    assert ConsulClient(dc.consul_url).ls("config/it/auth/", separator=None) == []  # refused before any change
    rc, out, text = run(PASSWORD)
    assert rc == 0 and out["result"] == "success", text
    assert out["event_stream"]["deploy"]["connects"] >= 1 and out["errors"] == []  # the stream was authorized too
    assert PASSWORD not in text
