"""The image pipeline as a library against real buildah (vfs, chroot) and a real docker-registry.

A throwaway git repo holds the hello example's Dockerfile (busybox base, RUN step), so git
tags/labels are exercised too. Every registry check goes over its HTTP API with plain requests.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from deploykit.buildrecord import load_record
from deploykit.clients.registry import ACCEPT, RegistryClient
from deploykit.errors import AuthError, BuildError, UnreachableError, ValidationError
from deploykit.image.auth import Credentials
from deploykit.image.buildah import BuildahBackend
from deploykit.image.pipeline import ImmutableTagConflict, build_image, plan_build, push_image
from deploykit.image.runner import Runner
from tests.harness.common import free_port

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def app_repo(tmp_path: Path) -> Path:
    """A committed git repo with the hello Dockerfile and a one-line server."""
    repo = tmp_path / "hello"
    repo.mkdir()
    shutil.copy(REPO_ROOT / "examples/hello/Dockerfile", repo / "Dockerfile")
    (repo / "server.py").write_text("print('hello')\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "ci@example.com")
    git(repo, "config", "user.name", "CI")
    git(repo, "remote", "add", "origin", "https://bot:s3cr3t-token@git.example.com/shop/hello.git")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "hello")
    return repo


def backend(store) -> BuildahBackend:
    return BuildahBackend(Runner(), root=str(store.root), runroot=str(store.runroot))


def plan(repo: Path, registry_host: str, store, name: str = "examples/hello", **kw):
    """A plan for `name` in the registry (each test uses its own repository: the registry is per session)."""
    env = {"BRANCH_NAME": "feature/x", "BUILD_NUMBER": "42", **kw.pop("environ", {})}
    return plan_build(image=f"{registry_host}/{name}", app_dir=repo,
                      build_args=[f"BASE={store.base_image}"], environ=env, **kw)


def test_build_push_pins_the_registry_digest(app_repo, registry, buildah_store, tmp_path):
    p = plan(app_repo, registry.host, buildah_store)
    sha = git(app_repo, "rev-parse", "HEAD")
    assert p.tags == [sha[:12], "feature-x-42"]
    be = backend(buildah_store)
    built = build_image(p, be)
    info = be.inspect(p.refs[0])
    assert info.id == built.image_id
    assert info.labels["org.opencontainers.image.revision"] == sha
    assert info.labels["org.opencontainers.image.source"] == "https://git.example.com/shop/hello.git"

    # the RUN step really ran in the image: /app/data belongs to the unprivileged user
    ctr = buildah_store.run("from", p.refs[0])
    try:
        owner = buildah_store.run("run", "--isolation", "chroot", "--user", "0", ctr, "--", "stat", "-c", "%u",
                                  "/app/data")
    finally:
        buildah_store.run("rm", ctr)
    assert owner == "10001"

    client = RegistryClient(registry.host, insecure=True)
    record_path = tmp_path / "build.json"
    result = push_image(p, be, client, credentials=None, insecure=True, record_path=record_path,
                        environ={"BUILD_URL": "https://jenkins.example.com/job/hello/42/"})
    record = load_record(record_path)
    assert record == result.record
    assert record.image == f"{registry.host}/examples/hello"
    assert record.tags == p.tags and record.git_sha == sha
    assert record.build_url == "https://jenkins.example.com/job/hello/42/"

    # every tag resolves to the recorded digest over the registry's HTTP API
    for tag in p.tags:
        head = requests.head(f"http://{registry.host}/v2/examples/hello/manifests/{tag}",
                             headers={"Accept": ACCEPT}, timeout=10)
        assert head.status_code == 200
        assert head.headers["Docker-Content-Digest"] == record.digest
    # the manifest fetched BY DIGEST hashes to that digest and names the image we built
    got = requests.get(f"http://{registry.host}/v2/examples/hello/manifests/{record.digest}",
                       headers={"Accept": ACCEPT}, timeout=10)
    assert got.status_code == 200
    assert "sha256:" + hashlib.sha256(got.content).hexdigest() == record.digest
    assert json.loads(got.content)["config"]["digest"] == built.image_id
    assert record.pinned == f"{registry.host}/examples/hello@{record.digest}"


def test_no_change_rebuild_and_immutable_tags(app_repo, registry, buildah_store, tmp_path):
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    be = backend(buildah_store)
    client = RegistryClient(registry.host, insecure=True)
    p1 = plan(app_repo, registry.host, buildah_store, "examples/immutable", extra_tags=["stable"], environ=env)
    first = build_image(p1, be)
    pushed = push_image(p1, be, client, credentials=None, insecure=True, immutable_tags=True, record_path=None)
    # same commit, same inputs: cache hit, same image, so an immutable re-push is allowed and idempotent
    again = build_image(p1, be)
    assert again.image_id == first.image_id
    repushed = push_image(p1, be, client, credentials=None, insecure=True, immutable_tags=True, record_path=None)
    assert repushed.record.digest == pushed.record.digest

    # a new commit that reuses the "stable" tag is refused, and nothing moves in the registry
    (app_repo / "server.py").write_text("print('hello v2')\n")
    git(app_repo, "commit", "-q", "-am", "v2")
    p2 = plan(app_repo, registry.host, buildah_store, "examples/immutable", extra_tags=["stable"], environ=env)
    build_image(p2, be)
    with pytest.raises(ImmutableTagConflict) as err:
        push_image(p2, be, client, credentials=None, insecure=True, immutable_tags=True, record_path=None)
    assert err.value.exit_code == 3
    assert f"{registry.host}/examples/immutable:stable" in str(err.value)
    assert client.manifest_digest("examples/immutable", "stable") == pushed.record.digest
    assert client.manifest_digest("examples/immutable", p2.tags[0]) is None  # the new sha tag was not pushed either


def test_dirty_tree_suffix_and_ci_refusal(app_repo, registry, buildah_store):
    (app_repo / "server.py").write_text("print('uncommitted')\n")
    p = plan(app_repo, registry.host, buildah_store)
    assert all(t.endswith("-dirty") for t in p.tags)
    assert any("uncommitted" in w for w in p.warnings)
    with pytest.raises(ValidationError) as err:
        plan(app_repo, registry.host, buildah_store, environ={"CI": "true"})
    assert "--allow-dirty" in str(err.value)
    allowed = plan(app_repo, registry.host, buildah_store, environ={"CI": "true"}, allow_dirty=True)
    assert allowed.tags[0].endswith("-dirty")


def test_build_failure_shows_failing_step_and_pushes_nothing(app_repo, registry, buildah_store):
    (app_repo / "Dockerfile").write_text(
        f"FROM {buildah_store.base_image}\nRUN echo preparing\nRUN echo 'step-marker: disk full' && exit 7\n"
    )
    git(app_repo, "commit", "-q", "-am", "broken")
    p = plan(app_repo, registry.host, buildah_store, "examples/broken")
    with pytest.raises(BuildError) as err:
        build_image(p, backend(buildah_store))
    assert "step-marker: disk full" in str(err.value)
    assert err.value.exit_code != 0
    client = RegistryClient(registry.host, insecure=True)
    assert all(client.manifest_digest("examples/broken", t) is None for t in p.tags)


def test_push_with_basic_auth(app_repo, auth_registry, buildah_store):
    p = plan(app_repo, auth_registry.host, buildah_store)
    be = backend(buildah_store)
    build_image(p, be)
    good = Credentials(auth_registry.username, auth_registry.password)
    with pytest.raises(AuthError) as err:
        RegistryClient(auth_registry.host, insecure=True).ping()
    assert "without credentials" in str(err.value)
    bad = Credentials(auth_registry.username, "wrong-password")
    with pytest.raises(AuthError) as err:
        push_image(p, be, RegistryClient(auth_registry.host, insecure=True, credentials=bad), credentials=bad,
                   insecure=True, record_path=None)
    assert "wrong-password" not in str(err.value) and auth_registry.password not in str(err.value)
    result = push_image(p, be, RegistryClient(auth_registry.host, insecure=True, credentials=good),
                        credentials=good, insecure=True, record_path=None)
    assert result.record.digest.startswith("sha256:")


def test_unreachable_registry_is_exit_4_before_any_push(app_repo, buildah_store):
    host = f"127.0.0.1:{free_port()}"  # nothing listens here
    p = plan(app_repo, host, buildah_store)
    be = backend(buildah_store)
    build_image(p, be)
    with pytest.raises(UnreachableError) as err:
        push_image(p, be, RegistryClient(host, insecure=True, timeout=5), credentials=None, insecure=True,
                   record_path=None)
    assert err.value.exit_code == 4
    assert host in str(err.value)


def test_push_without_a_local_build_says_so(app_repo, registry, buildah_store):
    p = plan(app_repo, registry.host, buildah_store, "examples/never-built")
    with pytest.raises(ValidationError) as err:
        push_image(p, backend(buildah_store), RegistryClient(registry.host, insecure=True), credentials=None,
                   insecure=True, record_path=None)
    assert "is not built on this machine" in str(err.value) and "deploykit build" in str(err.value)


def test_https_to_a_plain_http_registry_points_at_the_insecure_setting(registry):
    with pytest.raises(UnreachableError) as err:
        RegistryClient(registry.host, insecure=False, timeout=10).ping()
    assert "registry.insecure" in str(err.value)


def test_insecure_means_unverified_https_first_then_http(app_repo, tls_registry, registry, buildah_store):
    # a self-signed HTTPS registry: refused unless the environment says insecure, then used over HTTPS
    with pytest.raises(UnreachableError) as err:
        RegistryClient(tls_registry.host, timeout=10).ping()
    assert "registry.insecure" in str(err.value)
    client = RegistryClient(tls_registry.host, insecure=True, timeout=10)
    p = plan(app_repo, tls_registry.host, buildah_store, "examples/tls")
    be = backend(buildah_store)
    built = build_image(p, be)
    result = push_image(p, be, client, credentials=None, insecure=True, record_path=None, built=built.info)
    assert client.base_url == f"https://{tls_registry.host}"
    assert client.get_manifest("examples/tls", result.record.digest).config_digest == built.image_id
    # a plain-HTTP registry: the HTTPS attempt fails, HTTP is used
    plain = RegistryClient(registry.host, insecure=True, timeout=10)
    plain.ping()
    assert plain.base_url == f"http://{registry.host}"
