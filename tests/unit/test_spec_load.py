"""Loading app.yaml: overlays, line numbers, all problems at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploykit.errors import ValidationError
from deploykit.spec import load_app

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello" / "app.yaml"


def write(tmp_path: Path, text: str, name: str = "app.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_hello_loads_for_every_shipped_environment() -> None:
    for env in ("local", "staging", "prod"):
        spec = load_app(HELLO, env)
        assert spec.id == "/examples/hello"
        assert spec.env_name == env
    local = load_app(HELLO, "local")
    assert local.cmd == "python3 server.py"
    assert local.fetch_uris == [(HELLO.parent / "server.py").as_uri()]
    assert local.config_contents["app.properties"].startswith(b"# hello")
    assert local.health is not None and local.health.interval == 2.0


def test_overlay_deep_merges_over_base(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
id: /a/b
image: registry.example.com/a/b
instances: 2
env: {A: "1", B: "2"}
upgrade: {minimum_health_capacity: 0.5, maximum_over_capacity: 0.5}
environments:
  prod:
    instances: 5
    env: {B: "20", C: "30"}
    upgrade: {maximum_over_capacity: 0.1}
""",
    )
    base = load_app(path, None)
    prod = load_app(path, "prod")
    assert base.instances == 2 and prod.instances == 5
    assert prod.env == {"A": "1", "B": "20", "C": "30"}
    assert prod.upgrade.minimum_health_capacity == 0.5
    assert prod.upgrade.maximum_over_capacity == 0.1


def test_overlay_null_removes_a_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
id: /a/b
image: registry.example.com/a/b
ports: [{name: http, container: 80}]
readiness: {path: /ready}
environments:
  staging: {readiness: null}
""",
    )
    assert load_app(path, None).readiness is not None
    assert load_app(path, "staging").readiness is None


def test_five_mistakes_five_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
id: /shop/Cart
instancs: 3
ports:
  - {name: http, container: 8080}
health: {port: htp, interval: 10}
upgrade: {minimum_health_capacity: 1.5}
""",
    )
    with pytest.raises(ValidationError) as info:
        load_app(path, None)
    problems = info.value.problems
    assert sorted((p.path, p.line) for p in problems) == [
        ("health.interval", 5),
        ("health.port", 5),
        ("id", 1),
        ("instancs", 2),
        ("upgrade.minimum_health_capacity", 6),
    ]
    assert len(problems) == 5
    assert all(p.file == str(path) for p in problems)


def test_overlay_problem_points_at_overlay_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
id: /a/b
image: registry.example.com/a/b
instances: 2
environments:
  prod:
    instances: -1
""",
    )
    with pytest.raises(ValidationError) as info:
        load_app(path, "prod")
    (problem,) = info.value.problems
    assert (problem.path, problem.line) == ("instances", 6)
    assert problem.hint == "allowed: 0 to 10000"
