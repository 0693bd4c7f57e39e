"""`LbSettings`: the operator's settings for the rendered haproxy.cfg, and the one function that builds them.

`deploykit lb render --env E` and `deploykit lb run --env E` both call `settings_from_environment`,
so the same environment gives the same config (tests/unit/test_lb_settings.py checks it end to end).
Pure: the Environment is loaded by the caller.
"""

from __future__ import annotations

import os.path
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from deploykit.errors import Problem, ValidationError
from deploykit.hints import did_you_mean

if TYPE_CHECKING:
    from deploykit.envs import Environment

_NO_EXTRA: Mapping[str, Any] = MappingProxyType({})

# Keys of the environment file's haproxy section that are not settings of the rendered file:
# template_dir picks the Renderer's templates, binary is the HAProxy program the daemon starts.
_NOT_SETTINGS = frozenset({"template_dir", "binary"})
_PATHS = ("config", "master_socket", "stats_socket", "state_file")
# HAProxy 2.6's retry-on keywords (an unknown one would fail `haproxy -c` for every app at once)
RETRY_ON_WORDS = frozenset({
    "none", "conn-failure", "empty-response", "junk-response", "response-timeout", "0rtt-rejected",
    "all-retryable-errors", "401", "403", "404", "408", "425", "500", "501", "502", "503", "504",
})


def _list_item_ok(key: str, value: object) -> bool:
    if not isinstance(value, str) or not value:
        return False
    if key == "groups":
        return True
    return value.startswith("/") and not any(c.isspace() or c in "#\"'\\$" for c in value)


class LbSettings(NamedTuple):
    """Paths, ports and policies for the rendered haproxy.cfg; `extra` is passed to templates as-is."""

    http_port: int = 80
    bind_address: str = ""  # "" binds every address
    config: str = "/etc/haproxy/haproxy.cfg"
    master_socket: str = "/run/haproxy/master.sock"
    stats_socket: str = "/run/haproxy/admin.sock"
    state_file: str = "/var/lib/haproxy/server-state"
    groups: tuple[str, ...] = ()  # empty: every app that has an HAPROXY_GROUP label
    min_slots: int = 8  # server slots per backend, at least (room to scale without a reload)
    headroom: float = 1.5  # slots >= next power of two of tasks * headroom
    hard_stop_after: str = "30m"
    mworker_max_reloads: int = 20
    maxconn: int = 0  # 0: HAProxy derives it from the file-descriptor limit
    timeout_connect: str = "5s"
    timeout_client: str = "60s"
    timeout_server: str = "60s"
    timeout_check: str = "5s"
    timeout_tunnel: str = "1h"
    # marathon-lb binds every routed service port, vhost apps' too; false: vhost/path apps get the
    # shared http(s) frontends only (an edge-only LB)
    service_ports: bool = True
    https_port: int = 443  # the TLS frontend, there when ssl_certs names a certificate (0: never)
    ssl_certs: tuple[str, ...] = ()  # certificate files or folders (HAProxy `crt`), like marathon-lb's --ssl-certs
    # what HAProxy retries on another server: never the app's own answers (a 500 is the app's, and
    # retrying it doubles the load of a failing release and hides it from clients); widen it here
    retry_on: str = "conn-failure empty-response junk-response response-timeout 502 503 504"
    stats_port: int = 0  # stats page (/haproxy?stats) + Prometheus exporter (/metrics); 0: off
    app_id_port: int = 9091  # marathon-lb's X-Marathon-App-Id frontend; 0: off
    extra: Mapping[str, Any] = _NO_EXTRA  # read-only; from_mapping puts unknown keys here

    @classmethod
    def from_mapping(cls, section: dict | None, *, file: str | None = None, path: str = "haproxy") -> LbSettings:
        """Build from an environment file's `haproxy` section, reporting every problem at once.

        Keys this class does not know go to `extra` (other parts of the daemon and custom
        templates read them), so the section can grow without breaking older deploykits.
        """
        section = {k: v for k, v in (section or {}).items() if v is not None}
        if "server_slots" in section:  # the environment file's name for min_slots
            section.setdefault("min_slots", section.pop("server_slots"))
        if "state_file" not in section and isinstance(section.get("config"), str):
            # next to haproxy.cfg: the daemon owns that folder, and it survives restarts
            section["state_file"] = os.path.join(os.path.dirname(section["config"]), "server-state")
        problems: list[Problem] = []
        known = {name: default for name, default in cls._field_defaults.items() if name != "extra"}
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = dict(section.pop("extra", None) or {})
        for key, value in section.items():
            if key not in known:
                extra[key] = value
                continue
            default = known[key]
            where = f"{path}.{key}"
            if key in ("groups", "ssl_certs"):
                if isinstance(value, str):
                    value = [value]
                what = "group names" if key == "groups" else "absolute paths of certificate files or folders"
                if not isinstance(value, (list, tuple)) or not all(_list_item_ok(key, v) for v in value):
                    problems.append(Problem(file, where, f"must be a list of {what}"))
                    continue
                kwargs[key] = tuple(sorted(set(value))) if key == "groups" else tuple(dict.fromkeys(value))
            elif key == "retry_on":
                bad = [w for w in str(value).split() if w not in RETRY_ON_WORDS] if isinstance(value, str) else [value]
                if bad or not isinstance(value, str) or not value.split():
                    problems.append(Problem(file, where, f"unknown retry-on keyword(s) {bad!r}",
                                            hint="use HAProxy's: " + " ".join(sorted(RETRY_ON_WORDS))))
                    continue
                kwargs[key] = " ".join(value.split())
            elif isinstance(default, bool):
                if not isinstance(value, bool):
                    problems.append(Problem(file, where, f"must be true or false, got {value!r}"))
                    continue
                kwargs[key] = value
            elif isinstance(default, int):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    problems.append(Problem(file, where, f"must be a non-negative whole number, got {value!r}"))
                    continue
                kwargs[key] = value
            elif isinstance(default, float):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1:
                    problems.append(Problem(file, where, f"must be a number >= 1, got {value!r}"))
                    continue
                kwargs[key] = float(value)
            else:
                if not isinstance(value, str) or any(c.isspace() or c in "#\"'\\" for c in value):
                    problems.append(Problem(file, where, f"must be text without spaces, quotes or '#', got {value!r}"))
                    continue
                kwargs[key] = value
        for key in ("http_port", "https_port", "stats_port", "app_id_port"):
            port = kwargs.get(key)
            if port is not None and not (1 if key == "http_port" else 0) <= port <= 65535:
                problems.append(Problem(file, f"{path}.{key}", f"{port} is not a TCP port (1..65535)"))
        own = [(k, kwargs.get(k, known[k])) for k in ("http_port", "https_port", "stats_port", "app_id_port")]
        for i, (key, port) in enumerate(own):
            for other, port2 in own[:i]:
                if port and port == port2:
                    problems.append(Problem(file, f"{path}.{key}", f"port {port} is also {path}.{other}"))
        if kwargs.get("min_slots") == 0:
            problems.append(Problem(file, f"{path}.min_slots", "must be at least 1"))
        for key in list(extra):
            hint = did_you_mean(key, known, cutoff=0.8, fallback=None)
            if hint:
                problems.append(Problem(file, f"{path}.{key}", "unknown key", hint=hint))
        if problems:
            raise ValidationError(problems)
        return cls(extra=extra, **kwargs)



def settings_from_environment(env: Environment | None, *, config_path: str | None = None,
                              groups: tuple[str, ...] = (), ssl_certs: tuple[str, ...] = ()) -> LbSettings:
    """LbSettings from an Environment's `haproxy` section, with --haproxy-config / --group on top.

    No environment: the class defaults (an offline `lb render`). With one, the sockets and the
    state file default to the config's folder, so one path is enough for a local run, and every
    path is made absolute: HAProxy re-reads its files on every reload, from wherever it runs by then.
    `bind_address: "*"` (the environment file's spelling of "every address") is written as `bind :PORT`.
    `ssl_certs` (`--ssl-certs`) replace the environment's certificates.
    """
    certs = [os.path.abspath(c) for c in ssl_certs]
    if env is None and config_path is None:
        return LbSettings.from_mapping({"groups": list(groups), "ssl_certs": certs})
    section = env.haproxy.model_dump() if env is not None and env.haproxy is not None else {}
    mapping = {k: v for k, v in section.items() if k not in _NOT_SETTINGS and v is not None}
    if mapping.get("bind_address") == "*":
        mapping["bind_address"] = ""
    if config_path:
        mapping["config"] = config_path
    folder = os.path.dirname(mapping.get("config") or LbSettings._field_defaults["config"])
    if config_path:  # --haproxy-config: "sockets and the state file go next to it"
        mapping["master_socket"] = os.path.join(folder, "master.sock")
        mapping["stats_socket"] = os.path.join(folder, "stats.sock")
    mapping.setdefault("master_socket", os.path.join(folder, "master.sock"))
    mapping.setdefault("stats_socket", os.path.join(folder, "stats.sock"))
    mapping.setdefault("state_file", os.path.join(folder, "server-state"))
    if groups:
        mapping["groups"] = list(groups)
    if certs:
        mapping["ssl_certs"] = certs
    for key in _PATHS:
        mapping[key] = os.path.abspath(mapping[key] if mapping.get(key) else LbSettings._field_defaults[key])
    return LbSettings.from_mapping(mapping, file=str(env.file) if env is not None else None)
