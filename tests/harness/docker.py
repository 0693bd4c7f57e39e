"""A real Docker engine (Debian docker.io), the offline Python base image and the hello image.

`docker_engine`: the engine that answers, or a `dockerd` this session starts (as root) and stops
at the end. Without either it skips, and fails under CI=true (as require_binary does).
`docker_base`: `<registry>/deploykit/python:3.11` made once per run from Debian packages
(mmdebstrap; the engine's image store caches it across runs) and pushed to the session registry.
`hello_image`: examples/hello built with the docker backend FROM that base and pushed; its
`.pinned` is `<registry>/examples/hello@sha256:...`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploykit.devcluster import docker_engine
from tests.harness.common import unavailable

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def docker_engine_ready():
    """The Engine we use this session (an `Engine`; `.pid` set when this session started dockerd)."""
    if docker_engine.docker_cli() is None:
        unavailable("docker is not installed (run scripts/setup.sh)")
    version = docker_engine.engine_version()
    if version:
        yield docker_engine.Engine(docker_engine.engine_address(), version)
        return
    if not docker_engine.can_start_dockerd():
        unavailable(f"no Docker engine answers at {docker_engine.engine_address()} and this user cannot start "
                     "dockerd (needs root and docker.io)")
    log = Path(tempfile.gettempdir()) / "dk-test-dockerd.log"
    engine = docker_engine.start_dockerd(log)
    try:
        yield engine
    finally:
        assert engine.pid is not None
        docker_engine.stop_dockerd(engine.pid)


@pytest.fixture(scope="session")
def docker_base(docker_engine_ready, registry) -> str:
    from deploykit.image.base_image import ensure_base_image

    cli = docker_engine.docker_cli()
    assert cli is not None
    if shutil.which("mmdebstrap") is None and not _engine_has_base(cli):
        unavailable("mmdebstrap is not installed (run scripts/setup.sh)")
    return ensure_base_image(registry.host, cli, log=lambda _msg: None)


def _engine_has_base(cli: str) -> bool:
    from deploykit.image.base_image import LOCAL_REF

    return subprocess.run([cli, "image", "inspect", LOCAL_REF], capture_output=True).returncode == 0


@dataclass
class BuiltImage:
    repository: str
    digest: str

    @property
    def pinned(self) -> str:
        return f"{self.repository}@{self.digest}"


def git_copy(src: Path, dest: Path) -> Path:
    """A committed copy of an example (the image pipeline tags from git and refuses dirty trees in CI)."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.json"))
    for args in (["init", "-q", "-b", "main"], ["add", "."],
                 ["-c", "user.email=ci@example.com", "-c", "user.name=CI", "commit", "-q", "-m", "x"]):
        subprocess.run(["git", "-C", str(dest), *args], check=True, capture_output=True)
    return dest


@pytest.fixture(scope="session")
def hello_image(docker_base, registry, tmp_path_factory) -> BuiltImage:
    from deploykit.clients.registry import RegistryClient
    from deploykit.image.docker import DockerBackend
    from deploykit.image.pipeline import build_image, plan_build, push_image
    from deploykit.image.runner import Runner

    repo = git_copy(REPO_ROOT / "examples" / "hello", tmp_path_factory.mktemp("hello-img") / "hello")
    plan = plan_build(image=f"{registry.host}/examples/hello", app_dir=repo, build_args=[f"BASE={docker_base}"],
                      environ={})
    backend = DockerBackend(Runner(), binary=docker_engine.docker_cli() or "docker")
    build_image(plan, backend)
    result = push_image(plan, backend, RegistryClient(registry.host, insecure=True), credentials=None, insecure=True,
                        record_path=None)
    return BuiltImage(f"{registry.host}/examples/hello", result.record.digest)
