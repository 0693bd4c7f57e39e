"""The label contract end to end: what deploykit.render.marathon writes, lb.model routes as app.yaml says."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploykit.envs import load_environment
from deploykit.lb.model import build_model
from deploykit.lb.settings import LbSettings
from deploykit.render.marathon import image_reference, render_app
from deploykit.spec.loader import load_app

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello" / "app.yaml"


@pytest.mark.parametrize("env_name", ["local", "prod"])
def test_rendered_example_app_is_routed_as_its_app_yaml_says(env_name: str) -> None:
    environment = load_environment(env_name)
    spec = load_app(HELLO, env_name, environment)
    app = render_app(spec, environment, image_reference(spec, tag="1.0.0", digest=None))
    service_port = 10001
    app["tasks"] = [
        {"id": f"hello.t{i}", "host": "10.0.0.5", "ports": [31000 + i], "state": "TASK_RUNNING",
         "ipAddresses": [{"ipAddress": f"172.17.0.{i + 2}", "protocol": "IPv4"}],
         "healthCheckResults": [{"alive": True}]}
        for i in range(2)
    ]
    model = build_model([app], LbSettings(groups=("external",)))
    assert not model.rejected and not model.ignored
    backend = model.backends["examples_hello_0"]
    assert (backend.mode, backend.balance) == ("http", "roundrobin")
    assert (backend.check.path, backend.check.interval_ms, backend.check.rise, backend.check.fall) == (
        "/health", 1000, 2, 2)
    assert [r.vhosts for r in model.http_routes] == [("hello.local",)]
    # a vhost app is routed on the shared http frontend, and on its service port as marathon-lb does
    assert [(f.port, f.backend) for f in model.port_frontends] == [(10001, backend.name)]
    # local: processes on host ports; prod: Docker bridge networking, so host ports too
    assert [(s.task_id, s.address, s.port) for _, s in backend.servers] == [
        ("hello.t0", "10.0.0.5", 31000), ("hello.t1", "10.0.0.5", 31001)]
    ports = [m.get("servicePort") for m in (app.get("container") or {}).get("portMappings") or []] or [
        d.get("port") for d in app.get("portDefinitions") or []]
    assert ports == [service_port]


def test_wildcard_vhost_passes_validate_and_the_daemon_alike(tmp_path) -> None:
    """One rule (deploykit.labels.HOST_NAME): what `deploykit validate` accepts, the daemon routes."""
    from deploykit.errors import ValidationError
    from deploykit.lb.labels import parse_labels

    app_yaml = tmp_path / "app.yaml"
    app_yaml.write_text("id: /a/b\nports: [{name: http, container: 80}]\nhaproxy: {vhost: ['*.example.com']}\n")
    load_app(app_yaml, None)  # raises ValidationError if refused
    parsed = parse_labels({"HAPROXY_GROUP": "g", "HAPROXY_0_VHOST": "*.example.com"})
    assert parsed.ports[0].vhosts == ("*.example.com",)
    app_yaml.write_text("id: /a/b\nports: [{name: http, container: 80}]\nhaproxy: {vhost: ['a.*.example.com']}\n")
    with pytest.raises(ValidationError):
        load_app(app_yaml, None)
