"""The last line of defence (issue 17): an exception escaping any command is exit 70, one line naming a log file.

Never a raw traceback on the terminal, never exit 1 (that means "deployment failed and rolled back"),
and under --output json still exactly one JSON document.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from deploykit.cli import main

pytestmark = pytest.mark.internal_error

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "examples" / "hello" / "app.yaml")


@pytest.fixture
def crash_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DEPLOYKIT_CRASH_DIR", str(tmp_path / "crashes"))
    return tmp_path / "crashes"


@pytest.fixture
def broken_loader(monkeypatch):
    """A bug inside the library: load_app raises something no command expects."""
    import deploykit.spec as spec

    def boom(*args, **kwargs):
        raise RuntimeError("an unexpected bug\nsecond line of the message")

    monkeypatch.setattr(spec, "load_app", boom)


def _log_of(crash_dir: Path) -> str:
    (log,) = crash_dir.iterdir()
    assert log.stat().st_mode & 0o077 == 0  # 0600: a traceback can quote input
    return log.read_text()


def test_a_bug_is_exit_70_with_one_line_and_the_log_path(crash_dir, broken_loader):
    r = CliRunner().invoke(main, ["validate", APP, "--env", "local"])
    assert r.exit_code == 70, r.output
    assert "Traceback" not in r.stdout + r.stderr and r.stdout == ""
    (line,) = r.stderr.strip().splitlines()
    assert "internal error" in line and "please report" in line and "RuntimeError: an unexpected bug" in line
    (log,) = crash_dir.iterdir()
    assert str(log) in line
    text = _log_of(crash_dir)
    assert "Traceback (most recent call last)" in text and "boom" in text and "command: deploykit validate" in text


def test_a_bug_under_output_json_is_still_one_json_document(crash_dir, broken_loader):
    r = CliRunner().invoke(main, ["validate", APP, "--env", "local", "--output", "json"])
    assert r.exit_code == 70
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 70 and doc["error"] == "InternalError"
    assert doc["command"] == "validate" and Path(doc["log"]).parent == crash_dir


def test_junit_file_records_the_internal_error(crash_dir, broken_loader, tmp_path):
    junit = tmp_path / "report.xml"
    r = CliRunner().invoke(main, ["validate", APP, "--junit", str(junit)])
    assert r.exit_code == 70 and "internal error" in junit.read_text()


def test_an_exception_outside_the_command_body_is_caught_by_the_group(crash_dir, monkeypatch):
    """An import that fails (or an option callback) happens before handle_errors: the group catches it."""
    from deploykit import cli as commands

    monkeypatch.setitem(commands.COMMANDS, "status", ("deploykit.no_such_module", "status", "x"))
    r = CliRunner().invoke(main, ["status", "/app", "-o", "json"])
    assert r.exit_code == 70
    doc = json.loads(r.stdout)
    assert doc["error"] == "InternalError" and "ModuleNotFoundError" in doc["message"]
    assert "deploykit.no_such_module" in _log_of(crash_dir)


def test_ctrl_c_outside_a_command_body_is_130_not_clicks_aborted_1(monkeypatch):
    from deploykit import cli as commands

    def interrupted(name):
        raise KeyboardInterrupt

    monkeypatch.setitem(commands.COMMANDS, "status", ("deploykit.no_such_module", "status", "x"))
    monkeypatch.setattr("importlib.import_module", interrupted)
    r = CliRunner().invoke(main, ["status", "/app"])
    assert r.exit_code == 130 and "interrupted" in r.stderr


def test_an_unwritable_crash_dir_still_gives_one_line_and_exit_70(tmp_path, monkeypatch, broken_loader):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("DEPLOYKIT_CRASH_DIR", str(blocker / "sub"))
    r = CliRunner().invoke(main, ["validate", APP])
    assert r.exit_code == 70 and "could not be written" in r.stderr and "Traceback" not in r.stderr


def test_a_real_process_prints_no_traceback(tmp_path):
    """Through the console script's click group in a real interpreter (no CliRunner in between)."""
    code = (
        "import deploykit.spec as s\n"
        "def boom(*a, **k): raise ZeroDivisionError('division by zero')\n"
        "s.load_app = boom\n"
        "from deploykit.cli import main\n"
        f"main(['validate', {APP!r}])\n"
    )
    env = {**os.environ, "DEPLOYKIT_CRASH_DIR": str(tmp_path / "c"), "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 70 and "Traceback" not in proc.stderr and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "ZeroDivisionError" in proc.stderr
