"""The build record: what `deploykit push` pushed, read by `render|deploy --from-build`.

A small JSON file (default build.json) so that a deploy runs exactly the digest
that was pushed. Pure data + JSON (de)serialisation; the file I/O is two calls.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from deploykit.atomicfile import atomic_write
from deploykit.errors import Problem, ValidationError

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class BuildRecord:
    image: str  # repository without tag, e.g. "registry.example.com/shop/cart"
    digest: str  # "sha256:<64 hex>" of the pushed manifest
    tags: list[str] = field(default_factory=list)
    git_sha: str | None = None
    build_url: str | None = None
    created: str | None = None

    @property
    def pinned(self) -> str:
        """`image@sha256:...`: what Marathon should run."""
        return f"{self.image}@{self.digest}"

    def to_dict(self) -> dict:
        return asdict(self)


def parse_record(doc: object, file: str | None = None) -> BuildRecord:
    problems: list[Problem] = []
    if not isinstance(doc, dict):
        raise ValidationError([Problem(file, "", "a build record must be a JSON object")])
    for key in ("image", "digest"):
        if not isinstance(doc.get(key), str) or not doc.get(key):
            problems.append(Problem(file, key, "is required and must be a string"))
    digest = doc.get("digest")
    if isinstance(digest, str) and digest and not DIGEST_RE.match(digest):
        problems.append(Problem(file, "digest", f"{digest!r} is not a sha256 digest", "expected sha256:<64 hex>"))
    tags = doc.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        problems.append(Problem(file, "tags", "must be a list of strings"))
    known = {"image", "digest", "tags", "git_sha", "build_url", "created"}
    for key in sorted(set(doc) - known):
        problems.append(Problem(file, key, "unknown key", f"known keys: {', '.join(sorted(known))}"))
    if problems:
        raise ValidationError(problems)
    return BuildRecord(
        image=doc["image"],
        digest=doc["digest"],
        tags=list(tags),
        git_sha=doc.get("git_sha"),
        build_url=doc.get("build_url"),
        created=doc.get("created"),
    )


def load_record(path: str | Path) -> BuildRecord:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        problem = Problem(str(path), "", "build record not found", "run `deploykit push` first")
        raise ValidationError([problem]) from None
    except json.JSONDecodeError as exc:
        raise ValidationError([Problem(str(path), "", f"not valid JSON: {exc.msg}", line=exc.lineno)]) from None
    return parse_record(doc, str(path))


def save_record(record: BuildRecord, path: str | Path) -> None:
    """Write atomically (a crash never leaves half a record for the next deploy)."""
    atomic_write(path, json.dumps(record.to_dict(), indent=2) + "\n", mode=0o600)
