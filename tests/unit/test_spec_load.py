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
    assert local.cmd is None and local.image == "examples/hello"  # the image runs in the devcluster too
    assert local.fetch_uris == []
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


def test_file_not_found_is_one_problem_with_a_hint(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ValidationError) as info:
        load_app(missing, None)
    (problem,) = info.value.problems
    assert (problem.file, problem.path, problem.message) == (str(missing), "", "file not found")
    assert problem.hint == "give the path to an app.yaml"


def test_file_not_found_keeps_the_environment_problems(tmp_path: Path) -> None:
    """All problems at once: a wrong --env is reported along with the missing file."""
    with pytest.raises(ValidationError) as info:
        load_app(tmp_path / "nope.yaml", "nosuchenv", env_dir=tmp_path)
    assert [(p.path, p.message.split(" (")[0]) for p in info.value.problems] == [
        ("--env", "no environment file nosuchenv.json"), ("", "file not found")]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValidationError) as info:
        load_app(path, None)
    (problem,) = info.value.problems
    assert (problem.file, problem.path, problem.message) == (str(path), "", "the file is empty")
    assert problem.hint == "start with id: /group/app"


def test_cannot_read_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "app.yaml"
    folder.mkdir()
    with pytest.raises(ValidationError) as info:
        load_app(folder, None)
    (problem,) = info.value.problems
    assert problem.file == str(folder) and problem.message.startswith("cannot read: ")
    assert "directory" in problem.message.lower() and problem.hint == "give the path to an app.yaml"


def test_cannot_read_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_bytes(b"id: /a/b\nenv: {NAME: caf\xe9}\n")  # Latin-1, not UTF-8
    with pytest.raises(ValidationError) as info:
        load_app(path, None)
    (problem,) = info.value.problems
    assert problem.message.startswith("cannot read: ") and "utf-8" in problem.message
    assert problem.hint == "app.yaml must be UTF-8 text"
