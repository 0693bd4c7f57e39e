"""Dirty means "uncommitted changes that can reach the image": .dockerignore and deploykit's own outputs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from deploykit.errors import ValidationError
from deploykit.gitinfo import GitInfo, read_git_info
from deploykit.image.dirty import RESULTS_DIR, effective, is_ignored, parse_dockerignore, relevant_changes
from deploykit.image.pipeline import plan_build

IGNORE = """
# comment
*.md
!README.md
docs/
**/*.log
/tmp?
[a-c].txt
./build/out
"""


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        ("CHANGES.md", True),
        ("README.md", False),  # exception after the rule
        ("sub/CHANGES.md", False),  # `*` does not cross folders
        ("docs/index.html", True),  # a folder pattern covers its contents
        ("a/b/c/debug.log", True),
        ("debug.log", True),
        ("tmp1/x", True),
        ("tmp12/x", False),
        ("b.txt", True),
        ("d.txt", False),
        ("build/out/app.bin", True),
        ("server.py", False),
    ],
)
def test_dockerignore_semantics(path, ignored):
    assert is_ignored(parse_dockerignore(IGNORE), path) is ignored


def test_last_matching_rule_wins():
    rules = parse_dockerignore("!keep.txt\n*.txt\n")
    assert is_ignored(rules, "keep.txt")  # the exception came first, so the later rule wins


def test_relevant_changes_drop_ignored_and_own_untracked_outputs(tmp_path):
    context = tmp_path / "app"
    git = GitInfo(sha="0" * 40, branch=None, dirty=True, root=str(tmp_path),
                  changed=["app/server.py", "app/notes.md", f"app/{RESULTS_DIR}/build.json", "app/build.json",
                           "app/new.py"],
                  untracked=[f"app/{RESULTS_DIR}/build.json", "app/build.json", "app/new.py"])
    kept = relevant_changes(git, context, parse_dockerignore("*.md"), own_outputs=[context / "build.json"])
    assert kept == ["app/server.py", "app/new.py"]


def test_results_dir_matches_the_jenkins_pipeline():
    from deploykit.jenkins.pipeline import RESULTS_DIR as JENKINS_RESULTS_DIR

    assert RESULTS_DIR == JENKINS_RESULTS_DIR


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout.strip()


def test_jenkins_workspace_with_its_own_outputs_is_clean_in_ci(tmp_path):
    """The Jenkins stage writes `deploykit-results/build.json` and `build.json` into the checkout."""
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".dockerignore").write_text("*.md\n")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.email=a@b", "-c", "user.name=ci", "commit", "-q", "-m", "x")
    (tmp_path / RESULTS_DIR).mkdir()
    (tmp_path / RESULTS_DIR / "build.json").write_text("{}")
    (tmp_path / "build.json").write_text("{}")
    (tmp_path / "NOTES.md").write_text("ignored by .dockerignore\n")
    ci = {"BUILD_URL": "https://jenkins.example.com/job/x/1/", "JOB_NAME": "x"}
    raw = read_git_info(tmp_path, ci)
    assert raw.dirty and sorted(raw.untracked) == ["NOTES.md", "build.json", f"{RESULTS_DIR}/build.json"]
    plan = plan_build(image="reg.example.com/x", app_dir=tmp_path, environ=ci, own_outputs=[tmp_path / "build.json"])
    assert not plan.git.dirty and not plan.tags[0].endswith("-dirty")
    # a real change still counts, and in CI it is refused
    (tmp_path / "Dockerfile").write_text("FROM scratch\nLABEL x=1\n")
    own = [tmp_path / "build.json"]
    assert effective(read_git_info(tmp_path, ci), tmp_path, own).changed == ["Dockerfile"]
    with pytest.raises(ValidationError, match="Dockerfile"):
        plan_build(image="reg.example.com/x", app_dir=tmp_path, environ=ci, own_outputs=own)


def test_renames_list_the_new_path(tmp_path):
    (tmp_path / "a.py").write_text("x\n")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.email=a@b", "-c", "user.name=ci", "commit", "-q", "-m", "x")
    git(tmp_path, "mv", "a.py", "b.py")
    info = read_git_info(tmp_path, {})
    assert info.changed == ["b.py"] and info.untracked == []
