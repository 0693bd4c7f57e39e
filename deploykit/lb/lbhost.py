"""What the daemon checks on the LB host itself before a reload (I/O): ports it can listen on, certificate
files HAProxy can load, and agent host names resolved to addresses for the Runtime API.

Kept apart from lb.haproxy (the HAProxy process and its sockets) and from the pure model: the model only
sees the answers (`lb.model.refuse_ports`, `refuse_apps`, an injected resolver).
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Callable, Iterable


def unbindable(address: str, ports: Iterable[int]) -> dict[int, str]:
    """Ports HAProxy could not listen on at `address` ("" or "*": every address), with the reason.

    `haproxy -c` never binds, so a port another process holds passes the check and then fails the
    reload, and in HAProxy 2.6 every failed reload pauses all listeners for about two seconds. The probe
    binds the way HAProxy does (SO_REUSEADDR + SO_REUSEPORT): a port held by HAProxy itself (an old
    worker still draining) is free for it, one held by anyone else is not.
    """
    host = "" if address in ("", "*") else address.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    out: dict[int, str] = {}
    for port in ports:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
        except OSError as exc:
            out[port] = f"cannot listen on {address or '*'}:{port} on this host ({exc.strerror or exc})"
        finally:
            sock.close()
    return out



def unbindable_frontends(bound: Iterable, wanted: Iterable) -> dict[int, tuple[str, str]]:
    """Service-port frontends (`PortFrontend`s) in `wanted` this host cannot listen on -> (backend, reason).

    Only the ones the running config (`bound`) does not hold yet are probed: HAProxy holds the others.
    """
    held = {(f.bind_address, f.port) for f in bound}
    fresh: dict[str, dict[int, str]] = {}
    for f in wanted:
        if (f.bind_address, f.port) not in held:
            fresh.setdefault(f.bind_address, {})[f.port] = f.backend
    return {port: (ports[port], reason)
            for address, ports in fresh.items() for port, reason in unbindable(address, ports).items()}


class HostResolver:
    """Agent host name -> IPv4/IPv6 address, cached (`lb.appstate` calls it once per task).

    The Runtime API's `set server addr` takes addresses only, so tasks on agents known by name
    (Mesos agents usually are) would otherwise force a reload for every task move. A name is looked
    up once and kept for `ttl` seconds; after that the next task on it looks it up again, so an agent
    whose address changes is followed (the slot's address changes through the Runtime API). A name
    that does not resolve is remembered as such for a few seconds only (its tasks are not routed).
    """

    def __init__(self, ttl: float = 60.0, negative_ttl: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.clock = clock
        self._cache: dict[str, tuple[str | None, float]] = {}
        self.lookups = 0

    def __call__(self, host: str) -> str | None:
        now = self.clock()
        hit = self._cache.get(host)
        if hit is not None and hit[1] > now:
            return hit[0]
        self.lookups += 1
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            self._cache[host] = (None, now + self.negative_ttl)
            return None
        v4 = [i[4][0] for i in infos if i[0] == socket.AF_INET]
        address = (v4 or [i[4][0] for i in infos])[0] if infos else None
        self._cache[host] = (address, now + (self.ttl if address else self.negative_ttl))
        return address


_CERT_SIDE_FILES = (".key", ".ocsp", ".issuer", ".sctl")


def unloadable_certificates(paths: Iterable[str]) -> dict[str, str]:
    """Certificate files (or folders of them, as HAProxy's `crt`) that HAProxy could not load -> why.

    Each file must hold a certificate and its private key in PEM (as HAProxy wants it; a key in a
    sibling `.key` file is accepted too). Checked before a config naming them is installed, because a
    config HAProxy cannot start with would otherwise fail the reload.
    """
    bad: dict[str, str] = {}
    for path in paths:
        if os.path.isdir(path):
            files = sorted(os.path.join(path, f) for f in os.listdir(path)
                           if not f.startswith(".") and not f.endswith(_CERT_SIDE_FILES))
            files = [f for f in files if os.path.isfile(f)]
            if not files:
                bad[path] = "folder holds no certificate files"
            for f in files:
                why = _certificate_problem(f)
                if why:
                    bad[f] = why
            continue
        why = _certificate_problem(path)
        if why:
            bad[path] = why
    return bad


_CHECKED: dict[tuple[str, int, int], str | None] = {}  # (path, mtime_ns, size) -> problem: checked once per version


def _certificate_problem(path: str) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return "not found"
    key = (path, st.st_mtime_ns, st.st_size)
    if key not in _CHECKED:
        if len(_CHECKED) > 4096:
            _CHECKED.clear()
        _CHECKED[key] = _load_problem(path)
    return _CHECKED[key]


def _load_problem(path: str) -> str | None:
    stem, ext = os.path.splitext(path)
    # the key in the PEM file itself, else (as HAProxy does) in `<file>.key` or `<stem>.key`
    sides = (path + ".key", stem + ".key" if ext in (".pem", ".crt") else "")
    problem = None
    for key in (None, *(k for k in sides if k and os.path.exists(k))):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(path, key)
            return None
        except ssl.SSLError as exc:
            problem = problem or f"not a PEM certificate with its private key ({exc.reason or exc})"
        except OSError as exc:
            return f"cannot read ({exc.strerror or exc})"
    return problem
