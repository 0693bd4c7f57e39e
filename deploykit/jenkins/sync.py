"""Keep one Jenkins pipeline job per app in step with the repo: plan (read-only), then apply.

The client is injected (deploykit.clients.jenkins.JenkinsClient or anything with the
same methods). `plan` only reads; `apply` creates missing folders, creates new jobs and
rewrites only jobs whose normalised config differs, so running sync twice changes
nothing the second time.
"""

from __future__ import annotations

import configparser
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from xml.etree import ElementTree as ET

from deploykit.errors import Problem, RemoteError, ValidationError
from deploykit.jenkins.jobxml import JobConfig, carry_runtime_state, config_diff, same_config

FOLDER_CLASS = "com.cloudbees.hudson.plugins.folder.Folder"
SKIP_DIRS = {".git", ".venv", "node_modules", "__pycache__", ".tox"}


class JenkinsLike(Protocol):
    def job_config(self, name: str) -> str | None: ...
    def item_class(self, name: str) -> str | None: ...
    def create_folder(self, name: str) -> None: ...
    def create_job(self, name: str, config_xml: str) -> None: ...
    def update_job(self, name: str, config_xml: str) -> None: ...


@dataclass
class JobChange:
    name: str
    action: str  # "create", "update" or "unchanged"
    source: str
    diff: str = ""
    config_xml: str = ""  # what apply posts
    folders: list[str] = field(default_factory=list)  # folders apply creates first

    def to_dict(self) -> dict:
        return {"job": self.name, "action": self.action, "source": self.source, "folders": self.folders,
                "diff": self.diff}


def find_app_files(paths: Iterable[str | Path]) -> list[Path]:
    """Each argument is an app.yaml or a folder searched for app.yaml files (hidden/vendor folders skipped)."""
    found: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            hits = sorted(
                p for p in path.rglob("app.yaml") if not SKIP_DIRS.intersection(p.relative_to(path).parts[:-1])
            )
            if not hits:
                problems.append(Problem(str(path), "", "no app.yaml found in this folder"))
            found += hits
        else:
            problems.append(Problem(str(path), "", "no such file or folder"))
    if not found and not problems:
        problems.append(Problem(None, "APPS", "give at least one app.yaml or folder"))
    if problems:
        raise ValidationError(problems)
    unique: dict[Path, Path] = {}
    for p in found:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


UNSAFE = set("?*\\%!@#$^&|<>[];:")  # characters Jenkins refuses in item names


def check_folder(folder: str | None) -> None:
    """A --folder like `team/deploys`: every segment must be a name Jenkins accepts."""
    if not folder:
        return
    segments = folder.strip("/").split("/")
    problems = []
    for seg in segments:
        bad = sorted(UNSAFE.intersection(seg))
        if not seg.strip() or seg in (".", "..") or bad or seg != seg.strip():
            what = f"contains {''.join(bad)!r}" if bad else "is empty, '.', '..' or padded with spaces"
            problems.append(Problem(None, "--folder", f"folder name {seg!r} {what}", "e.g. --folder team/deploys"))
    if problems:
        raise ValidationError(problems)


def job_name(app_id: str, folder: str | None) -> str:
    """`/shop/cart` in folder `team` -> `team/shop-cart`."""
    short = app_id.strip("/").replace("/", "-")
    return f"{folder.strip('/')}/{short}" if folder and folder.strip("/") else short


def check_unique(jobs: list[JobConfig]) -> None:
    seen: dict[str, str] = {}
    problems = []
    for job in jobs:
        if job.name in seen:
            problems.append(Problem(job.source, "id", f"job {job.name!r} is also made from {seen[job.name]}"))
        seen.setdefault(job.name, job.source)
    if problems:
        raise ValidationError(problems)


def plan(client: JenkinsLike, jobs: list[tuple[JobConfig, str]]) -> list[JobChange]:
    """Read-only: what apply would do for each (job, desired config.xml)."""
    changes = []
    known_folders: dict[str, bool] = {}
    problems: list[Problem] = []
    for job, desired in jobs:
        live = client.job_config(job.name)
        if live is not None and _root_tag(live) != _root_tag(desired):
            problems.append(
                Problem(
                    job.source,
                    "id",
                    f"Jenkins already has an item {job.name!r} of another kind (<{_root_tag(live)}>)",
                    "rename or delete it in Jenkins, or sync into another --folder",
                )
            )
            continue
        if live is None:
            folders = _missing_folders(client, job.name, known_folders)
            diff = config_diff(None, desired, job.name)
            changes.append(JobChange(job.name, "create", job.source, diff, desired, folders))
        elif same_config(live, desired):
            changes.append(JobChange(job.name, "unchanged", job.source))
        else:
            diff = config_diff(live, desired, job.name)
            changes.append(JobChange(job.name, "update", job.source, diff, carry_runtime_state(desired, live)))
    if problems:
        raise ValidationError(problems)
    return changes


def _root_tag(xml_text: str) -> str:
    try:
        return ET.fromstring(xml_text.encode("utf-8")).tag
    except ET.ParseError:
        return "?"


def _missing_folders(client: JenkinsLike, name: str, known: dict[str, bool]) -> list[str]:
    parts = name.split("/")[:-1]
    missing = []
    for i in range(1, len(parts) + 1):
        folder = "/".join(parts[:i])
        if folder not in known:
            cls = client.item_class(folder)
            if cls is not None and cls != FOLDER_CLASS:
                raise RemoteError(f"Jenkins item {folder!r} exists but is not a folder ({cls})", status=None)
            known[folder] = cls is not None
        if not known[folder]:
            missing.append(folder)
            known[folder] = True  # created by the first job that needs it
    return missing


def apply(client: JenkinsLike, changes: list[JobChange], progress: Callable[[str], None] = lambda _: None) -> None:
    for change in changes:
        for folder in change.folders:
            progress(f"creating folder {folder}")
            client.create_folder(folder)
        if change.action == "create":
            progress(f"creating job {change.name}")
            client.create_job(change.name, change.config_xml)
        elif change.action == "update":
            progress(f"updating job {change.name}")
            client.update_job(change.name, change.config_xml)


def git_origin(start: Path) -> tuple[Path, str | None] | None:
    """(repository root, origin URL or None) for the git work tree holding `start`, read from .git/config."""
    here = start.resolve()
    for folder in (here, *here.parents):
        dotgit = folder / ".git"
        if dotgit.is_dir():
            config = dotgit / "config"
        elif dotgit.is_file():  # a worktree: "gitdir: <path>"
            text = dotgit.read_text().strip()
            gitdir = Path(text.split(":", 1)[1].strip()) if text.startswith("gitdir:") else None
            if gitdir is None:
                continue
            gitdir = gitdir if gitdir.is_absolute() else folder / gitdir
            common = gitdir / "commondir"
            base = (gitdir / common.read_text().strip()).resolve() if common.is_file() else gitdir
            config = base / "config"
        else:
            continue
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        try:
            parser.read(config)
        except configparser.Error:
            return folder, None
        url = parser.get('remote "origin"', "url", fallback=None)
        return folder, url
    return None
