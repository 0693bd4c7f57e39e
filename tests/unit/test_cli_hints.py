"""Issue 17's smaller reproductions: messages that were repeated, missing or misleading."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from deploykit.cli import main
from tests.harness.procs import free_port

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello"

OVERLAY_TYPO = "id: /t/ov\nimage: registry.local/t\ncmd: sleep 100\nenvironments:\n  local:\n    instancez: 2\n"


def test_an_unknown_key_in_an_overlay_is_reported_once_at_its_own_path(tmp_path):
    app = tmp_path / "app.yaml"
    app.write_text(OVERLAY_TYPO)
    for env in ([], ["--env", "local"]):
        r = CliRunner().invoke(main, ["validate", str(app), *env, "-o", "json"])
        assert r.exit_code == 2
        problems = json.loads(r.stdout)["problems"]
        assert [(p["path"], p["line"], p["hint"]) for p in problems] == [
            ("environments.local.instancez", 6, "did you mean 'instances'?")]


def test_validate_of_several_files_says_ok_for_the_good_ones_when_one_fails(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(OVERLAY_TYPO)
    r = CliRunner().invoke(main, ["validate", str(HELLO / "app.yaml"), str(bad), "--env", "local"])
    assert r.exit_code == 2
    assert r.stdout.splitlines() == [f"ok {HELLO / 'app.yaml'} (/examples/hello, env local)"]
    assert "bad.yaml:6 environments.local.instancez" in r.stderr


def test_an_environment_in_a_parent_folder_is_pointed_at_with_env_dir(tmp_path, monkeypatch):
    """Run from the app's own folder, ./chef_attrs is not the repo's: the hint names the folder that has it."""
    (tmp_path / "chef_attrs").mkdir()
    shutil.copy(REPO / "chef_attrs" / "local.json", tmp_path / "chef_attrs" / "mine.json")
    shutil.copytree(HELLO, tmp_path / "hello")
    monkeypatch.chdir(tmp_path / "hello")
    monkeypatch.delenv("DEPLOYKIT_ENV_DIR", raising=False)
    r = CliRunner().invoke(main, ["validate", "app.yaml", "--env", "mine", "-o", "json"])
    (problem,) = json.loads(r.stdout)["problems"]
    assert r.exit_code == 2 and problem["path"] == "--env"
    assert problem["hint"].endswith(f"found {tmp_path / 'chef_attrs' / 'mine.json'}: pass --env-dir ../chef_attrs")
    r = CliRunner().invoke(main, ["validate", "app.yaml", "--env", "elsewhere", "-o", "json"])
    assert "pass --env-dir DIR or set DEPLOYKIT_ENV_DIR" in json.loads(r.stdout)["problems"][0]["hint"]


def _unreachable_env(tmp_path: Path) -> str:
    doc = json.loads((REPO / "chef_attrs" / "local.json").read_text())
    dk = doc["default_attributes"]["deploykit"]
    dk["marathon"]["urls"] = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    dk["consul"]["url"] = f"http://127.0.0.1:{free_port()}"
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "local.json").write_text(json.dumps(doc))
    return str(tmp_path / "envs")


def test_connection_refused_is_said_once_per_url_with_a_hint(tmp_path):
    envs = _unreachable_env(tmp_path)
    r = CliRunner().invoke(main, ["status", "/a", "--env-dir", envs])
    assert r.exit_code == 4
    assert r.stderr.count("Connection refused") == 2  # one per URL, not one per URL and retry
    assert "attempts each" in r.stderr and "check marathon.urls in the environment file" in r.stderr
    r = CliRunner().invoke(main, ["config", "get", "k", "--env-dir", envs])
    assert r.exit_code == 4 and "check consul.url in the environment file" in r.stderr


def test_a_junit_path_that_cannot_be_written_is_a_warning_not_a_crash(tmp_path):
    (tmp_path / "file").write_text("")
    r = CliRunner().invoke(main, ["validate", str(HELLO / "app.yaml"), "--junit", str(tmp_path / "file" / "j.xml")])
    assert r.exit_code == 0 and "warning: could not write" in r.stderr
