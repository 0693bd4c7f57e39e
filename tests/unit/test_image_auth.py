"""Registry credentials: named env vars, private auth files, never shown."""

from __future__ import annotations

import base64
import json
import stat
from types import SimpleNamespace

import pytest

from deploykit.errors import ValidationError
from deploykit.image.app import registry_settings
from deploykit.image.auth import Credentials, credentials_from_env, private_authfile
from deploykit.image.naming import ImageName


def reg(**kw):
    return SimpleNamespace(**{"url": "reg.example.com", "insecure": True, "username_env": "RU",
                              "password_env": "RP", **kw})


def test_credentials_from_named_variables():
    creds = credentials_from_env(reg(), {"RU": "bot", "RP": "hunter2"})
    assert creds == Credentials("bot", "hunter2")
    assert "hunter2" not in repr(creds) and "hunter2" not in str(creds)


def test_missing_variables_are_named_never_valued():
    with pytest.raises(ValidationError) as err:
        credentials_from_env(reg(), {"RU": "bot"}, file="staging.json")
    [problem] = err.value.problems
    assert problem.path == "registry.password_env" and "RP is not set" in problem.message
    assert problem.file == "staging.json"


def test_no_credentials_configured():
    assert credentials_from_env(reg(username_env=None, password_env=None), {}) is None
    assert credentials_from_env(None, {}) is None


def test_private_authfile_is_0600_in_a_private_dir_and_removed():
    with private_authfile("reg.example.com", Credentials("bot", "hunter2")) as path:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        doc = json.loads(path.read_text())
        assert base64.b64decode(doc["auths"]["reg.example.com"]["auth"]) == b"bot:hunter2"
    assert not path.exists() and not path.parent.exists()
    with private_authfile("reg.example.com", None) as nothing:
        assert nothing is None


def test_settings_apply_only_to_the_environment_registry():
    environ = {"RU": "bot", "RP": "hunter2"}
    mine = registry_settings(ImageName("reg.example.com", "a"), reg(), environ)
    assert mine.insecure and mine.credentials == Credentials("bot", "hunter2")
    # an image in another registry never gets this registry's credentials or plain HTTP
    other = registry_settings(ImageName("other.example.com", "a"), reg(), environ)
    assert not other.insecure and other.credentials is None
    assert registry_settings(ImageName(None, "a"), reg(url=None), environ).host == "docker.io"


def test_docker_hub_gets_the_docker_cli_key_too():
    from deploykit.image.auth import auth_document

    doc = auth_document("docker.io", Credentials("bot", "pw"))
    assert set(doc["auths"]) == {"docker.io", "https://index.docker.io/v1/"}
