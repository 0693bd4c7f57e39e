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
            if key == "groups":
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list) or not all(isinstance(g, str) and g for g in value):
                    problems.append(Problem(file, where, "must be a list of group names"))
                    continue
                kwargs[key] = tuple(sorted(set(value)))
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
        for key in ("http_port",):
            port = kwargs.get(key)
            if port is not None and not 1 <= port <= 65535:
                problems.append(Problem(file, f"{path}.{key}", f"{port} is not a TCP port (1..65535)"))
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
                              groups: tuple[str, ...] = ()) -> LbSettings:
    """LbSettings from an Environment's `haproxy` section, with --haproxy-config / --group on top.

    No environment: the class defaults (an offline `lb render`). With one, the sockets and the
    state file default to the config's folder, so one path is enough for a local run, and every
    path is made absolute: HAProxy re-reads its files on every reload, from wherever it runs by then.
    `bind_address: "*"` (the environment file's spelling of "every address") is written as `bind :PORT`.
    """
    if env is None and config_path is None:
        return LbSettings(groups=tuple(sorted(set(groups))))
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
    for key in _PATHS:
        mapping[key] = os.path.abspath(mapping[key] if mapping.get(key) else LbSettings._field_defaults[key])
    return LbSettings.from_mapping(mapping, file=str(env.file) if env is not None else None)
