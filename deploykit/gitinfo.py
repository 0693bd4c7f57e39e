"""What git says about the source being built or deployed: commit, branch, dirty state, origin.

Used for image tags and OCI labels (`deploykit build`) and for the DEPLOYKIT_GIT_SHA
Marathon label (`deploykit deploy`), so an image or a running app can always be traced
back to a commit. Reads git through its CLI (no extra dependency) via the image runner
(timeouts, no stray processes); `status` runs with GIT_OPTIONAL_LOCKS=0 so asking never
takes the repository's index lock.

Dirty state is checked for a *path* (the build context), not the whole work tree:
an uncommitted file elsewhere in a monorepo does not change the image.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from deploykit.errors import BuildError
from deploykit.image.runner import Result

SHORT_SHA_LEN = 12
_USERINFO_RE = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@]*@", re.IGNORECASE)


@dataclass(frozen=True)
class GitInfo:
    sha: str  # full 40-hex commit id of HEAD
    branch: str | None  # $BRANCH_NAME (Jenkins) or the checked-out branch; None when detached
    dirty: bool  # uncommitted changes (incl. untracked, not ignored) under the path asked about
    changed: list[str] = field(default_factory=list)  # those paths, relative to `root`
    remote_url: str | None = None  # origin, with any credentials removed
    commit_time: str | None = None  # ISO 8601 committer date of HEAD
    untracked: list[str] = field(default_factory=list)  # the subset of `changed` git does not track
    root: str | None = None  # the work tree's top folder

    @property
    def short_sha(self) -> str:
        return self.sha[:SHORT_SHA_LEN]

    def to_dict(self) -> dict:
        return {"sha": self.sha, "short_sha": self.short_sha, "branch": self.branch, "dirty": self.dirty,
                "remote_url": self.remote_url, "commit_time": self.commit_time}


def strip_credentials(url: str) -> str:
    """`https://user:token@host/x.git` -> `https://host/x.git` (origin URLs can embed tokens)."""
    return _USERINFO_RE.sub(lambda m: m.group("scheme"), url)


def _git(path: Path, *args: str, timeout: float = 20.0) -> Result:
    from deploykit.image.runner import Runner

    env = {"GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    return Runner().run(["git", "-C", str(path), *args], what="git", timeout=timeout, env=env, check=False,
                        discard_stderr=True)


def read_git_info(path: str | os.PathLike, environ: Mapping[str, str] | None = None) -> GitInfo | None:
    """GitInfo for the repository containing `path`, or None when it is not in a git work tree
    (or git is not installed). `environ` supplies BRANCH_NAME (defaults to os.environ)."""
    environ = os.environ if environ is None else environ
    p = Path(path).resolve()
    where = p if p.is_dir() else p.parent
    try:
        head = _git(where, "rev-parse", "--verify", "-q", "HEAD")
    except BuildError:  # git missing, or hung past the timeout
        return None
    if head.returncode != 0:
        return None  # not a repository, or a repository without commits
    sha = head.output.strip()
    branch = environ.get("BRANCH_NAME") or None
    if branch is None:
        ref = _git(where, "symbolic-ref", "--short", "-q", "HEAD")
        branch = (ref.output.strip() or None) if ref.returncode == 0 else None
    status = _git(where, "status", "--porcelain", "-z", "--untracked-files=all", "--", str(p))
    changed, untracked = _parse_status(status.output)
    top = _git(where, "rev-parse", "--show-toplevel")
    remote = _git(where, "config", "--get", "remote.origin.url")
    remote_url = strip_credentials(remote.output.strip()) if remote.returncode == 0 and remote.output.strip() else None
    when = _git(where, "show", "-s", "--format=%cI", "HEAD")
    return GitInfo(
        sha=sha,
        branch=branch,
        dirty=bool(changed),
        changed=changed,
        remote_url=remote_url,
        commit_time=when.output.strip() or None,
        untracked=untracked,
        root=top.output.strip() or None,
    )


def _parse_status(out: str) -> tuple[list[str], list[str]]:
    """`git status --porcelain -z` -> (changed paths, untracked paths); a rename lists its new path."""
    changed: list[str] = []
    untracked: list[str] = []
    entries = out.split("\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        if code[0] in "RC":
            i += 1  # the next entry is the rename's source path
        changed.append(path)
        if code == "??":
            untracked.append(path)
    return changed, untracked
