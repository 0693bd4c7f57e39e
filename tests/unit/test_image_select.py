"""Backend selection with injected probes: auto prefers a live docker daemon, else buildah."""

from __future__ import annotations

import pytest

from deploykit.errors import BuildError, UnreachableError
from deploykit.image.buildah import BuildahBackend
from deploykit.image.docker import DockerBackend
from deploykit.image.runner import Runner
from deploykit.image.select import choose_backend, make_backend


class Probe:
    def __init__(self, answer: bool):
        self.answer = answer
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.answer


@pytest.mark.parametrize(
    ("choice", "docker", "buildah", "expected"),
    [
        ("auto", True, True, "docker"),
        ("auto", True, False, "docker"),
        ("auto", False, True, "buildah"),
        ("buildah", True, True, "buildah"),
        ("docker", True, False, "docker"),
    ],
)
def test_choose(choice, docker, buildah, expected):
    assert choose_backend(choice, docker_answers=Probe(docker), buildah_installed=Probe(buildah)) == expected


def test_explicit_choice_probes_only_its_tool():
    docker, buildah = Probe(True), Probe(True)
    choose_backend("buildah", docker_answers=docker, buildah_installed=buildah)
    assert (docker.calls, buildah.calls) == (0, 1)
    docker, buildah = Probe(True), Probe(True)
    choose_backend("auto", docker_answers=docker, buildah_installed=buildah)
    assert (docker.calls, buildah.calls) == (1, 0)


def test_docker_without_daemon_is_unreachable_with_a_hint():
    with pytest.raises(UnreachableError) as err:
        choose_backend("docker", docker_answers=Probe(False), buildah_installed=Probe(True))
    assert err.value.exit_code == 4 and "--backend buildah" in str(err.value)


def test_nothing_available():
    with pytest.raises(BuildError, match="no image backend"):
        choose_backend("auto", docker_answers=Probe(False), buildah_installed=Probe(False))
    with pytest.raises(BuildError, match="buildah is not installed"):
        choose_backend("buildah", docker_answers=Probe(True), buildah_installed=Probe(False))
    with pytest.raises(BuildError, match="unknown backend"):
        choose_backend("podman", docker_answers=Probe(True), buildah_installed=Probe(True))


def test_make_backend_builds_the_chosen_type_with_options():
    runner = Runner()
    be = make_backend("auto", runner, root="/tmp/r", docker_answers=lambda: False, buildah_installed=lambda: True)
    assert isinstance(be, BuildahBackend) and be.root == "/tmp/r" and be.storage_driver == "vfs"
    be = make_backend("auto", runner, docker_answers=lambda: True, buildah_installed=lambda: True)
    assert isinstance(be, DockerBackend)
