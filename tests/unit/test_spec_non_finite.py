"""NaN and infinity are refused everywhere in app.yaml (issue 17: `cpus: .nan` validated ok, rendered `NaN`).

JSON has neither, so Marathon refuses the body; validation must say so before anything is written.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from deploykit.cli import main

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello" / "app.yaml"


def _app(tmp_path: Path, extra: str) -> str:
    """hello's app.yaml with `extra` (one YAML mapping) merged in one level deep."""
    doc = yaml.safe_load(HELLO.read_text())
    for key, value in yaml.safe_load(extra).items():
        doc[key] = {**doc[key], **value} if isinstance(value, dict) and isinstance(doc.get(key), dict) else value
    shutil.copytree(HELLO.parent, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


CASES = [
    ("cpus: .nan", "cpus"),
    ("mem: .inf", "mem"),
    ("disk: -.inf", "disk"),
    ("instances: .inf", "instances"),  # int(inf) raised OverflowError: a traceback
    ("upgrade: {minimum_health_capacity: .nan}", "upgrade.minimum_health_capacity"),
    ("env: {GREETING: .nan}", "env.GREETING"),
    ("marathon: {backoffFactor: .nan}", "marathon.backoffFactor"),
    ("marathon: {upgradeStrategy: {maximumOverCapacity: .nan}}", "marathon.upgradeStrategy.maximumOverCapacity"),
]


@pytest.mark.parametrize(("extra", "path"), CASES)
def test_validate_refuses_non_finite_numbers(tmp_path, extra, path):
    app = _app(tmp_path, extra)
    for env in (["--env", "local"], []):  # no --env: the base and every overlay
        r = CliRunner().invoke(main, ["validate", app, *env, "-o", "json"])
        assert r.exit_code == 2, r.output
        paths = [p["path"] for p in json.loads(r.stdout)["problems"]]
        assert path in paths


@pytest.mark.parametrize(("extra", "path"), CASES)
def test_render_never_prints_nan(tmp_path, extra, path):
    r = CliRunner().invoke(main, ["render", _app(tmp_path, extra), "--env", "local"])
    assert r.exit_code == 2 and r.stdout == "" and path in r.stderr


def test_a_quoted_nan_is_just_text(tmp_path):
    r = CliRunner().invoke(main, ["render", _app(tmp_path, 'env: {GREETING: ".nan"}'), "--env", "local"])
    assert r.exit_code == 0 and json.loads(r.stdout)["env"]["GREETING"] == ".nan"


def test_schema_check_counts_non_finite_numbers_as_violations():
    from deploykit.render.schema import field_errors, schema_errors

    app = {"id": "/a", "cmd": "x", "cpus": math.nan, "mem": 32, "instances": 1}
    assert any("cpus" in e and "finite" in e for e in schema_errors(app))
    assert field_errors("upgradeStrategy", {"maximumOverCapacity": math.inf})


def test_the_marathon_client_calls_a_nan_body_a_bug_not_unreachable():
    """Issue 17: requests refuses NaN (InvalidJSONError, a RequestException) and that was exit 4, "unreachable"."""
    from deploykit.clients.marathon import MarathonClient
    from deploykit.errors import InternalError

    client = MarathonClient(["http://127.0.0.1:1"], retries=0)
    with pytest.raises(InternalError, match="not valid JSON"):
        client.put_app({"id": "/a", "cpus": math.nan})
