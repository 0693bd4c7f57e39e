"""The rendered Jenkinsfile's Deploy stage, executed step by step as Jenkins would, against the devcluster.

Jenkins cannot run here, so a tiny interpreter walks the parsed stage: `unstash` restores
build.json, `lock`/`withCredentials` run their body (credentials bound as variables), and
each `sh` runs in bash with no stdin and no terminal, in a workspace like Jenkins'. This
checks that the commands the pipeline calls really work non-interactively, leave one JSON
document per stage and a JUnit report Jenkins can read, and fail the stage with the right
exit code when the deploy fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from deploykit.jenkins import groovy
from deploykit.jenkins.appinfo import load_app_facts
from deploykit.jenkins.pipeline import PipelineOptions, build_pipeline, render_jenkinsfile
from tests.harness.common import wait_until
from tests.harness.devcluster import Devcluster
from tests.unit.test_junit import validate_junit

pytestmark = pytest.mark.integration
HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"
BIN = str(Path(sys.executable).parent)
RECORD = {"image": "registry.example.com/jenkins/hello", "digest": "sha256:" + "ab" * 32, "tags": ["1"]}


@pytest.fixture(scope="module")
def dc(tmp_path_factory):
    cluster = Devcluster(tmp_path_factory.mktemp("jenkins-dc"), heartbeat="1s")
    # RECORD is a made-up build: this environment runs every app as a command task (no image is pulled)
    env = json.loads((cluster.env_dir / "local.json").read_text())
    env["default_attributes"]["deploykit"]["marathon"]["tasks"] = "process"
    (cluster.env_dir / "local.json").write_text(json.dumps(env))
    cluster.start()
    try:
        yield cluster
    finally:
        for app_id in ("/jenkins/hello", "/jenkins/broken"):  # stop their tasks before the server
            requests.delete(f"{cluster.marathon_url}/v2/apps{app_id}", params={"force": "true"}, timeout=5)
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: not cluster.get("/v2/apps")["apps"] and not cluster.get("/v2/deployments"), 15,
                       "apps removed")
        cluster.stop()


def workspace(tmp_path: Path, app_id: str, port: int, env: dict | None = None) -> Path:
    ws = tmp_path / "workspace"
    ws.mkdir()
    shutil.copy(HELLO / "server.py", ws / "server.py")
    shutil.copytree(HELLO / "config", ws / "config")
    doc = yaml.safe_load((HELLO / "app.yaml").read_text())
    doc.update(id=app_id, instances=1, image=RECORD["image"])
    doc["environments"]["local"] = {"fetch": ["server.py"], "cmd": "python3 server.py"}
    doc["haproxy"]["vhost"] = [app_id.strip("/").replace("/", "-") + ".local"]  # each app its own route
    doc["ports"][0]["service"] = port
    doc["env"] = {"GREETING": "hi", **(env or {})}
    doc["health"] = {"path": "/health", "port": "http", "grace": "2s", "interval": "2s", "timeout": "1s",
                     "max_failures": 2}
    (ws / "app.yaml").write_text(yaml.safe_dump(doc))
    return ws


class StageRunner:
    """Runs the steps of one declarative stage the way a Jenkins agent would."""

    def __init__(self, ws: Path, env: dict[str, str], stash: dict[str, bytes]):
        self.ws, self.env, self.stash = ws, env, stash
        self.log: list[str] = []

    def run(self, node: groovy.Node) -> int:
        for step in node.children:
            rc = self.step(step)
            if rc:
                return rc
        return 0

    def step(self, step: groovy.Node) -> int:
        if step.name == "unstash":
            for name, data in self.stash.items():
                (self.ws / name).write_bytes(data)
            return 0
        if step.name in ("lock", "withCredentials") and step.is_block:
            return self.run(step)
        if step.name == "sh":
            proc = subprocess.run(["bash", "-ec", step.strings[0]], cwd=self.ws, env=self.env, text=True,
                                  capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
            self.log.append(proc.stdout + proc.stderr)
            return proc.returncode
        raise AssertionError(f"step {step.name!r} not expected in a deploy stage")


def deploy_stage(ws: Path, dc: Devcluster) -> tuple[int, StageRunner]:
    options = PipelineOptions(envs=("local",), approve=(), app_path="app.yaml")
    text = render_jenkinsfile(build_pipeline(load_app_facts(ws / "app.yaml", ["local"], dc.env_dir), options))
    top = groovy.parse(text).block("pipeline")
    stage = next(s for s in top.walk() if s.name == "stage" and s.strings == ["Deploy local"])
    env_block = {s.head.split(" = ")[0]: s.strings[0] for s in top.block("environment").steps()}
    env = {"PATH": f"{BIN}:{os.environ['PATH']}", "HOME": os.environ.get("HOME", "/tmp"), **env_block,
           "DEPLOYKIT_ENV_DIR": str(dc.env_dir), "BUILD_URL": "http://jenkins.invalid/job/hello/7/",
           "JOB_NAME": "hello", "BUILD_NUMBER": "7"}
    runner = StageRunner(ws, env, {"build.json": json.dumps(RECORD).encode()})
    return runner.run(stage.block("steps")), runner


def test_deploy_stage_runs_non_interactively_and_reports(dc, tmp_path):
    ws = workspace(tmp_path, "/jenkins/hello", 10941)
    stale = ws / "deploykit-results"
    stale.mkdir()
    (stale / "deploy-local.xml").write_text("<testsuite name='stale'/>")  # left by an earlier build
    rc, runner = deploy_stage(ws, dc)
    assert rc == 0, "\n".join(runner.log) + (ws / "deploykit-results" / "deploy-local.json").read_text()
    assert "stale" not in (ws / "deploykit-results" / "deploy-local.xml").read_text()
    doc = json.loads((ws / "deploykit-results" / "deploy-local.json").read_text())
    assert doc["ok"] is True and doc["app_id"] == "/jenkins/hello"
    root = validate_junit(ws / "deploykit-results" / "deploy-local.xml")
    case = root.find("testsuite/testcase")
    assert case.get("name") == "deploy /jenkins/hello (local)" and case.find("failure") is None
    assert not any("\x1b[" in line for line in runner.log)  # no colour codes in the Jenkins log
    app = dc.get("/v2/apps/jenkins/hello")["app"]
    assert "http://jenkins.invalid/job/hello/7/" in app["labels"]["DEPLOYKIT_DEPLOYED_BY"]  # the build is named


def test_failed_deploy_fails_the_stage_with_a_junit_failure(dc, tmp_path):
    ws = workspace(tmp_path, "/jenkins/broken", 10942, env={"HELLO_FAIL_HEALTH": "1"})
    rc, runner = deploy_stage(ws, dc)
    assert rc == 1, "\n".join(runner.log)  # the deploy failed (exit 1): the stage fails
    doc = json.loads((ws / "deploykit-results" / "deploy-local.json").read_text())
    assert doc["ok"] is False
    root = validate_junit(ws / "deploykit-results" / "deploy-local.xml")
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None and failure.get("message") and failure.get("type")
