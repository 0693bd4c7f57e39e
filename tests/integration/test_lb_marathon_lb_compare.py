"""Acceptance (issue 14): for a generated 1,000-app marathon-lb-style state, `deploykit lb render` routes every
backend, service port, http vhost and https vhost that marathon-lb routes, with the same HAProxy-side check.

The expected routing is written here from marathon-lb's documented rules (README / config.py):
- every app in the LB's group gets a backend of its running, Marathon-healthy tasks (`host:port`);
- every service port is bound by a frontend to that backend, vhost apps' too;
- `HAPROXY_0_VHOST` (+ `HAPROXY_0_PATH`) routes that host (and path prefix) on the http frontend and,
  with a certificate, on the https frontend;
- the first Marathon health check of the port gives the HAProxy check: HTTP/MESOS_HTTP in http mode
  `option httpchk GET <path>`, TCP or a tcp-mode port a connect check; `check inter <intervalSeconds>s
  fall <maxConsecutiveFailures + 1>`.
The same rules are checked against marathon-lb's own generator (vendored in bench/marathon_lb, Apache-2.0)
on the same state, so the expectation is marathon-lb's behaviour and not a restatement of ours.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.common import require_binary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEPLOYKIT = [str(Path(sys.executable).parent / "deploykit")]
sys.path.insert(0, str(ROOT / "bench"))
from gen_apps import make_apps  # noqa: E402


def expected_routing(apps: list[dict], group: str) -> dict:
    """marathon-lb's routing for `apps`, from its documented rules (module docstring)."""
    out: dict = {"backends": {}, "ports": {}, "http": {}, "https": {}}
    for a in apps:
        labels = a.get("labels") or {}
        if group not in labels.get("HAPROXY_GROUP", "").split(","):
            continue
        name = a["id"].strip("/").replace("/", "_")
        mode = labels.get("HAPROXY_0_MODE") or ("http" if labels.get("HAPROXY_0_VHOST") else "tcp")
        servers = frozenset(
            f"{t['host']}:{t['ports'][0]}" for t in a["tasks"]
            if t["state"] == "TASK_RUNNING" and all(r["alive"] for r in t.get("healthCheckResults") or [])
        )
        hc = next((c for c in a.get("healthChecks") or [] if c.get("portIndex", 0) == 0 and not c.get("port")), None)
        check = None
        if hc is not None:
            http = hc["protocol"] in ("HTTP", "MESOS_HTTP") and mode == "http"
            check = (hc.get("path", "/") if http else None, hc["intervalSeconds"] * 1000,
                     hc["maxConsecutiveFailures"] + 1)
        out["backends"][name] = (servers, check)
        out["ports"][a["container"]["portMappings"][0]["servicePort"]] = name
        if labels.get("HAPROXY_0_VHOST"):
            for host in labels["HAPROXY_0_VHOST"].split(","):
                key = (host, labels.get("HAPROXY_0_PATH"))
                out["http"][key] = name
                out["https"][key] = name
    return out


_HOST = re.compile(r"(?:hdr\(host\) -i|-m str|ssl_fc_sni) (\S+)")
_PATH = re.compile(r"path_beg (\S+)")
_INTER = re.compile(r"\binter (\d+)(ms|s)\b")
_FALL = re.compile(r"\bfall (\d+)\b")


def _app_of(backend: str) -> str:
    return backend.rsplit("_", 1)[0]  # ours: <app>_<port index>; marathon-lb's: <app>_<service port>


def routing_of(config: str) -> dict:
    """What an haproxy.cfg routes (either generator's output), in `expected_routing`'s shape."""
    sections: list[tuple[str, list[str]]] = []
    for line in config.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            sections.append((line, []))
        elif sections and line.strip():
            sections[-1][1].append(line.strip())
    out: dict = {"backends": {}, "ports": {}, "http": {}, "https": {}}
    for head, body in sections:
        kind, _, name = head.partition(" ")
        if kind == "frontend":
            binds = [b for b in body if b.startswith("bind ")]
            tls = any(" ssl " in b for b in binds)
            port = int(binds[0].split()[1].rsplit(":", 1)[1])
            acls = {b.split()[1]: b.split(None, 2)[2] for b in body if b.startswith("acl ")}
            rules = [b for b in body if b.startswith(("use_backend", "default_backend"))]
            if any("x-marathon-app-id" in r or "x-marathon-app-id" in " ".join(acls.values()) for r in rules):
                continue
            hosted = [r for r in rules if " if " in r]
            if not hosted:
                if rules and not name.startswith(("stats", "http_in", "https_in", "marathon_http")):
                    out["ports"][port] = _app_of(rules[0].split()[1])
                continue
            for rule in hosted:
                backend, cond = rule.split()[1], rule.split(" if ", 1)[1]
                text = " ".join(acls.get(tok, tok) for tok in cond.split())
                path = _PATH.search(text)
                for host in _HOST.findall(text):
                    out["https" if tls else "http"][(host, path.group(1) if path else None)] = _app_of(backend)
        elif kind == "backend":
            servers = frozenset(b.split()[2] for b in body if b.startswith("server ") and " disabled" not in b
                                and not b.startswith("server-template"))
            httpchk = next((b.split()[-1] for b in body if b.startswith("option") and "httpchk" in b), None)
            checked = next((b for b in body if b.startswith(("default-server", "server ")) and " check" in b), None)
            check = None
            if checked is not None:
                m = _INTER.search(checked)
                inter = int(m.group(1)) * (1 if m.group(2) == "ms" else 1000)
                check = (httpchk, inter, int(_FALL.search(checked).group(1)))
            out["backends"][_app_of(name)] = (servers, check)
    return out


def test_routes_what_marathon_lb_routes_with_the_same_checks(tmp_path):
    binary = require_binary("haproxy")
    require_binary("openssl")
    apps = make_apps(1000, 3, style="marathon-lb")["apps"]
    apps_file = tmp_path / "apps.json"
    apps_file.write_text(json.dumps({"apps": apps}))
    key, crt, pem = tmp_path / "k", tmp_path / "c", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(crt), "-days", "1", "-subj", "/CN=*.example.com"], check=True, capture_output=True, timeout=60)
    pem.write_bytes(crt.read_bytes() + key.read_bytes())

    expected = expected_routing(apps, "external")
    assert len(expected["backends"]) == 1000 and len(expected["https"]) == 900  # the state is what it claims
    assert sum(1 for _, c in expected["backends"].values() if c and c[0] == "/health") == 900

    # marathon-lb's own generator on the same state agrees with the documented rules
    mlb_cfg = tmp_path / "marathon-lb.cfg"
    mlb = subprocess.run([sys.executable, str(ROOT / "bench" / "mlb_generate.py"), str(apps_file), str(mlb_cfg)],
                         capture_output=True, text=True, timeout=300)
    assert mlb.returncode == 0, mlb.stderr
    assert routing_of(mlb_cfg.read_text()) == expected

    out = tmp_path / "haproxy.cfg"
    proc = subprocess.run([*DEPLOYKIT, "lb", "render", "--apps-json", str(apps_file), "--group", "external",
                           "--ssl-certs", str(pem), "--strict", "--out", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    ours = routing_of(out.read_text())
    for part in ("backends", "ports", "http", "https"):
        missing = {k: v for k, v in expected[part].items() if ours[part].get(k) != v}
        assert not missing, f"{part}: {len(missing)} differ, e.g. {list(missing.items())[:2]}"
        assert set(ours[part]) == set(expected[part]), part
    check = subprocess.run([binary, "-c", "-q", "-f", str(out)], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
