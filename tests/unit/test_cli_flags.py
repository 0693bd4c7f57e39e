"""One meaning per flag (issue 17): `-o` is `--output FORMAT` in every command; files are `--out FILE`.

`lb render --apps-json a.json -o json` used to exit 0 having written haproxy.cfg into a file named `json`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from deploykit.cli import main

REPO = Path(__file__).resolve().parents[2]
HELLO = str(REPO / "examples" / "hello" / "app.yaml")
APPS = {"apps": [{"id": "/web", "labels": {"HAPROXY_GROUP": "external"}, "portDefinitions": [{"port": 10001}],
                  "tasks": [{"id": "w1", "host": "127.0.0.1", "ports": [31001], "state": "TASK_RUNNING"}]}]}


def every_command() -> list[tuple[str, click.Command]]:
    ctx = click.Context(main)
    found = []

    def walk(cmd: click.Command, path: list[str]) -> None:
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), [*path, name])
        else:
            found.append((" ".join(path), cmd))

    walk(main, [])
    return found


@pytest.mark.parametrize(("name", "command"), every_command(), ids=lambda v: v if isinstance(v, str) else "")
def test_dash_o_means_output_format_everywhere(name, command):
    for param in command.params:
        if "-o" in param.opts:
            assert "--output" in param.opts, f"{name}: -o is {param.opts}"
        if "--out" in param.opts:
            assert param.opts == ["--out"], f"{name}: --out has a short form {param.opts}"


def test_lb_render_dash_o_json_writes_no_file_named_json(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.json").write_text(json.dumps(APPS))
    r = CliRunner().invoke(main, ["lb", "render", "--apps-json", "a.json", "-o", "json"])
    assert r.exit_code == 2 and not (tmp_path / "json").exists()
    doc = json.loads(r.stdout)
    assert doc["problems"][0]["hint"] == "give the config a file: --out haproxy.cfg"
    r = CliRunner().invoke(main, ["lb", "render", "--apps-json", "a.json", "-o", "json", "--out", "h.cfg"])
    assert r.exit_code == 0 and json.loads(r.stdout)["backends"] == 1 and (tmp_path / "h.cfg").exists()


@pytest.mark.parametrize("args", [["lb", "render", "--apps-json", "a.json"], ["jenkins", "jenkinsfile", HELLO]])
@pytest.mark.parametrize("name", ["json", "text", "YAML"])
def test_a_format_name_given_to_out_is_refused_with_a_hint(tmp_path, monkeypatch, args, name):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.json").write_text(json.dumps(APPS))
    r = CliRunner().invoke(main, [*args, "--out", name])
    assert r.exit_code == 2 and not (tmp_path / name).exists()
    assert f"is a format name, not a file: the format is --output {name.lower()}" in r.stderr
    assert f"give ./{name}" in r.stderr
    r = CliRunner().invoke(main, [*args, "--out", f"./{name}"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / name).exists()


def test_a_file_name_given_to_dash_o_is_told_about_out(tmp_path):
    r = CliRunner().invoke(main, ["jenkins", "jenkinsfile", HELLO, "-o", "Jenkinsfile"])
    assert r.exit_code == 2 and "write a file with --out Jenkinsfile" in r.stderr
    assert not (tmp_path / "Jenkinsfile").exists()


def test_jenkinsfile_takes_output_json(tmp_path):
    r = CliRunner().invoke(main, ["jenkins", "jenkinsfile", HELLO, "--env", "staging,prod", "-o", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["ok"] and doc["app"] == "/examples/hello" and doc["jenkinsfile"].startswith("//")
    out = tmp_path / "Jenkinsfile"
    r = CliRunner().invoke(main, ["jenkins", "jenkinsfile", HELLO, "--out", str(out), "-o", "json"])
    doc = json.loads(r.stdout)
    assert r.exit_code == 0 and doc["path"] == str(out) and "jenkinsfile" not in doc and out.exists()
