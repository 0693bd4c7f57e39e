"""Pure rules for image names, tags and OCI labels (no I/O, unit-tested).

Why here and not in the backends: both backends and the registry client must agree
on what "the repository", "its registry host" and "a valid tag" are, and the rules
(git short sha, `<branch>-<build>` for Jenkins, `-dirty`, refusal in CI) are policy
that deserves tests without a build tool in sight.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from deploykit.errors import Problem, ValidationError
from deploykit.gitinfo import GitInfo

TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_PATH_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_HOST_RE = re.compile(r"^(?:localhost|[A-Za-z0-9.-]+\.[A-Za-z0-9.-]+|[A-Za-z0-9.-]+:\d+|\[[0-9a-fA-F:]+\](?::\d+)?)$")
DOCKER_HUB = "docker.io"

LABEL_REVISION = "org.opencontainers.image.revision"
LABEL_SOURCE = "org.opencontainers.image.source"
LABEL_CREATED = "org.opencontainers.image.created"


@dataclass(frozen=True)
class ImageName:
    """A repository without tag or digest, split into registry host and path."""

    host: str | None  # "registry.example.com", "127.0.0.1:5000"; None = Docker Hub
    path: str  # "shop/cart"

    @property
    def repository(self) -> str:
        return f"{self.host}/{self.path}" if self.host else self.path

    @property
    def registry(self) -> str:
        return self.host or DOCKER_HUB

    def ref(self, tag: str) -> str:
        return f"{self.repository}:{tag}"

    def __str__(self) -> str:
        return self.repository


def registry_host(url: str) -> str:
    """`https://registry.example.com/` -> `registry.example.com` (env files may hold either form)."""
    host = re.sub(r"^[a-z]+://", "", url.strip(), flags=re.IGNORECASE)
    return host.split("/", 1)[0]


def parse_image(image: str, *, file: str | None = None, key: str = "image") -> ImageName:
    """Parse a repository name; a tag or digest here is an error (deploykit supplies those)."""
    problems: list[Problem] = []
    text = image.strip()
    if "@" in text:
        problems.append(Problem(file, key, f"{image!r} carries a digest", "give the repository only; "
                                "deploykit pins the digest it pushed"))
        text = text.split("@", 1)[0]
    first, _, rest = text.partition("/")
    host: str | None = None
    if rest and _HOST_RE.match(first):
        host, path = first, rest
    else:
        path = text
    if ":" in path:
        path, _, tag = path.rpartition(":")
        problems.append(Problem(file, key, f"{image!r} carries a tag ({tag!r})", "give the repository only; "
                                "tags come from git and --tag"))
    bad = [c for c in path.split("/") if not _PATH_COMPONENT_RE.match(c)]
    if not path or bad:
        problems.append(Problem(file, key, f"{image!r} is not a valid repository name",
                                "lowercase a-z 0-9 . _ - parts joined by /, e.g. registry.example.com/shop/cart"))
    if problems:
        raise ValidationError(problems)
    return ImageName(host, path)


def place_in_registry(name: ImageName, registry_url: str | None) -> ImageName:
    """A repository without a host lives in the environment's registry (`host[:port][/namespace]`)."""
    if name.host or not registry_url:
        return name
    base = re.sub(r"^[a-z]+://", "", registry_url.strip(), flags=re.IGNORECASE).strip("/")
    host, _, namespace = base.partition("/")
    return ImageName(host, f"{namespace}/{name.path}" if namespace else name.path)


def sanitize_tag(text: str) -> str:
    """Make a branch name usable in a tag: `feature/JIRA-1 fix` -> `feature-JIRA-1-fix`."""
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip(".-")
    return tag[:100] or "branch"


@dataclass(frozen=True)
class TagPlan:
    tags: list[str]
    warnings: list[str] = field(default_factory=list)


def plan_tags(
    git: GitInfo | None,
    environ: Mapping[str, str],
    extra: Sequence[str] = (),
    *,
    allow_dirty: bool = False,
    in_ci: bool = False,
) -> TagPlan:
    """The tags for one build: `<short sha>`, `<branch>-<BUILD_NUMBER>` under Jenkins, then `extra`.

    A dirty context gets `-dirty` on the derived tags and a warning; in CI it is refused
    unless allow_dirty (a CI build must be reproducible from its commit).
    """
    problems: list[Problem] = []
    warnings: list[str] = []
    tags: list[str] = []
    suffix = ""
    if git is None:
        if not extra:
            problems.append(Problem(None, "git", "the build context is not in a git work tree (or has no commit)",
                                    "commit it, or name the image tag with --tag"))
        else:
            warnings.append("not a git work tree: only the --tag tags are used")
    else:
        if git.dirty:
            shown = ", ".join(git.changed[:5]) + (" ..." if len(git.changed) > 5 else "")
            if in_ci and not allow_dirty:
                problems.append(Problem(None, "git", f"the build context has uncommitted changes ({shown})",
                                        "CI builds must come from a commit; pass --allow-dirty to build anyway"))
            else:
                warnings.append(f"uncommitted changes in the build context ({shown}): tags get a -dirty suffix")
            suffix = "-dirty"
        tags.append(git.short_sha + suffix)
        branch, build = environ.get("BRANCH_NAME"), environ.get("BUILD_NUMBER")
        if branch and build:
            tags.append(f"{sanitize_tag(branch)}-{sanitize_tag(build)}{suffix}")
    for i, tag in enumerate(extra):
        if not TAG_RE.match(tag):
            problems.append(Problem(None, f"--tag[{i}]", f"{tag!r} is not a valid image tag",
                                    "up to 128 of A-Z a-z 0-9 _ . -, not starting with . or -"))
        elif tag not in tags:
            tags.append(tag)
    if problems:
        raise ValidationError(problems)
    return TagPlan(tags, warnings)


def oci_labels(git: GitInfo | None, created: str) -> dict[str, str]:
    """Standard OCI annotations so `inspect` answers "which commit is this?"."""
    labels = {LABEL_CREATED: created}
    if git is not None:
        labels[LABEL_REVISION] = git.sha
        if git.remote_url:
            labels[LABEL_SOURCE] = git.remote_url
    return labels


def parse_build_args(items: Sequence[str]) -> dict[str, str]:
    """`--build-arg NAME=VALUE` items -> dict; every malformed item is reported at once."""
    problems: list[Problem] = []
    args: dict[str, str] = {}
    for i, item in enumerate(items):
        key, sep, value = item.partition("=")
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key) or not sep:
            problems.append(Problem(None, f"--build-arg[{i}]", f"{item.split('=', 1)[0]!r}: expected NAME=VALUE",
                                    "e.g. --build-arg BASE=python:3.12-slim"))
            continue
        args[key] = value
    if problems:
        raise ValidationError(problems)
    return args
