"""deploy step 1: every input checked before any network call, all problems at once (exit 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from deploykit.cli import main
from deploykit.deploy import DeployOptions, prepare
from deploykit.errors import ValidationError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def app_and_env(tmp_path: Path) -> tuple[Path, Path]:
    for name in ("server.py", "config"):
        src = REPO / "examples" / "hello" / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    doc = yaml.safe_load((REPO / "examples" / "hello" / "app.yaml").read_text())
    doc["secrets"] = {"DB_PASSWORD": {"from_env": "DK_UNIT_MISSING_SECRET"}}
    app = tmp_path / "app.yaml"
    app.write_text(yaml.safe_dump(doc))
    env = json.loads((REPO / "chef_attrs" / "local.json").read_text())
    dk = env["default_attributes"]["deploykit"]
    dk["marathon"]["urls"] = ["http://127.0.0.1:9"]  # nothing listens: any network call would fail loudly
    dk["marathon"]["auth"] = {"user": "deployer", "password_env": "DK_UNIT_MARATHON_PW"}
    dk["consul"]["url"] = "http://127.0.0.1:9"
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / "local.json").write_text(json.dumps(env))
    return app, env_dir


def test_all_problems_at_once_without_network(app_and_env):
    app, env_dir = app_and_env
    opts = DeployOptions(app_path=str(app), env_name="local", env_dir=str(env_dir), image_tag="bad tag!")
    with pytest.raises(ValidationError) as ei:
        prepare(opts, environ={})
    text = str(ei.value)
    assert "DK_UNIT_MISSING_SECRET" in text and "--image-tag" in text and "DK_UNIT_MARATHON_PW" in text
    assert len(ei.value.problems) == 3


def test_prepared_deploy_keeps_secret_only_in_the_definition(app_and_env):
    app, env_dir = app_and_env
    opts = DeployOptions(app_path=str(app), env_name="local", env_dir=str(env_dir))
    prep = prepare(opts, environ={"DK_UNIT_MISSING_SECRET": "s3cr3t-unit", "DK_UNIT_MARATHON_PW": "pw"})
    assert prep.desired["env"]["DB_PASSWORD"] == "s3cr3t-unit"
    assert prep.secret_env == {"DB_PASSWORD"}
    assert "s3cr3t-unit" not in json.dumps(prep.desired["labels"])
    assert prep.desired["env"]["DEPLOYKIT_CONFIG_PREFIX"] == prep.config_prefix
    assert prep.config_prefix.startswith("config/examples/hello/") and prep.config_hash in prep.config_prefix


def test_cli_exit_2_with_json_problems(app_and_env, monkeypatch):
    app, env_dir = app_and_env
    monkeypatch.delenv("DK_UNIT_MISSING_SECRET", raising=False)
    monkeypatch.setenv("DK_UNIT_MARATHON_PW", "pw")
    result = CliRunner().invoke(main, ["deploy", str(app), "--env", "local", "--env-dir", str(env_dir),
                                       "--output", "json"])
    assert result.exit_code == 2, result.output
    doc = json.loads(result.output)
    assert doc["ok"] is False and doc["error"] == "ValidationError"
    assert [p["path"] for p in doc["problems"]] == ["secrets.DB_PASSWORD.from_env"]


def test_bad_durations_are_usage_errors(app_and_env):
    app, env_dir = app_and_env
    result = CliRunner().invoke(main, ["deploy", str(app), "--env-dir", str(env_dir), "--timeout", "10"])
    assert result.exit_code == 2 and "unit" in result.output


def test_scrub_error_removes_echoed_secrets():
    from deploykit.deploy import DeployFailure, scrub_error
    from deploykit.errors import RemoteError

    err = scrub_error(RemoteError("422: env.X 'hunter2-canary' bad", status=422, body={"details": "hunter2-canary"}),
                      ["hunter2-canary"])
    assert "hunter2-canary" not in str(err) + json.dumps(err.to_dict())
    rep = scrub_error(DeployFailure("x", {"errors": ["saw hunter2-canary"]}), ["hunter2-canary"])
    assert "hunter2-canary" not in json.dumps(rep.to_dict())
