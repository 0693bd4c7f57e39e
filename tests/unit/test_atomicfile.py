"""deploykit.atomicfile: whole-file replacement, permissions, no temp files left behind."""

from __future__ import annotations

import os
import stat

import pytest

from deploykit.atomicfile import atomic_write


def test_replaces_content_and_creates_the_folder(tmp_path) -> None:
    target = tmp_path / "sub" / "state.json"
    atomic_write(target, "old")
    atomic_write(target, "néw", fsync=True)
    assert target.read_text(encoding="utf-8") == "néw"
    atomic_write(target, b"\x00bytes")
    assert target.read_bytes() == b"\x00bytes"
    assert os.listdir(target.parent) == ["state.json"]


def test_private_mode_and_umask_default(tmp_path) -> None:
    atomic_write(tmp_path / "private", "x", mode=0o600)
    assert stat.S_IMODE((tmp_path / "private").stat().st_mode) == 0o600
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "shared", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o644


def test_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path) -> None:
    target = tmp_path / "f"
    atomic_write(target, "old")
    with pytest.raises(TypeError):
        atomic_write(target, 42)  # type: ignore[arg-type]
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["f"]
