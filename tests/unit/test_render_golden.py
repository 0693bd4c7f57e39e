"""Golden renders: varied specs x environments, byte-compared and checked against the official schema.

Regenerate after an intended change with UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from jsonschema import Draft4Validator

from deploykit.envs import load_environment
from deploykit.render.config import config_prefix, config_tree
from deploykit.render.marathon import image_reference, render_app, spec_hash
from deploykit.resources import schema_path
from deploykit.spec import load_app

HERE = Path(__file__).parent
APPS = HERE / "fixtures" / "spec" / "apps"
ENVS = HERE / "fixtures" / "spec" / "envs"
GOLDEN = HERE / "golden"
HELLO = HERE.parents[1] / "examples" / "hello" / "app.yaml"
DIGEST = "sha256:" + "ab" * 32
# sha256 of AppDefinition.json from mesosphere/marathon v1.7.236 (see deploykit/schemas/marathon/NOTICE)
SCHEMA_SHA256 = "aaeb214488b85cee5f7a43cc2ea4ebb8e57fd30febf3592bd586b332c9749d48"

CASES = [
    # (golden name, app file, env name, env dir, image tag, image digest)
    ("minimal.docker", APPS / "minimal.yaml", "docker", ENVS, None, None),
    ("web.docker", APPS / "web.yaml", "docker", ENVS, "1.4.2", None),
    ("web.legacy", APPS / "web.yaml", "legacy", ENVS, None, DIGEST),
    ("hostnet.docker", APPS / "hostnet.yaml", "docker", ENVS, None, None),
    ("hostnet.legacy", APPS / "hostnet.yaml", "legacy", ENVS, "7.2.1", None),
    ("worker.docker", APPS / "worker.yaml", "docker", ENVS, "2024.05.01", None),
    ("privileged.permissive", APPS / "privileged.yaml", "permissive", ENVS, None, DIGEST),
    ("devapp.process", APPS / "devapp.yaml", "process", ENVS, None, None),
    ("hello.local", HELLO, "local", None, None, None),
    ("hello.prod", HELLO, "prod", None, "1.0.0", None),
]


def render_case(app: Path, env_name: str, env_dir: Path | None, tag: str | None, digest: str | None) -> dict:
    environment = load_environment(env_name, env_dir)
    spec = load_app(app, env_name, environment)
    tree = config_tree(spec)
    prefix = config_prefix(environment.consul.prefix, spec.id, tree.hash) if tree.hash else None
    return render_app(
        spec,
        environment,
        image_reference(spec, tag=tag, digest=digest),
        secrets={"DB_PASSWORD": "hunter2-not-for-logs"},
        config_prefix=prefix,
        config_hash=tree.hash,
        deployed_by="jenkins@ci-7",
        git_sha="0123abcd",
    )


def as_text(app: dict, app_dir: Path) -> str:
    """Stable text, machine independent: the app dir in file:// fetch URIs is replaced by a placeholder.

    The spec hash covers the whole definition, fetch URIs included, so it is first checked against
    the real definition and then recomputed over the placeholder one.
    """
    labels = app.get("labels", {})
    assert labels.get("DEPLOYKIT_SPEC_HASH") == spec_hash(app)
    text = json.dumps(app, indent=2).replace(app_dir.resolve().as_uri(), "file://<APP_DIR>")
    doc = json.loads(text)
    doc["labels"]["DEPLOYKIT_SPEC_HASH"] = spec_hash(doc)
    return json.dumps(doc, indent=2) + "\n"


@pytest.fixture(scope="module")
def validator() -> Draft4Validator:
    raw = schema_path("marathon/AppDefinition.json").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == SCHEMA_SHA256, "the shipped schema must be the verbatim official file"
    return Draft4Validator(json.loads(raw))


def test_enough_varied_cases() -> None:
    assert len({c[1] for c in CASES}) >= 6 and len(CASES) >= 8


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_golden(case: tuple, validator: Draft4Validator) -> None:
    name, app, env_name, env_dir, tag, digest = case
    doc = render_case(app, env_name, env_dir, tag, digest)
    assert list(validator.iter_errors(doc)) == []
    text = as_text(doc, app.parent)
    assert "hunter2" not in text
    golden = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden.name}; run with UPDATE_GOLDEN=1"
    assert text == golden.read_text()
    # deterministic: a second render is byte-identical
    assert as_text(render_case(app, env_name, env_dir, tag, digest), app.parent) == text
