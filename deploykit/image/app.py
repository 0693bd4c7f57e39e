"""Glue from an app.yaml + environment file to a BuildPlan and the registry settings to push with.

The environment's `registry` section ({url, insecure, username_env, password_env}) applies
only to images that live in *that* registry: credentials are never sent to another host,
and plain HTTP is never used for another host.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from deploykit.image.auth import Credentials, credentials_from_env
from deploykit.image.naming import ImageName, registry_host
from deploykit.image.pipeline import BuildPlan, plan_build


@dataclass(frozen=True)
class RegistrySettings:
    host: str
    insecure: bool
    credentials: Credentials | None


def registry_settings(image: ImageName, registry: object | None, environ: Mapping[str, str],
                      file: str | None = None) -> RegistrySettings:
    """How to reach the registry `image` lives in, per the environment's registry section."""
    url = getattr(registry, "url", None) if registry is not None else None
    if not url or registry_host(url) != image.registry:
        return RegistrySettings(image.registry, insecure=False, credentials=None)
    return RegistrySettings(
        image.registry,
        insecure=bool(getattr(registry, "insecure", False)),
        credentials=credentials_from_env(registry, environ, file=file),
    )


def plan_for_app(
    app_path: str | Path,
    env_name: str,
    env_dir: str | None = None,
    *,
    image: str | None = None,
    build_args: Sequence[str] = (),
    target: str | None = None,
    extra_tags: Sequence[str] = (),
    allow_dirty: bool = False,
    no_cache: bool = False,
    timeout: float = 1800.0,
    environ: Mapping[str, str] | None = None,
    own_outputs: Sequence[Path] = (),
) -> tuple[BuildPlan, RegistrySettings]:
    """Load app.yaml for `env_name`, validate the build inputs, and resolve the registry.

    `image` overrides app.yaml's `image` (e.g. to build into a mirror or a test registry).
    """
    from deploykit.envs import load_environment
    from deploykit.spec import load_app

    environ = os.environ if environ is None else environ
    environment = load_environment(env_name, env_dir)
    if environment.marathon.tasks != "docker":
        # An image is built the same whatever runs it: never check an environment's runtime cmd/args here.
        marathon = environment.marathon.model_copy(update={"tasks": "docker"})
        environment = environment.model_copy(update={"marathon": marathon})
    spec = load_app(app_path, env_name, environment)
    build = spec.build
    registry = getattr(environment, "registry", None)
    plan = plan_build(
        image=image or spec.image,
        app_dir=Path(spec.app_dir),
        context=build.context if build else ".",
        dockerfile=build.dockerfile if build else "Dockerfile",
        registry_url=getattr(registry, "url", None),
        spec_build_args={k: str(v) for k, v in (build.args if build else {}).items()},
        build_args=build_args,
        target=target or (build.target if build else None),
        extra_tags=extra_tags,
        allow_dirty=allow_dirty,
        no_cache=no_cache,
        timeout=timeout,
        environ=environ,
        file=str(app_path),
        own_outputs=own_outputs,
    )
    env_file = str(getattr(environment, "file", "")) or None
    return plan, registry_settings(plan.image, registry, environ, file=env_file)
