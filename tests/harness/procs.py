"""Process and port helpers without pytest, shared by the test harness and bench/ (benchkit re-exports them)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(proc: subprocess.Popen | None, timeout: float = 10) -> None:
    """SIGTERM the process group (a clean shutdown); SIGKILL it when it has not exited after `timeout`."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def kill_group(proc: subprocess.Popen | None) -> None:
    """SIGKILL the process group: what a crash looks like (no flush, no cleanup)."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
