"""The facts a pipeline needs from app.yaml and the environment files.

A Jenkinsfile has to bind, as Jenkins credentials, exactly the variables deploykit
reads at run time: the app's `secrets.*.from_env`, and per environment the Consul
token, Marathon password and registry credentials named by chef_attrs/<env>.json.
Only variable *names* are read here; values never pass through this module.

Loading goes through `deploykit.spec.load_app` / `deploykit.envs.load_environment`,
so every input is fully validated (all problems at once) before anything is rendered.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploykit.errors import Problem, ValidationError

ENV_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class EnvCredentials:
    """Names of the secret variables deploykit reads for one environment (None = not used)."""

    consul_token_env: str | None = None
    marathon_password_env: str | None = None
    registry_username_env: str | None = None
    registry_password_env: str | None = None


@dataclass(frozen=True)
class AppFacts:
    app_id: str
    path: Path
    # env name -> variable names of the app's secrets in that environment (base + overlay)
    secret_vars: dict[str, tuple[str, ...]] = field(default_factory=dict)
    credentials: dict[str, EnvCredentials] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        """`/shop/cart` -> `shop-cart`: a name usable for Jenkins jobs and credential ids."""
        return self.app_id.strip("/").replace("/", "-")


def parse_env_list(value: str | Iterable[str], file: str | None = None) -> list[str]:
    """`"staging,prod"` -> ["staging", "prod"], validated (names end up in Groovy and job names)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [v.strip() for v in items if v.strip()]
    problems = [
        Problem(file, "--env", f"{n!r} is not a valid environment name", "letters, digits, '-' and '_' only")
        for n in names
        if not ENV_NAME_RE.match(n)
    ]
    if not names:
        problems.append(Problem(file, "--env", "at least one environment is needed", "e.g. --env staging,prod"))
    dupes = sorted({n for n in names if names.count(n) > 1})
    problems += [Problem(file, "--env", f"{n!r} is listed twice") for n in dupes]
    if problems:
        raise ValidationError(problems)
    return names


def load_app_facts(path: str | Path, envs: list[str], env_dir: str | Path | None = None) -> AppFacts:
    """Load and validate app.yaml for each environment (deploykit.spec); raise ValidationError with every problem."""
    from deploykit.envs import load_environment
    from deploykit.spec import load_app

    path = Path(path)
    problems: list[Problem] = []
    secret_vars: dict[str, tuple[str, ...]] = {}
    credentials: dict[str, EnvCredentials] = {}
    app_id: str | None = None
    for env in envs:
        try:
            environment = load_environment(env, env_dir)
        except ValidationError as exc:
            problems += [p for p in exc.problems if p not in problems]
            continue
        credentials[env] = credentials_of(environment)
        try:
            spec = load_app(path, env, environment)
        except ValidationError as exc:
            problems += [p for p in exc.problems if p not in problems]
            continue
        app_id = str(spec.id)
        secret_vars[env] = tuple(sorted({ref.from_env for ref in spec.secrets.values()}))
    if problems:
        raise ValidationError(problems)
    assert app_id is not None
    return AppFacts(app_id=app_id, path=path, secret_vars=secret_vars, credentials=credentials)


def credentials_of(environment: Any) -> EnvCredentials:
    """Variable names (never values) from a deploykit.envs.Environment."""
    auth = environment.marathon.auth
    registry = environment.registry
    return EnvCredentials(
        consul_token_env=environment.consul.token_env if environment.consul else None,
        marathon_password_env=auth.password_env if auth else None,
        registry_username_env=registry.username_env if registry else None,
        registry_password_env=registry.password_env if registry else None,
    )
