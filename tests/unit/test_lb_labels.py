"""lb.labels: typed parsing of marathon-lb / deploykit labels, and rejection of anything unsafe."""

from __future__ import annotations

import pytest

from deploykit.lb.labels import CheckSpec, LabelError, parse_labels


def test_full_label_set_is_typed() -> None:
    parsed = parse_labels({
        "HAPROXY_GROUP": "external, internal",
        "HAPROXY_0_VHOST": "Cart.example.com,shop.example.com",
        "HAPROXY_0_PATH": "/api/v1",
        "HAPROXY_0_MODE": "http",
        "HAPROXY_0_BALANCE": "leastconn",
        "HAPROXY_0_STICKY": "true",
        "HAPROXY_0_REDIRECT_TO_HTTPS": "false",
        "HAPROXY_1_PORT": "10500",
        "HAPROXY_1_MODE": "tcp",
        "DEPLOYKIT_0_CHECK_PATH": "/health",
        "DEPLOYKIT_0_CHECK_INTERVAL_MS": "500",
        "DEPLOYKIT_0_CHECK_RISE": "1",
        "DEPLOYKIT_0_CHECK_FALL": "5",
        "DEPLOYKIT_CONFIG_HASH": "abc",  # not ours: left alone
        "OWNER": "team-a",
    })
    assert parsed.groups == ("external", "internal")
    p0 = parsed.for_port(0)
    assert p0.vhosts == ("cart.example.com", "shop.example.com")
    assert (p0.path, p0.mode, p0.balance) == ("/api/v1", "http", "leastconn")
    assert (p0.sticky, p0.redirect_to_https) == (True, False)
    assert p0.check == CheckSpec(path="/health", interval_ms=500, rise=1, fall=5)
    p1 = parsed.for_port(1)
    assert (p1.port, p1.mode, p1.check) == (10500, "tcp", None)  # no DEPLOYKIT check label: Marathon's decides
    assert parsed.for_port(7).vhosts == ()
    assert parsed.ignored == ()


def test_raw_snippet_labels_are_ignored_never_applied() -> None:
    parsed = parse_labels({
        "HAPROXY_GROUP": "external",
        "HAPROXY_0_FRONTEND_HEAD": "frontend x\n  bind :1",
        "HAPROXY_0_BACKEND_SERVER_OPTIONS": "  check inter 1s\n",
        "HAPROXY_HTTP_FRONTEND_HEAD": "anything",
    })
    assert [label for label, _ in parsed.ignored] == [
        "HAPROXY_0_BACKEND_SERVER_OPTIONS", "HAPROXY_0_FRONTEND_HEAD", "HAPROXY_HTTP_FRONTEND_HEAD"]
    assert parsed.ports == {}


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("HAPROXY_0_VHOST", "a.example.com\n  use_backend evil", "control character"),
        ("HAPROXY_0_VHOST", "a.example.com # comment", "'#'"),
        ("HAPROXY_0_VHOST", "a.example.com b.example.com", "not a valid host name"),
        ("HAPROXY_0_VHOST", "a.*.example.com", "not a valid host name"),
        ("HAPROXY_0_VHOST", "*example.com", "not a valid host name"),
        ("HAPROXY_0_VHOST", "a_b.example.com", "not a valid host name"),
        ("HAPROXY_0_VHOST", " , ", "no host names"),
        ("HAPROXY_0_PATH", "api", "safe URL path"),
        ("HAPROXY_0_PATH", "/api }  use_backend x", "safe URL path"),
        ("HAPROXY_0_PATH", '/a"b', "safe URL path"),
        ("HAPROXY_0_PATH", "/${HOME}", "safe URL path"),
        ("HAPROXY_0_MODE", "health", "unknown mode"),
        ("HAPROXY_0_BALANCE", "roundrobin\n  option x", "control character"),
        ("HAPROXY_0_BALANCE", "hdr(host)", "unknown balance algorithm"),
        ("HAPROXY_0_PORT", "80a", "not a whole number"),
        ("HAPROXY_0_PORT", "70000", "outside 1..65535"),
        ("HAPROXY_0_PORT", "\u0661\u0662", "not a whole number"),
        ("HAPROXY_0_PORT", "\u00b2", "not a whole number"),
        ("HAPROXY_0_VHOST", "\u0430pple.com", "not a valid host name"),
        ("HAPROXY_0_STICKY", "maybe", "not true or false"),
        ("HAPROXY_GROUP", "ext ernal", "not a valid group name"),
        ("DEPLOYKIT_0_CHECK_PATH", "/health\tx", "control character"),
        ("DEPLOYKIT_0_CHECK_INTERVAL_MS", "10", "outside 100..3600000"),
        ("DEPLOYKIT_0_CHECK_RISE", "-1", "not a whole number"),
    ],
)
def test_bad_or_malicious_values_raise_with_label_name(key: str, value: str, needle: str) -> None:
    labels = {"HAPROXY_GROUP": "external", key: value}
    with pytest.raises(LabelError) as info:
        parse_labels(labels)
    assert key in str(info.value)
    assert needle in str(info.value)


def test_non_string_value_is_rejected() -> None:
    with pytest.raises(LabelError, match="must be a string"):
        parse_labels({"HAPROXY_GROUP": "x", "HAPROXY_0_PORT": 80})


def test_long_values_are_shortened_in_reasons() -> None:
    with pytest.raises(LabelError) as info:
        parse_labels({"HAPROXY_GROUP": "x", "HAPROXY_0_VHOST": "a" * 300})
    assert len(str(info.value)) < 200


def test_no_labels() -> None:
    assert parse_labels(None).groups == ()
    assert parse_labels({}).ports == {}
