"""Where the traceback of an exception that escaped a command goes (exit 70, see cli.common.report_error).

A person sees one line naming this file instead of a raw traceback; the file holds what a bug
report needs. The folder is $DEPLOYKIT_CRASH_DIR, else <tmp>/deploykit-crashes-<uid>; files are 0600
(a traceback can quote input) and named by time and pid so parallel runs never share one.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path


def crash_dir() -> Path:
    explicit = os.environ.get("DEPLOYKIT_CRASH_DIR")
    if explicit:
        return Path(explicit)
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"deploykit-crashes-{uid}"


def write_crash_log(exc: BaseException, command: str) -> str | None:
    """Write the traceback of `exc` and return the file's path (None if nothing could be written)."""
    from deploykit import __version__

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name = f"{stamp}-{os.getpid()}-{command.replace(' ', '-') or 'deploykit'}.log"
    text = (
        f"deploykit {__version__} on Python {sys.version.split()[0]}\n"
        f"command: deploykit {command}\n"
        f"time: {stamp}\n\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    )
    try:
        folder = crash_dir()
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = folder / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as f:
            f.write(text)
    except OSError:
        return None
    return str(path)
