"""buildah (daemonless, vfs storage, chroot isolation) in a private storage root for one session.

The busybox base image is made once per session from Debian's busybox-static (no internet):
a scratch container, /bin/busybox copied in, `busybox --install -s /bin` run inside it
(a real RUN through chroot isolation), committed as `localhost/dk-busybox:latest`.
Tests point deploykit at this storage through DEPLOYKIT_BUILDAH_ROOT / _RUNROOT (see `.env`).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.harness.common import require_binary

BASE_IMAGE = "localhost/dk-busybox:latest"


class BuildahStore:
    def __init__(self, root: Path):
        self.root = root / "storage"
        self.runroot = root / "run"
        self.base_image = BASE_IMAGE

    @property
    def argv(self) -> list[str]:
        return ["buildah", "--root", str(self.root), "--runroot", str(self.runroot), "--storage-driver", "vfs"]

    @property
    def env(self) -> dict[str, str]:
        """Environment variables that point the deploykit CLI at this storage."""
        return {"DEPLOYKIT_BUILDAH_ROOT": str(self.root), "DEPLOYKIT_BUILDAH_RUNROOT": str(self.runroot),
                "DEPLOYKIT_STORAGE_DRIVER": "vfs", "DEPLOYKIT_IMAGE_BACKEND": "buildah"}

    def run(self, *args: str, timeout: float = 120) -> str:
        out = subprocess.run([*self.argv, *args], capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"buildah {' '.join(args)} failed: {out.stderr or out.stdout}")
        return out.stdout.strip()

    def make_base_image(self, busybox: str) -> None:
        ctr = self.run("from", "scratch")
        try:
            self.run("copy", ctr, busybox, "/bin/busybox")
            self.run("run", "--isolation", "chroot", ctr, "/bin/busybox", "--install", "-s", "/bin")
            self.run("commit", "--format", "docker", ctr, self.base_image)
        finally:
            self.run("rm", ctr)

    def image_exists(self, ref: str) -> bool:
        out = subprocess.run([*self.argv, "inspect", "--type", "image", ref], capture_output=True, timeout=60)
        return out.returncode == 0


@pytest.fixture(scope="session")
def buildah_store():
    """A private buildah storage with the busybox base image built (once per session)."""
    require_binary("buildah")
    busybox = require_binary("busybox")  # Debian busybox-static: runs in an empty image
    with tempfile.TemporaryDirectory(prefix="dk-buildah-") as tmp:
        store = BuildahStore(Path(tmp))
        store.make_base_image(busybox)
        try:
            yield store
        finally:
            subprocess.run([*store.argv, "rm", "--all"], capture_output=True, timeout=60)
            subprocess.run([*store.argv, "rmi", "--all", "--force"], capture_output=True, timeout=120)
