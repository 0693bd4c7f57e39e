"""examples/hello: its app.yaml in every shipped environment, and its server's endpoints (in-process)."""

from __future__ import annotations

import importlib.util
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from deploykit.envs import load_environment
from deploykit.render.marathon import render_app
from deploykit.spec import load_app

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"


@pytest.mark.parametrize("env", ["local", "staging", "prod"])
def test_app_renders_everywhere(env: str) -> None:
    environment = load_environment(env)
    doc = render_app(load_app(HELLO / "app.yaml", env, environment), environment, None)
    assert doc["id"] == "/examples/hello"
    assert doc["labels"]["HAPROXY_0_VHOST"] == "hello.local" and doc["labels"]["HAPROXY_GROUP"] == "external"
    ports = doc.get("portDefinitions") or doc["container"]["portMappings"]
    assert ports[0].get("servicePort", ports[0].get("port")) == 10001
    assert doc["healthChecks"][0]["path"] == "/health" and doc["readinessChecks"][0]["path"] == "/ready"
    # every environment runs the image (local: in the devcluster's Docker engine); none needs a cmd
    assert doc["instances"] >= 2 and "cmd" not in doc and doc["container"]["type"] == "DOCKER"
    assert doc["container"]["docker"]["image"] == "examples/hello"  # placed in registry.url at deploy time


@pytest.fixture
def hello_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, pytest.MonkeyPatch]]:
    spec = importlib.util.spec_from_file_location("hello_server", HELLO / "server.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.Handler.log_message = lambda *a: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), module.Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", monkeypatch
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def get(url: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an HTTP proxy
    try:
        with opener.open(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_server_endpoints(hello_server) -> None:
    base, monkeypatch = hello_server
    monkeypatch.setenv("MARATHON_APP_VERSION", "2026-01-01T00:00:00.000Z")
    monkeypatch.setenv("DEPLOYKIT_CONFIG_PREFIX", "config/examples/hello/abc")
    status, body = get(base + "/")
    assert status == 200 and "hello from 2026-01-01T00:00:00.000Z" in body and "config/examples/hello/abc" in body
    assert get(base + "/health") == (200, "ok\n")
    assert get(base + "/ready") == (200, "ready\n")
    assert get(base + "/nope")[0] == 404
    monkeypatch.setenv("HELLO_FAIL_HEALTH", "1")
    assert get(base + "/health")[0] == 500
