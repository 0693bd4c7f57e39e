"""Write a file so that readers see the old content or the new, never half of it (write a temp file, rename)."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def atomic_write(path: str | Path, data: str | bytes, *, mode: int = 0o666, fsync: bool = False) -> None:
    """Replace `path` with `data` (str is written as UTF-8); creates the folder.

    The temp file sits next to `path` (rename is atomic only within one filesystem) and is removed if
    anything fails. `mode` is filtered by the umask as for open(); 0o600 for files only the owner may read.
    `fsync` makes the content durable before the rename (state files a crash must not lose).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
