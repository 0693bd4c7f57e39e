"""Parse an app's HAProxy labels into a typed, validated routing spec (pure, no I/O).

Label values end up inside haproxy.cfg, so every value is checked against a strict
pattern here: anything that could smuggle a directive (newline, `#`, spaces, quotes,
unknown keywords) raises `LabelError` and the caller skips THAT app only. Raw-snippet
labels from marathon-lb (HAPROXY_{n}_FRONTEND_HEAD and friends) are never pasted into
the config; they are reported as ignored so operators can see why they have no effect.
Names follow deploykit.labels (the renderer writes them, this module reads them).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import NamedTuple

from deploykit.labels import (
    AUTH_REALM,
    AUTH_USER,
    BALANCE_ALGORITHMS,
    DEPLOYKIT_CHECK_KEYS,
    FILE_PATH,
    GROUP_NAME,
    HAPROXY_GROUP,
    HAPROXY_PORT_KEYS,
    MODES,
    PASSWORD_HASH,
    PLAIN_PATH,
    URL_PATH,
    is_host_name,
)

DEFAULT_BALANCE = "roundrobin"
DEFAULT_CHECK_INTERVAL_MS = 2000
DEFAULT_CHECK_RISE = 2
DEFAULT_CHECK_FALL = 3

_HAPROXY_INDEXED = re.compile(r"HAPROXY_(\d{1,3})_([A-Z0-9_]+)\Z")
_DEPLOYKIT_CHECK = re.compile(r"DEPLOYKIT_(\d{1,3})_CHECK_([A-Z0-9_]+)\Z")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f#]")


class LabelError(ValueError):
    """A label value is invalid or unsafe; the app carrying it is not routed."""


class Rejected(NamedTuple):
    """An app left out of the routing model, and why (for the daemon's log and metric)."""

    app_id: str
    reason: str
    holder: str | None = None  # the app that keeps the contested route, for a route conflict


class Ignored(NamedTuple):
    """A label that has no effect (raw HAProxy snippets are never pasted into the config)."""

    app_id: str
    label: str
    reason: str


class CheckSpec(NamedTuple):
    """HAProxy-side health check for one port: from DEPLOYKIT_{n}_CHECK_* labels, else from Marathon's
    healthChecks (lb.appstate.marathon_check), else a plain TCP connect check with these defaults."""

    path: str | None = None  # None: plain TCP connect check
    interval_ms: int = DEFAULT_CHECK_INTERVAL_MS
    rise: int = DEFAULT_CHECK_RISE
    fall: int = DEFAULT_CHECK_FALL
    expect: str = "200"  # http-check expect status (Marathon counts 200-399 as healthy)
    ssl: bool = False  # check over TLS (Marathon HTTPS / MESOS_HTTPS checks)
    timeout_ms: int = 0  # 0: the defaults' `timeout check`


class Auth(NamedTuple):
    """HAPROXY_{n}_AUTH: HTTP basic auth against one user whose password is a crypt(3) hash."""

    realm: str
    user: str
    password_hash: str


class PortLabels(NamedTuple):
    """Routing settings for port index `index` of an app, as the labels ask."""

    index: int
    mode: str | None = None  # None: http when vhosts are given, else tcp
    vhosts: tuple[str, ...] = ()
    path: str | None = None
    balance: str = DEFAULT_BALANCE
    port: int | None = None  # service-port override (HAPROXY_{n}_PORT)
    sticky: bool = False
    redirect_to_https: bool = False
    check: CheckSpec | None = None  # None: no DEPLOYKIT_{n}_CHECK_* label (Marathon's check is used)
    enabled: bool = True
    groups: tuple[str, ...] = ()  # HAPROXY_{n}_GROUP: this port's groups instead of HAPROXY_GROUP's
    bind_address: str | None = None  # HAPROXY_{n}_BIND_ADDR for the service-port frontend ("" = every address)
    weight: int = 0  # HAPROXY_{n}_BACKEND_WEIGHT: higher weights' http rules are tried first
    auth: Auth | None = None
    network_allowed: tuple[str, ...] = ()  # source networks allowed (CIDR); empty: everyone
    proxypass_path: str | None = None  # strip this prefix before the request reaches the app
    revproxy_path: str | None = None  # prefix the app's Location headers with this
    redirect_root: str | None = None  # HTTP_BACKEND_REDIR: "/" redirects here (301)
    use_hsts: bool = False
    ssl_cert: str | None = None  # a certificate file on the LB host for the https frontend
    healthcheck_port_index: int | None = None  # Marathon health check of this port index decides


class AppLabels(NamedTuple):
    """Everything routing needs from an app's labels."""

    groups: tuple[str, ...]
    ports: dict[int, PortLabels]  # only indexes that have at least one label
    ignored: tuple[tuple[str, str], ...] = ()  # (label, reason)

    def for_port(self, index: int) -> PortLabels:
        found = self.ports.get(index)
        return found if found is not None else PortLabels(index=index)


def _show(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _clean(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise LabelError(f"label {key}: value must be a string, got {type(value).__name__}")
    if _BAD_CHARS.search(value) is not None:
        what = "'#'" if "#" in value else "a control character (newline, tab, ...)"
        raise LabelError(f"label {key}: value {_show(value)} contains {what}")
    return value.strip()


def _int(key: str, value: str, low: int, high: int) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > 9:
        raise LabelError(f"label {key}: {_show(value)} is not a whole number")
    number = int(value)
    if not low <= number <= high:
        raise LabelError(f"label {key}: {number} is outside {low}..{high}")
    return number


def _bool(key: str, value: str) -> bool:
    low = value.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise LabelError(f"label {key}: {_show(value)} is not true or false")


def _path(key: str, value: str) -> str:
    if not URL_PATH.match(value):
        raise LabelError(
            f"label {key}: {_show(value)} is not a safe URL path "
            "(must start with '/', no spaces, quotes, '$', '#', '\\' or parentheses)"
        )
    return value


def _hosts(key: str, value: str) -> tuple[str, ...]:
    hosts = []
    for raw in value.split(","):
        host = raw.strip().lower()
        if not host:
            continue
        if not is_host_name(host):
            raise LabelError(f"label {key}: {_show(raw.strip())} is not a valid host name")
        if host not in hosts:
            hosts.append(host)
    if not hosts:
        raise LabelError(f"label {key}: no host names given")
    return tuple(sorted(hosts))


def _groups(value: str, key: str = HAPROXY_GROUP) -> tuple[str, ...]:
    groups = []
    for raw in value.split(","):
        group = raw.strip()
        if not group:
            continue
        if not GROUP_NAME.match(group):
            raise LabelError(f"label {key}: {_show(group)} is not a valid group name")
        groups.append(group)
    return tuple(sorted(set(groups)))


_PORT_FIELDS = {"VHOST": "vhosts", "PATH": "path", "MODE": "mode", "BALANCE": "balance", "PORT": "port",
                "STICKY": "sticky", "REDIRECT_TO_HTTPS": "redirect_to_https", "ENABLED": "enabled",
                "GROUP": "groups", "BIND_ADDR": "bind_address", "BACKEND_WEIGHT": "weight", "AUTH": "auth",
                "NETWORK_ALLOWED": "network_allowed", "BACKEND_NETWORK_ALLOWED_ACL": "network_allowed",
                "HTTP_BACKEND_PROXYPASS_PATH": "proxypass_path", "HTTP_BACKEND_REVPROXY_PATH": "revproxy_path",
                "HTTP_BACKEND_REDIR": "redirect_root", "USE_HSTS": "use_hsts", "SSL_CERT": "ssl_cert",
                "HEALTHCHECK_PORT_INDEX": "healthcheck_port_index",
                "BACKEND_HEALTHCHECK_PORT_INDEX": "healthcheck_port_index"}
_BOOL_KEYS = frozenset({"STICKY", "REDIRECT_TO_HTTPS", "ENABLED", "USE_HSTS"})
_CHECK_FIELDS = {"PATH": "path", "INTERVAL_MS": "interval_ms", "RISE": "rise", "FALL": "fall"}


def _port_value(key: str, name: str, value: str) -> object:
    if name == "VHOST":
        return _hosts(key, value)
    if name == "PATH":
        return _path(key, value)
    if name == "MODE":
        if value.lower() not in MODES:
            raise LabelError(f"label {key}: unknown mode {_show(value)} (use http or tcp)")
        return value.lower()
    if name == "BALANCE":
        if value not in BALANCE_ALGORITHMS:
            algos = ", ".join(BALANCE_ALGORITHMS)
            raise LabelError(f"label {key}: unknown balance algorithm {_show(value)} (use one of {algos})")
        return value
    if name == "PORT":
        return _int(key, value, 1, 65535)
    if name in _BOOL_KEYS:
        return _bool(key, value)
    return _extra_port_value(key, name, value)


def _plain_path(key: str, value: str) -> str:
    if not PLAIN_PATH.match(value):
        raise LabelError(f"label {key}: {_show(value)} is not a plain path prefix (/ then letters, digits, _ ~ / -)")
    return value.rstrip("/") or "/"


def _auth(key: str, value: str) -> Auth:
    parts = value.split(":", 2)
    if len(parts) != 3 or not AUTH_REALM.match(parts[0]) or not AUTH_USER.match(parts[1]):
        raise LabelError(f"label {key}: expected realm:user:password-hash (realm and user: letters, digits, _ . -)")
    if not PASSWORD_HASH.match(parts[2]):
        raise LabelError(f"label {key}: the password must be a crypt(3) hash such as `openssl passwd -6` "
                         "prints ($6$...), never plain text")
    return Auth(*parts)


def _networks(key: str, value: str) -> tuple[str, ...]:
    nets = []
    for raw in value.replace(",", " ").split():
        try:
            net = str(ipaddress.ip_network(raw, strict=False))
        except ValueError:
            raise LabelError(f"label {key}: {_show(raw)} is not an IP address or CIDR network") from None
        if net not in nets:
            nets.append(net)
    if not nets:
        raise LabelError(f"label {key}: no networks given")
    return tuple(nets)


def _bind_address(key: str, value: str) -> str:
    if value in ("*", "0.0.0.0"):
        return ""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise LabelError(f"label {key}: {_show(value)} is not an IP address (or '*' for every address)") from None
    return f"[{address}]" if address.version == 6 else str(address)


def _extra_port_value(key: str, name: str, value: str) -> object:
    """The labels marathon-lb has beyond the routing basics, each typed (never pasted)."""
    if name == "GROUP":
        return _groups(value, key)
    if name == "BIND_ADDR":
        return _bind_address(key, value)
    if name == "BACKEND_WEIGHT":
        return _int(key, value, 0, 10_000)
    if name == "AUTH":
        return _auth(key, value)
    if name in ("NETWORK_ALLOWED", "BACKEND_NETWORK_ALLOWED_ACL"):
        return _networks(key, value)
    if name in ("HTTP_BACKEND_PROXYPASS_PATH", "HTTP_BACKEND_REVPROXY_PATH"):
        return _plain_path(key, value)
    if name == "HTTP_BACKEND_REDIR":
        return _path(key, value)
    if name == "SSL_CERT":
        if not FILE_PATH.match(value) or "/../" in value + "/":
            raise LabelError(f"label {key}: {_show(value)} is not an absolute file path on the LB host")
        return value
    return _int(key, value, 0, 99)  # HEALTHCHECK_PORT_INDEX


def _check_value(key: str, name: str, value: str) -> object:
    if name == "PATH":
        return _path(key, value)
    if name == "INTERVAL_MS":
        return _int(key, value, 100, 3_600_000)
    return _int(key, value, 1, 100)  # RISE, FALL


@functools.lru_cache(maxsize=8192)
def _typed(kind: str, name: str, key: str, value: str) -> object:
    """One label value, checked and typed. Memoised: most values (checks, groups, modes) repeat across apps."""
    value = _clean(key, value)
    if kind == "port":
        return _port_value(key, name, value)
    if kind == "check":
        return _check_value(key, name, value)
    return _groups(value)


@functools.lru_cache(maxsize=2048)
def _classify(key: str) -> tuple[str, int, str] | None:
    """("group"|"port"|"check"|"ignore", port index, setting or reason) for a label name; None if not ours.

    Label names repeat across thousands of apps, so this is memoised.
    """
    if key.startswith("HAPROXY_"):
        if key == HAPROXY_GROUP:
            return ("group", 0, "")
        if key.startswith("HAPROXY_DEPLOYMENT_"):
            return ("ignore", 0, "marathon-lb zero-downtime-deploy (zdd.py) label: deploykit deploy rolls out itself")
        m = _HAPROXY_INDEXED.match(key)
        if m is None or m.group(2) not in HAPROXY_PORT_KEYS:
            return ("ignore", 0, "raw HAProxy settings in labels are never applied")
        return ("port", int(m.group(1)), m.group(2))
    if key.startswith("DEPLOYKIT_") and "_CHECK_" in key:
        m = _DEPLOYKIT_CHECK.match(key)
        if m is None or m.group(2) not in DEPLOYKIT_CHECK_KEYS:
            return ("ignore", 0, "unknown deploykit check label")
        return ("check", int(m.group(1)), m.group(2))
    return None


@functools.lru_cache(maxsize=1024)
def _routing_labels(names: tuple) -> tuple[tuple[str, str, int, str], ...]:
    """(name, kind, port index, setting) of the routing labels among `names`, in name order.

    Apps deployed by the same tooling carry the same label names (their values differ), so
    this is memoised on the whole tuple of names: one lookup per app instead of one per label.
    Name order makes the first bad label the one reported, whatever Marathon's order.
    """
    mine = []
    for key in names:
        kind = _classify(key) if isinstance(key, str) else None
        if kind is not None:
            mine.append((key, *kind))
    mine.sort()
    return tuple(mine)


def parse_labels(labels: dict | None) -> AppLabels:
    """Validate and type an app's labels. Raises LabelError naming the first bad label (in name order).

    Labels that are not deploykit's or marathon-lb's routing labels are left alone; raw
    snippet labels and labels for keys we do not know are listed in `ignored`.
    """
    if not labels:
        return AppLabels(groups=(), ports={})
    if not isinstance(labels, dict):
        raise LabelError("labels must be an object of strings")
    groups: tuple[str, ...] = ()
    port_fields: dict[int, dict] = {}
    check_fields: dict[int, dict] = {}
    ignored: list[tuple[str, str]] = []
    for key, kind, index, name in _routing_labels(tuple(labels)):
        if kind == "ignore":
            ignored.append((key, name))
            continue
        raw = labels[key]
        if not isinstance(raw, str):
            raise LabelError(f"label {key}: value must be a string, got {type(raw).__name__}")
        if not raw or raw.isspace():
            continue  # an empty label means "not set" (UIs leave them behind)
        typed = _typed(kind, name, key, raw)
        if kind == "port":
            port_fields.setdefault(index, {})[_PORT_FIELDS[name]] = typed
        elif kind == "check":
            check_fields.setdefault(index, {})[_CHECK_FIELDS[name]] = typed
        else:
            groups = typed  # type: ignore[assignment]
    ports: dict[int, PortLabels] = {}
    indexes = port_fields.keys() | check_fields.keys()
    for index in sorted(indexes) if len(indexes) > 1 else indexes:
        fields = port_fields.get(index, {})
        if index in check_fields:
            fields["check"] = CheckSpec(**check_fields[index])
        ports[index] = PortLabels(index=index, **fields)
    return AppLabels(groups=groups, ports=ports, ignored=tuple(ignored))
