"""gitinfo against real throwaway repositories (git is a local tool, no service)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from deploykit.gitinfo import read_git_info, strip_credentials


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    (r / "app").mkdir(parents=True)
    (r / "other").mkdir()
    (r / "app" / "Dockerfile").write_text("FROM scratch\n")
    (r / "other" / "notes.txt").write_text("x\n")
    (r / ".gitignore").write_text("*.log\n")
    git(r, "init", "-q", "-b", "trunk")
    git(r, "config", "user.email", "ci@example.com")
    git(r, "config", "user.name", "CI")
    git(r, "add", ".")
    git(r, "commit", "-q", "-m", "first")
    return r


def test_clean_repo(repo):
    info = read_git_info(repo / "app", environ={})
    assert info.sha == git(repo, "rev-parse", "HEAD") and len(info.short_sha) == 12
    assert info.branch == "trunk" and not info.dirty and info.changed == []
    assert info.remote_url is None and info.commit_time.startswith("20")


def test_jenkins_branch_name_wins(repo):
    assert read_git_info(repo, environ={"BRANCH_NAME": "PR-12"}).branch == "PR-12"


def test_detached_head_has_no_branch(repo):
    git(repo, "checkout", "-q", "--detach")
    assert read_git_info(repo, environ={}).branch is None


def test_dirty_is_scoped_to_the_path_and_ignores_ignored_files(repo):
    (repo / "other" / "notes.txt").write_text("changed\n")
    (repo / "app" / "build.log").write_text("ignored\n")
    assert not read_git_info(repo / "app", environ={}).dirty  # a change elsewhere does not touch the image
    assert read_git_info(repo, environ={}).dirty
    (repo / "app" / "new.py").write_text("untracked\n")
    info = read_git_info(repo / "app", environ={})
    assert info.dirty and info.changed == ["app/new.py"]


def test_origin_credentials_are_stripped(repo):
    git(repo, "remote", "add", "origin", "https://jenkins:ghp_secret@github.example.com/shop/cart.git")
    assert read_git_info(repo, environ={}).remote_url == "https://github.example.com/shop/cart.git"


def test_not_a_repository(tmp_path):
    assert read_git_info(tmp_path, environ={}) is None


def test_strip_credentials():
    assert strip_credentials("ssh://git@host/x.git") == "ssh://host/x.git"
    assert strip_credentials("git@host:x.git") == "git@host:x.git"  # scp-like: a user name, no secret
    assert strip_credentials("https://host/x.git") == "https://host/x.git"
