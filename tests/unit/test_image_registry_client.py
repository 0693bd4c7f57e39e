"""Registry client pieces that need no server: host mapping, manifest parsing, auth error wording."""

from __future__ import annotations

import json

from deploykit.clients.registry import ACCEPT, Manifest, RegistryClient, api_host
from deploykit.image.auth import Credentials


def test_docker_hub_api_host_and_schemes():
    assert api_host("docker.io") == "registry-1.docker.io"
    assert api_host("127.0.0.1:5000") == "127.0.0.1:5000"
    assert RegistryClient("reg.example.com").base_url == "https://reg.example.com"
    # insecure: decided on first contact (HTTPS unverified, else plain HTTP)
    assert RegistryClient("127.0.0.1:5000", insecure=True)._scheme is None


def test_accept_covers_docker_and_oci_manifests_and_indexes():
    for media_type in ("application/vnd.docker.distribution.manifest.v2+json",
                       "application/vnd.docker.distribution.manifest.list.v2+json",
                       "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json"):
        assert media_type in ACCEPT


def test_manifest_config_digest():
    body = json.dumps({"schemaVersion": 2, "config": {"digest": "sha256:abc"}}).encode()
    assert Manifest("sha256:x", "application/vnd.oci.image.manifest.v1+json", body).config_digest == "sha256:abc"
    index = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    assert Manifest("sha256:x", "application/vnd.oci.image.index.v1+json", index).config_digest is None
    assert Manifest("sha256:x", "", b"not json").config_digest is None


def test_auth_errors_name_the_user_never_the_password():
    client = RegistryClient("reg.example.com", credentials=Credentials("bot", "hunter2"))
    err = client._auth_error(401)
    assert "as 'bot'" in str(err) and "hunter2" not in str(err) and err.exit_code == 2
    assert "username_env" in str(RegistryClient("reg.example.com")._auth_error(401))
