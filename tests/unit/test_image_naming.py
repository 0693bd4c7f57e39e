"""Pure naming rules: repository parsing, registry placement, tags from git/Jenkins, labels, build args."""

from __future__ import annotations

import pytest

from deploykit.errors import ValidationError
from deploykit.gitinfo import GitInfo
from deploykit.image.naming import (
    ImageName,
    oci_labels,
    parse_build_args,
    parse_image,
    place_in_registry,
    plan_tags,
    registry_host,
    sanitize_tag,
)

SHA = "0123456789abcdef0123456789abcdef01234567"


def info(**kw) -> GitInfo:
    return GitInfo(**{"sha": SHA, "branch": "main", "dirty": False, **kw})


@pytest.mark.parametrize(
    ("text", "host", "path"),
    [
        ("registry.example.com/shop/cart", "registry.example.com", "shop/cart"),
        ("127.0.0.1:5000/examples/hello", "127.0.0.1:5000", "examples/hello"),
        ("localhost/base", "localhost", "base"),
        ("shop/cart", None, "shop/cart"),
        ("busybox", None, "busybox"),
    ],
)
def test_parse_image(text, host, path):
    name = parse_image(text)
    assert (name.host, name.path) == (host, path)
    assert name.repository == text


def test_parse_image_rejects_tags_digests_and_bad_names_all_at_once():
    with pytest.raises(ValidationError) as err:
        parse_image("Registry.example.com/Shop/Cart:1.0@sha256:" + "a" * 64, file="app.yaml")
    messages = [p.message for p in err.value.problems]
    assert any("digest" in m for m in messages)
    assert any("tag" in m for m in messages)
    assert all(p.file == "app.yaml" and p.path == "image" for p in err.value.problems)
    with pytest.raises(ValidationError) as err:
        parse_image("shop//cart")
    assert "not a valid repository name" in err.value.problems[0].message


def test_place_in_registry_uses_the_environment_registry_and_namespace():
    assert place_in_registry(ImageName(None, "hello"), "https://reg.example.com:5000/team/").repository == \
        "reg.example.com:5000/team/hello"
    assert place_in_registry(ImageName(None, "hello"), "reg.example.com").repository == "reg.example.com/hello"
    own = ImageName("other.example.com", "hello")
    assert place_in_registry(own, "reg.example.com") is own
    assert place_in_registry(ImageName(None, "hello"), None).registry == "docker.io"
    assert registry_host("http://127.0.0.1:5000/ns") == "127.0.0.1:5000"


def test_sanitize_tag():
    assert sanitize_tag("feature/JIRA-12 fix!") == "feature-JIRA-12-fix"
    assert sanitize_tag("--.x") == "x"
    assert sanitize_tag("///") == "branch"
    assert len(sanitize_tag("b" * 300)) == 100


def test_clean_tree_gets_short_sha_only_outside_jenkins():
    assert plan_tags(info(), {}).tags == [SHA[:12]]


def test_jenkins_adds_branch_build_tag_and_extra_tags_deduplicated():
    plan = plan_tags(info(), {"BRANCH_NAME": "release/2.x", "BUILD_NUMBER": "17"}, ["latest", SHA[:12], "latest"])
    assert plan.tags == [SHA[:12], "release-2.x-17", "latest"]
    assert plan.warnings == []
    # BRANCH_NAME without BUILD_NUMBER is not a Jenkins build: no branch tag
    assert plan_tags(info(), {"BRANCH_NAME": "main"}).tags == [SHA[:12]]


def test_dirty_tree_suffix_and_warning():
    plan = plan_tags(info(dirty=True, changed=["server.py"]), {"BRANCH_NAME": "main", "BUILD_NUMBER": "3"})
    assert plan.tags == [f"{SHA[:12]}-dirty", "main-3-dirty"]
    assert "server.py" in plan.warnings[0]


def test_dirty_tree_refused_in_ci_unless_allowed():
    with pytest.raises(ValidationError) as err:
        plan_tags(info(dirty=True, changed=["a"]), {}, in_ci=True)
    assert err.value.problems[0].path == "git"
    assert "--allow-dirty" in err.value.problems[0].hint
    assert plan_tags(info(dirty=True), {}, in_ci=True, allow_dirty=True).tags == [f"{SHA[:12]}-dirty"]


def test_no_git_needs_explicit_tags():
    with pytest.raises(ValidationError) as err:
        plan_tags(None, {})
    assert "--tag" in err.value.problems[0].hint
    plan = plan_tags(None, {}, ["1.0.0"])
    assert plan.tags == ["1.0.0"] and "not a git work tree" in plan.warnings[0]


def test_invalid_extra_tags_each_reported():
    with pytest.raises(ValidationError) as err:
        plan_tags(info(), {}, ["ok", "-bad", "has space", "x" * 129])
    assert [p.path for p in err.value.problems] == ["--tag[1]", "--tag[2]", "--tag[3]"]


def test_oci_labels():
    labels = oci_labels(info(remote_url="https://git.example.com/a.git"), "2026-01-01T00:00:00Z")
    assert labels == {
        "org.opencontainers.image.created": "2026-01-01T00:00:00Z",
        "org.opencontainers.image.revision": SHA,
        "org.opencontainers.image.source": "https://git.example.com/a.git",
    }
    assert oci_labels(None, "t") == {"org.opencontainers.image.created": "t"}


def test_parse_build_args():
    assert parse_build_args(["BASE=python:3.12", "EMPTY=", "X=a=b"]) == {"BASE": "python:3.12", "EMPTY": "",
                                                                         "X": "a=b"}
    with pytest.raises(ValidationError) as err:
        parse_build_args(["NOVALUE", "1BAD=x", "OK=1"])
    assert [p.path for p in err.value.problems] == ["--build-arg[0]", "--build-arg[1]"]
