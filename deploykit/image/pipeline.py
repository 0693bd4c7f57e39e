"""`deploykit build` and `push` as library calls: plan (validate everything), build, push + pin.

Order matters and is the point of this module:
1. `plan_build` checks every input at once (image name, context, Dockerfile, tags, build
   args, dirty tree in CI) before any tool runs.
2. `build_image` runs the backend; a failure raises BuildError with the failing step's
   output, so nothing after it (no push) happens.
3. `push_image` checks the registry answers and accepts our credentials, refuses
   `--immutable-tags` conflicts *before* pushing anything (comparing the local image id
   with each existing tag's config digest), pushes every tag, reads the manifest digest
   back from the registry, verifies the manifest by digest, and writes the build record
   that `render|deploy --from-build` pin to.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from deploykit.buildrecord import BuildRecord, save_record
from deploykit.ci import in_ci
from deploykit.errors import EXIT_LOCKED, BuildError, DeployKitError, Problem, ValidationError
from deploykit.gitinfo import GitInfo, read_git_info
from deploykit.image.auth import Credentials, private_authfile
from deploykit.image.backend import Backend, BuildSpec, ImageInfo
from deploykit.image.dirty import effective as effective_git
from deploykit.image.naming import (
    LABEL_CREATED,
    ImageName,
    oci_labels,
    parse_build_args,
    parse_image,
    place_in_registry,
    plan_tags,
)


class RegistryAPI(Protocol):
    """What the pipeline needs from a registry (deploykit.clients.registry.RegistryClient provides it)."""

    def ping(self) -> None: ...

    def manifest_digest(self, repo: str, reference: str) -> str | None: ...

    def get_manifest(self, repo: str, reference: str) -> Any: ...


class ImmutableTagConflict(DeployKitError):
    """`--immutable-tags`: a tag already names a different image in the registry."""

    exit_code = EXIT_LOCKED

    def __init__(self, conflicts: list[tuple[str, str, str]]):
        self.conflicts = conflicts  # (ref, digest in the registry, local image id)
        lines = [f"  {ref} is {remote} in the registry; this build is {image}" for ref, remote, image in conflicts]
        super().__init__("--immutable-tags: tag(s) already point at a different image; nothing was pushed\n"
                         + "\n".join(lines))

    def to_dict(self) -> dict:
        return {**super().to_dict(),
                "conflicts": [{"ref": r, "registry_digest": d, "local_image": i} for r, d, i in self.conflicts]}


@dataclass(frozen=True)
class BuildPlan:
    image: ImageName
    context: Path
    dockerfile: Path
    tags: list[str]
    labels: dict[str, str]
    build_args: dict[str, str]
    target: str | None
    git: GitInfo | None
    warnings: list[str] = field(default_factory=list)
    no_cache: bool = False
    timeout: float = 1800.0

    @property
    def refs(self) -> list[str]:
        return [self.image.ref(t) for t in self.tags]

    def to_dict(self) -> dict:
        return {"image": self.image.repository, "tags": self.tags, "refs": self.refs, "context": str(self.context),
                "dockerfile": str(self.dockerfile), "labels": self.labels, "target": self.target,
                "git": self.git.to_dict() if self.git else None, "warnings": self.warnings}


def created_timestamp(environ: Mapping[str, str], git: GitInfo | None = None) -> str:
    """RFC 3339 UTC for org.opencontainers.image.created.

    SOURCE_DATE_EPOCH when set; else the commit time of a clean tree, so rebuilding a commit
    gives the same labels, hence a full layer-cache hit and the *same* image and digest (which
    is what lets `--immutable-tags` accept a re-run of the same commit); else now.
    """
    epoch = environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        moment = datetime.fromtimestamp(int(epoch), timezone.utc)
    elif git is not None and not git.dirty and git.commit_time:
        moment = datetime.fromisoformat(git.commit_time).astimezone(timezone.utc)
    else:
        moment = datetime.now(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def plan_build(
    *,
    image: str | None,
    app_dir: Path,
    context: str = ".",
    dockerfile: str = "Dockerfile",
    registry_url: str | None = None,
    spec_build_args: Mapping[str, str] | None = None,
    build_args: Sequence[str] = (),
    target: str | None = None,
    extra_tags: Sequence[str] = (),
    allow_dirty: bool = False,
    no_cache: bool = False,
    timeout: float = 1800.0,
    environ: Mapping[str, str] | None = None,
    file: str | None = None,
    own_outputs: Sequence[Path] = (),
    git_reader: Callable[[Path, Mapping[str, str]], GitInfo | None] = read_git_info,
) -> BuildPlan:
    """Validate every build input and decide tags/labels; raises ValidationError with all problems.

    `context` is relative to `app_dir` (the app.yaml folder), `dockerfile` relative to the context.
    `own_outputs` are files this run will write (the build record): never a reason to call the tree dirty.
    """
    environ = os.environ if environ is None else environ
    problems: list[Problem] = []
    name: ImageName | None = None
    if not image:
        problems.append(Problem(file, "image", "is required to build", "e.g. image: registry.example.com/shop/cart"))
    else:
        try:
            name = place_in_registry(parse_image(image, file=file), registry_url)
        except ValidationError as exc:
            problems.extend(exc.problems)
    ctx = (app_dir / context).resolve()
    df = (ctx / dockerfile).resolve()
    if not ctx.is_dir():
        problems.append(Problem(file, "build.context", f"build context {ctx} is not a directory",
                                "paths are relative to the app.yaml folder"))
    elif not df.is_file():
        problems.append(Problem(file, "build.dockerfile", f"no Dockerfile at {df}",
                                "paths are relative to build.context; default Dockerfile"))
    for out in own_outputs:
        if not out.resolve().parent.is_dir():
            problems.append(Problem(None, "output", f"cannot write {out}: folder {out.parent} does not exist",
                                    "create it, or choose another --build-record / --junit path"))
    args = dict(spec_build_args or {})
    try:
        args.update(parse_build_args(build_args))
    except ValidationError as exc:
        problems.extend(exc.problems)
    git = git_reader(ctx if ctx.is_dir() else app_dir, environ)
    if ctx.is_dir():
        git = effective_git(git, ctx, own_outputs)
    tags: list[str] = []
    warnings: list[str] = []
    try:
        plan = plan_tags(git, environ, extra_tags, allow_dirty=allow_dirty, in_ci=in_ci(environ))
        tags, warnings = plan.tags, plan.warnings
    except ValidationError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ValidationError(problems)
    assert name is not None
    labels = oci_labels(git, created_timestamp(environ, git))
    return BuildPlan(image=name, context=ctx, dockerfile=df, tags=tags, labels=labels, build_args=args,
                     target=target, git=git, warnings=warnings, no_cache=no_cache, timeout=timeout)


@dataclass(frozen=True)
class BuildResult:
    image_id: str
    refs: list[str]
    seconds: float
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def info(self) -> ImageInfo:
        return ImageInfo(self.image_id, dict(self.labels))

    def to_dict(self) -> dict:
        return {"image_id": self.image_id, "refs": self.refs, "build_seconds": round(self.seconds, 3)}


def build_image(plan: BuildPlan, backend: Backend) -> BuildResult:
    """Build and tag every ref of the plan."""
    start = time.monotonic()
    spec = BuildSpec(context=plan.context, dockerfile=plan.dockerfile, refs=plan.refs, build_args=plan.build_args,
                     target=plan.target, labels=plan.labels, no_cache=plan.no_cache, timeout=plan.timeout)
    info = backend.build(spec)
    return BuildResult(info.id, plan.refs, time.monotonic() - start, dict(info.labels))


@dataclass(frozen=True)
class PushResult:
    record: BuildRecord
    image_id: str
    media_type: str
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"record": self.record.to_dict(), "pinned": self.record.pinned, "image_id": self.image_id,
                "media_type": self.media_type, "push_seconds": round(self.seconds, 3), "push_warnings": self.warnings}


def push_image(
    plan: BuildPlan,
    backend: Backend,
    registry: RegistryAPI,
    *,
    credentials: Credentials | None,
    insecure: bool,
    immutable_tags: bool = False,
    record_path: str | Path | None = "build.json",
    environ: Mapping[str, str] | None = None,
    push_timeout: float = 900.0,
    built: ImageInfo | None = None,
) -> PushResult:
    """Push every tag of an already built plan, pin the registry's digest, write the build record.

    `built` is the image `build_image` just made (all refs tagged by the build): given, the local
    lookup and re-tagging are skipped. Without it (`deploykit push` alone) the sha tag must exist
    locally and the other tags are pointed at it.
    """
    environ = os.environ if environ is None else environ
    start = time.monotonic()
    repo, refs = plan.image, plan.refs
    local = built
    if local is None:
        local = backend.inspect(refs[0])
        if local is None:
            raise ValidationError([Problem(None, "image", f"{refs[0]} is not built on this machine",
                                           "run `deploykit build` first (or `deploykit build --push`)")])
        backend.tag(refs[0], refs[1:])  # the sha tag defines the image; other tags follow it
    registry.ping()  # unreachable / auth refused: fail before pushing anything
    if immutable_tags:
        _check_immutable(registry, repo, plan.tags, local)
    warnings: list[str] = []
    tool_digests: set[str] = set()
    with private_authfile(repo.registry, credentials) as authfile:
        for ref in refs:
            digest = backend.push(ref, authfile=authfile, insecure=insecure, timeout=push_timeout)
            if digest:
                tool_digests.add(digest)
    digests = {tag: registry.manifest_digest(repo.path, tag) for tag in plan.tags}
    missing = [t for t, d in digests.items() if d is None]
    if missing:
        raise BuildError(f"pushed, but the registry has no manifest for {', '.join(repo.ref(t) for t in missing)}")
    distinct = set(digests.values())
    if len(distinct) != 1:
        raise BuildError("pushed tags point at different manifests: "
                         + ", ".join(f"{t}={d}" for t, d in digests.items()))
    digest = distinct.pop()
    if tool_digests and tool_digests != {digest}:
        warnings.append(f"{backend.name} reported {', '.join(sorted(tool_digests))}; the registry serves {digest}")
    manifest = registry.get_manifest(repo.path, digest)
    if manifest is None:
        raise BuildError(f"the registry does not serve {repo.repository}@{digest}")
    if manifest.config_digest and manifest.config_digest != local.id:
        raise BuildError(f"{repo.repository}@{digest} holds image {manifest.config_digest}, not the one built "
                         f"({local.id}): someone pushed the same tags concurrently")
    record = BuildRecord(
        image=repo.repository,
        digest=digest,
        tags=list(plan.tags),
        git_sha=plan.git.sha if plan.git else None,
        build_url=environ.get("BUILD_URL") or None,
        created=local.labels.get(LABEL_CREATED) or plan.labels.get(LABEL_CREATED),
    )
    if record_path:
        save_record(record, record_path)
    return PushResult(record, local.id, manifest.media_type, time.monotonic() - start, warnings)


def _check_immutable(registry: RegistryAPI, repo: ImageName, tags: Sequence[str], local: ImageInfo) -> None:
    conflicts = []
    for tag in tags:
        remote = registry.get_manifest(repo.path, tag)
        if remote is not None and remote.config_digest != local.id:
            conflicts.append((repo.ref(tag), remote.digest, local.id))
    if conflicts:
        raise ImmutableTagConflict(conflicts)
