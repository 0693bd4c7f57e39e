"""The subprocess runner: captured output, failure tail, timeouts that kill the process group."""

from __future__ import annotations

import os
import time

import pytest

from deploykit.errors import BuildError
from deploykit.image.runner import CommandFailed, Runner


def test_success_captures_interleaved_output_and_streams():
    seen: list[str] = []
    result = Runner(echo=seen.append).run(["sh", "-c", "echo out; echo err >&2; echo done"], what="t", stream=True)
    assert result.returncode == 0
    assert result.output.splitlines() == ["out", "err", "done"]
    assert seen == ["out", "err", "done"]


def test_no_streaming_unless_asked():
    seen: list[str] = []
    Runner(echo=seen.append).run(["echo", "x"], what="t")
    assert seen == []


def test_failure_carries_the_last_lines():
    script = "for i in $(seq 1 100); do echo line$i; done; echo 'the real error' >&2; exit 3"
    with pytest.raises(CommandFailed) as err:
        Runner().run(["sh", "-c", script], what="image build")
    exc = err.value
    assert exc.returncode == 3 and exc.exit_code == 1
    assert "image build failed (exit 3)" in str(exc)
    assert exc.tail.splitlines()[-1] == "the real error"
    assert "line1\n" not in exc.tail and "line100" in exc.tail
    assert exc.to_dict()["output_tail"] == exc.tail


def test_check_false_returns_the_failure():
    assert Runner().run(["sh", "-c", "exit 5"], what="t", check=False).returncode == 5


def test_timeout_kills_the_whole_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    start = time.monotonic()
    with pytest.raises(CommandFailed, match="timed out after 1s"):
        Runner().run(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; echo started; wait"], what="t", timeout=1)
    assert time.monotonic() - start < 30
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the grandchild survived the timeout")


def test_missing_tool_is_a_build_error():
    with pytest.raises(BuildError, match="not installed"):
        Runner().run(["deploykit-no-such-tool-xyz"], what="t")
