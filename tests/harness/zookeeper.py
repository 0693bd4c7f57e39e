"""A real standalone ZooKeeper (Debian `zookeeper`) on a free port, for one test session."""

from __future__ import annotations

import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.harness.common import free_port, spawn, stop_group, unavailable, wait_until

ZK_CLASSPATH = "/usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:/usr/share/java/*"


def _ruok(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
        s.sendall(b"ruok")
        return s.recv(16) == b"imok"


class ZooKeeper:
    """Start/stop/restart a ZooKeeper server whose data survives restarts."""

    def __init__(self, workdir: Path, port: int | None = None):
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        self.cfg = workdir / "zoo.cfg"
        self.cfg.write_text(
            "tickTime=500\n"
            f"dataDir={workdir / 'data'}\n"
            f"clientPort={self.port}\n"
            "clientPortAddress=127.0.0.1\n"
            "admin.enableServer=false\n"
            "4lw.commands.whitelist=ruok,srvr,mntr\n"
            "minSessionTimeout=1000\n"
        )

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = spawn(["java", "-Xmx256m", "-cp", ZK_CLASSPATH, f"-Dzookeeper.log.dir={self.workdir}",
                           "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(self.cfg)], self.workdir / "zk.out")
        wait_until(lambda: _ruok(self.port), 30, "ZooKeeper")

    def stop(self) -> None:
        stop_group(self.proc)
        self.proc = None


def zookeeper_available() -> bool:
    return Path("/usr/share/java/zookeeper.jar").exists()


def require_zookeeper() -> None:
    """For tests that start their own ZooKeeper (to stop/restart it): fails in CI when it is missing, else skips."""
    if not zookeeper_available():
        unavailable("ZooKeeper is not installed (run scripts/setup.sh)")


@pytest.fixture(scope="session")
def zookeeper():
    """A running ZooKeeper; `.hosts` is "127.0.0.1:PORT". Fails (not skips) in CI if missing."""
    require_zookeeper()
    with tempfile.TemporaryDirectory(prefix="dk-zk-") as tmp:
        zk = ZooKeeper(Path(tmp))
        zk.start()
        try:
            yield zk
        finally:
            zk.stop()
