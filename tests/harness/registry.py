"""A real Docker registry 2.8 (Debian `docker-registry`) on a free 127.0.0.1 port.

`registry`: open, plain HTTP (what an environment with `registry.insecure: true` talks to).
`auth_registry`: the same with htpasswd (Basic) auth, user/password in `.username/.password`.
Both are session-scoped; each is stopped (its process group killed) at teardown.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pytest

from tests.harness.common import free_port, require_binary, wait_until


class Registry:
    def __init__(self, workdir: Path, *, auth: tuple[str, str] | None = None):
        self.workdir = workdir
        self.port = free_port()
        self.auth = auth
        self.proc: subprocess.Popen | None = None
        config = [
            "version: 0.1",
            "log: {level: warn, accesslog: {disabled: true}}",
            f"storage: {{filesystem: {{rootdirectory: {workdir / 'data'}}}, delete: {{enabled: true}}}}",
            f"http: {{addr: 127.0.0.1:{self.port}}}",
        ]
        if auth:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                import crypt  # bcrypt via libxcrypt (the registry's htpasswd wants bcrypt); gone in 3.13

                hashed = crypt.crypt(auth[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 4))
            (workdir / "htpasswd").write_text(f"{auth[0]}:{hashed}\n")
            config.append(f"auth: {{htpasswd: {{realm: deploykit-tests, path: {workdir / 'htpasswd'}}}}}")
        self.config = workdir / "registry.yml"
        self.config.write_text("\n".join(config) + "\n")

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def username(self) -> str | None:
        return self.auth[0] if self.auth else None

    @property
    def password(self) -> str | None:
        return self.auth[1] if self.auth else None

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1).close()
        except urllib.error.HTTPError as exc:
            return exc.code == 401  # up, asking for credentials
        return True

    def start(self) -> None:
        binary = require_binary("docker-registry")
        with open(self.workdir / "registry.log", "ab") as log:
            self.proc = subprocess.Popen([binary, "serve", str(self.config)], stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        wait_until(self._answers, 30, "docker-registry")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="session")
def registry():
    with tempfile.TemporaryDirectory(prefix="dk-registry-") as tmp:
        reg = Registry(Path(tmp))
        reg.start()
        try:
            yield reg
        finally:
            reg.stop()


@pytest.fixture(scope="session")
def auth_registry():
    with tempfile.TemporaryDirectory(prefix="dk-registry-auth-") as tmp:
        reg = Registry(Path(tmp), auth=("ci-bot", secrets.token_urlsafe(12)))
        reg.start()
        try:
            yield reg
        finally:
            reg.stop()
