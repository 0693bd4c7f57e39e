"""`deploykit validate` and `deploykit render` through the real click entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from deploykit.cli import main

HERE = Path(__file__).parent
HELLO = str(HERE.parents[1] / "examples" / "hello" / "app.yaml")
ENVS = str(HERE / "fixtures" / "spec" / "envs")
WEB = str(HERE / "fixtures" / "spec" / "apps" / "web.yaml")
SECRET = "cli-secret-never-printed"

FIVE_MISTAKES = """\
id: /shop/Cart
image: registry.test/shop/cart
instancs: 3
ports:
  - {name: http, container: 8080}
health: {port: htp, interval: 10}
upgrade: {minimum_health_capacity: 1.5}
"""


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_validate_ok_text_and_json() -> None:
    result = run("validate", HELLO, "--env", "local")
    assert result.exit_code == 0 and "ok" in result.output
    result = run("validate", HELLO, "--env", "prod", "--output", "json")
    doc = json.loads(result.output)
    assert result.exit_code == 0 and doc["ok"] is True and doc["apps"][0]["id"] == "/examples/hello"


def test_five_mistakes_five_errors_exit_2(tmp_path: Path) -> None:
    app = tmp_path / "app.yaml"
    app.write_text(FIVE_MISTAKES)
    result = run("validate", str(app), "--env", "docker", "--env-dir", ENVS, "--output", "json")
    assert result.exit_code == 2
    doc = json.loads(result.output)
    problems = doc["problems"]
    assert len(problems) == 5
    assert {tuple(sorted(p)) for p in problems} == {("file", "hint", "line", "message", "path")}
    assert sorted((p["path"], p["line"]) for p in problems) == [
        ("health.interval", 6),
        ("health.port", 6),
        ("id", 1),
        ("instancs", 3),
        ("upgrade.minimum_health_capacity", 7),
    ]
    text = run("validate", str(app), "--env", "docker", "--env-dir", ENVS)
    assert text.exit_code == 2 and "5 problem(s)" in text.output and "did you mean 'instances'?" in text.output


def test_validate_many_files_reports_all(tmp_path: Path) -> None:
    bad1, bad2 = tmp_path / "a.yaml", tmp_path / "b.yaml"
    bad1.write_text("id: /a\nnetwork: brige\n")
    bad2.write_text("id: /b\ncpus: 0\n")
    result = run("validate", str(bad1), HELLO, str(bad2), "-o", "json")
    assert result.exit_code == 2
    assert sorted(p["path"] for p in json.loads(result.output)["problems"]) == ["cpus", "network"]


def test_render_json_is_the_app(tmp_path: Path) -> None:
    result = run("render", HELLO, "--env", "prod", "--image-tag", "2.0.1")
    assert result.exit_code == 0
    app = json.loads(result.output)
    assert app["id"] == "/examples/hello"
    assert app["container"]["docker"]["image"] == "registry.example.com/examples/hello:2.0.1"


def test_render_yaml_and_digest() -> None:
    digest = "sha256:" + "0" * 64
    result = run("render", HELLO, "--env", "staging", "--image-digest", digest, "--output", "yaml")
    assert result.exit_code == 0
    assert yaml.safe_load(result.output)["container"]["docker"]["image"].endswith("@" + digest)


def test_render_from_build_record(tmp_path: Path) -> None:
    record = tmp_path / "build.json"
    digest = "sha256:" + "1" * 64
    record.write_text(json.dumps({"image": "registry.example.com/examples/hello", "digest": digest, "git_sha": "beef"}))
    app = json.loads(run("render", HELLO, "--env", "prod", "--from-build", str(record)).output)
    assert app["container"]["docker"]["image"] == f"registry.example.com/examples/hello@{digest}"
    assert app["labels"]["DEPLOYKIT_GIT_SHA"] == "beef"


def test_render_conflicting_image_options() -> None:
    result = run("render", HELLO, "--env", "prod", "--image-tag", "1", "--image-digest", "sha256:" + "0" * 64)
    assert result.exit_code == 2


def test_render_bad_tag_json_error() -> None:
    result = run("render", HELLO, "--env", "prod", "--image-tag", "bad tag!", "--output", "json")
    assert result.exit_code == 2
    assert json.loads(result.output)["problems"][0]["path"] == "--image-tag"


def test_render_masks_secrets_unless_asked() -> None:
    env = {"CART_DB_PASSWORD": SECRET}
    masked = run("render", WEB, "--env", "docker", "--env-dir", ENVS, env=env)
    assert masked.exit_code == 0 and SECRET not in masked.output and "********" in masked.output
    shown = run("render", WEB, "--env", "docker", "--env-dir", ENVS, "--show-secrets", env=env)
    assert shown.exit_code == 0 and json.loads(shown.output)["env"]["DB_PASSWORD"] == SECRET


def test_show_secrets_missing_variable_names_it() -> None:
    result = run(
        "render",
        WEB,
        "--env",
        "docker",
        "--env-dir",
        ENVS,
        "--show-secrets",
        "-o",
        "json",
        env={"CART_DB_PASSWORD": ""},
    )
    assert result.exit_code == 2
    assert "CART_DB_PASSWORD is not set" in json.loads(result.output)["problems"][0]["message"]


def test_render_unknown_env_also_reports_app_problems(tmp_path: Path) -> None:
    app = tmp_path / "app.yaml"
    app.write_text("id: /a\nnetwrok: host\n")
    result = run("render", str(app), "--env", "prdo", "-o", "json")
    paths = sorted(p["path"] for p in json.loads(result.output)["problems"])
    assert result.exit_code == 2 and paths == ["--env", "netwrok"]


@pytest.mark.parametrize("command", ["validate", "render"])
def test_help_has_an_example(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0 and "Examples:" in result.output and "deploykit " + command in result.output


@pytest.mark.parametrize("columns", ["50", "60", "80", "100", "160"])
def test_fast_help_matches_click(columns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The launcher's click-free `--help` is byte-identical to click's, or steps aside (None)."""
    from deploykit.launcher import fast_help

    monkeypatch.setenv("COLUMNS", columns)
    fast = fast_help()
    slow = CliRunner().invoke(main, ["--help"], prog_name="deploykit", env={"COLUMNS": columns})
    assert slow.exit_code == 0
    if int(columns) >= 80:
        assert fast is not None
    if fast is not None:
        assert fast == slow.output


def test_launcher_version_and_fallthrough(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from deploykit import __version__
    from deploykit.launcher import main as launcher

    monkeypatch.setattr("sys.argv", ["deploykit", "--version"])
    launcher()
    assert (
        capsys.readouterr().out
        == CliRunner().invoke(main, ["--version"]).output
        == f"deploykit, version {__version__}\n"
    )
    monkeypatch.setattr("sys.argv", ["deploykit", "validate", HELLO, "--env", "local"])
    with pytest.raises(SystemExit) as info:
        launcher()
    assert info.value.code == 0 and "ok" in capsys.readouterr().out


def test_validate_catches_escape_hatch_conflicts(tmp_path: Path) -> None:
    app = tmp_path / "app.yaml"
    app.write_text("id: /a/b\nimage: registry.test/a/b\nargs: [run]\nmarathon:\n  cmd: run\n")
    assert run("validate", str(app)).exit_code == 0  # without an environment nothing is rendered
    result = run("validate", str(app), "--env", "docker", "--env-dir", ENVS, "-o", "json")
    assert result.exit_code == 2 and json.loads(result.output)["problems"][0]["path"] == "marathon"


def test_render_bad_build_record_and_app_problems_together(tmp_path: Path) -> None:
    record = tmp_path / "build.json"
    record.write_text("{}")
    app = tmp_path / "app.yaml"
    app.write_text("id: /a/b\nimage: registry.test/a/b\nsecurity: {privileged: true}\n")
    result = run("render", str(app), "--env", "docker", "--env-dir", ENVS, "--from-build", str(record), "-o", "json")
    paths = sorted(p["path"] for p in json.loads(result.output)["problems"])
    assert result.exit_code == 2 and paths == ["digest", "image", "security.privileged"]


def test_validate_junit_report(tmp_path: Path) -> None:
    app = tmp_path / "app.yaml"
    app.write_text("id: /a\nnetwork: brige\n")
    report = tmp_path / "junit.xml"
    result = run("validate", str(app), "--junit", str(report))
    assert result.exit_code == 2
    xml = report.read_text()
    assert "<testsuite" in xml and "network" in xml and "failure" in xml


def test_validate_without_env_checks_every_overlay(tmp_path: Path) -> None:
    app = tmp_path / "app.yaml"
    app.write_text("id: /a\nenvironments:\n  prod:\n    instances: -1\n  staging:\n    cpus: 0\n")
    result = run("validate", str(app), "-o", "json")
    assert result.exit_code == 2
    got = sorted((p["path"], p["line"]) for p in json.loads(result.output)["problems"])
    assert got == [("cpus", 6), ("instances", 4)]
