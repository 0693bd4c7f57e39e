"""One broken fixture per validation rule: exactly one problem, with its path, message, hint and line.

Each file in fixtures/spec/broken/ says what it expects in its header:
  # env: <name>            (optional; environment files come from fixtures/spec/envs/)
  # expect: <path> | <message substring> | <hint substring>
and marks the offending line with `# <-` (the problem must point there).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deploykit.errors import ValidationError
from deploykit.spec import load_app

FIXTURES = Path(__file__).parent / "fixtures" / "spec"
BROKEN = sorted((FIXTURES / "broken").glob("*.yaml"))
ENVS = FIXTURES / "envs"


def _header(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith("# ") and ": " in line:
            key, _, value = line[2:].partition(": ")
            out[key] = value
    return out


def test_there_is_a_fixture_per_rule() -> None:
    from deploykit.spec.rules import RULES

    assert len(BROKEN) >= 60
    assert len(RULES) >= 15


@pytest.mark.parametrize("fixture", BROKEN, ids=lambda p: p.stem)
def test_broken_fixture(fixture: Path) -> None:
    header = _header(fixture)
    path, message, hint = (part.strip() for part in header["expect"].split("|"))
    with pytest.raises(ValidationError) as info:
        load_app(fixture, header.get("env"), env_dir=ENVS)
    problems = info.value.problems
    assert len(problems) == 1, "\n".join(map(str, problems))
    (problem,) = problems
    assert problem.path == path
    assert message in problem.message
    if hint:
        assert problem.hint is not None and hint in problem.hint
    marked = [i for i, line in enumerate(fixture.read_text().splitlines(), 1) if line.endswith("# <-")]
    if marked:
        assert problem.line == marked[0]
    if path != "--env":
        assert problem.file == str(fixture)


@pytest.mark.parametrize("env", ["docker", "legacy", "process", "permissive"])
def test_fixture_environments_are_valid(env: str) -> None:
    from deploykit.envs import load_environment

    assert load_environment(env, ENVS).name == env


def test_allowed_in_a_permissive_environment(tmp_path: Path) -> None:
    app = tmp_path / "app.yaml"
    app.write_text("id: /a/b\nimage: registry.test/a/b\nsecurity: {privileged: true, cap_add: [NET_ADMIN]}\n")
    spec = load_app(app, "permissive", env_dir=ENVS)
    assert spec.security.privileged and spec.security.cap_add == ["NET_ADMIN"]
    with pytest.raises(ValidationError) as info:
        load_app(app, "docker", env_dir=ENVS)
    assert sorted(p.path for p in info.value.problems) == ["security.cap_add[0]", "security.privileged"]


def test_security_is_the_environments_call(tmp_path: Path) -> None:
    app = tmp_path / "app.yaml"
    app.write_text("id: /a/b\nimage: registry.test/a/b\nsecurity: {privileged: true}\n")
    assert load_app(app, None).security.privileged  # no environment: nothing to check against


def test_config_file_size_limit(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(b"x" * (512 * 1024 + 1))
    (tmp_path / "ok.bin").write_bytes(b"x" * (512 * 1024))
    app = tmp_path / "app.yaml"
    app.write_text("id: /a/b\nconfig:\n  files:\n    ok: ok.bin\n    big: big.bin\n")
    with pytest.raises(ValidationError) as info:
        load_app(app, None)
    (problem,) = info.value.problems
    assert (problem.path, problem.line) == ("config.files.big", 5)
    assert "524289 bytes" in problem.message and "512 KiB" in (problem.hint or "")
