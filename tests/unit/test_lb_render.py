"""lb.render: haproxy.cfg text from the model (complete config, slots, caching, template errors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploykit.errors import ValidationError
from deploykit.lb.model import apply_app, build_model
from deploykit.lb.render import Renderer, render_config, slot_layout
from deploykit.lb.settings import LbSettings

SETTINGS = LbSettings(http_port=18080, bind_address="127.0.0.1", stats_socket="/tmp/dk.sock",
                      state_file="/tmp/dk.state", groups=("external",))


def task(tid: str, port: int, state: str = "TASK_RUNNING") -> dict:
    return {"id": tid, "host": "127.0.0.1", "ports": [port], "state": state}


def apps() -> list[dict]:
    return [
        {"id": "/shop/cart", "portDefinitions": [{"port": 10001}],
         "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "cart.example.com",
                    "HAPROXY_0_STICKY": "true", "HAPROXY_0_REDIRECT_TO_HTTPS": "true",
                    "DEPLOYKIT_0_CHECK_PATH": "/health", "DEPLOYKIT_0_CHECK_INTERVAL_MS": "1500",
                    "HAPROXY_0_BACKEND_HEAD": "  http-request deny"},
         "tasks": [task("c1", 31001), task("c2", 31002)]},
        {"id": "/api", "portDefinitions": [{"port": 10002}],
         "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "shop.example.com", "HAPROXY_0_PATH": "/api"},
         "tasks": [task("a1", 31003)]},
        {"id": "/db", "portDefinitions": [{"port": 10003}],
         "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_BALANCE": "leastconn", "HAPROXY_0_STICKY": "1"},
         "tasks": [task("d1", 31004)]},
        {"id": "/evil", "portDefinitions": [{"port": 10004}],
         "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "x.example.com\nlisten evil\n bind :1"}},
    ]


def test_config_has_global_defaults_frontends_and_backends() -> None:
    cfg = render_config(build_model(apps(), SETTINGS))
    for line in [
        "    master-worker",
        "    stats socket /tmp/dk.sock mode 600 level admin expose-fd listeners",
        "    hard-stop-after 30m",
        "    mworker-max-reloads 20",
        "    server-state-file /tmp/dk.state",
        "    retries 3",
        "    option redispatch",
        "    load-server-state-from-file global",
        "    retry-on conn-failure empty-response junk-response response-timeout 502 503 504",
        "    bind 127.0.0.1:18080",
        "    use_backend api_0 if { req.hdr(host),field(1,:),lower -m str shop.example.com } { path_beg /api }",
        "    use_backend shop_cart_0 if { req.hdr(host),field(1,:),lower -m str cart.example.com }",
        "    http-request redirect scheme https code 301 if !{ ssl_fc } "
        "{ req.hdr(host),field(1,:),lower -m str cart.example.com }",
        "frontend port_10003",
        "    bind 127.0.0.1:10003",
        "    default_backend db_0",
        "    option httpchk GET /health",
        "    http-check expect status 200",
        "    default-server check inter 1500ms rise 2 fall 3",
        "    cookie DKSRV insert indirect nocache dynamic",
        "    stick on src",
        "    server s1 127.0.0.1:31001",
        "    server s2 127.0.0.1:31002",
        "    server-template s 3-8 0.0.0.0:0 disabled",
    ]:
        assert line in cfg.splitlines(), line
    assert "evil" not in cfg and "deny" not in cfg
    # api routes (host + longer path) come before host-only routes
    assert cfg.index("use_backend api_0") < cfg.index("use_backend shop_cart_0")


def test_slot_layout_keeps_slot_order() -> None:
    m1 = build_model([{**apps()[0], "tasks": [task("c1", 1), task("c2", 2), task("c3", 3)]}], SETTINGS)
    m2, _ = apply_app(m1, {**apps()[0], "tasks": [task("c1", 1), task("c3", 3, "TASK_KILLING")]})
    layout = slot_layout(m2.backends["shop_cart_0"])
    assert [(k, a) for k, a, _, _ in layout] == [("server", "s1"), ("spare", 2), ("server", "s3"), ("spare", 4)]
    assert layout[3][2] == 8 and layout[0][3] == "127.0.0.1:1" and layout[2][2].draining
    cfg = render_config(m2)
    assert "    server s3 127.0.0.1:3 disabled" in cfg  # draining: known address, no new traffic
    assert cfg.index("server s1 ") < cfg.index("server-template s 2-2") < cfg.index("server s3 ")


def test_render_is_deterministic() -> None:
    a = apps()
    assert render_config(build_model(a, SETTINGS)) == render_config(build_model(list(reversed(a)), SETTINGS))


def test_renderer_reuses_unchanged_backend_text() -> None:
    renderer = Renderer()
    m1 = build_model(apps(), SETTINGS)
    first = renderer.render(m1)
    calls = []
    original = renderer._backend

    def counting(**context):
        calls.append(context["b"].name)
        return original(**context)

    renderer._backend = counting
    assert renderer.render(m1) == first and calls == []
    m2, changed = apply_app(m1, {**apps()[2], "tasks": [task("d1", 31004), task("d2", 31005)]})
    second = renderer.render(m2)
    assert calls == ["db_0"] and changed == ["db_0"]
    assert "server s2 127.0.0.1:31005" in second


def test_custom_template_dir(tmp_path: Path) -> None:
    (tmp_path / "haproxy.cfg.j2").write_text("# custom {{ settings.http_port }}\n{{ backends }}")
    (tmp_path / "backend.cfg.j2").write_text("backend {{ b.name }} # {{ slots|length }}\n")
    out = render_config(build_model(apps(), SETTINGS), tmp_path)
    assert out.startswith("# custom 18080\nbackend api_0 # 2\n")


def test_template_errors_are_validation_errors(tmp_path: Path) -> None:
    (tmp_path / "haproxy.cfg.j2").write_text("{% if %}")
    (tmp_path / "backend.cfg.j2").write_text("{{ b.nmae }}")
    with pytest.raises(ValidationError, match="syntax error"):
        Renderer(tmp_path)
    (tmp_path / "haproxy.cfg.j2").write_text("{{ backends }}")
    with pytest.raises(ValidationError, match="nmae"):
        render_config(build_model(apps(), SETTINGS), tmp_path)
    with pytest.raises(ValidationError, match="template folder not found"):
        Renderer(tmp_path / "nope")


def test_custom_folder_overrides_only_what_it_has(tmp_path: Path) -> None:
    (tmp_path / "backend.cfg.j2").write_text("backend {{ b.name }} # custom\n")
    out = render_config(build_model(apps(), SETTINGS), tmp_path)
    assert "    master-worker" in out.splitlines() and "backend db_0 # custom" in out


def test_custom_templates_get_jinja_globals_and_errors_are_reported(tmp_path: Path) -> None:
    (tmp_path / "haproxy.cfg.j2").write_text("{% for i in range(2) %}#{{ i }}\n{% endfor %}{{ backends }}")
    (tmp_path / "backend.cfg.j2").write_text("backend {{ b.name }}\n")
    assert render_config(build_model(apps(), SETTINGS), tmp_path).startswith("#0\n#1\nbackend api_0\n")
    (tmp_path / "backend.cfg.j2").write_text("{{ b.name + 1 }}")
    with pytest.raises(ValidationError, match="TypeError"):
        render_config(build_model(apps(), SETTINGS), tmp_path)


def test_ipv6_servers_are_bracketed() -> None:
    m = build_model([{**apps()[2], "tasks": [{**task("d1", 31004), "host": "fd00::5"}]}], SETTINGS)
    assert "    server s1 [fd00::5]:31004" in render_config(m).splitlines()


def test_wildcard_vhost_is_a_suffix_match_after_exact_names() -> None:
    """`*.example.com` renders as a Host suffix match (-m end .example.com); exact names come first."""
    a = [
        {"id": "/a/wild", "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "*.example.com,wild.test"},
         "portDefinitions": [{"port": 10001}], "tasks": []},
        {"id": "/z/api", "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "api.example.com"},
         "portDefinitions": [{"port": 10002}], "tasks": []},
    ]
    model = build_model(a, SETTINGS)
    assert not model.rejected
    rules = [line.strip() for line in render_config(model).splitlines()
             if line.strip().startswith("use_backend") and "x-marathon-app-id" not in line]
    assert rules == [
        "use_backend z_api_0 if { req.hdr(host),field(1,:),lower -m str api.example.com }",
        "use_backend a_wild_0 if { req.hdr(host),field(1,:),lower -m str wild.test }",
        "use_backend a_wild_0 if { req.hdr(host),field(1,:),lower -m end .example.com }",
    ]
