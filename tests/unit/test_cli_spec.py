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
    assert result.stdout == "" and " --image-tag: " in result.stderr  # errors never land in `> app.json`


def test_render_errors_go_to_stderr_so_a_redirect_never_keeps_them(tmp_path: Path) -> None:
    """Issue 17: `render bad.yaml > app.json` showed nothing and left the error document in app.json."""
    app = tmp_path / "app.yaml"
    app.write_text("id: /a\nnetwrok: host\n")
    for fmt in ("json", "yaml"):
        result = run("render", str(app), "--env", "local", "-o", fmt)
        assert result.exit_code == 2 and result.stdout == "" and "did you mean 'network'?" in result.stderr


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
    assert result.exit_code == 2 and result.stdout == ""
    assert "CART_DB_PASSWORD is not set" in result.stderr


def test_render_unknown_env_also_reports_app_problems(tmp_path: Path) -> None:
    app = tmp_path / "app.yaml"
    app.write_text("id: /a\nnetwrok: host\n")
    result = run("render", str(app), "--env", "prdo", "-o", "json")
    assert result.exit_code == 2 and result.stdout == "" and "2 problem(s)" in result.stderr
    assert " --env: " in result.stderr and " netwrok: " in result.stderr


@pytest.mark.parametrize("command", ["validate", "render"])
def test_help_has_an_example(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0 and "Examples:" in result.output and "deploykit " + command in result.output


def test_console_script_version_and_help() -> None:
    """The console script is the click group itself (pyproject: deploykit = "deploykit.cli:main")."""
    import subprocess
    import sys

    from deploykit import __version__

    entry = [sys.executable, "-m", "deploykit.cli"]
    version = subprocess.run([*entry, "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout == CliRunner().invoke(main, ["--version"]).output == f"deploykit, version {__version__}\n"
    helped = subprocess.run([*entry, "--help"], capture_output=True, text=True, timeout=60, env={"COLUMNS": "100"})
    assert helped.returncode == 0
    assert helped.stdout == CliRunner().invoke(main, ["--help"], prog_name="deploykit", env={"COLUMNS": "100"}).output
    typo = CliRunner().invoke(main, ["valdate"])
    assert typo.exit_code == 2 and "No such command 'valdate'. Did you mean 'validate'?" in typo.output


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
    assert result.exit_code == 2 and result.stdout == "" and "3 problem(s)" in result.stderr
    assert all(f" {path}: " in result.stderr for path in ("digest", "image", "security.privileged"))


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
