"""One LbSettings builder: `lb render --env E` writes the config `lb run --env E` installs for the same state."""

from __future__ import annotations

import json
import queue
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from deploykit.cli.lb_cmds import lb
from deploykit.envs import load_environment
from deploykit.lb.daemon import Daemon, DaemonOptions
from deploykit.lb.render import renderer_for
from deploykit.lb.settings import LbSettings, settings_from_environment
from deploykit.lb.source import LeaderSource

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from gen_apps import make_apps

REPO = Path(__file__).resolve().parents[2]


class CapturingHAProxy:
    """What the daemon's first sync talks to: not running yet, so it starts HAProxy from the rendered text."""

    def __init__(self, config_path: Path):
        self.config_path = config_path
        self.started: str | None = None

    def running(self) -> bool:
        return self.started is not None

    def start(self, text: str):
        self.started = text
        return SimpleNamespace(seconds=0.0)


class StaticSource:
    def __init__(self, apps: list[dict]):
        self.apps = apps
        self.leader = LeaderSource(["http://127.0.0.1:1"])
        self.stream_connected = True

    def snapshot(self) -> list[dict]:
        return self.apps


def _env_dir(tmp_path: Path) -> Path:
    """prod's haproxy section with the local file's relative paths and `bind_address: "*"` (both once differed)."""
    doc = json.loads((REPO / "chef_attrs" / "prod.json").read_text())
    doc["default_attributes"]["deploykit"]["haproxy"] = {
        "config": "run/haproxy.cfg", "groups": ["external"], "http_port": 8081, "bind_address": "*"}
    env_dir = tmp_path / "envs"
    env_dir.mkdir()
    (env_dir / "prod.json").write_text(json.dumps(doc))
    return env_dir


@pytest.mark.parametrize("env_name", ["prod", "local"])
def test_lb_render_and_lb_run_write_the_same_config(env_name: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env_dir = _env_dir(tmp_path) if env_name == "prod" else REPO / "chef_attrs"
    doc = make_apps(40, 3)
    (tmp_path / "apps.json").write_text(json.dumps(doc))
    rendered = CliRunner().invoke(lb, ["render", "--apps-json", "apps.json", "--env", env_name, "--env-dir",
                                       str(env_dir), "--out", "rendered.cfg", "-q"])
    assert rendered.exit_code == 0, rendered.output

    env = load_environment(env_name, env_dir)
    settings = settings_from_environment(env)  # what deploykit.lb.run.run builds from the same inputs
    haproxy = CapturingHAProxy(Path(settings.config))
    Path(settings.config).parent.mkdir(parents=True, exist_ok=True)
    daemon = Daemon(settings=settings, renderer=renderer_for(env), haproxy=haproxy,  # type: ignore[arg-type]
                    source=StaticSource(doc["apps"]), events=queue.Queue(),  # type: ignore[arg-type]
                    options=DaemonOptions(coalesce=0))
    assert daemon.full_sync()
    assert haproxy.started == (tmp_path / "rendered.cfg").read_text()
    assert f"bind {settings.bind_address}:{settings.http_port}\n" in haproxy.started
    assert Path(settings.state_file).is_absolute() and Path(settings.stats_socket).is_absolute()


def test_paths_are_absolute_and_sockets_follow_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = load_environment("prod", _env_dir(tmp_path))
    s = settings_from_environment(env)
    assert (s.config, s.state_file) == (str(tmp_path / "run" / "haproxy.cfg"), str(tmp_path / "run" / "server-state"))
    assert (s.master_socket, s.stats_socket, s.bind_address) == (str(tmp_path / "run" / "master.sock"),
                                                                 str(tmp_path / "run" / "stats.sock"), "")
    flag = settings_from_environment(env, config_path="other/h.cfg", groups=("internal",))
    assert flag.master_socket == str(tmp_path / "other" / "master.sock") and flag.groups == ("internal",)
    assert settings_from_environment(None, groups=("b", "a", "b")) == LbSettings(groups=("a", "b"))
