"""The app.yaml model (DESIGN §3): what each key means, its type, default and range.

Structure only; rules that relate several keys live in deploykit.spec.rules, and rules
that need the environment file there too. Durations are float seconds after parsing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from deploykit.errors import Problem
from deploykit.labels import BALANCE_ALGORITHMS, GROUP_NAME, MODES
from deploykit.spec.fields import ScalarStr, choice, duration, fail, number, pattern

APP_ID_RE = r"^/?([a-z0-9]([a-z0-9.-]*[a-z0-9])?)(/[a-z0-9]([a-z0-9.-]*[a-z0-9])?)*$"
PORT_NAME_RE = r"^[a-z][a-z0-9-]*$"
ENV_NAME_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"

PortName = pattern(PORT_NAME_RE, "port name", "lowercase letters, digits and '-', starting with a letter (e.g. http)")
EnvVarName = pattern(ENV_NAME_RE, "environment variable name", "letters, digits and '_', not starting with a digit")
Port = number(0, 65535, integer=True)


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class BuildSpec(Strict):
    """How `deploykit build` builds the image (paths relative to app.yaml)."""

    context: str = "."
    dockerfile: str = "Dockerfile"
    args: dict[str, ScalarStr] = Field(default_factory=dict)
    target: str | None = None


class PortSpec(Strict):
    """A port the app listens on. `service` is the HAProxy/servicePort (0: Marathon assigns one)."""

    name: PortName
    container: Port | None = None
    service: Port = 0
    protocol: choice("tcp", "udp") = "tcp"


class SecretRef(Strict):
    """A secret env var, read from the deployer's environment at deploy time; never stored."""

    from_env: EnvVarName


class HealthSpec(Strict):
    """Marathon's (service-side) health check."""

    protocol: choice("http", "https", "tcp") = "http"
    path: str = "/health"
    port: str | None = None  # a port name; default: the first port
    grace: duration(0, 3600, whole_seconds=True) = 30.0
    interval: duration(1, 3600, whole_seconds=True) = 10.0
    timeout: duration(1, 3600, whole_seconds=True) = 5.0
    max_failures: number(0, 1000, integer=True) = 3


class ReadinessSpec(Strict):
    """Marathon readiness check: a new task gets traffic only once it answers here."""

    protocol: choice("http", "https") = "http"
    path: str = "/ready"
    port: str | None = None
    interval: duration(1, 3600, whole_seconds=True) = 30.0
    timeout: duration(1, 3600, whole_seconds=True) = 10.0
    status_codes: list[number(100, 999, integer=True)] = Field(default_factory=lambda: [200])


class UpgradeSpec(Strict):
    """Marathon upgradeStrategy, as fractions of `instances`."""

    minimum_health_capacity: number(0, 1) = 1.0
    maximum_over_capacity: number(0, 1) = 1.0


# The operators of the official AppDefinition schema deploykit validates against (IS came in 1.8 and is not in it).
OPERATORS = ("UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER")
NEEDS_VALUE = ("LIKE", "UNLIKE", "MAX_PER")


def _constraint(value: Any) -> list[str]:
    from deploykit.hints import did_you_mean

    example = "e.g. [hostname, UNIQUE] or [rack, GROUP_BY, '3']"
    if not isinstance(value, list) or not 2 <= len(value) <= 3:
        raise fail("a constraint is a list [field, OPERATOR] or [field, OPERATOR, value]", example)
    if not all(isinstance(v, str) for v in value):
        raise fail("constraint items must be strings", "quote numbers: '3'")
    op = value[1]
    if op == "IS":
        raise fail("IS is not in the Marathon schema deploykit checks against", "use [field, LIKE, 'exact-value']")
    if op not in OPERATORS:
        raise fail(f"{op!r} is not a constraint operator", did_you_mean(op.upper(), OPERATORS, fallback="allowed"))
    if op in NEEDS_VALUE and len(value) == 2:
        raise fail(f"{op} needs a value", example)
    if op == "UNIQUE" and len(value) == 3:
        raise fail("UNIQUE takes no value", "write [field, UNIQUE]")
    return list(value)


Constraint = Annotated[list[str], BeforeValidator(_constraint)]


class SecuritySpec(Strict):
    """Docker hardening. privileged and cap_add need an allow in the environment file."""

    privileged: bool = False
    read_only_root: bool = False
    no_new_privileges: bool = True
    cap_drop: list[str] = Field(default_factory=list)
    cap_add: list[str] = Field(default_factory=list)
    user: ScalarStr | None = None
    ulimits: dict[str, ScalarStr] = Field(default_factory=dict)


class HaproxyCheck(Strict):
    """The HAProxy-side health check (DEPLOYKIT_{n}_CHECK_* labels)."""

    path: str | None = "/health"
    interval: duration(0.1, 3600) = 2.0
    rise: number(1, 100, integer=True) = 2
    fall: number(1, 100, integer=True) = 3


class HaproxySpec(Strict):
    """Routing through HAProxy (HAPROXY_* labels, marathon-lb naming)."""

    group: pattern(GROUP_NAME.pattern, "HAProxy group", "letters, digits, '.', '_' or '-', up to 63") = "external"
    port: str | None = None  # which port name to route; default: the first port
    vhost: Annotated[list[str], BeforeValidator(_one_or_many)] = Field(default_factory=list)
    path: str | None = None
    mode: choice(*MODES) = "http"
    balance: choice(*BALANCE_ALGORITHMS) = "roundrobin"
    check: HaproxyCheck | None = None


class ConfigSpec(Strict):
    """Runtime config written to Consul KV as an immutable, versioned tree."""

    values: dict[str, ScalarStr] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict)  # KV key -> path relative to app.yaml


class AppDoc(Strict):
    """Exactly the keys allowed in app.yaml (after the environment overlay is merged)."""

    id: pattern(APP_ID_RE, "Marathon app id", "lowercase letters, digits, '-' and '.', separated by '/': /shop/cart")
    image: str | None = None
    build: BuildSpec | None = None
    instances: number(0, 10000, integer=True) = 1
    cpus: number(0, 256, lo_open=True) = 0.1
    mem: number(32, 1048576, unit="MiB") = 128.0
    disk: number(0, 10485760, unit="MiB") = 0.0
    cmd: pattern(r"^\s*\S", "command", "a shell command line, e.g. python3 server.py") | None = None
    args: list[str] | None = None
    network: choice("bridge", "host") = "bridge"
    ports: list[PortSpec] = Field(default_factory=list)
    env: dict[str, ScalarStr] = Field(default_factory=dict)
    secrets: dict[str, SecretRef] = Field(default_factory=dict)
    labels: dict[str, ScalarStr] = Field(default_factory=dict)
    health: HealthSpec | None = None
    readiness: ReadinessSpec | None = None
    upgrade: UpgradeSpec = Field(default_factory=UpgradeSpec)
    constraints: list[Constraint] = Field(default_factory=list)
    security: SecuritySpec = Field(default_factory=SecuritySpec)
    haproxy: HaproxySpec | None = None
    config: ConfigSpec = Field(default_factory=ConfigSpec)
    fetch: list[str] = Field(default_factory=list)
    marathon: dict[str, Any] = Field(default_factory=dict)
    environments: dict[str, dict[str, Any] | None] = Field(default_factory=dict)  # `staging:` alone = no changes


class AppSpec(AppDoc):
    """A loaded, validated app: app.yaml with its overlay merged, plus what the loader read.

    `file`/`app_dir` locate the source, `env_name` names the overlay applied,
    `config_contents` holds the bytes of every `config.files` entry (KV key -> bytes),
    `fetch_uris` the Mesos fetcher URIs with relative paths made absolute `file://` URIs,
    `key_lines` the app.yaml line of every key path (the overlay's line where it set the key).
    """

    file: Path
    app_dir: Path
    env_name: str | None = None
    config_contents: dict[str, bytes] = Field(default_factory=dict)
    fetch_uris: list[str] = Field(default_factory=list)
    key_lines: dict[str, int] = Field(default_factory=dict, repr=False)  # "health.port" -> line in app.yaml

    def problem(self, path: str, message: str, hint: str | None = None) -> Problem:
        """A Problem about this app at key `path`, with file and line, for checks done after loading."""
        line = None
        probe = path
        while probe and line is None:
            line = self.key_lines.get(probe)
            probe = probe.rpartition(".")[0] if "." in probe else probe.rpartition("[")[0]
        return Problem(str(self.file), path, message, hint, line)

    def port_index(self, name: str | None) -> int:
        """Index of the named port (None: the first). Valid after loading."""
        if name is None:
            return 0
        return [p.name for p in self.ports].index(name)
