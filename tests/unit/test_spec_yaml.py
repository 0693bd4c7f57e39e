"""The line-tracking YAML loader and duration parsing."""

from __future__ import annotations

import pytest

from deploykit.durations import DurationError, format_duration, parse_duration
from deploykit.spec.yamlsrc import format_path, load_yaml


def test_lines_for_keys_and_items() -> None:
    doc = load_yaml("id: /a\nports:\n  - name: http\n    container: 80\n  - {name: b}\n", "f.yaml")
    assert doc.problems == []
    assert doc.data == {"id": "/a", "ports": [{"name": "http", "container": 80}, {"name": "b"}]}
    assert doc.lines[("id",)] == 1
    assert doc.lines[("ports", 0)] == 3 and doc.lines[("ports", 0, "container")] == 4
    assert doc.lines[("ports", 1, "name")] == 5
    assert doc.line_of(("ports", 1, "missing", "deeper")) == 5


def test_merge_keys_and_anchors() -> None:
    doc = load_yaml("base: &b {cpus: 1, mem: 64}\napp:\n  <<: *b\n  mem: 128\n", None)
    assert doc.data["app"] == {"cpus": 1, "mem": 128}
    assert doc.problems == []  # overriding a merged key is not a duplicate
    assert doc.lines[("app", "mem")] == 4


def test_duplicate_keys_are_problems() -> None:
    doc = load_yaml("a: 1\nb:\n  c: 1\n  c: 2\n", "f.yaml")
    assert [(p.path, p.line, p.message) for p in doc.problems] == [("b.c", 4, "duplicate key")]


def test_syntax_error_has_a_line() -> None:
    doc = load_yaml("a: [1, 2\nb: 3\n", "f.yaml")
    assert doc.data is None and doc.problems[0].line is not None and "YAML syntax error" in doc.problems[0].message


def test_non_string_keys_become_strings() -> None:
    assert load_yaml("1: a\ntrue: b\n", None).data == {"1": "a", "True": "b"}


def test_format_path() -> None:
    assert format_path(("ports", 0, "container")) == "ports[0].container"
    assert format_path(("config", "values", "feature.x")) == "config.values['feature.x']"
    assert format_path(("env", "LOG_LEVEL")) == "env.LOG_LEVEL"
    assert format_path(()) == ""


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h", 3600), ("250ms", 0.25), ("1m30s", 90), ("1.5m", 90), ("0s", 0), (" 2s ", 2)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("value", "message", "hint"),
    [
        (10, "has no unit", "did you mean '10s'?"),
        ("10", "has no unit", "did you mean '10s'?"),
        ("10 sec", "is not a duration", "500ms, 30s"),
        ("s", "is not a duration", "500ms"),
        (True, "is not a duration", "500ms"),
        ([1], "must be a string", "500ms"),
    ],
)
def test_bad_durations(value: object, message: str, hint: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(value)
    assert message in str(info.value) and hint in info.value.hint


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0.5, 2, 90, 120, 7200)] == ["500ms", "2s", "90s", "2m", "2h"]
