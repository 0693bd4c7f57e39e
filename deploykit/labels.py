"""Marathon label names shared by the renderer (writes them) and the lb daemon (reads them).

HAProxy routing labels follow marathon-lb's names so existing apps keep working;
`{n}` is the port index. deploykit's own labels carry HAProxy-side check settings
and provenance. Durations in DEPLOYKIT_* labels are integer milliseconds.
"""

from __future__ import annotations

HAPROXY_GROUP = "HAPROXY_GROUP"
HAPROXY_PORT_LABEL = "HAPROXY_{n}_{key}"  # key: VHOST, PATH, MODE, BALANCE, PORT, STICKY, REDIRECT_TO_HTTPS
HAPROXY_PORT_KEYS = ("VHOST", "PATH", "MODE", "BALANCE", "PORT", "STICKY", "REDIRECT_TO_HTTPS")

DEPLOYKIT_CHECK_LABEL = "DEPLOYKIT_{n}_CHECK_{key}"  # key: PATH, INTERVAL_MS, RISE, FALL
DEPLOYKIT_CHECK_KEYS = ("PATH", "INTERVAL_MS", "RISE", "FALL")

DEPLOYKIT_CONFIG_HASH = "DEPLOYKIT_CONFIG_HASH"
DEPLOYKIT_GIT_SHA = "DEPLOYKIT_GIT_SHA"
DEPLOYKIT_DEPLOYED_BY = "DEPLOYKIT_DEPLOYED_BY"
DEPLOYKIT_IMAGE = "DEPLOYKIT_IMAGE"
DEPLOYKIT_SPEC_HASH = "DEPLOYKIT_SPEC_HASH"

# Environment variable given to every task: the Consul KV prefix of its config version.
CONFIG_PREFIX_ENV = "DEPLOYKIT_CONFIG_PREFIX"


def haproxy_label(n: int, key: str) -> str:
    return HAPROXY_PORT_LABEL.format(n=n, key=key)


def check_label(n: int, key: str) -> str:
    return DEPLOYKIT_CHECK_LABEL.format(n=n, key=key)
