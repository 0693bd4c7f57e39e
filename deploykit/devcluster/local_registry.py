"""The local image registry `deploykit local up` starts: Debian's docker-registry (distribution 2.8).

Plain HTTP on 127.0.0.1 only, data under `<state dir>/registry/`, so `deploykit push --env local`
and the Docker engine (which treats 127.0.0.0/8 as an insecure registry) need no TLS setup.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from deploykit.devcluster.util import pid_alive

INSTALL_HINT = "install it with: apt-get install docker-registry"


def registry_answers(host: str, timeout: float = 1.0) -> bool:
    """True when a registry answers the v2 API at host:port (401 counts: it is up)."""
    try:
        urllib.request.urlopen(f"http://{host}/v2/", timeout=timeout).close()
    except urllib.error.HTTPError as exc:
        return exc.code == 401
    except (urllib.error.URLError, OSError):
        return False
    return True


def start_registry(state_dir: Path, port: int, timeout: float = 20.0) -> dict:
    """Start docker-registry in its own session; {pid, url, data, log} once it answers."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RuntimeError(f"docker-registry is not installed: {INSTALL_HINT}")
    root = state_dir / "registry"
    (root / "data").mkdir(parents=True, exist_ok=True)
    config = root / "config.yml"
    config.write_text("\n".join([
        "version: 0.1",
        "log: {level: warn, accesslog: {disabled: true}}",
        f"storage: {{filesystem: {{rootdirectory: {(root / 'data').resolve()}}}, delete: {{enabled: true}}}}",
        f"http: {{addr: 127.0.0.1:{port}}}",
    ]) + "\n")
    log_path = root / "registry.log"
    with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen([binary, "serve", str(config)], stdin=devnull, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    host = f"127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-5:])
            raise RuntimeError(f"docker-registry exited at start (code {proc.returncode}): {tail}")
        if registry_answers(host):
            return {"pid": proc.pid, "url": host, "data": str(root / "data"), "log": str(log_path)}
        time.sleep(0.1)
    stop_registry(proc.pid)
    raise RuntimeError(f"docker-registry did not answer on {host} within {timeout:.0f}s; see {log_path}")


def stop_registry(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM its process group, SIGKILL after `timeout`; a pid that is not docker-registry is left alone."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if b"docker-registry" not in cmdline:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
