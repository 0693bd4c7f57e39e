"""Client wiring: the Marathon, Consul and lock clients an environment file describes.

`connected(environment, clients=...)` is the one way a command gets its clients: injected
ones (tests, other tools) are used as they are and left open for their owner; otherwise
they are built here and closed, every one of them, when the block ends however it ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from deploykit.errors import DeployKitError

if TYPE_CHECKING:
    from kazoo.client import KazooClient

    from deploykit.clients.consul import ConsulClient
    from deploykit.clients.locks import DeployLock
    from deploykit.clients.marathon import MarathonClient
    from deploykit.envs import Environment

log = logging.getLogger(__name__)


@dataclass
class Clients:
    """Everything that talks to the network, injected (tests pass their own)."""

    marathon: MarathonClient
    consul: ConsulClient
    lock_factory: Callable[[str], DeployLock]  # app_id -> an unacquired lock for (environment, app)


@contextlib.contextmanager
def connected(
    environment: Environment, environ: Mapping[str, str] | None = None, *, clients: Clients | None = None
) -> Iterator[Clients]:
    """Yield `clients` if given (their owner closes them), else build them and close them afterwards."""
    if clients is not None:
        yield clients
        return
    with contextlib.ExitStack() as stack:
        yield _build(environment, os.environ if environ is None else environ, stack)


def _closing(stack: contextlib.ExitStack, fn: Callable[[], object]) -> None:
    """Close on exit; a failing close must not hide the command's own result or error."""

    def close() -> None:
        with contextlib.suppress(Exception):
            fn()

    stack.callback(close)


def _build(environment: Environment, environ: Mapping[str, str], stack: contextlib.ExitStack) -> Clients:
    from deploykit.clients.consul import ConsulClient
    from deploykit.clients.locks import ConsulDeployLock, Holder, ZkDeployLock
    from deploykit.clients.marathon import MarathonClient, static_leader, zk_leader_provider
    from deploykit.clients.zk import parse_zk_url

    auth = None
    if environment.marathon.auth:
        auth = (environment.marathon.auth.user, environment.marathon_password(environ) or "")
    consul = ConsulClient(environment.consul.url, token=environment.consul_token(environ))
    _closing(stack, consul.close)
    zk_client: KazooClient | None = None

    def zk() -> KazooClient:
        """One ZooKeeper connection, opened on first use (leader lookup or lock)."""
        nonlocal zk_client
        if zk_client is None:
            from deploykit.clients.zk import connect

            hosts = environment.zookeeper.hosts if environment.zookeeper else None
            if hosts is None and environment.marathon.zk:
                hosts = parse_zk_url(environment.marathon.zk).hosts
            client = zk_client = connect(hosts)
            _closing(stack, lambda: (client.stop(), client.close()))
        return zk_client

    if environment.marathon.zk:
        url = parse_zk_url(environment.marathon.zk)
        fallback = [u.rstrip("/") for u in environment.marathon.urls]

        def provider() -> list[str]:
            try:
                client = zk()
            except DeployKitError as exc:  # ZooKeeper down: Marathon's own URLs still work
                log.warning("no ZooKeeper for the Marathon leader (%s); using the URL list", exc)
                return fallback
            return zk_leader_provider(client, url.path, fallback)()

        marathon = MarathonClient(provider, auth=auth)
    else:
        marathon = MarathonClient(static_leader(environment.marathon.urls), auth=auth)
    _closing(stack, marathon.close)

    def lock_factory(app_id: str) -> DeployLock:
        holder = Holder.current(environ)
        if environment.lock == "zookeeper":
            root = environment.zookeeper.lock_root if environment.zookeeper else "/deploykit/locks"
            return ZkDeployLock(zk(), root, environment.name, app_id, holder)
        return ConsulDeployLock(consul, "deploykit/locks", environment.name, app_id, holder)

    return Clients(marathon=marathon, consul=consul, lock_factory=lock_factory)
