"""`deploykit lb render` through click: outputs, summary, exit codes (in-process, no HAProxy)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from deploykit.cli.lb_cmds import lb

APPS = {"apps": [
    {"id": "/web", "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "web.example.com"},
     "portDefinitions": [{"port": 10001}],
     "tasks": [{"id": "w1", "host": "127.0.0.1", "ports": [31001], "state": "TASK_RUNNING"}]},
    {"id": "/evil", "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "x.example.com\n bind :1",
                               "HAPROXY_0_FRONTEND_HEAD": "x"},
     "portDefinitions": [{"port": 10002}]},
    {"id": "/other", "labels": {"HAPROXY_GROUP": "internal"}, "portDefinitions": [{"port": 10003}]},
]}


def _write(tmp_path: Path, doc: object) -> str:
    path = tmp_path / "apps.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_render_to_stdout_with_summary_on_stderr(tmp_path: Path) -> None:
    result = CliRunner().invoke(lb, ["render", "--apps-json", _write(tmp_path, APPS), "--group", "external"])
    assert result.exit_code == 0, result.output
    assert "backend web_0" in result.stdout and "other_0" not in result.stdout
    assert "skipped /evil: label HAPROXY_0_VHOST" in result.stderr
    assert "1 backends, 1 servers, 1 apps skipped" in result.stderr


def test_json_summary_and_strict(tmp_path: Path) -> None:
    out = tmp_path / "haproxy.cfg"
    apps = _write(tmp_path, APPS)
    result = CliRunner().invoke(lb, ["render", "--apps-json", apps, "--out", str(out), "--output", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] and doc["backends"] == 2 and doc["servers"] == 1
    assert [r["app_id"] for r in doc["rejected"]] == ["/evil"]
    assert doc["ignored"] == []  # the evil app is rejected before its ignored labels count
    assert "backend other_0" in out.read_text()
    strict = CliRunner().invoke(lb, ["render", "--apps-json", apps, "--out", str(out), "--strict", "--output", "json"])
    assert strict.exit_code == 2 and json.loads(strict.stdout)["problems"][0]["path"] == "/evil"
    needs_file = CliRunner().invoke(lb, ["render", "--apps-json", apps, "--output", "json"])
    assert needs_file.exit_code == 2


def test_stdin_and_bad_input(tmp_path: Path) -> None:
    result = CliRunner().invoke(lb, ["render", "--apps-json", "-", "-q"], input=json.dumps(APPS["apps"]))
    assert result.exit_code == 0 and "backend web_0" in result.stdout and result.stderr == ""
    bad = CliRunner().invoke(lb, ["render", "--apps-json", "-"], input="[1, 2]")
    assert bad.exit_code == 2 and "expected a list of app objects" in bad.stderr
    missing = CliRunner().invoke(lb, ["render", "--apps-json", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2 and "cannot read" in missing.stderr


def test_lb_group_lists_render() -> None:
    result = CliRunner().invoke(lb, ["--help"])
    assert result.exit_code == 0 and "render" in result.output


def test_console_script_loses_no_output(tmp_path: Path) -> None:
    """The real process: the file, the JSON on stdout and the summary lines are complete, also when stdout and
    stderr are pipes (block-buffered)."""
    import subprocess
    import sys

    apps = _write(tmp_path, APPS)
    out = tmp_path / "haproxy.cfg"
    command = [sys.executable, "-m", "deploykit.cli", "lb", "render", "--apps-json", apps]
    done = subprocess.run([*command, "--out", str(out), "--output", "json"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["backends"] == 2 and out.read_text().rstrip().endswith("disabled")
    to_stdout = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert to_stdout.returncode == 0 and to_stdout.stdout == out.read_text()
    assert to_stdout.stderr.endswith("1 apps skipped, 0 labels ignored\n")
