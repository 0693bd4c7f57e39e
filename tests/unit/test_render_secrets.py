"""Secrets: resolved from the deployer's environment, masked in every output unless asked, never in errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploykit.envs import load_environment
from deploykit.errors import InternalError, ValidationError
from deploykit.render.marathon import MASK, render_app, validate_against_schema
from deploykit.spec import load_app, resolve_secrets

ENVS = Path(__file__).parent / "fixtures" / "spec" / "envs"
WEB = Path(__file__).parent / "fixtures" / "spec" / "apps" / "web.yaml"
SECRET = "s3cr3t-value-must-not-leak"


@pytest.fixture
def spec():
    return load_app(WEB, "docker", env_dir=ENVS)


def test_resolve_secrets_reads_the_named_variable(spec) -> None:
    assert resolve_secrets(spec, {"CART_DB_PASSWORD": SECRET}) == {"DB_PASSWORD": SECRET}


def test_missing_secret_names_the_variable_only(spec) -> None:
    with pytest.raises(ValidationError) as info:
        resolve_secrets(spec, {"OTHER": SECRET})
    (problem,) = info.value.problems
    assert problem.path == "secrets.DB_PASSWORD.from_env"
    assert "CART_DB_PASSWORD" in problem.message
    assert problem.line == 1 + WEB.read_text().splitlines().index("  DB_PASSWORD: {from_env: CART_DB_PASSWORD}")
    assert SECRET not in str(info.value) and SECRET not in json.dumps(info.value.to_dict())


def test_render_masks_by_default(spec) -> None:
    env = load_environment("docker", ENVS)
    secrets = resolve_secrets(spec, {"CART_DB_PASSWORD": SECRET})
    masked = render_app(spec, env, "registry.test/shop/cart:1", secrets=secrets)
    assert masked["env"]["DB_PASSWORD"] == MASK
    assert SECRET not in json.dumps(masked)
    shown = render_app(spec, env, "registry.test/shop/cart:1", secrets=secrets, mask_secrets=False)
    assert shown["env"]["DB_PASSWORD"] == SECRET
    # the spec hash never depends on a secret value (and so cannot be used to guess it)
    assert shown["labels"]["DEPLOYKIT_SPEC_HASH"] == masked["labels"]["DEPLOYKIT_SPEC_HASH"]


def test_without_resolved_secrets_render_still_masks(spec) -> None:
    env = load_environment("docker", ENVS)
    doc = render_app(spec, env, None, secrets=None, mask_secrets=False)
    assert doc["env"]["DB_PASSWORD"] == MASK


def test_environment_secrets_are_read_on_demand_and_not_stored() -> None:
    env = load_environment("docker", ENVS)
    assert env.consul_token({}) is None
    assert env.consul_token({"TEST_CONSUL_TOKEN": SECRET}) == SECRET
    assert SECRET not in repr(env) and SECRET not in str(env.model_dump())


def test_schema_failure_is_an_internal_error() -> None:
    with pytest.raises(InternalError) as info:
        validate_against_schema({"id": "/a", "instances": "three"})
    assert info.value.exit_code == 70
    assert "instances" in str(info.value) and "bug in deploykit" in str(info.value)
