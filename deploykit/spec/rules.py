"""Rules that relate several keys, or the app to its environment file.

They read the raw merged mapping defensively (a value of the wrong type is skipped here;
the structural check already reported it), so one run reports structural and cross-field
mistakes together. Each rule yields (path, message, hint); the loader adds file and line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploykit.hints import did_you_mean
from deploykit.labels import CONFIG_PREFIX_ENV, URL_PATH, is_host_name
from deploykit.marathon_fields import SERVER_OWNED_FIELDS
from deploykit.spec.yamlsrc import PathKey

if TYPE_CHECKING:
    from deploykit.envs import Environment

Finding = tuple[PathKey, str, str | None]

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_ENV = re.compile(r"^(PORT\d*|PORTS|HOST|MARATHON_APP_.*|MESOS_.*|DEPLOYKIT_.*)$")
IMAGE = re.compile(
    r"^[a-z0-9]+([._-][a-z0-9]+)*(:\d+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[\w][\w.-]{0,127})?(@sha256:[0-9a-f]{64})?$"
)
KV_KEY = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
URI_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")
CONSUL_VALUE_LIMIT = 512 * 1024


def _d(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def check_all(data: Mapping[str, Any], environment: Environment | None) -> list[Finding]:
    findings: list[Finding] = []
    for rule in RULES:
        findings.extend(rule(data, environment))
    return findings


def rule_cmd_args(data: Mapping[str, Any], env: Environment | None) -> Iterator[Finding]:
    if data.get("cmd") is not None and data.get("args") is not None:
        yield ("args",), "cmd and args cannot both be set", "use cmd for a shell command line or args for an exec list"


def _port_names(data: Mapping[str, Any]) -> list[str]:
    return [p["name"] for p in _l(data.get("ports")) if isinstance(p, Mapping) and isinstance(p.get("name"), str)]


def rule_ports_unique(data: Mapping[str, Any], env: Environment | None) -> Iterator[Finding]:
    seen_names: set[str] = set()
    seen_service: set[int] = set()
    for i, port in enumerate(_l(data.get("ports"))):
        if not isinstance(port, Mapping):
            continue
        name = port.get("name")
        if isinstance(name, str):
            if name in seen_names:
                yield ("ports", i, "name"), f"duplicate port name {name!r}", "port names must be unique"
            seen_names.add(name)
        service = port.get("service")
        if isinstance(service, int) and not isinstance(service, bool) and service:
            if service in seen_service:
                yield ("ports", i, "service"), f"service port {service} is used twice", "service ports must be unique"
            seen_service.add(service)


def rule_named_ports(data: Mapping[str, Any], env: Environment | None) -> Iterator[Finding]:
    names = _port_names(data)
    for section in ("health", "readiness", "haproxy"):
        block = data.get(section)
        if not isinstance(block, Mapping):
            continue
        if not _l(data.get("ports")):
            yield (section,), f"{section} needs a port but the app declares none", "add ports: [{name: http, ...}]"
            continue
        port = block.get("port")
        if isinstance(port, str) and port not in names:
            yield (section, "port"), f"{port!r} is not a declared port", did_you_mean(port, names, fallback="ports")


def rule_network_ports(data: Mapping[str, Any], env: Environment | None) -> Iterator[Finding]:
    network = data.get("network", "bridge")
    process = env is not None and env.marathon.command_tasks(data.get("image"), data.get("cmd"), data.get("args"))
    for i, port in enumerate(_l(data.get("ports"))):
        if not isinstance(port, Mapping):
            continue
        if network == "host" and port.get("container") is not None:
            yield (
                ("ports", i, "container"),
                "a container port cannot be set with network: host",
                f"with host networking the app listens on $PORT{i}; remove container or use network: bridge",
            )
        if network == "bridge" and not process and port.get("container") is None:
            yield (
                ("ports", i, "container"),
                "is required with network: bridge",
                "the port the app listens on inside the container, e.g. container: 8080",
            )


def rule_haproxy_mode(data: Mapping[str, Any], env: Environment | None) -> Iterator[Finding]:
    hap = data.get("haproxy")
    if not isinstance(hap, Mapping) or hap.get("mode") != "tcp":
        return
    if hap.get("vhost"):
        yield ("haproxy", "vhost"), "vhost routing needs mode: http", "set haproxy.mode: http or remove vhost"
    if hap.get("path"):
        yield ("haproxy", "path"), "path routing needs mode: http", "set haproxy.mode: http or remove path"
    check = hap.get("check")
    if isinstance(check, Mapping) and check.get("path"):
        yield ("haproxy", "check", "path"), "an HTTP check path needs mode: http", "remove check.path for a TCP check"


def rule_haproxy_values(data: Mapping[str, Any], env: Environment | None) -> Iterator[Finding]:
    hap = data.get("haproxy")
    if not isinstance(hap, Mapping):
        return
    vhosts = hap.get("vhost")
    for i, vhost in enumerate(vhosts if isinstance(vhosts, list) else []):
        if isinstance(vhost, str) and not is_host_name(vhost):
            yield (("haproxy", "vhost", i), f"{vhost!r} is not a host name",
                   "lowercase, e.g. cart.example.com or *.example.com")
    check = hap.get("check")
    paths = [(("haproxy", "path"), hap.get("path"))]
    if isinstance(check, Mapping):
        paths.append((("haproxy", "check", "path"), check.get("path")))
    for where, path in paths:
        if isinstance(path, str) and not path.startswith("/"):
            yield where, f"{path!r} must start with '/'", f"did you mean '/{path}'?"
        elif isinstance(path, str) and not URL_PATH.match(path):
            yield where, f"{path!r} is not a safe URL path", "no spaces, quotes, '$', '#', '\\' or parentheses"
    group = hap.get("group", "external")
    if env is not None and env.haproxy is not None and isinstance(group, str) and group not in env.haproxy.groups:
        yield (
            ("haproxy", "group"),
            f"group {group!r} is not served in environment {env.name!r}",
            did_you_mean(group, env.haproxy.groups, fallback="groups"),
        )


def rule_security(data: Mapping[str, Any], env: Environment | None) -> Iterator[Finding]:
    if env is None:  # what is allowed is the environment's call
        return
    sec = _d(data.get("security"))
    policy = env.security
    where = f" (set in {env.file})"
    if sec.get("privileged") is True and not policy.allow_privileged:
        yield (
            ("security", "privileged"),
            "privileged containers are not allowed in this environment",
            f"only if default_attributes.deploykit.security.allow_privileged is true{where}",
        )
    allowed = set(policy.allow_cap_add)
    for i, cap in enumerate(_l(sec.get("cap_add"))):
        if isinstance(cap, str) and cap not in allowed and cap.removeprefix("CAP_") not in allowed:
            yield (
                ("security", "cap_add", i),
                f"capability {cap!r} is not allowed in this environment",
                f"allowed: {', '.join(sorted(allowed)) or 'none'} (security.allow_cap_add{where})",
            )


def rule_check_timing(data: Mapping[str, Any], env: Environment | None) -> Iterator[Finding]:
    from deploykit.durations import DurationError, parse_duration

    defaults = {"health": (5.0, 10.0), "readiness": (10.0, 30.0)}
    for section, (timeout_default, interval_default) in defaults.items():
        block = data.get(section)
        if not isinstance(block, Mapping):
            continue
        try:
            timeout = parse_duration(block["timeout"]) if "timeout" in block else timeout_default
            interval = parse_duration(block["interval"]) if "interval" in block else interval_default
        except DurationError:
            continue
        if timeout >= interval:
            key = "timeout" if "timeout" in block else "interval"
            yield (
                (section, key),
                "timeout must be shorter than interval",
                f"e.g. interval: {interval:g}s, timeout: <{interval:g}s",
            )


def rule_upgrade(data: Mapping[str, Any], env: Environment | None) -> Iterator[Finding]:
    up = _d(data.get("upgrade"))
    minimum = up.get("minimum_health_capacity", 1.0)
    over = up.get("maximum_over_capacity", 1.0)
    if minimum == 1 and over == 0:
        yield (
            ("upgrade",),
            "minimum_health_capacity 1 with maximum_over_capacity 0 leaves no room to replace a task",
            "lower minimum_health_capacity or raise maximum_over_capacity",
        )


def rule_env_names(data: Mapping[str, Any], env: Environment | None) -> Iterator[Finding]:
    plain = _d(data.get("env"))
    secrets = _d(data.get("secrets"))
    for section, block in (("env", plain), ("secrets", secrets)):
        for key in block:
            if not ENV_NAME.match(str(key)):
                yield (section, key), f"{key!r} is not a valid environment variable name", "letters, digits and '_'"
            elif RESERVED_ENV.match(str(key)):
                yield (
                    (section, key),
                    f"{key} is set by Marathon or deploykit",
                    f"pick another name ({CONFIG_PREFIX_ENV}, PORT<n> ... are reserved)",
                )
    for key in secrets:
        if key in plain:
            yield ("secrets", key), f"{key} is also set in env", "keep it in one place: secrets for secret values"


def rule_labels(data: Mapping[str, Any], env: Environment | None) -> Iterator[Finding]:
    for key in _d(data.get("labels")):
        if str(key).startswith(("HAPROXY_", "DEPLOYKIT_")):
            yield ("labels", key), f"{key} is a label deploykit sets", "use the haproxy: section for routing"


def rule_tasks(data: Mapping[str, Any], env: Environment | None) -> Iterator[Finding]:
    if env is None:
        return
    if not env.marathon.command_tasks(data.get("image"), data.get("cmd"), data.get("args")) and not data.get("image"):
        yield (
            ("image",),
            f"an image or a cmd is required in environment {env.name!r} (Marathon runs a container or a command)",
            "e.g. image: registry.example.com/shop/cart",
        )
    if env.marathon.tasks == "process" and data.get("cmd") is None and data.get("args") is None:
        yield (
            ("cmd",),
            f"environment {env.name!r} runs tasks as processes, so cmd or args is required",
            f'add environments.{env.name}.cmd, e.g. "python3 server.py"',
        )


def rule_image(data: Mapping[str, Any], env: Environment | None) -> Iterator[Finding]:
    image = data.get("image")
    if isinstance(image, str) and not IMAGE.match(image):
        yield (
            ("image",),
            f"{image!r} is not a valid image reference",
            "lowercase repository, e.g. registry.example.com/shop/cart",
        )


def rule_marathon(data: Mapping[str, Any], env: Environment | None) -> Iterator[Finding]:
    from deploykit.render.schema import app_properties, field_errors

    known = app_properties()
    for key, value in _d(data.get("marathon")).items():
        if key == "id":
            yield ("marathon", key), "the app id comes from the top-level id", "set id: instead"
        elif key in SERVER_OWNED_FIELDS:
            yield ("marathon", key), f"{key} is set by Marathon, not by you", "remove it"
        elif key not in known:
            yield ("marathon", key), "not a Marathon app field", did_you_mean(key, known, fallback="fields")
        else:
            for sub, message in field_errors(key, value):
                yield ("marathon", key, *sub), message, "see the Marathon AppDefinition schema"


def rule_config_keys(data: Mapping[str, Any], env: Environment | None) -> Iterator[Finding]:
    config = _d(data.get("config"))
    values, files = _d(config.get("values")), _d(config.get("files"))
    for section, block in (("values", values), ("files", files)):
        for key in block:
            if not KV_KEY.match(str(key)) or ".." in str(key).split("/"):
                yield (
                    ("config", section, key),
                    f"{key!r} is not a valid config key",
                    "letters, digits, '.', '_', '-' and '/'",
                )
    for key in files:
        if key in values:
            yield (
                ("config", "files", key),
                f"{key!r} is also in config.values",
                "a key lives in values or files, not both",
            )


def rule_overlays(data: Mapping[str, Any], env: Environment | None) -> Iterator[Finding]:
    """Every overlay, not just the chosen one: a typo in the prod overlay is found on a local run."""
    from deploykit.spec.models import AppDoc

    known = [k for k in AppDoc.model_fields if k != "environments"]
    for name, overlay in _d(data.get("environments")).items():
        if not isinstance(overlay, Mapping):
            continue
        for key in overlay:
            if key == "environments":
                yield ("environments", name, key), "overlays cannot be nested", "move it to the top level"
            elif key not in known:
                yield ("environments", name, key), "unknown key", did_you_mean(str(key), known, fallback="known keys")


RULES = (
    rule_cmd_args,
    rule_ports_unique,
    rule_named_ports,
    rule_network_ports,
    rule_haproxy_mode,
    rule_haproxy_values,
    rule_security,
    rule_check_timing,
    rule_upgrade,
    rule_env_names,
    rule_labels,
    rule_tasks,
    rule_image,
    rule_marathon,
    rule_config_keys,
    rule_overlays,
)


def _resolve(app_dir: Path, rel: str) -> Path | None:
    """`rel` under app_dir, or None when no file can have that name (a NUL byte, a name too long)."""
    try:
        return (app_dir / rel).resolve()
    except (ValueError, OSError):
        return None


def load_attachments(data: Mapping[str, Any], app_dir: Path) -> tuple[dict[str, bytes], list[str], list[Finding]]:
    """Read config.files and resolve fetch entries; missing files are findings."""
    findings: list[Finding] = []
    contents: dict[str, bytes] = {}
    for key, rel in _d(_d(data.get("config")).get("files")).items():
        if not isinstance(rel, str):
            continue
        path = _resolve(app_dir, rel)
        if path is None or not path.is_file():
            findings.append((("config", "files", key), f"file {rel!r} not found", f"paths are relative to {app_dir}"))
            continue
        blob = path.read_bytes()
        if len(blob) > CONSUL_VALUE_LIMIT:
            findings.append(
                (("config", "files", key), f"{rel!r} is {len(blob)} bytes", "Consul values are at most 512 KiB")
            )
            continue
        contents[str(key)] = blob
    uris: list[str] = []
    for i, entry in enumerate(_l(data.get("fetch"))):
        if not isinstance(entry, str):
            continue
        if URI_SCHEME.match(entry):
            uris.append(entry)
            continue
        path = _resolve(app_dir, entry)
        if path is None or not path.exists():
            findings.append((("fetch", i), f"{entry!r} not found", f"paths are relative to {app_dir}; or give a URI"))
            continue
        uris.append(path.as_uri())
    return contents, uris, findings
