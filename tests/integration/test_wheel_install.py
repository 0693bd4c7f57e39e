"""`pip install` the built wheel into a fresh venv and use it from an unrelated directory.

Proves the installed package finds its own data (Marathon schema, chef_attrs, templates,
haproxy templates) without the source tree. Offline: the wheel is built without build
isolation (hatchling from .venv), installed with --no-index --no-deps, and the fresh venv
sees the already-installed dependencies through a .pth file pointing at .venv's site-packages
(a path line in a .pth does not process that folder's own .pth files, so the editable
install of deploykit there stays invisible). `pip check` then verifies that the wheel's declared
requirements, with their lower bounds, are met by those packages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    wheel_dir = tmp / "dist"
    built = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheel_dir),
            str(REPO),
        ],
        cwd=tmp,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheel_dir.glob("deploykit-*.whl")
    venv = tmp / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp)
    Path(site.stdout.strip(), "deploykit-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-index", "--no-deps"]
    result = _run([*pip, str(wheel)], cwd=tmp)
    assert result.returncode == 0, result.stderr
    # the wheel's declared requirements (names and lower bounds) must be met by what the venv sees
    check = _run([sys.executable, "-m", "pip", "--python", str(python), "check"], cwd=tmp)
    assert check.returncode == 0 and "deploykit" not in check.stdout, check.stdout + check.stderr
    return venv


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DEPLOYKIT_ENV_DIR", "PYTHONPATH", "VIRTUAL_ENV")}
    return env


def test_render_from_another_directory(installed: Path, tmp_path: Path) -> None:
    app = REPO / "examples" / "hello" / "app.yaml"
    result = _run(
        [str(installed / "bin" / "deploykit"), "render", str(app), "--env", "local"], cwd=tmp_path, env=_clean_env()
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["id"] == "/examples/hello" and doc["container"]["docker"]["image"] == "127.0.0.1:5000/examples/hello"
    assert doc["container"]["portMappings"][0]["servicePort"] == 10001


def test_installed_package_uses_its_own_data(installed: Path, tmp_path: Path) -> None:
    probe = (
        "import json, deploykit, deploykit.envs as e, deploykit.resources as r;"
        "print(json.dumps({'pkg': deploykit.__file__, 'env': str(e.load_environment('prod').file),"
        "'schema': str(r.schema_path('marathon/AppDefinition.json')),"
        "'templates': str(r.data_dir('templates')), 'haproxy': str(r.data_dir('haproxy'))}))"
    )
    result = _run([str(installed / "bin" / "python"), "-c", probe], cwd=tmp_path, env=_clean_env())
    assert result.returncode == 0, result.stderr
    paths = json.loads(result.stdout)
    for key, value in paths.items():
        assert value.startswith(str(installed)), f"{key} resolved outside the installed venv: {value}"
    assert Path(paths["schema"]).is_file()
    assert any(Path(paths["templates"]).iterdir()) and any(Path(paths["haproxy"]).iterdir())
    assert (Path(paths["schema"]).parent / "LICENSE").is_file()


def test_installed_console_script_help_and_version(installed: Path, tmp_path: Path) -> None:
    script = str(installed / "bin" / "deploykit")
    assert "from deploykit.cli import main" in Path(script).read_text()
    helped = _run([script, "--help"], cwd=tmp_path, env={**_clean_env(), "COLUMNS": "100"})
    assert helped.returncode == 0 and "validate" in helped.stdout and "Commands:" in helped.stdout
    version = _run([script, "--version"], cwd=tmp_path, env=_clean_env())
    assert version.returncode == 0 and version.stdout.startswith("deploykit, version ")
    sub = _run([script, "validate", "--help"], cwd=tmp_path, env=_clean_env())
    assert sub.returncode == 0 and "Examples:" in sub.stdout
