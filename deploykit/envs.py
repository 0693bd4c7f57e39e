"""Environments: endpoints and policy read from real Chef environment files (chef_attrs/<env>.json).

The same JSON is what Chef uses (`knife environment from file`), so hosts and deploykit
agree on where Marathon, ZooKeeper, Consul, the registry and HAProxy are. deploykit reads
`default_attributes.deploykit`, with `override_attributes.deploykit` deep-merged on top
(Chef's precedence). Files name the *environment variables* that hold secrets, never the
secrets themselves; the accessors read them on demand so no secret sits in a model,
its repr, or an error.

Lookup order for `<name>.json`: the `env_dir` argument or $DEPLOYKIT_ENV_DIR, then
./chef_attrs, then the files shipped with deploykit (so the quick start works anywhere).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic import ValidationError as PydanticValidationError

from deploykit.errors import Problem, ValidationError
from deploykit.hints import did_you_mean
from deploykit.spec.fields import choice, number, pattern
from deploykit.spec.problems import from_pydantic
from deploykit.spec.yamlsrc import PathKey, load_yaml

ENV_VAR = pattern(r"^[A-Za-z_][A-Za-z0-9_]*$", "environment variable name", "e.g. CONSUL_HTTP_TOKEN")
URL = pattern(r"^https?://[^\s/]+", "URL", "e.g. http://127.0.0.1:8080")
ATTR_PATH: PathKey = ("default_attributes", "deploykit")
# What `knife environment from file` reads; anything else at the top level is refused by Chef.
CHEF_KEYS = (
    "name",
    "description",
    "json_class",
    "chef_type",
    "cookbook_versions",
    "default_attributes",
    "override_attributes",
)
CHEF_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class MarathonAuth(_Strict):
    """HTTP basic auth; the password is read from the variable `password_env`."""

    user: str
    password_env: ENV_VAR


class MarathonEndpoint(_Strict):
    urls: list[URL] = Field(min_length=1)
    zk: pattern(r"^zk://[^/\s]+/\S*$", "ZooKeeper URL", "e.g. zk://zk1:2181,zk2:2181/marathon") | None = None
    network_shape: choice("networks", "legacy") = "networks"  # legacy: pre-1.5 container.docker.network
    tasks: choice("docker", "process") = "docker"  # process: every app as a Mesos command task, no container
    auth: MarathonAuth | None = None

    def command_tasks(self, image: object, cmd: object, args: object) -> bool:
        """True when an app runs as a Mesos command task (no container): always with `tasks: process`,
        and, as on Marathon itself, for an app with a cmd/args and no image."""
        return self.tasks == "process" or (not image and (cmd is not None or args is not None))


class ZookeeperEndpoint(_Strict):
    hosts: pattern(r"^[^\s/,]+(,[^\s/,]+)*$", "ZooKeeper host list", "e.g. zk1:2181,zk2:2181")
    lock_root: pattern(r"^/", "ZooKeeper path", "an absolute path, e.g. /deploykit/locks") = "/deploykit/locks"


class ConsulEndpoint(_Strict):
    url: URL = "http://127.0.0.1:8500"
    token_env: ENV_VAR | None = None
    prefix: pattern(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", "KV prefix", "e.g. config") = "config"
    keep_versions: number(1, 1000, integer=True) = 5


class RegistryEndpoint(_Strict):
    url: str | None = None  # host[:port][/namespace], no scheme: how image references start
    insecure: bool = False  # plain HTTP / unverified TLS (local registries)
    username_env: ENV_VAR | None = None
    password_env: ENV_VAR | None = None


class HaproxyEndpoint(_Strict):
    config: str = "/etc/haproxy/haproxy.cfg"
    master_socket: str | None = None
    stats_socket: str | None = None
    state_file: str | None = None  # server state kept across reloads (default: next to the config)
    groups: list[str] = Field(default_factory=lambda: ["external"])
    http_port: number(1, 65535, integer=True) = 80
    bind_address: str = "*"
    server_slots: number(0, 1000, integer=True) = 10  # pre-allocated servers per backend (Runtime API)
    template_dir: str | None = None  # overrides the shipped haproxy/ templates
    binary: str = "haproxy"
    # marathon-lb parity (docs/lb-config.md); checked in full by deploykit.lb.settings
    service_ports: bool = True  # false: vhost/path apps only on the http(s) frontends (edge-only LB)
    https_port: number(0, 65535, integer=True) = 443  # TLS frontend, when ssl_certs is set
    ssl_certs: list[str] = Field(default_factory=list)  # certificate files or folders (marathon-lb --ssl-certs)
    retry_on: str | None = None  # HAProxy retry-on keywords (default: connection failures, 502/503/504)
    stats_port: number(0, 65535, integer=True) = 0  # stats page + Prometheus exporter; 0: off
    app_id_port: number(0, 65535, integer=True) = 9091  # X-Marathon-App-Id frontend; 0: off


class SecurityPolicy(_Strict):
    allow_privileged: bool = False
    allow_cap_add: list[str] = Field(default_factory=list)


class Environment(_Strict):
    """One deployment target. Frozen; secrets are never stored, only the names of their variables."""

    name: str
    file: Path
    marathon: MarathonEndpoint
    zookeeper: ZookeeperEndpoint | None = None
    lock: choice("zookeeper", "consul")
    consul: ConsulEndpoint = Field(default_factory=ConsulEndpoint)
    registry: RegistryEndpoint = Field(default_factory=RegistryEndpoint)
    haproxy: HaproxyEndpoint | None = None
    security: SecurityPolicy = Field(default_factory=SecurityPolicy)

    @model_validator(mode="before")
    @classmethod
    def _default_lock(cls, data: Any) -> Any:
        if isinstance(data, dict) and "lock" not in data:
            data = {**data, "lock": "zookeeper" if data.get("zookeeper") else "consul"}
        return data

    def consul_token(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The Consul ACL token from the variable named by consul.token_env (None if unset)."""
        return _read(self.consul.token_env, environ)

    def marathon_password(self, environ: Mapping[str, str] | None = None) -> str | None:
        return _read(self.marathon.auth.password_env if self.marathon.auth else None, environ)

    def registry_credentials(self, environ: Mapping[str, str] | None = None) -> tuple[str, SecretStr] | None:
        """(username, password) when both variables are named and set."""
        user = _read(self.registry.username_env, environ)
        password = _read(self.registry.password_env, environ)
        return (user, SecretStr(password)) if user and password else None


def _read(var: str | None, environ: Mapping[str, str] | None) -> str | None:
    if not var:
        return None
    value = (os.environ if environ is None else environ).get(var)
    return value or None


def search_dirs(env_dir: str | Path | None = None) -> list[Path]:
    """Folders searched for environment files, first match wins."""
    from deploykit.resources import data_dir

    dirs: list[Path] = []
    explicit = env_dir or os.environ.get("DEPLOYKIT_ENV_DIR")
    if explicit:
        dirs.append(Path(explicit))
    dirs.append(Path.cwd() / "chef_attrs")
    with contextlib.suppress(FileNotFoundError):  # a stripped install may ship none
        dirs.append(data_dir("chef_attrs"))
    unique: list[Path] = []
    for d in dirs:
        if d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def available_environments(env_dir: str | Path | None = None) -> list[str]:
    names: set[str] = set()
    for d in search_dirs(env_dir):
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.json"))
    return sorted(names)


def find_environment_file(name: str, env_dir: str | Path | None = None) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise ValidationError([Problem(None, "--env", f"{name!r} is not an environment name", "e.g. local, prod")])
    explicit = env_dir or os.environ.get("DEPLOYKIT_ENV_DIR")
    if explicit and not Path(explicit).is_dir():  # a typo must not silently fall back to other files
        source = "--env-dir" if env_dir else "$DEPLOYKIT_ENV_DIR"
        raise ValidationError(
            [Problem(None, source, f"folder {str(explicit)!r} not found", "give a folder of <env>.json")]
        )
    dirs = search_dirs(env_dir)
    for d in dirs:
        candidate = d / f"{name}.json"
        if candidate.is_file():
            return candidate
    hint = did_you_mean(name, available_environments(env_dir), fallback="available")
    searched = ", ".join(str(d) for d in dirs)
    elsewhere = _found_in_a_parent(name)
    if elsewhere or not hint or not hint.startswith("did you mean"):  # a near miss is hint enough
        more = elsewhere or "files elsewhere? pass --env-dir DIR or set DEPLOYKIT_ENV_DIR"
        hint = f"{hint}; {more}" if hint else more
    raise ValidationError([Problem(None, "--env", f"no environment file {name}.json (searched {searched})", hint)])


def _found_in_a_parent(name: str) -> str | None:
    """Run from an app's own folder, ./chef_attrs is the app's: point at a parent's chef_attrs holding the file."""
    cwd = Path.cwd()
    for parent in cwd.parents:
        found = parent / "chef_attrs" / f"{name}.json"
        if found.is_file():
            return f"found {found}: pass --env-dir {os.path.relpath(found.parent, cwd)}"
    return None


def load_environment(name: str, env_dir: str | Path | None = None) -> Environment:
    """Find and validate `<name>.json`. Raises ValidationError listing every problem in the file."""
    return parse_environment_file(find_environment_file(name, env_dir), expected_name=name)


def parse_environment_file(path: str | Path, expected_name: str | None = None) -> Environment:
    path = Path(path)
    file = str(path)
    text = path.read_text()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError([Problem(file, "", f"not valid JSON: {exc.msg}", None, exc.lineno)]) from None
    source = load_yaml(text, file)  # JSON is YAML: reuse the loader for line numbers
    problems: list[Problem] = []

    def where(p: PathKey) -> int | None:
        return source.line_of(p) if source.data is not None else None

    if not isinstance(doc, dict):
        raise ValidationError([Problem(file, "", "an environment file is a JSON object", "see chef_attrs/local.json")])
    for key in doc:
        if key not in CHEF_KEYS:
            hint = did_you_mean(str(key), CHEF_KEYS, fallback="Chef environment keys")
            problems.append(
                Problem(file, str(key), "not a Chef environment key (knife refuses it)", hint, where((key,)))
            )
    for key, kind in (("description", str), ("cookbook_versions", dict), ("override_attributes", dict)):
        if key in doc and not isinstance(doc[key], kind):
            what = "a string" if kind is str else "an object"
            problems.append(Problem(file, key, f"must be {what}", "see chef_attrs/local.json", where((key,))))
    for key, want in (("json_class", "Chef::Environment"), ("chef_type", "environment")):
        if doc.get(key) != want:
            problems.append(Problem(file, key, f"must be {want!r} for Chef", f'add "{key}": "{want}"', where((key,))))
    name = doc.get("name")
    if isinstance(name, str) and not CHEF_NAME.match(name):
        problems.append(
            Problem(
                file, "name", f"{name!r} is not a Chef environment name", "letters, digits, '-', '_'", where(("name",))
            )
        )
    elif not isinstance(name, str) or not name:
        problems.append(Problem(file, "name", "is required", f'add "name": "{path.stem}"', where(("name",))))
        name = path.stem
    elif expected_name is not None and name != expected_name:
        problems.append(
            Problem(
                file,
                "name",
                f"{name!r} does not match the file name {path.name}",
                f'use "{expected_name}"',
                where(("name",)),
            )
        )
    default = (
        (doc.get("default_attributes") or {}).get("deploykit")
        if isinstance(doc.get("default_attributes"), dict)
        else None
    )
    if not isinstance(default, dict):
        problems.append(
            Problem(
                file,
                "default_attributes.deploykit",
                "is required and must be an object",
                "see chef_attrs/local.json",
                where(ATTR_PATH),
            )
        )
        raise ValidationError(problems)
    override = doc.get("override_attributes", {})
    override = override.get("deploykit", {}) if isinstance(override, dict) else {}
    attrs = deep_merge(default, override if isinstance(override, dict) else {})
    try:
        env = Environment.model_validate({**attrs, "name": name, "file": path})
    except PydanticValidationError as exc:
        problems.extend(from_pydantic(exc, Environment, file, prefix=ATTR_PATH, line_for=where))
        env = None
    if env is not None and env.lock == "zookeeper" and env.zookeeper is None:
        problems.append(
            Problem(
                file,
                "default_attributes.deploykit.lock",
                "lock is 'zookeeper' but no zookeeper section is set",
                'add "zookeeper": {"hosts": "..."} or use "lock": "consul"',
                where((*ATTR_PATH, "lock")),
            )
        )
    if problems:
        raise ValidationError(problems)
    assert env is not None
    return env


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else in `overlay` replaces; None in `overlay` deletes."""
    out = dict(base)
    for key, value in overlay.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
