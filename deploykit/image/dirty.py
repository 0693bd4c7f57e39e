"""Which uncommitted changes can change the image: the basis of `-dirty` and the CI refusal.

A change counts only if it can reach the build: it is inside the build context (gitinfo
already asks git about the context only), it is not excluded by the context's `.dockerignore`,
and it is not an untracked file that deploykit itself writes into the workspace. Those are the
build record and the Jenkins stage results (`deploykit-results/`, see deploykit.jenkins.pipeline).
Without this rule, a Jenkins job that saves `deploykit build --output json` in its workspace
would find its own output and refuse the next step as a "dirty" build.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from deploykit.gitinfo import GitInfo

# Folder the Jenkins pipeline writes stage results to (deploykit.jenkins.pipeline.RESULTS_DIR; a test keeps them equal)
RESULTS_DIR = "deploykit-results"

Rule = tuple[bool, re.Pattern]  # (is an exception "!pattern", compiled pattern)


def _to_regex(pattern: str) -> re.Pattern:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def parse_dockerignore(text: str) -> list[Rule]:
    """`.dockerignore` lines -> rules; comments and blanks skipped, `!` marks an exception."""
    rules: list[Rule] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = re.sub(r"/+", "/", line[1:].strip() if negated else line).strip("/")
        if pattern.startswith("./"):
            pattern = pattern[2:]
        if pattern:
            rules.append((negated, _to_regex(pattern)))
    return rules


def read_dockerignore(context: Path) -> list[Rule]:
    path = context / ".dockerignore"
    return parse_dockerignore(path.read_text(errors="replace")) if path.is_file() else []


def is_ignored(rules: Sequence[Rule], path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a folder covers what is inside."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negated, regex in rules:
        if any(regex.fullmatch(c) for c in candidates):
            ignored = not negated
    return ignored


def relevant_changes(git: GitInfo, context: Path, rules: Sequence[Rule], own_outputs: Sequence[Path] = ()
                     ) -> list[str]:
    """The subset of `git.changed` that can change the image built from `context`."""
    if not git.changed or git.root is None:
        return list(git.changed)
    root, context = Path(git.root).resolve(), context.resolve()
    own = {p.resolve() for p in own_outputs}
    untracked = set(git.untracked)
    keep = []
    for path in git.changed:
        absolute = root / path
        try:
            rel = absolute.relative_to(context).as_posix()
        except ValueError:
            rel = path
        if is_ignored(rules, rel):
            continue
        if path in untracked and (absolute in own or rel.split("/")[0] == RESULTS_DIR
                                  or path.split("/")[0] == RESULTS_DIR):
            continue
        keep.append(path)
    return keep


def effective(git: GitInfo | None, context: Path, own_outputs: Sequence[Path] = ()) -> GitInfo | None:
    """`git` with `dirty`/`changed` limited to changes that can reach the image."""
    if git is None or not git.dirty:
        return git
    changed = relevant_changes(git, context, read_dockerignore(context), own_outputs)
    return replace(git, dirty=bool(changed), changed=changed,
                   untracked=[p for p in git.untracked if p in set(changed)])
