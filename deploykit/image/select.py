"""Which backend builds: `--backend auto|buildah|docker`.

auto prefers docker when a daemon answers (it is what the hosts run, and its cache is
already warm on docker agents) and falls back to daemonless buildah. The probes are
injected so the rule is unit-tested without either tool.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

from deploykit.errors import BuildError, UnreachableError
from deploykit.image.backend import Backend
from deploykit.image.runner import Runner

BACKENDS = ("auto", "buildah", "docker")


def choose_backend(choice: str, *, docker_answers: Callable[[], bool], buildah_installed: Callable[[], bool]) -> str:
    """Resolve `choice` to "buildah" or "docker", probing only what the choice needs."""
    if choice not in BACKENDS:
        raise BuildError(f"unknown backend {choice!r} (choose from {', '.join(BACKENDS)})")
    if choice == "docker":
        if not docker_answers():
            raise UnreachableError("--backend docker: no docker daemon answers `docker version` "
                                   "(start one, or use --backend buildah)")
        return "docker"
    if choice == "buildah":
        if not buildah_installed():
            raise BuildError("--backend buildah: buildah is not installed (apt-get install buildah)")
        return "buildah"
    if docker_answers():
        return "docker"
    if buildah_installed():
        return "buildah"
    raise BuildError("no image backend: no docker daemon answers and buildah is not installed")


def make_backend(
    choice: str,
    runner: Runner,
    *,
    storage_driver: str | None = "vfs",
    root: str | None = None,
    runroot: str | None = None,
    docker_answers: Callable[[], bool] | None = None,
    buildah_installed: Callable[[], bool] | None = None,
) -> Backend:
    """The backend for `choice`, with real probes unless others are injected."""
    from deploykit.devcluster.docker_engine import docker_cli
    from deploykit.image.buildah import BuildahBackend
    from deploykit.image.docker import DockerBackend, docker_daemon_answers

    docker = docker_cli()  # /usr/bin/docker (the engine's own client) before another `docker` on PATH
    if docker_answers is None:
        docker_answers = lambda: docker is not None and docker_daemon_answers(runner, docker)  # noqa: E731
    if buildah_installed is None:
        buildah_installed = lambda: shutil.which("buildah") is not None  # noqa: E731
    name = choose_backend(choice, docker_answers=docker_answers, buildah_installed=buildah_installed)
    if name == "docker":
        return DockerBackend(runner, binary=docker or "docker")
    return BuildahBackend(runner, storage_driver=storage_driver, root=root, runroot=runroot)
