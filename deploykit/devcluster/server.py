"""One process, one asyncio loop: the Marathon API on one port and the Consul KV API on another.

With `--zk`, the node takes part in Marathon's leader election: the leader runs tasks and
deployments; a standby runs nothing and forwards requests to the leader (302 for
/v2/events). Apps and versions live in the state dir, so a standby sharing the state
dir takes over the leader's apps when it is promoted (docs/devcluster.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from deploykit.devcluster.api import MARATHON_VERSION, MarathonApi, basic_auth_middleware, marathon_errors
from deploykit.devcluster.deployments import DeploymentManager
from deploykit.devcluster.events import EventBus
from deploykit.devcluster.leader import LeaderLatch, leader_middleware
from deploykit.devcluster.scheduler import AppRuntime, Scheduler
from deploykit.devcluster.store import AppStore
from deploykit.devcluster.tasks import PortAllocator
from deploykit.devcluster.util import VersionClock

log = logging.getLogger(__name__)


@dataclass
class Config:
    marathon_port: int = 8080
    consul_port: int | None = 8500
    state_dir: Path = Path(".deploykit/devcluster")
    zk: str | None = None
    zk_session_timeout: float = 10.0
    hostname: str = "127.0.0.1"
    bind: str = "127.0.0.1"
    event_heartbeat: float = 10.0
    event_max_outstanding: int = 1000
    port_range: tuple[int, int] = (31000, 32000)
    max_body: int = 1024 * 1024
    deployment_start_delay: float = 0.0
    health_early_poll: float = 0.25
    http_credentials: str | None = None  # "user:password" turns on HTTP basic auth for the Marathon API
    consul_options: dict[str, Any] | None = None


class DevclusterNode:
    """Serves both APIs; runs the scheduler while it is the Marathon leader."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.ident = f"{cfg.hostname}:{cfg.marathon_port}"
        self.is_leader = False
        self.role = "standby"  # leader | suspended | standby
        self.bus = EventBus(cfg.event_max_outstanding)
        self.clock = VersionClock()
        self.store = AppStore(cfg.state_dir)
        self.sched = Scheduler(cfg.state_dir, cfg.state_dir / "marathon" / "run" / str(cfg.marathon_port),
                               self.bus, PortAllocator(*cfg.port_range), early_poll=cfg.health_early_poll,
                               node_port=cfg.marathon_port)
        self.deps = DeploymentManager(self.sched, self.store, self.bus, self.clock, cfg.deployment_start_delay)
        self.latch: LeaderLatch | None = None
        self.proxy_session: aiohttp.ClientSession | None = None
        self._transition_lock = asyncio.Lock()
        self._runners: list[web.AppRunner] = []
        self._pending: set[asyncio.Task] = set()
        self.framework_id = self.store.framework_id()

    # --- what the API needs ----------------------------------------------------------------------------
    def current_leader(self) -> str | None:
        if self.latch is None:
            return self.ident
        return self.latch.leader_ident

    def info(self) -> dict:
        cfg = self.cfg
        return {
            "name": "marathon", "version": MARATHON_VERSION, "buildref": "deploykit-devcluster",
            "elected": self.is_leader, "leader": self.current_leader(), "frameworkId": self.framework_id,
            "marathon_config": {
                "hostname": cfg.hostname, "ha": cfg.zk is not None, "executor": "//cmd", "framework_name": "marathon",
                "local_port_min": 10000, "local_port_max": 20000, "master": "local", "features": [],
                "webui_url": f"http://{self.ident}", "mesos_role": None, "mesos_user": None,
            },
            "zookeeper_config": {"zk": cfg.zk, "zk_max_versions": self.store.max_versions,
                                 "zk_session_timeout": int(cfg.zk_session_timeout * 1000), "zk_timeout": 10000},
            "http_config": {"http_port": cfg.marathon_port, "https_port": None},
            "event_subscriber": None,
        }

    # --- run ---------------------------------------------------------------------------------------------
    def marathon_app(self) -> web.Application:
        api = MarathonApi(self.sched, self.deps, self.bus, self.clock, info=self.info,
                          heartbeat=self.cfg.event_heartbeat, abdicate=self.abdicate if self.cfg.zk else None)
        middlewares = [leader_middleware(self), marathon_errors]
        if self.cfg.http_credentials:
            middlewares.insert(0, basic_auth_middleware(self.cfg.http_credentials))
        app = web.Application(middlewares=middlewares, client_max_size=self.cfg.max_body)
        app.add_routes(api.routes())
        return app

    async def _serve(self, app: web.Application, port: int) -> None:
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
        await runner.setup()
        await web.TCPSite(runner, self.cfg.bind, port).start()
        self._runners.append(runner)

    async def run(self, stop: asyncio.Event) -> None:
        self.proxy_session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        try:
            await self._serve(self.marathon_app(), self.cfg.marathon_port)
            if self.cfg.consul_port:
                await self._serve(self._consul_app(), self.cfg.consul_port)
            log.info("marathon API on http://%s:%s%s", self.cfg.bind, self.cfg.marathon_port,
                     f", consul API on http://{self.cfg.bind}:{self.cfg.consul_port}" if self.cfg.consul_port else "")
            if self.cfg.zk:
                loop = asyncio.get_running_loop()
                self.latch = LeaderLatch(self.cfg.zk, self.ident, loop, self._on_leader_change,
                                         session_timeout=self.cfg.zk_session_timeout)
                await asyncio.to_thread(self.latch.start)
            else:
                await self._transition(True, "no-zk")
            await stop.wait()
        finally:
            await self.shutdown()

    def _consul_app(self) -> web.Application:
        """The Consul stand-in on `<state dir>/consul`, or on a dir of its own when another node holds it.

        Two nodes sharing a state dir (leader + standby) must not write one Consul journal; the first
        takes `consul/` (an flock held for the process's life), the other uses `consul-<marathon port>`.
        """
        import fcntl

        from deploykit.devcluster.consul import create_app

        self.cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self._consul_lock = open(self.cfg.state_dir / "consul.lock", "w")  # noqa: SIM115 - held until exit
        try:
            fcntl.flock(self._consul_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            consul_dir = self.cfg.state_dir / "consul"
        except OSError:
            self._consul_lock.close()
            consul_dir = self.cfg.state_dir / f"consul-{self.cfg.marathon_port}"
            log.warning("another node serves Consul from %s/consul; this one uses %s", self.cfg.state_dir, consul_dir)
        return create_app(consul_dir, **(self.cfg.consul_options or {}))

    def _on_leader_change(self, is_leader: bool, reason: str) -> None:
        task = asyncio.create_task(self._transition(is_leader, reason))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _transition(self, leader: bool, reason: str = "check") -> None:
        """leader / suspended / standby.

        A lost ZooKeeper session only *suspends* a leader: its tasks keep running (as they would on
        Mesos agents) and are adopted again if it is re-elected; if another node leads instead, they
        are stopped. Abdication and shutdown stop the tasks at once.
        """
        async with self._transition_lock:
            if leader and reason != "shutdown":
                if self.role == "suspended":
                    log.warning("re-elected as Marathon leader (%s); adopting the running tasks", self.ident)
                    self._merge_store()
                    self.sched.resume()
                    self.deps.resume()
                elif self.role == "standby":
                    log.info("elected as Marathon leader (%s)", self.ident)
                    await self.sched.start()
                    for app_id, doc in self.store.load_all().items():
                        self.sched.apps[app_id] = AppRuntime(doc["current"], doc["versions"])
                    await self.sched.recover()  # adopt this node's containers that outlived a crash
                    resumed = self.deps.restore()
                    if resumed:
                        log.info("resuming %d deployment(s) left by the previous leader", resumed)
                    self.sched.changed.notify()
                self.role = "leader"
                self.is_leader = True
                return
            if self.role == "leader" and reason == "lost":
                log.warning("ZooKeeper session lost: suspended (tasks keep running until another node leads)")
                self.is_leader = False
                self.role = "suspended"
                self.sched.pause()
                await self.deps.suspend()
                return
            other = self.current_leader()
            stop = self.role == "leader" or (
                self.role == "suspended" and (reason in ("shutdown", "abdicate") or (other and other != self.ident)))
            if stop:
                log.warning("no longer the Marathon leader (%s, %s); stopping tasks", self.ident, reason)
                self.is_leader = False
                self.role = "standby"
                await self.deps.stop_all()
                await self.sched.stop()

    def _merge_store(self) -> None:
        """After a suspension: take the stored apps (another leader may have changed them)."""
        stored = self.store.load_all()
        for app_id, doc in stored.items():
            rt = self.sched.apps.get(app_id)
            if rt is None:
                self.sched.apps[app_id] = AppRuntime(doc["current"], doc["versions"])
            else:
                rt.app, rt.versions = doc["current"], doc["versions"]
        for app_id in [a for a in self.sched.apps if a not in stored]:
            rt = self.sched.apps.pop(app_id)
            rt.deleted = True
            self.sched.zombies[app_id] = rt

    async def abdicate(self) -> None:
        if self.latch is not None:
            await asyncio.to_thread(self.latch.abdicate)

    async def shutdown(self) -> None:
        if self.latch is not None:
            await asyncio.to_thread(self.latch.stop)
        await self._transition(False, "shutdown")
        self.bus.close_all()
        for runner in self._runners:
            with contextlib.suppress(Exception):
                await runner.cleanup()
        self._runners.clear()
        if self.proxy_session:
            await self.proxy_session.close()
