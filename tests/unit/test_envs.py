"""Environment files: Chef format, validation with paths/lines/hints, lookup order, secrets by reference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploykit.envs import available_environments, load_environment, parse_environment_file
from deploykit.errors import ValidationError
from deploykit.resources import data_dir

REPO = Path(__file__).resolve().parents[2]
CHEF_KEYS = {
    "name",
    "description",
    "json_class",
    "chef_type",
    "cookbook_versions",
    "default_attributes",
    "override_attributes",
}


def chef(name: str, attrs: dict, override: dict | None = None) -> dict:
    return {
        "name": name,
        "description": "test",
        "json_class": "Chef::Environment",
        "chef_type": "environment",
        "cookbook_versions": {},
        "default_attributes": {"deploykit": attrs},
        "override_attributes": {"deploykit": override or {}},
    }


def write(folder: Path, name: str, doc: dict | str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=2))
    return path


@pytest.mark.parametrize("name", ["local", "staging", "prod"])
def test_shipped_files_are_chef_environments(name: str) -> None:
    path = REPO / "chef_attrs" / f"{name}.json"
    doc = json.loads(path.read_text())
    assert set(doc) == CHEF_KEYS  # exactly what `knife environment from file` reads
    assert doc["json_class"] == "Chef::Environment" and doc["chef_type"] == "environment" and doc["name"] == name
    env = parse_environment_file(path, name)
    assert env.name == name


def test_local_is_the_devcluster() -> None:
    env = load_environment("local", REPO / "chef_attrs")
    assert env.marathon.urls == ["http://127.0.0.1:8080"] and env.marathon.zk is None
    # no process switch: Docker apps run as containers, cmd-only apps as command tasks (as on Marathon)
    assert env.marathon.tasks == "docker" and env.lock == "consul"
    assert env.consul.url == "http://127.0.0.1:8500" and env.consul.prefix == "config" and env.consul.keep_versions == 5
    assert env.haproxy is not None and env.haproxy.http_port == 8000 and env.haproxy.groups == ["external"]
    assert env.haproxy.config.startswith(".deploykit/haproxy/")


def test_prod_uses_zookeeper_and_docker() -> None:
    env = load_environment("prod", REPO / "chef_attrs")
    assert env.lock == "zookeeper" and env.zookeeper is not None and env.marathon.tasks == "docker"
    assert env.marathon.network_shape == "networks" and env.marathon.auth is not None


def test_lock_defaults(tmp_path: Path) -> None:
    marathon = {"urls": ["http://m:8080"]}
    write(tmp_path, "a", chef("a", {"marathon": marathon}))
    write(tmp_path, "b", chef("b", {"marathon": marathon, "zookeeper": {"hosts": "zk:2181"}}))
    assert load_environment("a", tmp_path).lock == "consul"
    assert load_environment("b", tmp_path).lock == "zookeeper"


def test_override_attributes_win(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a",
        chef(
            "a",
            {"marathon": {"urls": ["http://m:8080"]}, "consul": {"prefix": "config"}},
            {"consul": {"prefix": "cfg"}},
        ),
    )
    env = load_environment("a", tmp_path)
    assert env.consul.prefix == "cfg" and env.consul.url == "http://127.0.0.1:8500"


def test_every_problem_with_path_line_and_hint(tmp_path: Path) -> None:
    doc = chef(
        "wrong",
        {
            "marathon": {"url": ["http://m:8080"], "tasks": "proces"},
            "consul": {"url": "consul:8500"},
            "lock": "zookeeper",
        },
    )
    doc["json_class"] = "Chef::Role"
    path = write(tmp_path, "a", doc)
    with pytest.raises(ValidationError) as info:
        load_environment("a", tmp_path)
    got = {p.path: p for p in info.value.problems}
    assert set(got) == {
        "json_class",
        "name",
        "default_attributes.deploykit.marathon.url",
        "default_attributes.deploykit.marathon.urls",
        "default_attributes.deploykit.marathon.tasks",
        "default_attributes.deploykit.consul.url",
    }
    assert got["default_attributes.deploykit.marathon.url"].hint == "did you mean 'urls'?"
    assert got["default_attributes.deploykit.marathon.tasks"].hint == "did you mean 'process'?"
    assert got["json_class"].hint == 'add "json_class": "Chef::Environment"'
    lines = path.read_text().splitlines()
    url_line = got["default_attributes.deploykit.marathon.url"].line
    assert url_line is not None and '"url"' in lines[url_line - 1]
    assert all(p.file == str(path) for p in info.value.problems)


def test_zookeeper_lock_needs_zookeeper(tmp_path: Path) -> None:
    write(tmp_path, "a", chef("a", {"marathon": {"urls": ["http://m:8080"]}, "lock": "zookeeper"}))
    with pytest.raises(ValidationError) as info:
        load_environment("a", tmp_path)
    (problem,) = info.value.problems
    assert problem.path == "default_attributes.deploykit.lock" and "no zookeeper section" in problem.message


def test_invalid_json_has_a_line(tmp_path: Path) -> None:
    write(tmp_path, "a", '{\n  "name": "a",\n  oops\n}\n')
    with pytest.raises(ValidationError) as info:
        load_environment("a", tmp_path)
    assert info.value.problems[0].line == 3


def test_missing_deploykit_attributes(tmp_path: Path) -> None:
    doc = chef("a", {})
    doc["default_attributes"] = {"nginx": {}}
    write(tmp_path, "a", doc)
    with pytest.raises(ValidationError) as info:
        load_environment("a", tmp_path)
    assert [p.path for p in info.value.problems] == ["default_attributes.deploykit"]


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, cwd = tmp_path / "explicit", tmp_path / "work"
    write(explicit, "local", chef("local", {"marathon": {"urls": ["http://explicit:8080"]}}))
    write(cwd / "chef_attrs", "local", chef("local", {"marathon": {"urls": ["http://cwd:8080"]}}))
    write(cwd / "chef_attrs", "qa", chef("qa", {"marathon": {"urls": ["http://qa:8080"]}}))
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("DEPLOYKIT_ENV_DIR", raising=False)
    assert load_environment("local", explicit).marathon.urls == ["http://explicit:8080"]
    assert load_environment("local").marathon.urls == ["http://cwd:8080"]
    monkeypatch.setenv("DEPLOYKIT_ENV_DIR", str(explicit))
    assert load_environment("local").marathon.urls == ["http://explicit:8080"]
    assert load_environment("qa").marathon.urls == ["http://qa:8080"]  # falls through to ./chef_attrs
    assert load_environment("prod").file == data_dir("chef_attrs") / "prod.json"  # then the shipped files
    assert {"local", "qa", "prod"} <= set(available_environments())


def test_unknown_environment_suggests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DEPLOYKIT_ENV_DIR", raising=False)
    with pytest.raises(ValidationError) as info:
        load_environment("prdo")
    (problem,) = info.value.problems
    assert problem.path == "--env" and problem.hint == "did you mean 'prod'?"
    with pytest.raises(ValidationError):
        load_environment("../etc/passwd")


def test_registry_credentials_by_reference(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a",
        chef(
            "a",
            {
                "marathon": {"urls": ["http://m:8080"], "auth": {"user": "u", "password_env": "MPW"}},
                "registry": {"username_env": "RU", "password_env": "RP"},
            },
        ),
    )
    env = load_environment("a", tmp_path)
    assert env.marathon_password({"MPW": "pw"}) == "pw" and env.marathon_password({}) is None
    user, password = env.registry_credentials({"RU": "bob", "RP": "hunter2"})
    assert user == "bob" and password.get_secret_value() == "hunter2" and "hunter2" not in repr(password)
    assert env.registry_credentials({"RU": "bob"}) is None


def test_chef_shape_is_checked(tmp_path: Path) -> None:
    doc = chef("a", {"marathon": {"urls": ["http://m:8080"]}})
    doc["default_attribute"] = {}
    doc["cookbook_versions"] = []
    write(tmp_path, "a", doc)
    with pytest.raises(ValidationError) as info:
        load_environment("a", tmp_path)
    got = {p.path: p for p in info.value.problems}
    assert set(got) == {"default_attribute", "cookbook_versions"}
    assert got["default_attribute"].hint == "did you mean 'default_attributes'?"


def test_missing_explicit_folder_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEPLOYKIT_ENV_DIR", raising=False)
    with pytest.raises(ValidationError) as info:
        load_environment("prod", tmp_path / "typo")
    assert info.value.problems[0].path == "--env-dir"
    monkeypatch.setenv("DEPLOYKIT_ENV_DIR", str(tmp_path / "typo"))
    with pytest.raises(ValidationError) as info:
        load_environment("prod")
    assert info.value.problems[0].path == "$DEPLOYKIT_ENV_DIR"
