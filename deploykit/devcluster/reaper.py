"""Kills a server's tasks when the server dies, even by SIGKILL.

The server starts this helper with a pipe on its stdin and writes only the run dir to it (one
line). When the server exits for any reason the pipe closes, `read()` returns, and the helper kills every
task process group listed in the run dir (checked against the task's MESOS_TASK_ID, so a
recycled pid is never hit). `setpriv --pdeathsig` alone would only reach the task's
`sh -c`, not what that shell started.
"""

from __future__ import annotations

import sys
from pathlib import Path

from deploykit.devcluster.tasks import kill_leftovers


def main() -> int:
    run_dir = Path(sys.stdin.buffer.readline().decode().rstrip("\n"))
    sys.stdin.buffer.read()
    kill_leftovers(run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
