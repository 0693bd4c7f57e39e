"""Command lines the backends run: options in place, and never a secret on them."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

from deploykit.image.backend import BuildSpec, normalize_id
from deploykit.image.buildah import BuildahBackend
from deploykit.image.docker import DockerBackend
from deploykit.image.runner import Runner

SPEC = BuildSpec(context=Path("/src/app"), dockerfile=Path("/src/app/Dockerfile"), refs=["r/a:1", "r/a:main-2"],
                 build_args={"BASE": "localhost/base"}, target="runtime",
                 labels={"org.opencontainers.image.revision": "abc"}, no_cache=True)


def pairs(argv: list[str]) -> set[tuple[str, str]]:
    return set(pairwise(argv))


def test_buildah_build_argv():
    be = BuildahBackend(Runner(), root="/s", runroot="/r")
    argv = be.build_argv(SPEC, "/tmp/iid")
    assert argv[:7] == ["buildah", "--root", "/s", "--runroot", "/r", "--storage-driver", "vfs"]
    p = pairs(argv)
    assert {("bud", "--isolation"), ("--isolation", "chroot"), ("--format", "docker"), ("-f", "/src/app/Dockerfile"),
            ("--target", "runtime"), ("--build-arg", "BASE=localhost/base"), ("-t", "r/a:1"), ("-t", "r/a:main-2"),
            ("--label", "org.opencontainers.image.revision=abc"), ("--iidfile", "/tmp/iid")} <= p
    assert "--layers" in argv and "--no-cache" in argv and argv[-1] == "/src/app"


def test_buildah_storage_driver_configurable():
    argv = BuildahBackend(Runner(), storage_driver="overlay").build_argv(SPEC, "i")
    assert ("--storage-driver", "overlay") in pairs(argv) and "--root" not in argv
    assert "--storage-driver" not in BuildahBackend(Runner(), storage_driver=None).build_argv(SPEC, "i")


def test_buildah_push_argv_uses_an_authfile_and_tls_per_environment():
    be = BuildahBackend(Runner())
    argv = be.push_argv("reg:5000/a:1", authfile=Path("/tmp/dk-auth-x/config.json"), insecure=False, digestfile="d")
    assert "--tls-verify=true" in argv and ("--authfile", "/tmp/dk-auth-x/config.json") in pairs(argv)
    assert argv[-2:] == ["reg:5000/a:1", "docker://reg:5000/a:1"]
    assert "--creds" not in argv
    assert "--tls-verify=false" in be.push_argv("r/a:1", authfile=None, insecure=True, digestfile="d")


def test_docker_build_argv():
    argv = DockerBackend(Runner()).build_argv(SPEC, "/tmp/iid")
    assert argv[:2] == ["docker", "build"]
    assert {("--target", "runtime"), ("--build-arg", "BASE=localhost/base"), ("-t", "r/a:1")} <= pairs(argv)
    assert argv[-1] == "/src/app"


def test_normalize_id():
    assert normalize_id("abc\n") == "sha256:abc"
    assert normalize_id("sha256:abc") == "sha256:abc"
