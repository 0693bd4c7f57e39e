"""The interface every image backend implements (buildah, docker), and the data it trades.

Why an interface: the pipeline (tags, labels, immutable-tag checks, digest read-back,
build record) is the same whichever tool builds; only "how to run the tool" differs.
"""

from __future__ import annotations

import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deploykit.image.runner import Runner


@dataclass(frozen=True)
class BuildSpec:
    context: Path
    dockerfile: Path
    refs: list[str]  # full local names, e.g. ["registry.example.com/shop/cart:1a2b3c4d5e6f"]
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    timeout: float = 1800.0


@dataclass(frozen=True)
class ImageInfo:
    id: str  # "sha256:<hex>": the image config digest (what a pushed manifest's config.digest is)
    labels: dict[str, str] = field(default_factory=dict)


class Backend(ABC):
    """Build, tag, push and inspect images with one tool."""

    name: str = "?"

    @abstractmethod
    def build(self, spec: BuildSpec) -> ImageInfo:
        """Build and tag every ref in spec.refs; raise BuildError with the failing step's output."""

    @abstractmethod
    def tag(self, source: str, targets: list[str]) -> None:
        """Give an existing local image more names."""

    @abstractmethod
    def push(self, ref: str, *, authfile: Path | None, insecure: bool, timeout: float = 900.0) -> str | None:
        """Push a local ref to the registry it names; return the manifest digest if the tool reports it."""

    @abstractmethod
    def inspect(self, ref: str) -> ImageInfo | None:
        """The local image `ref`, or None when there is no such image."""


class CliBackend(Backend):
    """A backend driving a CLI that builds from a Dockerfile and writes the image id to an --iidfile."""

    runner: Runner

    @abstractmethod
    def build_argv(self, spec: BuildSpec, iidfile: str) -> list[str]:
        """The exact build command line (public so the benchmark runs the same command by hand)."""

    def build(self, spec: BuildSpec) -> ImageInfo:
        with tempfile.TemporaryDirectory(prefix="dk-build-") as tmp:
            iidfile = str(Path(tmp) / "iid")
            self.runner.run(self.build_argv(spec, iidfile), what="image build", timeout=spec.timeout, stream=True)
            image_id = normalize_id(Path(iidfile).read_text())
        return ImageInfo(image_id, dict(spec.labels))  # the labels we set; no extra `inspect` round trip


def build_flags(spec: BuildSpec) -> list[str]:
    """The build options buildah and docker spell alike, ending with the context directory."""
    argv: list[str] = []
    if spec.no_cache:
        argv.append("--no-cache")
    if spec.target:
        argv += ["--target", spec.target]
    for key, value in spec.build_args.items():
        argv += ["--build-arg", f"{key}={value}"]
    for key, value in spec.labels.items():
        argv += ["--label", f"{key}={value}"]
    for ref in spec.refs:
        argv += ["-t", ref]
    argv.append(str(spec.context))
    return argv


def normalize_id(image_id: str) -> str:
    image_id = image_id.strip()
    return image_id if image_id.startswith("sha256:") else f"sha256:{image_id}"
