"""Marathon routing labels: their names and the rules for their values, in one place.

The renderer writes the labels from app.yaml (deploykit.render.marathon), app.yaml validation
checks the values before a deploy (deploykit.spec), and the lb daemon reads and checks them again
(deploykit.lb.labels, since any Marathon client can set labels). All three use the patterns
below, so what `deploykit validate` accepts is what the daemon routes.
HAProxy routing labels follow marathon-lb's names so existing apps keep working;
`{n}` is the port index. deploykit's own labels carry HAProxy-side check settings
and provenance. Durations in DEPLOYKIT_* labels are integer milliseconds.
"""

from __future__ import annotations

import re

HAPROXY_GROUP = "HAPROXY_GROUP"
HAPROXY_PORT_LABEL = "HAPROXY_{n}_{key}"
# ENABLED is marathon-lb's switch to keep one port off the load balancer. Every key here is typed and checked
# by deploykit.lb.labels; marathon-lb's raw-snippet keys (FRONTEND_HEAD, ...) are not here and are never applied.
HAPROXY_PORT_KEYS = frozenset({
    "VHOST", "PATH", "MODE", "BALANCE", "PORT", "STICKY", "REDIRECT_TO_HTTPS", "ENABLED",
    "GROUP", "BIND_ADDR", "BACKEND_WEIGHT", "AUTH", "USE_HSTS", "SSL_CERT",
    "HTTP_BACKEND_PROXYPASS_PATH", "HTTP_BACKEND_REVPROXY_PATH", "HTTP_BACKEND_REDIR",
    # marathon-lb's names and the short ones deploykit documents mean the same
    "NETWORK_ALLOWED", "BACKEND_NETWORK_ALLOWED_ACL", "HEALTHCHECK_PORT_INDEX", "BACKEND_HEALTHCHECK_PORT_INDEX",
})

DEPLOYKIT_CHECK_LABEL = "DEPLOYKIT_{n}_CHECK_{key}"  # key: PATH, INTERVAL_MS, RISE, FALL
DEPLOYKIT_CHECK_KEYS = frozenset({"PATH", "INTERVAL_MS", "RISE", "FALL"})

DEPLOYKIT_CONFIG_HASH = "DEPLOYKIT_CONFIG_HASH"
DEPLOYKIT_GIT_SHA = "DEPLOYKIT_GIT_SHA"
DEPLOYKIT_DEPLOYED_BY = "DEPLOYKIT_DEPLOYED_BY"
DEPLOYKIT_IMAGE = "DEPLOYKIT_IMAGE"
DEPLOYKIT_SPEC_HASH = "DEPLOYKIT_SPEC_HASH"

# Environment variable given to every task: the Consul KV prefix of its config version.
CONFIG_PREFIX_ENV = "DEPLOYKIT_CONFIG_PREFIX"


# Value rules (label values end up inside haproxy.cfg: nothing here can carry a space, quote or '#').
_HOST_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
# RFC 1123 host names in lowercase, no port, no trailing dot; a leading "*." means "any name under it"
# (marathon-lb's wildcard vhosts; HAProxy matches them by suffix).
HOST_NAME = re.compile(rf"(?:\*\.)?{_HOST_LABEL}(?:\.{_HOST_LABEL})*\Z")
HOST_NAME_MAX = 253
# URL path characters that are inert in haproxy.cfg: no quotes, `$`, `#`, backslash, spaces or parentheses.
URL_PATH = re.compile(r"/[A-Za-z0-9._~%/+:@=,;!*&-]{0,254}\Z")
GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")
# A path prefix rewritten by HAProxy regexes (PROXYPASS/REVPROXY): no regex metacharacters at all.
PLAIN_PATH = re.compile(r"/[A-Za-z0-9_~/-]{0,254}\Z")
# A file path on the LB host (HAPROXY_{n}_SSL_CERT): absolute, no spaces, quotes, '$' or '#'.
FILE_PATH = re.compile(r"/[A-Za-z0-9._/+@=,-]{0,1023}\Z")
# HAPROXY_{n}_AUTH: realm:user:crypt(3) hash ($1$ md5, $5$ sha-256, $6$ sha-512, $2b$ bcrypt, $y$ yescrypt).
AUTH_REALM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")
AUTH_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,62}\Z")
PASSWORD_HASH = re.compile(r"\$(?:1|5|6|2[aby]|y|gy|7)\$[A-Za-z0-9./$=,-]{8,512}\Z")
BALANCE_ALGORITHMS = ("roundrobin", "static-rr", "leastconn", "first", "source", "uri", "random")
MODES = ("http", "tcp")


def is_host_name(value: str) -> bool:
    """A vhost deploykit routes: a lowercase host name, or `*.` + one (any name under it)."""
    return len(value) <= HOST_NAME_MAX and HOST_NAME.match(value) is not None


def haproxy_label(n: int, key: str) -> str:
    return HAPROXY_PORT_LABEL.format(n=n, key=key)


def check_label(n: int, key: str) -> str:
    return DEPLOYKIT_CHECK_LABEL.format(n=n, key=key)
