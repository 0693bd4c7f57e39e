"""Preparing a deploy's inputs: every check that needs no network, all problems at once (exit 2).

Nothing here sends a request: `prepare` loads app.yaml with its overlay, the environment
file, secrets, the image reference and credentials, and renders what would be PUT, before
any client exists. `resolve_target` does the same for status/history/rollback's APP.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from deploykit import labels as L
from deploykit.errors import InternalError, Problem, ValidationError

if TYPE_CHECKING:
    from deploykit.envs import Environment
    from deploykit.spec.models import AppSpec

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class DeployOptions:
    app_path: str
    env_name: str
    env_dir: str | None = None
    image_tag: str | None = None
    image_digest: str | None = None
    from_build: str | None = None
    timeout: float | None = None  # None: derived from the app
    rollback_timeout: float | None = None
    lock_timeout: float = 0.0
    no_rollback: bool = False
    dry_run: bool = False
    force: bool = False
    max_failures: int = 2
    poll_interval: float = 1.0
    event_heartbeat: float = 10.0  # Marathon's SSE heartbeat; 2x silence = dead stream
    rollback_on_interrupt: bool = False  # Ctrl-C/SIGTERM while waiting rolls back instead of leaving it


@dataclass
class Prepared:
    """A validated deploy: what would be PUT, where its config goes, and who is deploying."""

    environment: Environment
    spec: AppSpec
    app_id: str
    desired: dict  # with real secret values: only ever sent to Marathon
    secret_env: frozenset[str]
    image: str | None
    config_items: dict[str, bytes]
    config_hash: str | None
    config_prefix: str | None
    app_prefix: str
    deployed_by: str
    git_sha: str | None
    validate_seconds: float

    def secret_values(self) -> list[str]:
        """The secret values in `desired`, so errors echoing them can be scrubbed."""
        env = self.desired.get("env", {})
        return [env[k] for k in self.secret_env if env.get(k)]


def _collect(problems: list[Problem], fn: Callable[[], T]) -> T | None:
    try:
        return fn()
    except ValidationError as exc:
        problems.extend(exc.problems)
        return None


def prepare(opts: DeployOptions, environ: Mapping[str, str] | None = None) -> Prepared:
    """Load and check every input; no network. Raises ValidationError with all problems."""
    from deploykit.envs import load_environment
    from deploykit.render.config import config_prefix
    from deploykit.render.marathon import image_reference, render_with_config
    from deploykit.spec import load_app, resolve_secrets

    environ = os.environ if environ is None else environ
    t0 = time.monotonic()
    problems: list[Problem] = []
    environment = _collect(problems, lambda: load_environment(opts.env_name, opts.env_dir))
    if environment is None:
        # the app's own problems are still worth showing with the environment's
        _collect(problems, lambda: load_app(opts.app_path, None))
        raise ValidationError(problems)
    spec = _collect(problems, lambda: load_app(opts.app_path, opts.env_name, environment))
    if spec is None:
        raise ValidationError(problems)
    secrets = _collect(problems, lambda: resolve_secrets(spec, environ)) or {}
    record = None
    if opts.from_build:
        from deploykit.buildrecord import load_record

        record = _collect(problems, lambda: load_record(opts.from_build))
    image = _collect(problems, lambda: image_reference(spec, opts.image_tag, opts.image_digest, record,
                                                       registry_url=environment.registry.url))
    if environment.marathon.auth and not environment.marathon_password(environ):
        problems.append(
            Problem(
                str(environment.file),
                "default_attributes.deploykit.marathon.auth.password_env",
                f"environment variable {environment.marathon.auth.password_env} is not set",
                "export it before deploying (its value is never printed)",
            )
        )
    if environment.consul.token_env and not environment.consul_token(environ):
        log.info("%s is not set; talking to Consul without a token", environment.consul.token_env)
    if problems:
        raise ValidationError(problems)

    from deploykit.clients.locks import Holder

    holder = Holder.current(environ)
    deployed_by = f"{holder.user}@{holder.host}" + (f" {holder.build_url}" if holder.build_url else "")
    git_sha = None
    with contextlib.suppress(Exception):
        from deploykit.gitinfo import read_git_info

        info = read_git_info(spec.app_dir, environ)
        git_sha = info.sha if info else None
    # render_with_config: `deploykit render` and the deploy agree on the config prefix and hash
    desired, tree = render_with_config(
        spec, environment, image, secrets=secrets, mask_secrets=False, deployed_by=deployed_by, git_sha=git_sha
    )
    app_id = "/" + spec.id.strip("/")
    prefix = config_prefix(environment.consul.prefix, app_id, tree.hash) if tree.hash else None
    if prefix is not None and desired.get("env", {}).get(L.CONFIG_PREFIX_ENV) != prefix:
        raise InternalError(f"rendered {L.CONFIG_PREFIX_ENV} does not match config prefix {prefix}")
    return Prepared(
        environment=environment,
        spec=spec,
        app_id=app_id,
        desired=desired,
        secret_env=frozenset(spec.secrets),
        image=image,
        config_items=tree.items,
        config_hash=tree.hash,
        config_prefix=prefix,
        app_prefix=app_config_prefix(environment, app_id),
        deployed_by=deployed_by,
        git_sha=git_sha,
        validate_seconds=round(time.monotonic() - t0, 3),
    )


def app_config_prefix(environment: Environment, app_id: str) -> str:
    """`<consul prefix>/<app id>`: where every config version of the app lives."""
    return f"{environment.consul.prefix.strip('/')}/{app_id.strip('/')}"


@dataclass
class Target:
    """`APP` of status/history/rollback: an app.yaml path or a Marathon id, plus the environment."""

    app_id: str
    environment: Environment


def resolve_target(app: str, env_name: str, env_dir: str | None) -> Target:
    from deploykit.envs import load_environment

    environment = load_environment(env_name, env_dir)
    path = Path(app)
    if _is_file(path) or app.endswith((".yaml", ".yml")):
        from deploykit.spec import load_app

        spec = load_app(path, env_name, environment)
        return Target("/" + spec.id.strip("/"), environment)
    import re

    from deploykit.spec.models import APP_ID_RE

    if not re.match(APP_ID_RE, app):
        shown = app if len(app) <= 80 else app[:77] + "..."
        raise ValidationError([Problem(None, "APP", f"{shown!r} is neither an app.yaml file nor a Marathon app id",
                                       "give a path to app.yaml or an id such as /shop/cart")])
    if not app.startswith("/"):
        app = "/" + app
    return Target(app, environment)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False
