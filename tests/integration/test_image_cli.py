"""Acceptance for issue 7 through the real CLI: `deploykit build --push` of examples/hello with buildah
from the busybox base (RUN step included), the manifest fetched by digest over the registry's HTTP
API, and `deploykit render --from-build` naming that digest in the Marathon JSON.

The example is copied into a throwaway git repo (tags come from git) and its `image:` is pointed at
the test registry on 127.0.0.1:<port>; everything else (Dockerfile, server.py, config) is the real
example. The staging environment file is copied with its registry section pointed there too.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from deploykit.clients.registry import ACCEPT
from tests.harness.common import free_port

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOYKIT = [sys.executable, "-m", "deploykit.cli"]  # the console script


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout.strip()


def deploykit(*args: str, env: dict[str, str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("CI", "BRANCH_NAME", "BUILD_NUMBER", "BUILD_URL",
                                                                     "JOB_NAME")}
    return subprocess.run([*DEPLOYKIT, *args], cwd=cwd, env={**full_env, **env}, capture_output=True, text=True,
                          timeout=timeout)


def env_dir_for(tmp: Path, registry: dict) -> Path:
    doc = json.loads((REPO_ROOT / "chef_attrs/staging.json").read_text())
    doc["default_attributes"]["deploykit"]["registry"] = registry
    out = tmp / "envs"
    out.mkdir(exist_ok=True)
    (out / "staging.json").write_text(json.dumps(doc, indent=2))
    return out


@pytest.fixture
def hello_copy(tmp_path: Path, registry) -> Path:
    repo = tmp_path / "hello"
    shutil.copytree(REPO_ROOT / "examples/hello", repo, ignore=shutil.ignore_patterns("__pycache__", "*.json"))
    app = repo / "app.yaml"
    app.write_text(re.sub(r"(?m)^image: .*$", f"image: {registry.host}/examples/hello", app.read_text()))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "ci@example.com")
    git(repo, "config", "user.name", "CI")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "hello")
    return repo


def test_build_push_render_from_build(hello_copy, registry, buildah_store, tmp_path):
    envs = env_dir_for(tmp_path, {"url": registry.host, "insecure": True})
    env = {**buildah_store.env, "BRANCH_NAME": "main", "BUILD_NUMBER": "7",
           "BUILD_URL": "https://jenkins.example.com/job/hello/7/"}
    record = tmp_path / "build.json"
    out = deploykit("build", "app.yaml", "--env", "staging", "--env-dir", str(envs), "--build-arg",
                    f"BASE={buildah_store.base_image}", "--push", "--build-record", str(record), "--output", "json",
                    env=env, cwd=hello_copy)
    assert out.returncode == 0, out.stdout + out.stderr
    doc = json.loads(out.stdout)
    sha = git(hello_copy, "rev-parse", "HEAD")
    assert doc["ok"] and doc["backend"] == "buildah"
    assert doc["tags"] == [sha[:12], "main-7"]
    assert "STEP" in out.stderr and "RUN" in out.stderr  # the build log streamed to stderr, RUN step included
    saved = json.loads(record.read_text())
    digest = saved["digest"]
    assert saved["image"] == f"{registry.host}/examples/hello" and saved["git_sha"] == sha
    assert doc["push"]["pinned"] == f"{registry.host}/examples/hello@{digest}"
    # Docker v2 schema 2: what the Docker engine on Marathon hosts pulls, old engines included
    assert doc["push"]["media_type"] == "application/vnd.docker.distribution.manifest.v2+json"

    got = requests.get(f"http://{registry.host}/v2/examples/hello/manifests/{digest}", headers={"Accept": ACCEPT},
                       timeout=10)
    assert got.status_code == 200 and got.headers["Docker-Content-Digest"] == digest
    assert "sha256:" + hashlib.sha256(got.content).hexdigest() == digest
    assert json.loads(got.content)["config"]["digest"] == doc["image_id"]

    rendered = deploykit("render", "app.yaml", "--env", "staging", "--env-dir", str(envs), "--from-build",
                         str(record), env={}, cwd=hello_copy)
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    app = json.loads(rendered.stdout)
    assert app["container"]["docker"]["image"] == f"{registry.host}/examples/hello@{digest}"

    # `deploykit push` on its own (no rebuild) re-pushes the same image and pins the same digest
    again = deploykit("push", "app.yaml", "--env", "staging", "--env-dir", str(envs), "--immutable-tags",
                      "--build-record", str(tmp_path / "again.json"), "--output", "json", env=env, cwd=hello_copy)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads((tmp_path / "again.json").read_text())["digest"] == digest


def test_build_failure_exits_nonzero_with_step_output_and_pushes_nothing(hello_copy, registry, buildah_store,
                                                                        tmp_path):
    (hello_copy / "Dockerfile").write_text(
        "ARG BASE\nFROM ${BASE}\nCOPY server.py /app/server.py\n"
        "RUN echo 'compiling assets'; echo 'fatal: asset pipeline exploded in [/app]' >&2; exit 3\n"
    )
    app = hello_copy / "app.yaml"
    app.write_text(app.read_text().replace("/examples/hello", "/examples/broken"))
    git(hello_copy, "commit", "-q", "-am", "broken build")
    envs = env_dir_for(tmp_path, {"url": registry.host, "insecure": True})
    record = tmp_path / "build.json"
    out = deploykit("build", "app.yaml", "--env", "staging", "--env-dir", str(envs), "--build-arg",
                    f"BASE={buildah_store.base_image}", "--push", "--build-record", str(record), "--output", "json",
                    "--quiet", env=buildah_store.env, cwd=hello_copy)
    assert out.returncode == 1, out.stdout + out.stderr
    err = json.loads(out.stdout)
    assert err["ok"] is False and err["error"] == "CommandFailed"
    assert "fatal: asset pipeline exploded" in err["output_tail"]
    assert "fatal: asset pipeline exploded" in err["message"]
    assert not record.exists()
    # the same in text mode: the failing step's output on stderr (log text is not taken for rich markup)
    text = deploykit("build", "app.yaml", "--env", "staging", "--env-dir", str(envs), "--build-arg",
                     f"BASE={buildah_store.base_image}", "--push", "--quiet", env=buildah_store.env, cwd=hello_copy)
    assert text.returncode == 1
    assert "image build failed (exit" in text.stderr and "exploded in [/app]" in text.stderr
    assert "Traceback" not in text.stderr
    sha = git(hello_copy, "rev-parse", "HEAD")[:12]
    head = requests.head(f"http://{registry.host}/v2/examples/broken/manifests/{sha}", headers={"Accept": ACCEPT},
                         timeout=10)
    assert head.status_code == 404
    tags = requests.get(f"http://{registry.host}/v2/examples/broken/tags/list", timeout=10)
    assert tags.status_code == 404  # the repository was never created


def test_input_problems_are_reported_together_exit_2(hello_copy, registry, buildah_store, tmp_path):
    (hello_copy / "Dockerfile").unlink()
    (hello_copy / "server.py").write_text("# uncommitted change\n")
    envs = env_dir_for(tmp_path, {"url": registry.host, "insecure": True})
    out = deploykit("build", "app.yaml", "--env", "staging", "--env-dir", str(envs), "--tag", "bad tag!",
                    "--build-arg", "NOEQUALS", "--output", "json", env={**buildah_store.env, "CI": "true"},
                    cwd=hello_copy)
    assert out.returncode == 2, out.stdout + out.stderr
    problems = {p["path"]: p for p in json.loads(out.stdout)["problems"]}
    assert set(problems) == {"build.dockerfile", "--tag[0]", "--build-arg[0]", "git"}
    assert "--allow-dirty" in problems["git"]["hint"]


def test_unreachable_registry_exits_4(hello_copy, buildah_store, tmp_path):
    host = f"127.0.0.1:{free_port()}"
    app = hello_copy / "app.yaml"
    app.write_text(re.sub(r"(?m)^image: .*$", f"image: {host}/examples/hello", app.read_text()))
    git(hello_copy, "commit", "-q", "-am", "elsewhere")
    envs = env_dir_for(tmp_path, {"url": host, "insecure": True})
    out = deploykit("build", "app.yaml", "--env", "staging", "--env-dir", str(envs), "--build-arg",
                    f"BASE={buildah_store.base_image}", "--push", "--quiet", env=buildah_store.env, cwd=hello_copy)
    assert out.returncode == 4, out.stdout + out.stderr
    assert "unreachable" in out.stderr and host in out.stderr


def test_registry_credentials_from_env_never_printed(hello_copy, auth_registry, buildah_store, tmp_path):
    app = hello_copy / "app.yaml"
    app.write_text(re.sub(r"(?m)^image: .*$", f"image: {auth_registry.host}/examples/hello", app.read_text()))
    git(hello_copy, "commit", "-q", "-am", "private registry")
    envs = env_dir_for(tmp_path, {"url": auth_registry.host, "insecure": True, "username_env": "REG_USER",
                                  "password_env": "REG_PASSWORD"})
    args = ["build", "app.yaml", "--env", "staging", "--env-dir", str(envs), "--build-arg",
            f"BASE={buildah_store.base_image}", "--push", "--build-record", str(tmp_path / "b.json")]
    missing = deploykit(*args, env=buildah_store.env, cwd=hello_copy)
    assert missing.returncode == 2 and "REG_PASSWORD is not set" in missing.stderr
    wrong = deploykit(*args, env={**buildah_store.env, "REG_USER": auth_registry.username,
                                  "REG_PASSWORD": "not-the-password"}, cwd=hello_copy)
    assert wrong.returncode == 2, wrong.stdout + wrong.stderr
    assert "refused" in wrong.stderr and "not-the-password" not in wrong.stdout + wrong.stderr
    good = deploykit(*args, "--output", "json", env={**buildah_store.env, "REG_USER": auth_registry.username,
                                                       "REG_PASSWORD": auth_registry.password}, cwd=hello_copy)
    assert good.returncode == 0, good.stdout + good.stderr
    assert auth_registry.password not in good.stdout + good.stderr
    assert json.loads(good.stdout)["push"]["pinned"].startswith(f"{auth_registry.host}/examples/hello@sha256:")
