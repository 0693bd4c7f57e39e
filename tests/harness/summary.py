"""`record_summary(name, doc)`: a test's measured totals, visible in CI without -s or a failure.

Why: a zero-drop or throughput test that passes says nothing about how much it proved; CI logs
should show the totals. Each summary is recorded as a junit property, written as JSON next to
the test's files (or under $DEPLOYKIT_TEST_SUMMARY_DIR), and printed in pytest's terminal summary.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

_SUMMARIES: list[tuple[str, str, Path]] = []


@pytest.fixture
def record_summary(request, record_property, tmp_path) -> Callable[[str, dict], Path]:
    def record(name: str, doc: dict) -> Path:
        text = json.dumps(doc, sort_keys=True)
        record_property(name, text)
        folder = Path(os.environ.get("DEPLOYKIT_TEST_SUMMARY_DIR") or tmp_path)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.json"
        path.write_text(text + "\n")
        _SUMMARIES.append((request.node.nodeid, text, path))
        return path

    return record


def pytest_terminal_summary(terminalreporter) -> None:
    if not _SUMMARIES:
        return
    terminalreporter.section("test summaries")
    for nodeid, text, path in _SUMMARIES:
        terminalreporter.write_line(f"{nodeid}: {text} ({path})")
