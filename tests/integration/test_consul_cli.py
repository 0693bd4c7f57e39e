"""`deploykit config get|put|ls|watch|push` against the Consul stand-in, configured by an environment file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from deploykit.cli import main

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _env_dir(tmp_path: Path, url: str, token_env: str | None = None) -> Path:
    doc = json.loads((REPO / "chef_attrs" / "local.json").read_text())
    doc["default_attributes"]["deploykit"]["consul"]["url"] = url
    if token_env:
        doc["default_attributes"]["deploykit"]["consul"]["token_env"] = token_env
    d = tmp_path / "envs"
    d.mkdir(exist_ok=True)
    (d / "local.json").write_text(json.dumps(doc))
    return d


def _run(args: list[str], env: dict[str, str] | None = None):
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def test_put_get_ls_and_exit_codes(consul_server, tmp_path):
    envs = ["--env", "local", "--env-dir", str(_env_dir(tmp_path, consul_server.url))]
    r = _run(["config", "put", "ops/flag", "on", *envs])
    assert r.exit_code == 0 and "wrote ops/flag" in r.output
    r = _run(["config", "get", "ops/flag", *envs])
    assert r.exit_code == 0 and r.output == "on\n"
    r = _run(["config", "get", "ops/flag", "-o", "json", *envs])
    doc = json.loads(r.output)
    assert doc["ok"] and doc["value"] == "on" and doc["modify_index"] > 0
    r = _run(["config", "put", "ops/flag", "off", "--cas", str(doc["modify_index"] + 99), *envs])
    assert r.exit_code == 3
    r = _run(["config", "get", "ops/missing", *envs])
    assert r.exit_code == 2  # invalid input; 1 would claim a deploy was rolled back (DESIGN §3)
    (tmp_path / "v.txt").write_bytes(b"from a file\n")
    assert _run(["config", "put", "ops/sub/file", "--file", str(tmp_path / "v.txt"), *envs]).exit_code == 0
    r = _run(["config", "ls", "ops/", *envs])
    assert r.output.split() == ["ops/flag", "ops/sub/"]
    r = _run(["config", "ls", "ops/", "-r", "-o", "json", *envs])
    assert json.loads(r.output)["keys"] == ["ops/flag", "ops/sub/file"]
    assert _run(["config", "put", "ops/x", *envs]).exit_code == 2  # neither VALUE nor --file


def test_get_missing_key_exits_2_naming_the_key_and_its_neighbours(consul_server, tmp_path):
    envs = ["--env", "local", "--env-dir", str(_env_dir(tmp_path, consul_server.url))]
    for key in ("app/feature.checkout", "app/log_level", "app/db/url"):
        assert _run(["config", "put", key, "x", *envs]).exit_code == 0
    r = _run(["config", "get", "app/feature.chekout", "-o", "json", *envs])
    doc = json.loads(r.output)
    assert r.exit_code == 2 and doc["ok"] is False and doc["error"] == "ValidationError"
    (problem,) = doc["problems"]
    assert problem["path"] == "app/feature.chekout" and "no such key" in problem["message"]
    assert problem["hint"] == "did you mean 'app/feature.checkout'?"
    r = _run(["config", "get", "app/zzz", *envs])  # nothing close: the folder's keys instead
    assert r.exit_code == 2
    assert "app/zzz" in r.stderr and "'app/' holds: app/db/, app/feature.checkout, app/log_level" in r.stderr
    r = _run(["config", "get", "nowhere/at/all", *envs])
    assert r.exit_code == 2 and "nothing under 'nowhere/at/'" in r.stderr and "config ls -r" in r.stderr


def test_unreachable_exit_4(tmp_path):
    from tests.harness.common import free_port

    envs = ["--env-dir", str(_env_dir(tmp_path, f"http://127.0.0.1:{free_port()}"))]
    r = _run(["config", "get", "k", "-o", "json", *envs])
    assert r.exit_code == 4 and json.loads(r.output)["error"] == "UnreachableError"


def test_token_from_the_variable_the_env_file_names(consul_factory, tmp_path):
    srv = consul_factory(acl={"tokens": {"tok-123": "write"}, "default_policy": "deny"})
    envs = ["--env-dir", str(_env_dir(tmp_path, srv.url, token_env="MY_CONSUL_TOKEN"))]
    r = _run(["config", "put", "k", "v", "-o", "json", *envs], env={"MY_CONSUL_TOKEN": ""})
    assert r.exit_code == 2 and json.loads(r.output)["error"] == "AuthError"
    r = _run(["config", "put", "k", "v", *envs], env={"MY_CONSUL_TOKEN": "tok-123"})
    assert r.exit_code == 0
    r = _run(["config", "get", "k", "-o", "json", *envs], env={"MY_CONSUL_TOKEN": "tok-123"})
    assert json.loads(r.output)["value"] == "v" and "tok-123" not in r.output


def test_push_writes_the_versioned_tree_once(consul_server, tmp_path):
    envs = ["--env", "local", "--env-dir", str(_env_dir(tmp_path, consul_server.url))]
    app = str(REPO / "examples" / "hello" / "app.yaml")
    r = _run(["config", "push", app, "-o", "json", *envs])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["written"] is True and doc["keys"] == 3 and doc["prefix"] == f"config/examples/hello/{doc['hash']}"
    r = _run(["config", "push", app, *envs])
    assert r.exit_code == 0 and r.stdout.strip() == doc["prefix"]
    r = _run(["config", "get", f"{doc['prefix']}/greeting", *envs])
    assert r.output == "hello\n"


@pytest.mark.timeout(60)
def test_watch_prints_changes_until_ctrl_c(consul_server, tmp_path):
    env_dir = _env_dir(tmp_path, consul_server.url)
    _run(["config", "put", "app/one", "1", "--env-dir", str(env_dir)])
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "deploykit"), "config", "watch", "app/", "--wait", "5s",
         "--env-dir", str(env_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        assert proc.stdout.readline().strip().endswith("set app/one = 1")
        time.sleep(0.3)
        _run(["config", "put", "app/two", "2", "--env-dir", str(env_dir)])
        assert proc.stdout.readline().strip().endswith("set app/two = 2")
        _run(["config", "put", "app/one", "1b", "--env-dir", str(env_dir)])
        assert proc.stdout.readline().strip().endswith("set app/one = 1b")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_push_invalid_app_exits_2_and_writes_nothing(consul_server, tmp_path):
    envs = ["--env", "local", "--env-dir", str(_env_dir(tmp_path, consul_server.url))]
    bad = tmp_path / "app.yaml"
    bad.write_text("id: /broken\nimage: x\ninstancez: 2\nconfig: {values: {a: b}}\n")
    r = _run(["config", "push", str(bad), "-o", "json", *envs])
    assert r.exit_code == 2 and json.loads(r.output)["error"] == "ValidationError"
    assert _run(["config", "ls", "", "-r", *envs]).output == ""


@pytest.mark.timeout(60)
def test_watch_json_lines_for_one_key(consul_server, tmp_path):
    env_dir = _env_dir(tmp_path, consul_server.url)
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "deploykit"), "config", "watch", "one/key", "--key", "-o", "json",
         "--wait", "5s", "--env-dir", str(env_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )
    try:
        first = json.loads(proc.stdout.readline())
        assert first["changed"] == {}  # the key does not exist yet
        _run(["config", "put", "one/key", "v1", "--env-dir", str(env_dir)])
        second = json.loads(proc.stdout.readline())
        assert second["changed"] == {"one/key": "v1"} and second["index"] > first["index"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("args", [["get", "/ops/maintenance"], ["put", "/ops/maintenance", "on"],
                                  ["ls", "/ops/"], ["watch", "/ops/", "--retry-for", "0"],
                                  ["watch", "/ops/maintenance", "--key", "--retry-for", "0"]])
def test_a_key_with_a_leading_slash_is_invalid_input_with_a_hint(consul_server, tmp_path, args):
    """Issue 17: py-consul asserts on a leading '/' (as app ids have); that was a traceback and exit 1."""
    envs = ["--env", "local", "--env-dir", str(_env_dir(tmp_path, consul_server.url))]
    r = _run(["config", *args, "-o", "json", *envs])
    assert r.exit_code == 2, r.output
    doc = json.loads(r.stdout)  # exactly one JSON document
    assert doc["ok"] is False and doc["error"] == "ValidationError"
    (problem,) = doc["problems"]
    assert problem["hint"] == f"Consul keys have no leading '/': use {args[1].lstrip('/')!r}"
    r = _run(["config", *args, *envs])
    assert r.exit_code == 2 and "Traceback" not in r.output and "no leading '/'" in r.stderr
