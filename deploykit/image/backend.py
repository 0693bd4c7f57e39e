"""The interface every image backend implements (buildah, docker), and the data it trades.

Why an interface: the pipeline (tags, labels, immutable-tag checks, digest read-back,
build record) is the same whichever tool builds; only "how to run the tool" differs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path


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


def normalize_id(image_id: str) -> str:
    image_id = image_id.strip()
    return image_id if image_id.startswith("sha256:") else f"sha256:{image_id}"
