"""The docker backend against a real docker daemon — only where one answers.

No docker engine can run on these machines (podman's socket answers `docker version`, but
RUN steps fail there), so this module is skipped with that reason everywhere a daemon does
not answer, CI included: the one skip the house rules allow. The base image is handed to
the daemon from the buildah session store (`buildah push ... docker-daemon:`), so even
this test needs no internet.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from deploykit.clients.registry import RegistryClient
from deploykit.image.docker import DockerBackend, docker_daemon_answers
from deploykit.image.pipeline import build_image, plan_build, push_image
from deploykit.image.runner import Runner

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def _daemon() -> bool:
    return shutil.which("docker") is not None and docker_daemon_answers(Runner())


requires_docker = pytest.mark.skipif(
    not _daemon(), reason="no docker daemon answers `docker version` on this machine (none can be installed here)"
)


@requires_docker
def test_docker_build_push_pins_digest(tmp_path, registry, buildah_store):
    base = "localhost/dk-busybox:latest"
    subprocess.run([*buildah_store.argv, "push", buildah_store.base_image, f"docker-daemon:{base}"], check=True,
                   capture_output=True, timeout=120)
    repo = tmp_path / "hello"
    repo.mkdir()
    shutil.copy(REPO_ROOT / "examples/hello/Dockerfile", repo / "Dockerfile")
    shutil.copy(REPO_ROOT / "examples/hello/server.py", repo / "server.py")
    for args in (["init", "-q", "-b", "main"], ["add", "."],
                 ["-c", "user.email=ci@example.com", "-c", "user.name=CI", "commit", "-q", "-m", "x"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    plan = plan_build(image=f"{registry.host}/examples/docker-hello", app_dir=repo, build_args=[f"BASE={base}"],
                      environ={})
    backend = DockerBackend(Runner())
    built = build_image(plan, backend)
    result = push_image(plan, backend, RegistryClient(registry.host, insecure=True), credentials=None,
                        insecure=True, record_path=None)
    manifest = RegistryClient(registry.host, insecure=True).get_manifest("examples/docker-hello",
                                                                        result.record.digest)
    assert manifest is not None and manifest.config_digest == built.image_id
