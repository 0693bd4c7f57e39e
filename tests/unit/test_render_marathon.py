"""Render details not obvious from the goldens: image references, escape hatch, hashes, prefixes."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploykit.buildrecord import BuildRecord
from deploykit.envs import load_environment
from deploykit.errors import ValidationError
from deploykit.labels import CONFIG_PREFIX_ENV, DEPLOYKIT_SPEC_HASH
from deploykit.render.marathon import image_reference, render_app, repository
from deploykit.spec import load_app

ENVS = Path(__file__).parent / "fixtures" / "spec" / "envs"


def app(tmp_path: Path, body: str):
    path = tmp_path / "app.yaml"
    path.write_text(body)
    return load_app(path, "docker", env_dir=ENVS)


@pytest.mark.parametrize(
    ("image", "repo"),
    [
        ("registry.test/a/b", "registry.test/a/b"),
        ("registry.test/a/b:1.2", "registry.test/a/b"),
        ("registry.test:5000/a/b:1.2", "registry.test:5000/a/b"),
        ("registry.test:5000/a/b", "registry.test:5000/a/b"),
        ("b@sha256:" + "0" * 64, "b"),
        ("b:1@sha256:" + "0" * 64, "b"),
    ],
)
def test_repository(image: str, repo: str) -> None:
    assert repository(image) == repo


def test_image_reference_choices(tmp_path: Path) -> None:
    spec = app(tmp_path, "id: /a/b\nimage: registry.test:5000/a/b:dev\n")
    digest = "sha256:" + "f" * 64
    assert image_reference(spec) == "registry.test:5000/a/b:dev"
    assert image_reference(spec, tag="1.0") == "registry.test:5000/a/b:1.0"
    assert image_reference(spec, digest=digest) == f"registry.test:5000/a/b@{digest}"
    record = BuildRecord(image="registry.test:5000/a/b", digest=digest)
    assert image_reference(spec, build_record=record) == f"registry.test:5000/a/b@{digest}"
    with pytest.raises(ValidationError) as info:
        image_reference(spec, build_record=BuildRecord(image="registry.test/other", digest=digest))
    assert info.value.problems[0].path == "image"
    with pytest.raises(ValidationError):
        image_reference(spec, tag="1", digest=digest)
    with pytest.raises(ValidationError):
        image_reference(spec, digest="sha256:short")


def test_escape_hatch_merges_last(tmp_path: Path) -> None:
    spec = app(
        tmp_path,
        "id: /a/b\nimage: r.test/a/b\nmarathon:\n  container: {docker: {forcePullImage: true}}\n"
        "  labels: {extra: x}\n  backoffSeconds: 5\n",
    )
    doc = render_app(spec, load_environment("docker", ENVS), None)
    assert doc["container"]["docker"] == {
        "image": "r.test/a/b",
        "parameters": [{"key": "security-opt", "value": "no-new-privileges:true"}],
        "forcePullImage": True,
    }
    assert doc["labels"]["extra"] == "x" and doc["backoffSeconds"] == 5
    assert list(doc["labels"]) == sorted(doc["labels"])


def test_spec_hash_ignores_provenance_but_not_content(tmp_path: Path) -> None:
    env = load_environment("docker", ENVS)
    spec = app(tmp_path, "id: /a/b\nimage: r.test/a/b\n")
    one = render_app(spec, env, "r.test/a/b:1", deployed_by="alice", git_sha="aaa")
    two = render_app(spec, env, "r.test/a/b:1", deployed_by="bob", git_sha="bbb")
    three = render_app(spec, env, "r.test/a/b:2", deployed_by="alice", git_sha="aaa")
    assert one[("labels")][DEPLOYKIT_SPEC_HASH] == two["labels"][DEPLOYKIT_SPEC_HASH]
    assert one["labels"][DEPLOYKIT_SPEC_HASH] != three["labels"][DEPLOYKIT_SPEC_HASH]


def test_config_prefix_env_only_when_given(tmp_path: Path) -> None:
    env = load_environment("docker", ENVS)
    spec = app(tmp_path, "id: /a/b\nimage: r.test/a/b\n")
    assert CONFIG_PREFIX_ENV not in render_app(spec, env, None)["env"]
    doc = render_app(spec, env, None, config_prefix="config/a/b/0123", config_hash="0123")
    assert doc["env"][CONFIG_PREFIX_ENV] == "config/a/b/0123" and doc["labels"]["DEPLOYKIT_CONFIG_HASH"] == "0123"


def test_process_tasks_have_no_container(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(
        "id: /a/b\nimage: r.test/a/b\ncmd: ./run\nports: [{name: http, container: 80, service: 10080}]\n"
        "health: {port: http}\n"
    )
    spec = load_app(path, "process", env_dir=ENVS)
    doc = render_app(spec, load_environment("process", ENVS), "r.test/a/b:1")
    assert "container" not in doc and "networks" not in doc
    assert doc["portDefinitions"] == [{"port": 10080, "name": "http", "protocol": "tcp"}]
    assert doc["healthChecks"][0]["portIndex"] == 0 and "DEPLOYKIT_IMAGE" not in doc["labels"]


def test_escape_hatch_conflict_is_a_user_error(tmp_path: Path) -> None:
    spec = app(tmp_path, "id: /a/b\nimage: r.test/a/b\nargs: [run]\nmarathon:\n  cmd: run\n")
    with pytest.raises(ValidationError) as info:
        render_app(spec, load_environment("docker", ENVS), None)
    (problem,) = info.value.problems
    assert problem.path == "marathon" and "Marathon schema" in (problem.hint or "")


def test_docker_tasks_need_an_image(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text("id: /a/b\n")
    spec = load_app(path, None)
    with pytest.raises(ValidationError) as info:
        render_app(spec, load_environment("docker", ENVS), None)
    assert info.value.problems[0].path == "image"


def test_hostless_image_lives_in_the_environment_registry(tmp_path: Path) -> None:
    spec = app(tmp_path, "id: /a/b\nimage: shop/cart\n")
    digest = "sha256:" + "e" * 64
    assert image_reference(spec, tag="1") == "shop/cart:1"
    assert (
        image_reference(spec, tag="1", registry_url="https://registry.test:5000/") == "registry.test:5000/shop/cart:1"
    )
    assert image_reference(spec, registry_url="registry.test/team") == "registry.test/team/shop/cart"
    pushed = BuildRecord(image="registry.test:5000/shop/cart", digest=digest)
    assert image_reference(spec, build_record=pushed, registry_url="registry.test:5000") == pushed.pinned
    assert image_reference(spec, build_record=pushed) == pushed.pinned  # no registry given: the path must match
    with pytest.raises(ValidationError):
        image_reference(spec, build_record=pushed, registry_url="other.test")
    hosted = app(tmp_path, "id: /a/b\nimage: localhost:5000/shop/cart\n")
    assert image_reference(hosted, tag="2", registry_url="registry.test") == "localhost:5000/shop/cart:2"


def test_routed_port_carries_its_service_port_as_haproxy_port(tmp_path: Path) -> None:
    """HAPROXY_{n}_PORT (DESIGN §3) is the routed port's service port, the one marathon-lb binds."""
    from deploykit.lb.labels import parse_labels
    from deploykit.lb.model import build_model
    from deploykit.lb.settings import LbSettings

    env = load_environment("docker", ENVS)
    spec = app(tmp_path, "id: /a/b\nimage: r.test/a/b\n"
                         "ports: [{name: admin, container: 9000, service: 10900}, {name: db, container: 5432, "
                         "service: 10432}]\nhaproxy: {port: db, mode: tcp}\n")
    doc = render_app(spec, env, "r.test/a/b:1")
    assert doc["labels"]["HAPROXY_1_PORT"] == "10432" and "HAPROXY_0_PORT" not in doc["labels"]
    assert parse_labels(doc["labels"]).ports[1].port == 10432  # the lb reads back what render wrote
    doc["tasks"] = [{"id": "b.t0", "host": "10.0.0.5", "ports": [31000, 31001], "state": "TASK_RUNNING",
                     "healthCheckResults": [{"alive": True}]}]
    model = build_model([doc], LbSettings(groups=("external",)))
    assert not model.rejected
    assert [(f.port, f.mode, f.backend) for f in model.port_frontends] == [(10432, "tcp", "a_b_1")]
    # service: 0 means Marathon assigns the port at deploy time: nothing to pin (the lb rejects PORT=0)
    spec = app(tmp_path, "id: /a/b\nimage: r.test/a/b\nports: [{name: http, container: 80}]\n"
                         "haproxy: {vhost: [b.example.com]}\n")
    assert not any(k.endswith("_PORT") for k in render_app(spec, env, "r.test/a/b:1")["labels"])
