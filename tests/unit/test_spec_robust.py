"""Any value of any type under any key gives a clean ValidationError (or loads), never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deploykit.envs import load_environment
from deploykit.errors import ValidationError
from deploykit.render.marathon import render_app
from deploykit.spec import load_app
from deploykit.spec.models import AppDoc

ENVS = Path(__file__).parent / "fixtures" / "spec" / "envs"
ODD_VALUES = [None, 0, -1, 1.5, "x", "", True, [], [1], ["a", None], {}, {"a": 1}, {"a": {"b": []}}, [[1]]]
SECTIONS = {
    "build": ["context", "dockerfile", "args", "target"],
    "health": ["protocol", "path", "port", "grace", "interval", "timeout", "max_failures"],
    "readiness": ["protocol", "path", "port", "interval", "timeout", "status_codes"],
    "upgrade": ["minimum_health_capacity", "maximum_over_capacity"],
    "security": ["privileged", "read_only_root", "no_new_privileges", "cap_drop", "cap_add", "user", "ulimits"],
    "haproxy": ["group", "port", "vhost", "path", "mode", "balance", "check"],
    "config": ["values", "files"],
}
BASE = {"id": "/a/b", "image": "registry.test/a/b", "ports": [{"name": "http", "container": 80}]}


def _check(tmp_path: Path, doc: dict, env: str | None) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        spec = load_app(path, env, env_dir=ENVS)
        # whatever validates must render schema-valid (InternalError would fail the test)
        render_app(spec, load_environment(env or "docker", ENVS), None)
    except ValidationError as exc:
        assert exc.problems and all(p.path is not None and p.message for p in exc.problems)


@pytest.mark.parametrize("key", [k for k in AppDoc.model_fields if k != "id"])
def test_top_level_values(tmp_path: Path, key: str) -> None:
    for value in ODD_VALUES:
        _check(tmp_path, {**BASE, key: value}, "docker")


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_section_values(tmp_path: Path, section: str) -> None:
    for key in SECTIONS[section]:
        for value in ODD_VALUES:
            _check(tmp_path, {**BASE, section: {key: value}}, "process")


@pytest.mark.parametrize("op", ["UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS", "unique"])
def test_constraints_render(tmp_path: Path, op: str) -> None:
    for constraint in (["hostname", op], ["hostname", op, "x"]):
        _check(tmp_path, {**BASE, "constraints": [constraint]}, "docker")


def test_port_item_values(tmp_path: Path) -> None:
    for key in ("name", "container", "service", "protocol"):
        for value in ODD_VALUES:
            _check(tmp_path, {**BASE, "ports": [{"name": "http", key: value}]}, None)


def test_overlay_values(tmp_path: Path) -> None:
    for value in ODD_VALUES:
        _check(tmp_path, {**BASE, "environments": {"docker": value}}, "docker")
        _check(tmp_path, {**BASE, "environments": {"docker": {"ports": value, "health": value}}}, "docker")


def test_whole_document_not_a_mapping(tmp_path: Path) -> None:
    for value in ODD_VALUES:
        path = tmp_path / "app.yaml"
        path.write_text(yaml.safe_dump(value))
        with pytest.raises(ValidationError):
            load_app(path, None)


def test_escape_hatch_values(tmp_path: Path) -> None:
    from deploykit.render.schema import app_properties

    for key in app_properties():
        for value in ODD_VALUES:
            _check(tmp_path, {**BASE, "marathon": {key: value}}, "docker")
