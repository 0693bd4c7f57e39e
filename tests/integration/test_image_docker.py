"""The docker backend against a real Docker engine (Debian docker.io; the harness starts dockerd as root
when none answers, and CI=true fails rather than skips without one). The base image is the offline
Python base made from Debian packages and pushed to the session registry, so no internet is needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deploykit.clients.registry import RegistryClient
from deploykit.devcluster.docker_engine import docker_cli
from deploykit.image.docker import DockerBackend, docker_daemon_answers
from deploykit.image.pipeline import build_image, plan_build, push_image
from deploykit.image.runner import Runner
from deploykit.image.select import make_backend
from tests.harness.docker import git_copy

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_docker_build_push_pins_digest(tmp_path, registry, docker_base):
    repo = git_copy(REPO_ROOT / "examples/hello", tmp_path / "hello")
    plan = plan_build(image=f"{registry.host}/examples/docker-hello", app_dir=repo, build_args=[f"BASE={docker_base}"],
                      environ={})
    backend = make_backend("auto", Runner())
    assert isinstance(backend, DockerBackend) and backend.binary == docker_cli()  # auto picks the engine's client
    assert docker_daemon_answers(Runner(), backend.binary)
    built = build_image(plan, backend)
    result = push_image(plan, backend, RegistryClient(registry.host, insecure=True), credentials=None,
                        insecure=True, record_path=None)
    manifest = RegistryClient(registry.host, insecure=True).get_manifest("examples/docker-hello",
                                                                        result.record.digest)
    assert manifest is not None and manifest.config_digest == built.image_id
    info = backend.inspect(result.record.pinned)
    assert info is not None and info.labels["org.opencontainers.image.revision"]
