"""marathon-lb parity in the pure core: Marathon-derived checks, service ports of vhost apps (a secondary claim),
the typed marathon-lb labels, TLS certificates in the model, and the LB-host helpers (lb.lbhost)."""

from __future__ import annotations

import subprocess

import pytest

from deploykit.errors import ValidationError
from deploykit.lb.changes import diff
from deploykit.lb.labels import CheckSpec, LabelError, parse_labels
from deploykit.lb.lbhost import HostResolver, unloadable_certificates
from deploykit.lb.model import apply_app, build_model, refuse_ports
from deploykit.lb.render import render_config
from deploykit.lb.settings import LbSettings
from tests.unit.test_lb_model import app, task

SETTINGS = LbSettings(http_port=18080, groups=("external",), app_id_port=0)
HTTP_CHECK = {"protocol": "MESOS_HTTP", "path": "/ready", "portIndex": 0, "intervalSeconds": 7,
              "timeoutSeconds": 3, "maxConsecutiveFailures": 2}


def checked(check: dict | list, labels: dict | None = None, vhost: str | None = "a.example.com", **extra):
    checks = check if isinstance(check, list) else [check]
    doc = app("/a", [task("t1", ports=[31001, 31002], alive=True)], vhost=vhost, labels=labels, healthChecks=checks,
              portDefinitions=[{"port": 10001}, {"port": 10002}], **extra)
    return build_model([doc], SETTINGS)


def test_http_health_check_gives_httpchk_like_marathon_lb() -> None:
    m = checked(HTTP_CHECK)
    assert m.backends["a_0"].check == CheckSpec("/ready", 7000, 2, 3, "200-399", False, 3000)
    text = render_config(m)
    assert "    option httpchk GET /ready\n    http-check expect status 200-399\n    timeout check 3000ms" in text
    assert "    default-server check inter 7000ms rise 2 fall 3\n" in text


@pytest.mark.parametrize(("check", "want"), [
    ({**HTTP_CHECK, "protocol": "HTTPS"}, CheckSpec("/ready", 7000, 2, 3, "200-399", True, 3000)),
    ({**HTTP_CHECK, "protocol": "TCP"}, CheckSpec(None, 7000, 2, 3, timeout_ms=3000)),
    ({**HTTP_CHECK, "protocol": "COMMAND"}, CheckSpec()),  # nothing HAProxy can run: the defaults
    ({**HTTP_CHECK, "portIndex": 1}, CheckSpec()),  # another port's check
    ({**HTTP_CHECK, "port": 8080}, CheckSpec()),  # a fixed port, not a task port
])
def test_check_by_protocol_and_port(check: dict, want: CheckSpec) -> None:
    assert checked(check).backends["a_0"].check == want


def test_tcp_port_with_http_check_gets_a_connect_check() -> None:
    m = checked(HTTP_CHECK, vhost=None, labels={"HAPROXY_0_MODE": "tcp"})
    assert m.backends["a_0"].check == CheckSpec(None, 7000, 2, 3, timeout_ms=3000)


def test_first_check_of_the_port_wins_and_deploykit_labels_win_over_marathon() -> None:
    m = checked([{**HTTP_CHECK, "portIndex": 1, "path": "/other"}, HTTP_CHECK, {**HTTP_CHECK, "path": "/second"}])
    assert m.backends["a_0"].check.path == "/ready"
    m = checked(HTTP_CHECK, labels={"DEPLOYKIT_0_CHECK_PATH": "/dk", "DEPLOYKIT_0_CHECK_INTERVAL_MS": "500"})
    assert m.backends["a_0"].check == CheckSpec("/dk", 500)


def test_healthcheck_port_index_checks_the_other_task_port() -> None:
    m = checked({**HTTP_CHECK, "portIndex": 1}, labels={"HAPROXY_0_BACKEND_HEALTHCHECK_PORT_INDEX": "1"})
    backend = m.backends["a_0"]
    assert backend.check.path == "/ready" and backend.slots[0].check_port == 31002
    assert "    server s1 10.0.0.1:31001 port 31002" in render_config(m)
    moved, _ = apply_app(m, app("/a", [task("t2", ports=[31005, 31006], alive=True)], vhost="a.example.com",
                                labels={"HAPROXY_0_HEALTHCHECK_PORT_INDEX": "1"},  # the short name is the same
                                healthChecks=[{**HTTP_CHECK, "portIndex": 1}],
                                portDefinitions=[{"port": 10001}, {"port": 10002}]))
    ops = [op.command() for op in diff(m, moved).server_ops]
    assert "set server a_0/s1 check-port 31006" in ops


def test_vhost_app_service_port_is_secondary() -> None:
    """A vhost app whose service port another app holds keeps its vhost routing; the port is reported dropped.
    A tcp app in the same spot is rejected (the port is its only way in)."""
    tcp = app("/db", [task("d1")], service_port=10001, labels={"HAPROXY_0_MODE": "tcp"},
              versionInfo={"lastConfigChangeAt": "2020-01-01T00:00:00Z"})
    web = app("/web", [task("w1")], vhost="web.example.com", service_port=10001,
              versionInfo={"lastConfigChangeAt": "2021-01-01T00:00:00Z"})
    m = build_model([tcp, web], SETTINGS)
    assert [(f.port, f.backend) for f in m.port_frontends] == [(10001, "db_0")]
    assert [r.backend for r in m.http_routes] == ["web_0"] and not m.rejected
    assert [(d.app_id, d.holder) for d in m.dropped] == [("/web", "/db")]
    tcp2 = app("/db2", [task("e1")], service_port=10001, labels={"HAPROXY_0_MODE": "tcp"},
               versionInfo={"lastConfigChangeAt": "2022-01-01T00:00:00Z"})
    m = build_model([tcp, tcp2], SETTINGS)
    assert [r.app_id for r in m.rejected] == ["/db2"]


def test_refused_ports_drop_a_vhost_frontend_but_reject_a_tcp_app() -> None:
    m = build_model([app("/web", [task("w1")], vhost="web.example.com", service_port=10001),
                     app("/db", [task("d1")], service_port=10002)], SETTINGS)
    new = refuse_ports(m, {10001: "a process on this host", 10002: "a process on this host"})
    assert not new.port_frontends and [r.backend for r in new.http_routes] == ["web_0"]
    assert [r.app_id for r in new.rejected] == ["/db"] and "a process on this host" in new.rejected[0].reason
    assert new.rejected[0].holder is None  # not another app: reported as app_rejected, not as a route conflict
    assert [d.app_id for d in new.dropped] == ["/web"]


def test_service_ports_off_and_lb_ports_reserved() -> None:
    apps = [app("/web", [task("w1")], vhost="web.example.com", service_port=10001)]
    assert not build_model(apps, SETTINGS._replace(service_ports=False)).port_frontends
    m = build_model([app("/web", [task("w1")], vhost="web.example.com", service_port=9091),
                     app("/tcp", [task("t1")], service_port=8443)],
                    SETTINGS._replace(app_id_port=9091, https_port=8443, ssl_certs=("/c.pem",)))
    assert "the X-Marathon-App-Id frontend" in m.dropped[0].reason
    assert "the https frontend" in m.rejected[0].reason


def test_typed_marathon_lb_labels() -> None:
    labels = parse_labels({
        "HAPROXY_GROUP": "internal", "HAPROXY_0_GROUP": "external", "HAPROXY_0_BIND_ADDR": "127.0.0.2",
        "HAPROXY_0_BACKEND_WEIGHT": "7", "HAPROXY_0_AUTH": "ops:alice:$6$saltsalt$hashhashhashhash",
        "HAPROXY_0_BACKEND_NETWORK_ALLOWED_ACL": "10.1.40.0/24 10.1.55.43", "HAPROXY_0_USE_HSTS": "true",
        "HAPROXY_0_HTTP_BACKEND_PROXYPASS_PATH": "/svc/", "HAPROXY_0_HTTP_BACKEND_REVPROXY_PATH": "/svc",
        "HAPROXY_0_HTTP_BACKEND_REDIR": "/home", "HAPROXY_0_SSL_CERT": "/etc/ssl/a.pem",
    })
    p = labels.for_port(0)
    assert (labels.groups, p.groups, p.bind_address, p.weight) == (("internal",), ("external",), "127.0.0.2", 7)
    assert (p.auth.realm, p.auth.user) == ("ops", "alice")
    assert p.network_allowed == ("10.1.40.0/24", "10.1.55.43/32")
    assert (p.proxypass_path, p.revproxy_path, p.redirect_root, p.ssl_cert, p.use_hsts) == (
        "/svc", "/svc", "/home", "/etc/ssl/a.pem", True)


@pytest.mark.parametrize(("label", "value", "why"), [
    ("HAPROXY_0_AUTH", "ops:alice:s3cret", "never plain text"),
    ("HAPROXY_0_AUTH", "ops alice", "realm:user:password-hash"),
    ("HAPROXY_0_NETWORK_ALLOWED", "10.0.0.0/33", "not an IP address or CIDR"),
    ("HAPROXY_0_BIND_ADDR", "lb.example.com", "not an IP address"),
    ("HAPROXY_0_SSL_CERT", "certs/a.pem", "absolute file path"),
    ("HAPROXY_0_SSL_CERT", "/etc/../a.pem", "absolute file path"),
    ("HAPROXY_0_HTTP_BACKEND_PROXYPASS_PATH", "/a.*", "plain path prefix"),
    ("HAPROXY_0_BACKEND_WEIGHT", "-1", "whole number"),
])
def test_bad_typed_labels_reject_the_app(label: str, value: str, why: str) -> None:
    with pytest.raises(LabelError, match=why):
        parse_labels({"HAPROXY_GROUP": "external", label: value})


def test_port_group_overrides_app_group() -> None:
    doc = app("/two", [task("t1", ports=[31001, 31002])], portDefinitions=[{"port": 10001}, {"port": 10002}],
              labels={"HAPROXY_GROUP": "internal", "HAPROXY_0_GROUP": "external"})
    assert list(build_model([doc], SETTINGS).backends) == ["two_0"]
    assert list(build_model([doc], SETTINGS._replace(groups=("internal",))).backends) == ["two_1"]


def test_weight_orders_http_rules_and_bind_address_reaches_the_frontend() -> None:
    m = build_model([
        app("/a", [task("a1")], vhost="x.example.com", labels={"HAPROXY_0_PATH": "/long/path"}, service_port=10001),
        app("/b", [task("b1")], vhost="x.example.com", labels={"HAPROXY_0_BACKEND_WEIGHT": "5",
                                                               "HAPROXY_0_BIND_ADDR": "127.0.0.3"},
            service_port=10002),
    ], SETTINGS)
    assert [r.backend for r in m.http_routes] == ["b_0", "a_0"]
    assert {f.port: f.bind_address for f in m.port_frontends} == {10001: "", 10002: "127.0.0.3"}
    assert "    bind 127.0.0.3:10002" in render_config(m)


def test_tls_frontend_only_with_an_operator_certificate() -> None:
    apps = [app("/a", [task("a1")], vhost="a.example.com", labels={"HAPROXY_0_SSL_CERT": "/etc/ssl/a.pem"})]
    assert "https_in" not in render_config(build_model(apps, SETTINGS))
    m = build_model(apps, SETTINGS._replace(ssl_certs=("/etc/ssl/default.pem",), https_port=8443))
    assert m.ssl_certs == ("/etc/ssl/default.pem", "/etc/ssl/a.pem")
    text = render_config(m)
    assert "    bind :8443 ssl crt /etc/ssl/default.pem crt /etc/ssl/a.pem alpn h2,http/1.1" in text
    assert text.count("use_backend a_0 if") == 2  # the same rule on http_in and https_in


def test_settings_for_tls_retries_and_ports() -> None:
    s = LbSettings.from_mapping({"ssl_certs": "/etc/ssl/x.pem", "retry_on": "conn-failure  500",
                                 "service_ports": False})
    assert (s.ssl_certs, s.retry_on, s.service_ports) == (("/etc/ssl/x.pem",), "conn-failure 500", False)
    with pytest.raises(ValidationError) as err:
        LbSettings.from_mapping({"retry_on": "all-retryable-errorz", "service_ports": "no", "stats_port": 80,
                                 "ssl_certs": ["relative.pem"]})
    text = str(err.value)
    for where in ("haproxy.retry_on", "haproxy.service_ports", "haproxy.stats_port", "haproxy.ssl_certs"):
        assert where in text


def test_host_resolver_caches_and_expires() -> None:
    now = [0.0]
    resolver = HostResolver(ttl=10, clock=lambda: now[0])
    assert resolver("localhost") == "127.0.0.1"
    assert resolver("localhost") == "127.0.0.1" and resolver.lookups == 1
    now[0] = 11
    assert resolver("localhost") == "127.0.0.1" and resolver.lookups == 2
    assert resolver("no-such-host.invalid") is None


def test_unloadable_certificates(tmp_path) -> None:
    good = tmp_path / "good.pem"
    key, crt = tmp_path / "k", tmp_path / "c"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(crt), "-days", "1", "-subj", "/CN=t"], check=True, capture_output=True, timeout=60)
    good.write_bytes(crt.read_bytes() + key.read_bytes())
    cert_only = tmp_path / "only.pem"
    cert_only.write_bytes(crt.read_bytes())
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "a.pem").write_bytes(good.read_bytes())
    (folder / "a.pem.key").write_text("ignored side file")
    bad = unloadable_certificates([str(good), str(folder), str(cert_only), str(tmp_path / "missing.pem")])
    assert set(bad) == {str(cert_only), str(tmp_path / "missing.pem")}
    assert bad[str(tmp_path / "missing.pem")] == "not found"


def test_render_report_names_dropped_service_ports() -> None:
    from deploykit.lb.render import RenderResult

    m = build_model([app("/db", [task("d1")], service_port=10001, labels={"HAPROXY_0_MODE": "tcp"},
                         versionInfo={"lastConfigChangeAt": "2020-01-01T00:00:00Z"}),
                     app("/web", [task("w1")], vhost="web.example.com", service_port=10001,
                         versionInfo={"lastConfigChangeAt": "2021-01-01T00:00:00Z"})], SETTINGS)
    result = RenderResult(m, "out.cfg", 1)
    assert "dropped /web port 0: service port 10001 is already used by /db (its vhost routing stays)" in \
        result.report_lines()
    assert result.to_dict()["dropped"] == [{"app_id": "/web", "holder": "/db",
                                            "reason": "port 0: service port 10001 is already used by /db"}]
