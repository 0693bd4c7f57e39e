"""Fuzzing the load balancer (issue 17): Marathon apps with arbitrary label maps through lb.model + lb.render.

Every rendered config passes `haproxy -c` (one call per example, many apps and backends in it), and
no label text ever reaches the config unless the app's labels validated and that label is a
routing label: each label value carries a marker, and a marker found in the config proves the
opposite otherwise. Bounded per run; seeds in tests/harness/fuzz.py.
"""

from __future__ import annotations

import string
import subprocess

import pytest
from hypothesis import strategies as st

from deploykit.lb.labels import LabelError, _classify, parse_labels
from deploykit.lb.model import LbSettings, build_model
from deploykit.lb.render import render_config
from tests.harness.common import require_binary
from tests.harness.fuzz import CONTROL, NASTY_STRINGS, SEEDS, fuzz_examples, run_fuzz, seed_id, text

pytestmark = pytest.mark.integration

EXAMPLES = fuzz_examples(30)  # per seed: one haproxy -c per example, up to 30 apps in each

KEYS = ["HAPROXY_GROUP"] + [f"HAPROXY_{n}_{k}" for n in (0, 1) for k in
                            ("VHOST", "PATH", "MODE", "BALANCE", "PORT", "STICKY", "REDIRECT_TO_HTTPS", "ENABLED",
                             "FRONTEND_HEAD", "BACKEND_HEAD", "HTTP_BACKEND_PROXYPASS_PATH", "BIND_OPTIONS")] + [
    f"DEPLOYKIT_{n}_CHECK_{k}" for n in (0, 1) for k in ("PATH", "INTERVAL_MS", "RISE", "FALL", "COMMAND")] + [
    "HAPROXY_00_VHOST", "HAPROXY_999_PORT", "HAPROXY_0_vhost", "DEPLOYKIT_CONFIG_HASH", "OTHER", ""]
GOOD = {"GROUP": ["external", "internal", "external,internal"], "VHOST": ["{M}.example.com", "{M}.test,a.test"],
        "PATH": ["/{M}", "/{M}/x"], "MODE": ["http", "tcp", "HTTP"], "BALANCE": ["roundrobin", "leastconn"],
        "PORT": ["10050", "0", "65536"], "STICKY": ["true", "no"], "REDIRECT_TO_HTTPS": ["1", "off"],
        "ENABLED": ["true", "false"], "INTERVAL_MS": ["1000", "99"], "RISE": ["2"], "FALL": ["3"]}
HOSTILE_PIECES = NASTY_STRINGS + list(CONTROL) + ["\n  bind :1", "\nbackend evil", " }", "%[src]", "\\n",
                                                  "{M}\n    http-request deny", "{M} if TRUE"]


def _value_for(key: str):
    setting = key.rsplit("_", 1)[-1] if key != "HAPROXY_GROUP" else "GROUP"
    good = GOOD.get(setting, ["{M}"])
    hostile = st.builds(lambda a, b: a + "{M}" + b, st.sampled_from(HOSTILE_PIECES) | text,
                        st.sampled_from(HOSTILE_PIECES) | text)
    bad = st.one_of(hostile, st.sampled_from(good).map(lambda g: g + "\n"), text)
    return st.integers(0, 9).flatmap(lambda n: st.sampled_from(good) if n < 8 else bad)  # mostly valid: routed


labels_st = st.lists(st.sampled_from(KEYS), max_size=6, unique=True).flatmap(
    lambda keys: st.fixed_dictionaries({"HAPROXY_GROUP": _value_for("HAPROXY_GROUP"),
                                        **{k: _value_for(k) for k in keys if k != "HAPROXY_GROUP"}}))
ODD_IDS = ["/fz/x y", "/fz/a\nbackend b", "/fz/#x", "/fz/" + "a" * 300, "fz", "/", "/fz/UPPER", "/fz/a..b"]
app_id_st = st.integers(0, 9).flatmap(
    lambda n: st.sampled_from(["/fz/app", "/fz/grp/app"]) if n < 8 else st.sampled_from(ODD_IDS))
task_st = st.fixed_dictionaries({
    "host": st.sampled_from(["127.0.0.1", "10.0.0.2", "agent-1.example", "::1", "bad host", "a\nb"]),
    "ports": st.lists(st.integers(0, 70000), max_size=2),
    "state": st.sampled_from(["TASK_RUNNING", "TASK_STAGING", "TASK_KILLING"]),
})
app_st = st.fixed_dictionaries({
    "id": app_id_st,
    "labels": labels_st,
    "portDefinitions": st.lists(st.fixed_dictionaries({"port": st.integers(10000, 10040)}), min_size=1, max_size=2),
    "instances": st.integers(0, 3),
    "tasks": st.lists(task_st, max_size=2),
})
apps_st = st.lists(app_st, min_size=1, max_size=30)


def _markers(apps: list[dict]) -> list[tuple[int, str, str]]:
    """Give every label value its own marker (lowercase letters: valid inside host names and paths)."""
    out = []
    for i, app in enumerate(apps):
        app["id"] = f"{app['id']}{i}" if app["id"].startswith("/fz/") else app["id"]
        for j, key in enumerate(sorted(app["labels"])):
            marker = "mk" + "".join(string.ascii_lowercase[int(d)] for d in f"{i:02d}{j:02d}") + "q"
            app["labels"][key] = app["labels"][key].replace("{M}", marker)
            out.append((i, key, marker))
        for t, task in enumerate(app["tasks"]):
            task["id"] = f"{app['id'].strip('/').replace('/', '_')}.t{t}"
    return out


def _routing_label(key: str) -> bool:
    kind = _classify(key) if key else None
    return kind is not None and kind[0] in ("group", "port", "check")


@pytest.mark.parametrize("fuzz_seed", SEEDS, ids=seed_id)
def test_any_labels_render_a_config_haproxy_accepts_and_leak_no_label_text(fuzz_seed, tmp_path):
    binary = require_binary("haproxy")
    settings = LbSettings(config=str(tmp_path / "haproxy.cfg"), master_socket=str(tmp_path / "master.sock"),
                          stats_socket=str(tmp_path / "admin.sock"), state_file=str(tmp_path / "state"),
                          http_port=18080)
    cfg_path = tmp_path / "haproxy.cfg"
    seen = {"examples": 0, "routed": 0, "markers_in_config": 0}

    def check(apps: list[dict]) -> None:
        seen["examples"] += 1
        markers = _markers(apps)
        model = build_model(apps, settings)
        config = render_config(model)
        cfg_path.write_text(config)
        done = subprocess.run([binary, "-c", "-q", "-f", str(cfg_path)], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"haproxy -c refused the config:\n{done.stdout}{done.stderr}\n{config}"
        rejected = {r.app_id for r in model.rejected}
        seen["routed"] += len(model.backends)
        for i, key, marker in markers:
            if marker not in config:
                continue
            seen["markers_in_config"] += 1
            app = apps[i]
            assert app["id"] not in rejected, (marker, key, app)
            assert _routing_label(key), f"non-routing label {key!r} reached the config: {app['labels'][key]!r}"
            try:
                parse_labels(app["labels"])
            except LabelError as exc:
                raise AssertionError(f"{key}={app['labels'][key]!r} reached the config but is invalid: {exc}") from None
            for line in config.splitlines():
                if marker in line:
                    assert not any(c in line for c in CONTROL), repr(line)

    run_fuzz(fuzz_seed, apps_st, check, EXAMPLES)
    print(f"lb fuzz seed {fuzz_seed}: {seen}")
    assert seen["routed"] > 0 and seen["markers_in_config"] > 0, f"the fuzzer never reached the config: {seen}"


def test_the_fuzzer_reaches_the_config(tmp_path):
    """A fuzzer whose values never validate proves nothing: good values must route and show up."""
    apps = [{"id": "/fz/ok", "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "{M}.example.com"},
             "portDefinitions": [{"port": 10001}], "instances": 1,
             "tasks": [{"host": "127.0.0.1", "ports": [31001], "state": "TASK_RUNNING"}]}]
    markers = {key: marker for _, key, marker in _markers(apps)}
    config = render_config(build_model(apps, LbSettings()))
    assert markers["HAPROXY_0_VHOST"] in config


