"""An offline Python base image made from Debian packages, pushed once to a registry.

Why: the example's Dockerfile (and a team's first local build) needs a base, and no public
registry may be reachable. mmdebstrap builds a minimal Debian root with python3 from the
machine's own apt mirror; `docker import` turns it into an image; it is pushed to the local
registry as `<registry>/deploykit/python:3.11`. The engine's image store is the cache: once
made, later calls only tag and push (or do nothing when the registry already has it).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from deploykit.errors import BuildError
from deploykit.image.runner import CommandFailed, Runner

BASE_REPO = "deploykit/python"
BASE_TAG = "3.11"
SUITE = "bookworm"
LOCAL_REF = f"{BASE_REPO}:{BASE_TAG}"  # the engine-side cache, no registry host


def base_ref(registry_host: str) -> str:
    return f"{registry_host}/{BASE_REPO}:{BASE_TAG}"


def debian_mirror(sources: list[Path] | None = None) -> str:
    """The first Debian mirror in the machine's apt sources (one-line and deb822 formats)."""
    if sources is None:
        sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.sources")),
                   *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            m = re.match(r"^URIs:\s*(\S+)", line) or re.match(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
            if m and "security" not in m.group(1) and "debian" in m.group(1):
                return m.group(1)
    return "http://deb.debian.org/debian"


def ensure_base_image(registry_host: str, docker: str, *, runner: Runner | None = None,
                      registry_has: Callable[[], bool] | None = None, log: Callable[[str], None] = print) -> str:
    """Make sure `<registry_host>/deploykit/python:3.11` exists in the registry; returns the ref.

    `registry_has` answers whether the registry already holds it (skips everything).
    """
    runner = runner or Runner()
    ref = base_ref(registry_host)
    if registry_has is not None and registry_has():
        log(f"base image {ref} is already in the registry")
        return ref
    ensure_local_base(docker, runner=runner, log=log)
    runner.run([docker, "tag", LOCAL_REF, ref], what="tag base image", timeout=60)
    log(f"pushing {ref}")
    runner.run([docker, "push", ref], what=f"push {ref}", timeout=600)
    return ref


def ensure_local_base(docker: str, *, runner: Runner | None = None, log: Callable[[str], None] = print) -> str:
    """`deploykit/python:3.11` in the engine's own store (built once from Debian packages); returns the ref."""
    runner = runner or Runner()
    if not _engine_has(runner, docker, LOCAL_REF):
        _build(runner, docker, log)
    return LOCAL_REF


def _engine_has(runner: Runner, docker: str, ref: str) -> bool:
    try:
        runner.run([docker, "image", "inspect", ref], what="image inspect", timeout=60)
    except CommandFailed:
        return False
    return True


def _build(runner: Runner, docker: str, log: Callable[[str], None]) -> None:
    import shutil

    if shutil.which("mmdebstrap") is None:
        raise BuildError("making the base image needs mmdebstrap (apt-get install mmdebstrap)")
    mirror = debian_mirror()
    log(f"building {LOCAL_REF} from Debian {SUITE} packages ({mirror}); about 20 s, once")
    with tempfile.TemporaryDirectory(prefix="dk-base-") as tmp:
        tar = Path(tmp) / "rootfs.tar"
        runner.run(["mmdebstrap", "--variant=apt", "--include=python3,ca-certificates", "--quiet", SUITE, str(tar),
                    mirror], what="mmdebstrap", timeout=900)
        path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        runner.run([docker, "import", "--change", f"ENV {path}", "--change", 'CMD ["python3"]', str(tar), LOCAL_REF],
                   what="docker import", timeout=300)
