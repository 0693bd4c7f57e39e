"""Build and push with buildah: daemonless, so it works on CI agents without a docker engine.

Defaults suit unprivileged/containerised agents: the `vfs` storage driver (no overlay
mounts needed) and `--isolation chroot` for RUN steps (no runc/cgroups needed). Images
are built in Docker (v2s2) format because Marathon hosts run them with the Docker engine;
`--layers` keeps intermediate layers so a no-change rebuild is a cache hit.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from deploykit.errors import BuildError
from deploykit.image.backend import BuildSpec, CliBackend, ImageInfo, build_flags, normalize_id
from deploykit.image.runner import CommandFailed, Runner


class BuildahBackend(CliBackend):
    name = "buildah"

    def __init__(
        self,
        runner: Runner,
        *,
        binary: str = "buildah",
        storage_driver: str | None = "vfs",
        root: str | None = None,
        runroot: str | None = None,
        isolation: str = "chroot",
        image_format: str = "docker",
        layers: bool = True,
    ):
        self.runner = runner
        self.binary = binary
        self.storage_driver = storage_driver
        self.root = root
        self.runroot = runroot
        self.isolation = isolation
        self.image_format = image_format
        self.layers = layers

    def _base(self) -> list[str]:
        argv = [self.binary]
        if self.root:
            argv += ["--root", self.root]
        if self.runroot:
            argv += ["--runroot", self.runroot]
        if self.storage_driver:
            argv += ["--storage-driver", self.storage_driver]
        return argv

    def build_argv(self, spec: BuildSpec, iidfile: str) -> list[str]:
        argv = [*self._base(), "bud", "--isolation", self.isolation, "--format", self.image_format,
                "--iidfile", iidfile, "-f", str(spec.dockerfile)]
        if self.layers:
            argv.append("--layers")
        return argv + build_flags(spec)

    def tag(self, source: str, targets: list[str]) -> None:
        if targets:
            self.runner.run([*self._base(), "tag", source, *targets], what="image tag", timeout=120)

    def push_argv(self, ref: str, *, authfile: Path | None, insecure: bool, digestfile: str) -> list[str]:
        argv = [*self._base(), "push", f"--tls-verify={'false' if insecure else 'true'}", "--digestfile", digestfile]
        if authfile is not None:
            argv += ["--authfile", str(authfile)]
        return [*argv, ref, f"docker://{ref}"]

    def push(self, ref: str, *, authfile: Path | None, insecure: bool, timeout: float = 900.0) -> str | None:
        with tempfile.TemporaryDirectory(prefix="dk-push-") as tmp:
            digestfile = str(Path(tmp) / "digest")
            self.runner.run(self.push_argv(ref, authfile=authfile, insecure=insecure, digestfile=digestfile),
                            what=f"push {ref}", timeout=timeout, stream=True)
            digest = Path(digestfile).read_text().strip() if Path(digestfile).exists() else ""
        return digest or None

    def inspect(self, ref: str) -> ImageInfo | None:
        try:
            result = self.runner.run([*self._base(), "inspect", "--type", "image", ref], what="image inspect",
                                     timeout=120)
        except CommandFailed as exc:
            if "not known" in exc.tail or "no such image" in exc.tail.lower():
                return None
            raise
        try:
            doc = json.loads(result.output)
            labels = (doc.get("OCIv1", {}).get("config", {}) or {}).get("Labels") or {}
            return ImageInfo(normalize_id(doc["FromImageID"]), dict(labels))
        except (ValueError, KeyError, AttributeError) as exc:
            raise BuildError(f"could not read `buildah inspect` output for {ref}: {exc}") from None
