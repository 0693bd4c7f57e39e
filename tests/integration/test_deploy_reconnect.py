"""The deploy survives its connections to Marathon being cut mid-wait (SSE reconnects, polls retry)."""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import socket
import threading
from pathlib import Path

import pytest
import yaml

from deploykit.clients.consul import ConsulClient
from deploykit.clients.locks import ConsulDeployLock, Holder
from deploykit.clients.marathon import MarathonClient
from deploykit.deploy import Clients, DeployOptions, deploy
from tests.harness.devcluster import HELLO_AS_COMMAND

pytestmark = pytest.mark.integration

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"


class CuttableProxy:
    """A TCP proxy to one upstream whose live connections can all be cut at once."""

    def __init__(self, upstream_port: int):
        self.upstream = ("127.0.0.1", upstream_port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> int:
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        return len(conns)

    def close(self) -> None:
        self.closed = True
        self.server.close()
        self.cut()


def test_deploy_ends_correctly_after_connections_are_cut(devcluster_factory, tmp_path):
    low = random.randrange(20000, 29000, 500)  # task ports of our own (other devclusters use 31000-32000)
    devcluster = devcluster_factory(extra_args=["--task-port-range", f"{low}-{low + 499}"])
    for name in ("server.py", "config"):
        src = HELLO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    doc = yaml.safe_load((HELLO / "app.yaml").read_text())
    doc.update(id="/it/cut", health={"path": "/health", "port": "http", "grace": "2s", "interval": "2s",
                                     "timeout": "1s", "max_failures": 2})
    doc["ports"][0]["service"] = 10631
    doc["environments"]["local"] = dict(HELLO_AS_COMMAND)
    (tmp_path / "v1.yaml").write_text(yaml.safe_dump(doc))
    doc["env"] = {"GREETING": "v2"}
    (tmp_path / "v2.yaml").write_text(yaml.safe_dump(doc))

    proxy = CuttableProxy(devcluster.marathon_port)
    consul = ConsulClient(devcluster.consul_url)
    marathon = MarathonClient([proxy.url], follow_leader=False)  # stay behind the proxy
    clients = Clients(marathon=marathon, consul=consul, lock_factory=lambda a: ConsulDeployLock(
        consul, "deploykit/locks", "local", a, Holder.current()))
    cuts = []

    def progress(phase: str, info: dict) -> None:
        # "deploy" is reported after subscribing, right before the PUT: the deployment's
        # events can only arrive on a reconnected stream (or be found by polling)
        if phase == "deploy" and not cuts:
            cuts.append(proxy.cut())

    try:
        common = dict(env_name="local", env_dir=str(devcluster.env_dir), event_heartbeat=1.0)
        assert deploy(DeployOptions(app_path=str(tmp_path / "v1.yaml"), **common), clients=clients)["result"] == \
            "success"
        report = deploy(DeployOptions(app_path=str(tmp_path / "v2.yaml"), **common), clients=clients,
                        progress=progress)
    finally:
        marathon.close()
        consul.close()
        proxy.close()
    assert cuts and cuts[0] >= 1  # the event stream (and any pooled REST connection) was cut
    assert report["result"] == "success"
    assert report["event_stream"]["deploy"]["connects"] >= 2, json.dumps(report)  # the stream came back
    app = devcluster.get("/v2/apps/it/cut?embed=app.tasks")["app"]
    assert app["env"]["GREETING"] == "v2" and len(app["tasks"]) == 2
