"""Build and push with the docker CLI, for agents where a docker daemon answers.

Credentials go in a private DOCKER_CONFIG directory made for one push (never the
user's ~/.docker, never argv). Whether a registry may be reached over plain HTTP is
the daemon's `insecure-registries` setting; docker treats 127.0.0.0/8 as insecure already.
"""

from __future__ import annotations

import json
from pathlib import Path

from deploykit.errors import BuildError
from deploykit.image.backend import BuildSpec, CliBackend, ImageInfo, build_flags, normalize_id
from deploykit.image.runner import CommandFailed, Runner


class DockerBackend(CliBackend):
    name = "docker"

    def __init__(self, runner: Runner, *, binary: str = "docker"):
        self.runner = runner
        self.binary = binary

    def build_argv(self, spec: BuildSpec, iidfile: str) -> list[str]:
        return [self.binary, "build", "--iidfile", iidfile, "-f", str(spec.dockerfile), *build_flags(spec)]

    def tag(self, source: str, targets: list[str]) -> None:
        for target in targets:
            self.runner.run([self.binary, "tag", source, target], what="image tag", timeout=120)

    def push(self, ref: str, *, authfile: Path | None, insecure: bool, timeout: float = 900.0) -> str | None:
        env = {"DOCKER_CONFIG": str(authfile.parent)} if authfile is not None else None
        result = self.runner.run([self.binary, "push", ref], what=f"push {ref}", timeout=timeout, env=env,
                                 stream=True)
        for word in result.output.split():
            if word.startswith("sha256:") and len(word) == 71:
                return word  # "<tag>: digest: sha256:... size: N"
        return None

    def inspect(self, ref: str) -> ImageInfo | None:
        try:
            result = self.runner.run([self.binary, "image", "inspect", ref], what="image inspect", timeout=120)
        except CommandFailed as exc:
            if "no such image" in exc.tail.lower():
                return None
            raise
        try:
            doc = json.loads(result.output)[0]
            labels = (doc.get("Config") or {}).get("Labels") or {}
            return ImageInfo(normalize_id(doc["Id"]), dict(labels))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise BuildError(f"could not read `docker image inspect` output for {ref}: {exc}") from None


def docker_daemon_answers(runner: Runner, binary: str = "docker", timeout: float = 10.0) -> bool:
    """True when `docker version` reaches a daemon (the CLI alone is not enough to build)."""
    try:
        result = runner.run([binary, "version", "--format", "{{.Server.Version}}"], what="docker version",
                            timeout=timeout, check=False)
    except BuildError:
        return False
    return result.returncode == 0 and bool(result.output.strip())
