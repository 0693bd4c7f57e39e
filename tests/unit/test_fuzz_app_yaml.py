"""Fuzzing app.yaml (issue 17): hostile values at every path through `validate` and `render`.

Starting from examples/hello, each example replaces or adds values (NaN, huge numbers, unicode,
control characters, deep nesting, wrong types) at paths of the document. Whatever the input:
the exit code is 0 or 2 (never a traceback, never 70); stdout under --output json is one JSON
document; and every definition `render` prints is strict JSON (no NaN) valid against the official
Marathon schema. Bounded per run (see tests/harness/fuzz.py for the seeds).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import strategies as st

from deploykit.cli import main
from deploykit.render.schema import schema_errors
from tests.harness.fuzz import SEEDS, fuzz_examples, hostile_or_deep, run_fuzz, seed_id

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"
BASE = yaml.safe_load((HELLO / "app.yaml").read_text())
EXAMPLES = fuzz_examples(60)  # per seed; each example is three CLI runs in-process


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


NEW_KEYS = [("marathon",), ("marathon", "backoffFactor"), ("marathon", "upgradeStrategy"), ("secrets",),
            ("disk",), ("args",), ("constraints",), ("environments", "local", "cpus"), ("environments", "qa"),
            ("health", "command"), ("haproxy", "path"), ("network",), ("zzz_unknown",), ("config", "values", "k")]
PATHS = _paths(BASE) + NEW_KEYS


def _set(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, list) and isinstance(head, int) and head < len(doc):
        doc[head] = _set(doc[head], rest, value)
        return doc
    if not isinstance(doc, dict):
        doc = {}
    doc[head] = _set(doc.get(head), rest, value)
    return doc


edits = st.lists(st.tuples(st.sampled_from(PATHS), hostile_or_deep), min_size=1, max_size=4)


def _strict_json(text: str) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in rendered JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    shutil.copytree(HELLO, tmp_path / "app")
    return tmp_path / "app"


@pytest.mark.parametrize("fuzz_seed", SEEDS, ids=seed_id)
def test_hostile_app_yaml_never_crashes_and_renders_only_schema_valid_json(fuzz_seed, app_dir, monkeypatch):
    monkeypatch.setenv("DEPLOYKIT_CRASH_DIR", str(app_dir.parent / "crashes"))
    app = app_dir / "app.yaml"
    runner = CliRunner()

    def check(changes: list) -> None:
        doc = json.loads(json.dumps(BASE))
        for path, value in changes:
            doc = _set(doc, path, value)
        app.write_text(yaml.safe_dump(doc, allow_unicode=False))
        for args in (["validate", str(app), "-o", "json"], ["validate", str(app), "--env", "local", "-o", "json"]):
            r = runner.invoke(main, args)
            assert r.exit_code in (0, 2), (r.exit_code, r.output, r.exception)
            assert json.loads(r.stdout)["ok"] is (r.exit_code == 0)
        r = runner.invoke(main, ["render", str(app), "--env", "local"])
        assert r.exit_code in (0, 2), (r.exit_code, r.output, r.exception)
        if r.exit_code == 0:
            rendered = _strict_json(r.stdout)
            assert schema_errors(rendered) == []
        else:
            assert r.stdout == ""

    run_fuzz(fuzz_seed, edits, check, EXAMPLES)


# ---- what fuzzing found, kept as plain regression tests --------------------------------------------------------
@pytest.mark.parametrize("changes", [
    [(("environments", "local", "fetch"), ["\x00"])],  # ValueError: embedded null byte (Path.resolve)
    [(("config", "files", "app.properties"), "a\x00b")],
])
def test_found_by_fuzzing(changes, app_dir):
    doc = json.loads(json.dumps(BASE))
    for path, value in changes:
        doc = _set(doc, path, value)
    (app_dir / "app.yaml").write_text(yaml.safe_dump(doc))
    r = CliRunner().invoke(main, ["validate", str(app_dir / "app.yaml"), "--env", "local"])
    assert r.exit_code == 2 and "not found" in r.stderr, r.output


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True))


@pytest.mark.parametrize(("text", "message"), [
    ("id: /a\nenv: " + "[" * 2000 + "]" * 2000 + "\n", "nests too deeply"),  # RecursionError inside PyYAML
    ("id: /a\nmarathon: {labels: " + "{k: " * 100 + "v" + "}" * 101 + "\n", "more than 64 levels"),
    ("id: /a\n" + BOMB, "expands to more than 100000 values"),  # a billion laughs: 9**9 strings
    ("id: /a\nenv: &e {x: *e}\n", "cycle"),
])
def test_runaway_yaml_is_invalid_input(tmp_path, text, message):
    app = tmp_path / "app.yaml"
    app.write_text(text)
    r = CliRunner().invoke(main, ["validate", str(app), "-o", "json"])
    assert r.exit_code == 2, r.output
    assert message in json.loads(r.stdout)["problems"][0]["message"]
