"""Bearer token auth (the Harbor / GitLab / Docker Hub scheme) against a real registry that
verifies RS256 tokens: the client follows the challenge to the token realm with the credentials,
and buildah pushes with the same credentials from the private auth file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from deploykit.clients.registry import RegistryClient
from deploykit.errors import AuthError
from deploykit.image.auth import Credentials
from deploykit.image.buildah import BuildahBackend
from deploykit.image.pipeline import build_image, plan_build, push_image
from deploykit.image.runner import Runner

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_bearer_token_flow_push_and_pin(tmp_path, token_registry, buildah_store):
    host = token_registry.host
    with pytest.raises(AuthError) as err:
        RegistryClient(host, insecure=True).ping()
    assert "without credentials" in str(err.value)
    with pytest.raises(AuthError) as err:
        RegistryClient(host, insecure=True, credentials=Credentials("ci-bot", "nope")).ping()
    assert "as 'ci-bot'" in str(err.value) and "nope" not in str(err.value)

    repo = tmp_path / "app"
    repo.mkdir()
    shutil.copy(REPO_ROOT / "examples/hello/Dockerfile", repo / "Dockerfile")
    (repo / "server.py").write_text("print('token')\n")
    for args in (["init", "-q", "-b", "main"], ["add", "."],
                 ["-c", "user.email=ci@example.com", "-c", "user.name=CI", "commit", "-q", "-m", "x"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    plan = plan_build(image=f"{host}/team/hello", app_dir=repo, build_args=[f"BASE={buildah_store.base_image}"],
                      environ={})
    backend = BuildahBackend(Runner(), root=str(buildah_store.root), runroot=str(buildah_store.runroot))
    built = build_image(plan, backend)
    creds = Credentials(token_registry.username, token_registry.password)
    before = token_registry.token_service.issued
    result = push_image(plan, backend, RegistryClient(host, insecure=True, credentials=creds), credentials=creds,
                        insecure=True, immutable_tags=True, record_path=None, built=built.info)
    assert token_registry.token_service.issued > before
    fresh = RegistryClient(host, insecure=True, credentials=creds)
    assert fresh.manifest_digest("team/hello", plan.tags[0]) == result.record.digest
    assert fresh.get_manifest("team/hello", result.record.digest).config_digest == built.image_id
