"""plan_build: every input checked at once, before any tool runs (git injected)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploykit.errors import ValidationError
from deploykit.gitinfo import GitInfo
from deploykit.image.pipeline import created_timestamp, in_ci, plan_build

SHA = "89abcdef0123456789abcdef0123456789abcdef"


def git_reader(dirty: bool = False):
    def read(path: Path, environ) -> GitInfo:
        return GitInfo(sha=SHA, branch="main", dirty=dirty, changed=["x"] if dirty else [],
                       commit_time="2026-03-01T10:00:00+01:00")
    return read


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "Dockerfile.prod").write_text("FROM scratch\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    return tmp_path


def test_plan_resolves_paths_tags_labels_and_args(app_dir):
    plan = plan_build(image="shop/cart", app_dir=app_dir, context="docker", dockerfile="Dockerfile.prod",
                      registry_url="reg.example.com", spec_build_args={"A": "1", "B": "2"}, build_args=["B=3"],
                      extra_tags=["latest"], environ={"BUILD_NUMBER": "5", "BRANCH_NAME": "main"},
                      git_reader=git_reader())
    assert plan.image.repository == "reg.example.com/shop/cart"
    assert plan.context == (app_dir / "docker").resolve()
    assert plan.dockerfile == (app_dir / "docker" / "Dockerfile.prod").resolve()
    assert plan.refs == [f"reg.example.com/shop/cart:{SHA[:12]}", "reg.example.com/shop/cart:main-5",
                         "reg.example.com/shop/cart:latest"]
    assert plan.build_args == {"A": "1", "B": "3"}  # the command line wins over app.yaml
    assert plan.labels["org.opencontainers.image.created"] == "2026-03-01T09:00:00Z"  # commit time, in UTC


def test_every_problem_at_once(app_dir):
    with pytest.raises(ValidationError) as err:
        plan_build(image="Shop/Cart:1", app_dir=app_dir, dockerfile="Nope", build_args=["x"], extra_tags=["a b"],
                   environ={"CI": "true"}, file="app.yaml", git_reader=git_reader(dirty=True))
    paths = sorted(p.path for p in err.value.problems)
    assert paths == ["--build-arg[0]", "--tag[0]", "build.dockerfile", "git", "image", "image"]


def test_missing_image_and_context(app_dir):
    with pytest.raises(ValidationError) as err:
        plan_build(image=None, app_dir=app_dir, context="missing", git_reader=git_reader())
    assert sorted(p.path for p in err.value.problems) == ["build.context", "image"]


def test_created_timestamp_rules():
    clean = GitInfo(sha=SHA, branch=None, dirty=False, commit_time="2026-03-01T10:00:00+00:00")
    assert created_timestamp({"SOURCE_DATE_EPOCH": "0"}, clean) == "1970-01-01T00:00:00Z"
    assert created_timestamp({}, clean) == "2026-03-01T10:00:00Z"
    dirty = GitInfo(sha=SHA, branch=None, dirty=True, commit_time="2026-03-01T10:00:00+00:00")
    assert created_timestamp({}, dirty) != "2026-03-01T10:00:00Z"  # a dirty build is "now"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [({}, False), ({"CI": "true"}, True), ({"CI": "false"}, False),
     ({"BUILD_URL": "https://j/job/x/1/", "JOB_NAME": "x"}, True), ({"BUILD_URL": "https://j/job/x/1/"}, False)],
)
def test_in_ci(environ, expected):
    assert in_ci(environ) is expected


def test_output_folders_must_exist(app_dir):
    with pytest.raises(ValidationError) as err:
        plan_build(image="shop/cart", app_dir=app_dir, own_outputs=[app_dir / "missing" / "build.json"],
                   git_reader=git_reader())
    [problem] = err.value.problems
    assert problem.path == "output" and "does not exist" in problem.message
