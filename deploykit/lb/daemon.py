"""The `deploykit lb run` loop: Marathon state in, HAProxy changes out.

Shape (supervisor-style, one thread acts):
- Reader threads (event stream, ZooKeeper watcher) only put items on a queue; signal
  handlers only set flags. The loop wakes on the queue (or every `tick`), drains what is
  queued (a burst is handled as one change), and acts.
- An event names the app(s) it touches; only those apps are fetched and re-modelled
  (`lb.model.apply_app`), and `lb.changes.diff` says whether Runtime API commands suffice or a
  reload is needed. A reload waits `coalesce` seconds first so a burst of structural changes
  costs one reload.
- A full resync (GET /v2/apps?embed=apps.tasks) runs after every stream (re)connect, on a
  leader change, on SIGHUP, after a ZooKeeper session comes back, and every `resync_interval`.
  A resync that would remove more than `remove_guard` of all servers is held until the next
  one confirms it (a Marathon failover can briefly report empty or health-less state).
- When Marathon or ZooKeeper is unreachable nothing is changed: HAProxy keeps the last good
  config, and the loop resyncs when the source is back.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from deploykit.errors import DeployKitError, UnreachableError
from deploykit.lb import changes as lbchanges
from deploykit.lb import model as lbmodel
from deploykit.lb import routes_file
from deploykit.lb.haproxy import ConfigInvalid, HAProxy, ReloadFailed, RuntimeResult
from deploykit.lb.lbhost import HostResolver, unbindable_frontends, unloadable_certificates
from deploykit.lb.metrics import Metrics
from deploykit.lb.settings import LbSettings
from deploykit.lb.source import Connected, Event, LeaderChanged, MarathonSource, ZkReconnected, apps_touched

log = logging.getLogger("deploykit.lb")

# More dirty apps than this in one batch: a full snapshot is cheaper than one GET per app.
MAX_APP_FETCHES = 50
# A model whose reload failed is retried this often (a new change retries at once).
RETRY_FAILED = 5.0
# Reloads spent at most finding the app(s) that make a reload fail (each failed one pauses HAProxy's listeners).
MAX_ISOLATION_RELOADS = 8


@dataclass
class DaemonOptions:
    resync_interval: float = 60.0
    coalesce: float = 0.05  # seconds to gather more changes before a reload
    remove_guard: float = 0.5  # fraction of servers a single sync may remove without confirmation
    held_recheck: float = 2.0  # seconds until the confirming resync of a held one
    tick: float = 0.2  # longest sleep; flags set by signal handlers are seen within this
    haproxy_check: float = 1.0  # how often HAProxy's master is asked whether it still runs


@dataclass
class Status:
    """What /healthz and logs report."""

    started: float = field(default_factory=time.time)
    last_sync: float | None = None
    last_sync_failed: bool = False  # the latest full sync attempt could not reach Marathon
    last_error: str | None = None
    leader: str | None = None
    held: bool = False
    reloads: int = 0
    runtime_commands: int = 0


def task_ids(model: lbmodel.RoutingModel | None) -> set[str]:
    if model is None:
        return set()
    return {s.task_id for b in model.backends.values() for s in b.slots if s is not None}


class Daemon:
    """One HAProxy kept in step with one Marathon. Inject the pieces; `run()` blocks until stopped."""

    def __init__(
        self,
        *,
        settings: LbSettings,
        renderer,
        haproxy: HAProxy,
        source: MarathonSource,
        events: queue.Queue,
        metrics: Metrics | None = None,
        options: DaemonOptions | None = None,
        clock: Callable[[], float] = time.monotonic,
        resolver: Callable[[str], str | None] | None = None,
    ):
        self.settings = settings
        self.renderer = renderer
        self.haproxy = haproxy
        self.source = source
        self.events = events
        self.metrics = metrics or Metrics()
        self.opts = options or DaemonOptions()
        self.clock = clock
        self.status = Status()
        # agents named by host name: the Runtime API takes addresses only, so names are resolved (cached)
        self.resolver = resolver if resolver is not None else HostResolver()
        self.model: lbmodel.RoutingModel | None = None  # latest desired state from Marathon
        self.live: lbmodel.RoutingModel | None = None  # what HAProxy is running
        self._stop = False
        self._resync_requested = True
        self._next_resync = 0.0
        self._held_removal: set[str] | None = None
        self._bad_text: str | None = None
        self._failed: dict[int, float] = {}  # id(model) -> when installing it last failed
        self._known_rejects: set[str] = set()
        self._known_dropped: set[tuple[str, str]] = set()
        self._deferred_since: float | None = None
        self._port_refused: dict[str, int] = {}  # app id -> the service port this host could not bind for it
        self._culprits: dict[str, tuple] = {}  # app id -> its routing when it made a reload fail
        self._next_haproxy_check = 0.0

    # ------------------------------------------------------------ signal-safe requests
    def request_stop(self, *_args) -> None:
        self._stop = True

    def request_resync(self, *_args) -> None:
        self._resync_requested = True

    # ------------------------------------------------------------ main loop
    def run(self) -> None:
        self.source.leader.start()
        self.status.leader = self.source.leader.leader
        self.source.start_stream()
        try:
            while not self._stop:
                try:
                    self.step()
                except Exception as exc:  # a bug must not stop routing updates for good: log, back off, go on
                    log.exception("step_failed", extra={"fields": {"error": repr(exc)}})
                    self.status.last_error = repr(exc)
                    self._resync_requested = True
                    time.sleep(1.0)
        finally:
            self.source.stop()
            self.source.leader.stop()

    def step(self, timeout: float | None = None) -> None:
        """Wait for work (at most `timeout`), then handle everything queued."""
        now = self.clock()
        wait = min(self.opts.tick if timeout is None else timeout, max(0.0, self._next_resync - now))
        items = self._drain(wait)
        self._refresh_gauges()
        self._check_haproxy()
        dirty: set[str] = set()
        full = False
        for item in items:
            if isinstance(item, Event):
                self.metrics.events.labels(item.type).inc()
                apps, unknown = apps_touched(item)
                dirty.update(apps)
                full = full or unknown
            elif isinstance(item, Connected):
                self._log("event_stream_connected", url=item.url, reconnect=item.reconnect)
                full = True
            elif isinstance(item, LeaderChanged):
                self.metrics.leader_changes.inc()
                self.status.leader = item.leader
                self._log("leader_changed", leader=item.leader)
                self.source.start_stream()  # reconnect to the new leader; its Connected marker resyncs
                full = True
            elif isinstance(item, ZkReconnected):
                self._log("zookeeper_reconnected")
                full = True
        if self._resync_requested or self.clock() >= self._next_resync:
            full = True
        if full or len(dirty) > MAX_APP_FETCHES:
            self.full_sync()
        elif dirty:
            self.sync_apps(sorted(dirty))
        elif self.model is not None and self.live is not None and self.live is not self.model and not items:
            # A deferred reload (now), or a retry after a failed one (every RETRY_FAILED seconds, not every tick).
            failed_at = self._failed.get(id(self.model))
            if failed_at is None or time.monotonic() - failed_at > RETRY_FAILED:
                self._converge(self.model, None, time.monotonic())

    def _check_haproxy(self) -> None:
        """HAProxy's master exits when its worker dies (kill -9, OOM): start it again from the current model
        at once, without waiting for Marathon, which may be unreachable at that moment."""
        now = self.clock()
        if self.live is None or self.model is None or now < self._next_haproxy_check:
            return
        self._next_haproxy_check = now + self.opts.haproxy_check
        # the master's pid first: during a reload its socket refuses connections for a moment
        if self.haproxy.master_alive() or self.haproxy.running():
            return
        self.metrics.haproxy_restarts.inc()
        self._log("haproxy_down", level=logging.ERROR, action="starting it again from the current routing")
        self.live = None
        self._bad_text = None
        self._install_full(self.model, time.monotonic(), reason="HAProxy was not running")

    def _drain(self, wait: float) -> list[object]:
        items: list[object] = []
        try:
            items.append(self.events.get(timeout=wait) if wait > 0 else self.events.get_nowait())
        except queue.Empty:
            return items
        while True:
            try:
                items.append(self.events.get_nowait())
            except queue.Empty:
                return items

    # ------------------------------------------------------------ syncing
    def full_sync(self) -> bool:
        """Fetch every app and converge HAProxy on it (subject to the removal guard)."""
        self._resync_requested = False
        self._next_resync = self.clock() + self.opts.resync_interval
        t0 = time.monotonic()
        try:
            apps = self.source.snapshot()
        except DeployKitError as exc:
            self.metrics.full_syncs.labels("unreachable").inc()
            self.status.last_error = str(exc)
            self.status.last_sync_failed = True
            self._log("sync_failed", level=logging.WARNING, error=str(exc))
            self._next_resync = self.clock() + min(2.0, self.opts.resync_interval)  # retry soon
            return False
        fetched = time.monotonic()
        holders = self._saved_routes() if self.model is None else None
        new = lbmodel.build_model(apps, self.settings, prev=self.model, holders=holders, resolve=self.resolver)
        if self._guard(new):
            return False
        ok = self._converge(new, None, t0)
        self._log("full_sync", apps=len(apps), servers=new.server_count, applied=ok,
                  seconds=round(time.monotonic() - t0, 3), fetch_seconds=round(fetched - t0, 3))
        if ok:
            self.status.last_sync_failed = False
            self.status.last_sync = time.time()
            self.metrics.last_sync.set(self.status.last_sync)
            self.metrics.full_syncs.labels("applied").inc()
        return ok

    def _guard(self, new: lbmodel.RoutingModel) -> bool:
        """True (hold) when `new` drops more than the guard fraction of the servers HAProxy routes."""
        current = task_ids(self.live)
        if not current:
            self._held_removal = None
            return False
        removed = current - task_ids(new)
        if len(removed) <= self.opts.remove_guard * len(current):
            self._held_removal = None
            self.status.held = False
            return False
        if self._held_removal is not None:
            self._log("held_sync_confirmed", removed=len(removed), servers=len(current))
            self._held_removal = None
            self.status.held = False
            return False
        self._held_removal = removed
        self.status.held = True
        self.metrics.held_syncs.inc()
        self.metrics.full_syncs.labels("held").inc()
        self._log(
            "sync_held",
            level=logging.WARNING,
            removed=len(removed),
            servers=len(current),
            guard=self.opts.remove_guard,
            recheck_in=self.opts.held_recheck,
        )
        self._next_resync = self.clock() + self.opts.held_recheck
        return True

    def sync_apps(self, app_ids: list[str]) -> bool:
        """Re-model only `app_ids` (O(changed)) and push the difference."""
        if self.model is None or self._held_removal is not None:
            return self.full_sync()
        t0 = time.monotonic()
        model = self.model
        changed: set[str] = set()
        try:
            for app_id in app_ids:
                app = self.source.app(app_id)
                if app is None:
                    model, names = lbmodel.remove_app(model, app_id)
                else:
                    model, names = lbmodel.apply_app(model, app)
                changed.update(names)
        except DeployKitError as exc:
            self.status.last_error = str(exc)
            self._log("app_fetch_failed", level=logging.WARNING, error=str(exc))
            self._resync_requested = True
            return False
        in_step = self.live is self.model
        return self._converge(model, changed if in_step else None, t0)

    def _converge(self, new: lbmodel.RoutingModel, only: set[str] | None, t0: float) -> bool:
        new = self._refuse_unbindable(self._refuse_bad_certificates(self._refuse_known_culprits(new)))
        self._report_rejects(new)
        self.model = new
        if self.live is None:
            ok = self._install_full(new, t0, reason="first sync")
            if not ok:  # HAProxy not started or refused the config: try again soon, not in resync_interval
                self._next_resync = self.clock() + min(5.0, self.opts.resync_interval)
            return ok
        diff = lbchanges.diff(self.live, new, only=sorted(only) if only is not None else None)
        if diff.empty:
            self.live = new
            return True
        failed = False
        if diff.server_ops:
            commands = lbchanges.runtime_commands(diff.server_ops)
            try:
                result = self.haproxy.runtime.run(commands)
            except UnreachableError as exc:  # HAProxy gone: the full install below restarts it
                self._log("haproxy_unreachable", level=logging.ERROR, error=str(exc))
                result = RuntimeResult(sent=0, failed=[(c, "unreachable") for c in commands[:5]])
            self.metrics.runtime_commands.labels("ok").inc(max(0, result.sent - len(result.failed)))
            self.status.runtime_commands += result.sent
            if result.failed:
                failed = True
                self.metrics.runtime_commands.labels("failed").inc(len(result.failed))
                self._log("runtime_commands_failed", level=logging.WARNING, failed=result.failed[:5])
            else:
                self._log(
                    "runtime_update",
                    commands=result.sent,
                    batches=result.batches,
                    backends=sorted({op.backend for op in diff.server_ops})[:20],
                )
        if diff.reload_needed or failed:
            reasons = diff.reasons or ["runtime commands failed"]
            if self._defer_reload():
                return True
            self._deferred_since = None
            return self._install_full(new, t0, reason="; ".join(reasons[:5]), force=failed)
        self.live = new
        self.metrics.apply_seconds.observe(time.monotonic() - t0)
        return True

    def _defer_reload(self) -> bool:
        """Gather a burst before reloading: True when more changes arrived within `coalesce` seconds.

        The arrivals go back on the queue; the next step handles them together with this change,
        so N structural changes in a burst cost one reload. Capped at 20 windows.
        """
        if self.opts.coalesce <= 0 or self._stop:
            return False
        now = time.monotonic()
        if self._deferred_since is not None and now - self._deferred_since > 20 * self.opts.coalesce:
            return False
        more = self._drain(self.opts.coalesce)
        if not more:
            return False
        if self._deferred_since is None:
            self._deferred_since = now
        for item in more:
            self.events.put(item)
        return True

    def _install_full(self, new: lbmodel.RoutingModel, t0: float, reason: str, force: bool = False,
                      isolate: bool = True) -> bool:
        r0 = time.monotonic()
        try:
            text = self.renderer.render(new)
        except DeployKitError as exc:
            self.metrics.config_rejected.inc()
            self._log("render_failed", level=logging.ERROR, error=str(exc))
            self._failed = {id(new): time.monotonic()}
            return False
        self.metrics.render_seconds.observe(time.monotonic() - r0)
        if text == self._bad_text and not force:
            self._failed = {id(new): time.monotonic()}
            return False  # same broken text as last time: already reported
        bad_certs = unloadable_certificates(self.settings.ssl_certs)
        if bad_certs:  # the operator's error: reported before any reload, the running config stays (retried)
            self.metrics.config_rejected.inc()
            self.status.last_error = "; ".join(f"{p}: {why}" for p, why in bad_certs.items())
            self._log("certificates_unloadable", level=logging.ERROR, certificates=bad_certs,
                      action="configuration not installed; the running one stays")
            self._failed = {id(new): time.monotonic()}
            return False
        try:
            if not self.haproxy.running():
                res = self.haproxy.start(text)
                self._log("haproxy_started", config=str(self.haproxy.config_path), seconds=round(res.seconds, 3))
            else:
                if self.haproxy.last_good is None:
                    self.haproxy.adopt()
                res = self.haproxy.apply(text, force=force)
                if res.reloaded:
                    with contextlib.suppress(DeployKitError):
                        self.metrics.old_workers.set(len(self.haproxy.show_proc().old_workers))
                    self.metrics.reloads.labels("ok").inc()
                    self.status.reloads += 1
                    self._log("reloaded", reason=reason, seconds=round(res.seconds, 3))
        except ConfigInvalid as exc:
            self._bad_text = text
            self.metrics.config_rejected.inc()
            self.metrics.reloads.labels("invalid").inc()
            self.status.last_error = str(exc)
            self._log("config_rejected", level=logging.ERROR, error=str(exc), reason=reason)
            self._failed = {id(new): time.monotonic()}
            return False
        except ReloadFailed as exc:
            self._bad_text = text
            self.metrics.reloads.labels("failed").inc()
            self.status.last_error = str(exc)
            self._log("reload_failed", level=logging.ERROR, error=str(exc))
            self._failed = {id(new): time.monotonic()}
            return self._isolate_failed_reload(new, t0) if isolate else False
        except UnreachableError as exc:
            self.status.last_error = str(exc)
            self._log("haproxy_unreachable", level=logging.ERROR, error=str(exc))
            self._failed = {id(new): time.monotonic()}
            return False
        self._bad_text = None
        self._failed = {}
        self._save_routes(new)
        self.live = new
        self.metrics.apply_seconds.observe(time.monotonic() - t0)
        return True

    def _refuse_unbindable(self, new: lbmodel.RoutingModel) -> lbmodel.RoutingModel:
        """Leave out the service-port frontends this host cannot listen on, before any reload tries.

        A tcp/plain app whose only way in is that port is rejected; a vhost/path app keeps its vhost
        routing and only loses the frontend (lb.claims, `service_port_dropped`). Only ports the running
        config does not bind yet are probed (HAProxy holds the others).
        """
        if self.live is not None and new.port_frontends == self.live.port_frontends:
            return new  # the per-event case: every frontend is already bound (a tuple compare, no probe)
        bound = self.live.port_frontends if self.live is not None else ()
        refused: dict[str, int] = {}
        reasons: dict[int, str] = {}
        for port, (backend, reason) in sorted(unbindable_frontends(bound, new.port_frontends).items()):
            app_id = new.backends[backend].app_id
            if self._port_refused.get(app_id) != port:  # log and count a conflict once, not on every probe
                self.metrics.port_conflicts.inc()
                self._log("port_unavailable", level=logging.WARNING, app=app_id, port=port, reason=reason)
            refused[app_id] = port
            reasons[port] = f"a process on this host ({reason})"
        self._port_refused = refused
        return lbmodel.refuse_ports(new, reasons)

    def _refuse_bad_certificates(self, new: lbmodel.RoutingModel) -> lbmodel.RoutingModel:
        """Apps whose HAPROXY_{n}_SSL_CERT HAProxy could not load are refused (one bad file must not stop
        every reload); the operator's own certificates are checked in `_install_full`."""
        if self.live is not None and new.ssl_certs == self.live.ssl_certs:
            return new  # HAProxy runs with these already: no file read on every event
        own = set(self.settings.ssl_certs)
        wanted = [c for c in new.ssl_certs if c not in own]
        if not wanted:
            return new
        bad = unloadable_certificates(wanted)
        return lbmodel.refuse_apps(new, lbmodel.certificate_rejections(new, bad)) if bad else new

    def _refuse_known_culprits(self, new: lbmodel.RoutingModel) -> lbmodel.RoutingModel:
        """Apps that made a reload fail stay out until their routing changes (no failed reload twice)."""
        apps = new.sources.apps
        self._culprits = {a: st for a, st in self._culprits.items() if a in apps and apps[a].structure == st}
        return lbmodel.refuse_apps(new, dict.fromkeys(self._culprits, "its routing made HAProxy fail to reload"))

    def _isolate_failed_reload(self, new: lbmodel.RoutingModel, t0: float) -> bool:
        """A reload `haproxy -c` accepted still failed: find the app(s) whose change causes it, install the rest.

        The suspects are the apps whose routing differs from what HAProxy runs. All of them are left out
        first (a failure then is not theirs: give up), then added back half by half; a half that fails is
        split again until single apps remain, which are rejected. Each failed attempt costs HAProxy 2.6 a
        ~2 s pause of its listeners, so attempts are capped; bind conflicts, the usual cause, are caught
        by the probe in `_refuse_unbindable` before any reload.
        """
        suspects = lbmodel.routing_changed(self.live, new)
        if not suspects:
            return False
        self._log("reload_isolating", level=logging.WARNING, suspects=suspects[:20], count=len(suspects))
        attempts = 0

        def install(excluded: list[str]) -> bool:
            nonlocal attempts
            attempts += 1
            held = dict.fromkeys(excluded, "held back while isolating a failed HAProxy reload")
            model = lbmodel.refuse_apps(new, held)
            return self._install_full(model, t0, reason="isolating a failed reload", force=True, isolate=False)

        if not install(suspects):
            return False
        accepted: list[str] = []
        bad: list[str] = []
        groups = [suspects]
        while groups and attempts < MAX_ISOLATION_RELOADS:
            group = groups.pop()
            rest = [a for a in suspects if a not in accepted and a not in group]
            if install(rest + bad):
                accepted.extend(group)
            elif len(group) == 1:
                bad.extend(group)
            else:
                half = len(group) // 2
                groups += [group[half:], group[:half]]
        unresolved = [a for a in suspects if a not in accepted and a not in bad]
        culprits = bad + unresolved
        self._culprits.update({a: new.sources.apps[a].structure for a in culprits})
        model = lbmodel.refuse_apps(new, {
            a: "its routing made HAProxy fail to reload" if a in bad else "held back: a reload failed" for a in culprits
        })
        self._report_rejects(model)
        self.metrics.config_rejected.inc(len(culprits))
        self._log("reload_isolated", level=logging.ERROR, rejected=culprits, attempts=attempts)
        self.model = model
        return self.live is model or self._install_full(model, t0, reason="failed reload isolated", isolate=False)

    # ------------------------------------------------------------ route ownership across restarts
    def _save_routes(self, new: lbmodel.RoutingModel) -> None:
        if self.live is not None and self.live.claims == new.claims:
            return
        path = routes_file.path_for(self.haproxy.config_path)
        try:
            routes_file.save(path, new.claims)
        except OSError as exc:  # routing goes on; only a restart would fall back to Marathon's versions
            self._log("routes_not_saved", level=logging.WARNING, path=str(path), error=str(exc))

    def _saved_routes(self) -> dict[tuple, str] | None:
        """The routing installed before a restart, so a holder keeps its routes against a newcomer."""
        path = routes_file.path_for(self.haproxy.config_path)
        try:
            return routes_file.load(path)
        except ValueError as exc:
            self._log("routes_unreadable", level=logging.WARNING, path=str(path), error=str(exc))
            return None

    # ------------------------------------------------------------ reporting
    def _report_rejects(self, model: lbmodel.RoutingModel) -> None:
        rejected = {r.app_id: r for r in model.rejected}
        for app_id in sorted(set(rejected) - self._known_rejects):
            self.metrics.apps_rejected_total.inc()
            holder = rejected[app_id].holder
            if holder is not None:
                self.metrics.route_conflicts.inc()
                self._log("route_conflict", level=logging.WARNING, app=app_id, holder=holder,
                          reason=rejected[app_id].reason)
                continue
            self._log("app_rejected", level=logging.WARNING, app=app_id, reason=rejected[app_id].reason)
        self._known_rejects = set(rejected)
        self.metrics.apps_rejected.set(len(rejected))
        dropped = {(d.app_id, d.reason) for d in model.dropped}
        for app_id, reason in sorted(dropped - self._known_dropped):
            self._log("service_port_dropped", level=logging.WARNING, app=app_id, reason=reason,
                      kept="its vhost/path routing")
        self._known_dropped = dropped

    def _refresh_gauges(self) -> None:
        if self.live is not None:
            self.metrics.servers.set(self.live.server_count)
            self.metrics.backends.set(len(self.live.backends))
        self.metrics.stream_connected.set(1 if self.source.stream_connected else 0)
        zk = self.source.leader.zk_connected
        if zk is not None:
            self.metrics.zk_connected.set(1 if zk else 0)

    def degraded(self) -> list[str]:
        """Why routing may be behind or incomplete although HAProxy serves (empty when all is well)."""
        out = []
        if self.status.last_sync_failed:
            out.append(f"last sync failed: {self.status.last_error}")
        if not self.source.stream_connected:
            out.append("Marathon event stream down: changes are seen only by the periodic resync")
        if self.status.held:
            out.append("a full sync that removes most servers is held until the next one confirms it")
        if self.live is not None:
            empty = lbmodel.starved_apps(self.live)
            if empty:
                out.append(f"{len(empty)} routed app(s) want instances but have no server: {', '.join(empty[:10])}")
        return out

    def health(self) -> tuple[bool, dict]:
        """/healthz: failing (503) without a sync applied within 3 resync intervals or without HAProxy
        answering its master socket; degraded (200, ok false) while routing may be behind or incomplete."""
        last = self.status.last_sync
        fresh = last is not None and time.time() - last < 3 * self.opts.resync_interval + 5
        running = self.haproxy.running()
        problems = self.degraded()
        serving = bool(fresh and running)
        detail = {
            "status": "degraded" if serving and problems else ("ok" if serving else "failing"),
            "degraded": problems,
            "last_sync": last,
            "haproxy_running": running,
            "leader": self.status.leader,
            "held_sync": self.status.held,
            "last_error": self.status.last_error,
            "servers": self.live.server_count if self.live is not None else 0,
            "apps_rejected": len(self._known_rejects),
        }
        return serving, detail

    def _log(self, event: str, level: int = logging.INFO, **fields) -> None:
        log.log(level, event, extra={"fields": fields})
