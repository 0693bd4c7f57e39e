"""One broken fixture per validation rule: exactly one problem, with its path, message, hint and line.

Each file in fixtures/spec/broken/ says what it expects in its header:
  # env: <name>            (optional; environment files come from fixtures/spec/envs/)
  # expect: <path> | <message substring> | <hint substring>
and marks the offending line with `# <-` (the problem must point there), or says
`# line: none (<why>)` when no line of the file is at fault (then the problem has no line).

test_every_finding_has_a_broken_fixture reads deploykit/spec/rules.py itself: every
(path, message, hint) a rule can yield must be produced by some fixture, so a new rule or
a new message in an old rule fails here until it gets its fixture.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploykit.errors import Problem, ValidationError
from deploykit.spec import load_app

FIXTURES = Path(__file__).parent / "fixtures" / "spec"
BROKEN = sorted((FIXTURES / "broken").glob("*.yaml"))
ENVS = FIXTURES / "envs"


@dataclass(frozen=True)
class Site:
    """One place in rules.py that yields a finding, as patterns a Problem can be matched against."""

    function: str
    line: int
    path_prefix: str  # the finding's leading constant key path, e.g. "config.files" ("" when computed)
    message: str  # regex: literal text, `.+` for each f-string field, `.*` for a computed message
    hint: str

    def matches(self, problem: Problem) -> bool:
        path = problem.path
        in_section = not self.path_prefix or path == self.path_prefix or path.startswith(
            (self.path_prefix + ".", self.path_prefix + "["))
        return (in_section and re.fullmatch(self.message, problem.message, re.S) is not None
                and re.fullmatch(self.hint, problem.hint or "", re.S) is not None)


def _text_pattern(node: ast.expr) -> str:
    if isinstance(node, ast.Constant):
        return "" if node.value is None else re.escape(str(node.value))
    if isinstance(node, ast.JoinedStr):
        return "".join(re.escape(v.value) if isinstance(v, ast.Constant) else ".+" for v in node.values)
    return ".*"  # a name or a call (did_you_mean, a schema message): anything, possibly empty


def _path_prefix(node: ast.expr) -> str:
    parts = []
    for elt in node.elts if isinstance(node, ast.Tuple) else []:
        if not (isinstance(elt, ast.Constant) and isinstance(elt.value, str)):
            break
        parts.append(elt.value)
    return ".".join(parts)


def finding_sites() -> list[Site]:
    """Every `yield (path, message, hint)` in a rule and `findings.append((path, message, hint))` in rules.py."""
    import deploykit.spec.rules as rules

    sites = []
    for fn in ast.parse(Path(rules.__file__).read_text()).body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Yield) and isinstance(node.value, ast.Tuple):
                finding = node.value
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "append"
                  and len(node.args) == 1 and isinstance(node.args[0], ast.Tuple) and len(node.args[0].elts) == 3):
                finding = node.args[0]
            else:
                continue
            path, message, hint = finding.elts
            sites.append(Site(fn.name, node.lineno, _path_prefix(path), _text_pattern(message), _text_pattern(hint)))
    return sites


def _fixture_problems(fixture: Path) -> list[Problem]:
    with pytest.raises(ValidationError) as info:
        load_app(fixture, _header(fixture).get("env"), env_dir=ENVS)
    return info.value.problems


def _oversized_config_file(tmp_path: Path) -> list[Problem]:
    """The one finding with no fixture file: it needs a config file over 512 KiB, written here instead."""
    (tmp_path / "big.bin").write_bytes(b"x" * (512 * 1024 + 1))
    (tmp_path / "ok.bin").write_bytes(b"x" * (512 * 1024))
    app = tmp_path / "app.yaml"
    app.write_text("id: /a/b\nconfig:\n  files:\n    ok: ok.bin\n    big: big.bin\n")
    with pytest.raises(ValidationError) as info:
        load_app(app, None)
    return info.value.problems


def _header(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith("# ") and ": " in line:
            key, _, value = line[2:].partition(": ")
            out[key] = value
    return out


def test_every_finding_has_a_broken_fixture(tmp_path: Path) -> None:
    from deploykit.spec.rules import RULES, load_attachments

    sites = finding_sites()
    # the reader found every rule (a rule it cannot see would be silently uncovered)
    assert {s.function for s in sites} == {r.__name__ for r in RULES} | {load_attachments.__name__}
    produced = [(f.stem, p) for f in BROKEN for p in _fixture_problems(f)]
    produced += [("<generated: oversized config file>", p) for p in _oversized_config_file(tmp_path)]
    hits: dict[Site, list[str]] = {s: [] for s in sites}
    for name, problem in produced:
        matched = [s for s in sites if s.matches(problem)]
        assert len(matched) <= 1, f"{name}: {problem} matches several findings: {matched}"
        for site in matched:
            hits[site].append(name)
    missing = [f"rules.py:{s.line} {s.function}: {s.message!r}" for s, names in hits.items() if not names]
    assert not missing, "findings without a broken fixture:\n" + "\n".join(missing)


def test_finding_reader_is_not_vacuous() -> None:
    """The patterns must tell findings apart: a problem from one rule does not match another rule's finding."""
    sites = {(s.function, s.message): s for s in finding_sites()}
    vhost = sites[("rule_haproxy_mode", re.escape("vhost routing needs mode: http"))]
    hint = "set haproxy.mode: http or remove vhost"
    assert vhost.matches(Problem(None, "haproxy.vhost", "vhost routing needs mode: http", hint))
    assert not vhost.matches(Problem(None, "haproxy.vhost", "path routing needs mode: http", hint))
    overlay = sites[("rule_overlays", re.escape("unknown key"))]
    assert not overlay.matches(Problem(None, "healt", "unknown key", "did you mean 'health'?"))  # pydantic's own
    assert overlay.matches(Problem(None, "environments.prod.healt", "unknown key", "did you mean 'health'?"))


@pytest.mark.parametrize("fixture", BROKEN, ids=lambda p: p.stem)
def test_broken_fixture(fixture: Path) -> None:
    header = _header(fixture)
    path, message, hint = (part.strip() for part in header["expect"].split("|"))
    problems = _fixture_problems(fixture)
    assert len(problems) == 1, "\n".join(map(str, problems))
    (problem,) = problems
    assert problem.path == path
    assert message in problem.message
    if hint:
        assert problem.hint is not None and hint in problem.hint
    marked = [i for i, line in enumerate(fixture.read_text().splitlines(), 1) if line.endswith("# <-")]
    if "line" in header:
        assert header["line"].startswith("none (") and not marked, "`# line: none (<why>)` or a `# <-` marker"
        assert problem.line is None
    else:
        assert len(marked) == 1, "mark the offending line with `# <-` (or say `# line: none (<why>)`)"
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
    (problem,) = _oversized_config_file(tmp_path)
    assert (problem.path, problem.line) == ("config.files.big", 5)
    assert "524289 bytes" in problem.message and "512 KiB" in (problem.hint or "")


def test_a_cmd_only_app_is_a_command_task_in_a_docker_environment(tmp_path: Path) -> None:
    """As on Marathon: no image but a cmd is a command task (the rule once demanded an image)."""
    from deploykit.envs import load_environment
    from deploykit.render.marathon import render_app

    app = tmp_path / "app.yaml"
    app.write_text("id: /a/b\ncmd: exec ./server --port $PORT0\nports: [{name: http, service: 10100}]\n")
    environment = load_environment("docker", ENVS)
    doc = render_app(load_app(app, "docker", environment), environment, None)
    assert "container" not in doc and doc["cmd"].startswith("exec ./server")
    assert doc["portDefinitions"][0]["port"] == 10100  # no container port needed for a command task
    app.write_text("id: /a/b\nports: [{name: http, container: 8080}]\n")
    with pytest.raises(ValidationError) as info:
        load_app(app, "docker", environment)
    assert [p.message for p in info.value.problems] == [
        "an image or a cmd is required in environment 'docker' (Marathon runs a container or a command)"]


def test_build_never_checks_the_runtime_cmd(tmp_path: Path) -> None:
    """`tasks: process` needs a cmd to deploy, but building the image does not depend on how it runs."""
    from deploykit.image.app import plan_for_app

    app = tmp_path / "app.yaml"
    app.write_text("id: /a/b\nimage: registry.test/a/b\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    with pytest.raises(ValidationError) as info:
        load_app(app, "process", env_dir=ENVS)
    assert [p.path for p in info.value.problems] == ["cmd"]
    plan, _ = plan_for_app(app, "process", str(ENVS), extra_tags=["t1"], allow_dirty=True, environ={})
    assert plan.image.repository.endswith("a/b")
