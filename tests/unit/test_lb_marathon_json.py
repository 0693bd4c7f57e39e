"""lb.marathon_json: the typed decode gives the model exactly what json.loads gives it."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path

import msgspec
import pytest

from deploykit.lb import marathon_json
from deploykit.lb.marathon_json import NotAppsDocument, decode_apps
from deploykit.lb.model import build_model
from deploykit.lb.render import render_config
from deploykit.lb.settings import LbSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from gen_apps import make_apps


def _keys() -> set[str]:
    """Every field the structs of marathon_json keep, at any depth."""
    keys: set[str] = set()
    for obj in vars(marathon_json).values():
        if isinstance(obj, type) and issubclass(obj, msgspec.Struct):
            keys |= set(obj.__struct_fields__)
    return keys


def test_every_key_the_model_reads_is_decoded() -> None:
    """A key lb.model (or lb.claims) reads but the decoder drops would silently change routing."""
    lb = Path(marathon_json.__file__).parent
    read = set()
    for name in ("model.py", "claims.py"):
        read |= set(re.findall(r'\.get\("([A-Za-z]+)"', (lb / name).read_text()))
    read -= {"apps"}
    assert read <= _keys(), sorted(read - _keys())


def test_same_model_and_config_as_json_loads() -> None:
    doc = make_apps(60, 3)
    doc["apps"][1]["readinessCheckResults"] = [{"taskId": doc["apps"][1]["tasks"][0]["id"], "ready": False}]
    doc["apps"][2]["tasks"][1]["healthCheckResults"][0]["alive"] = False
    doc["apps"][3]["tasks"][0]["state"] = "TASK_KILLING"
    doc["apps"][4]["container"] = None
    doc["apps"][4]["portDefinitions"] = [{"port": 12000, "protocol": "tcp"}]
    text = json.dumps(doc).encode()
    settings = LbSettings(groups=("external",))
    slow, fast = build_model(json.loads(text)["apps"], settings), build_model(decode_apps(text), settings)
    assert render_config(fast) == render_config(slow)
    assert fast.sources == slow.sources and fast.rejected == slow.rejected


def test_malformed_app_falls_back_to_a_full_decode() -> None:
    """A value of the wrong shape rejects that app only, with the message json.loads input gave."""
    doc = make_apps(3, 2)
    doc["apps"][1]["tasks"] = "not a list"
    text = json.dumps(doc).encode()
    settings = LbSettings()
    slow, fast = build_model(json.loads(text)["apps"], settings), build_model(decode_apps(text), settings)
    assert fast.rejected == slow.rejected and len(fast.rejected) == 1 and list(fast.backends) == list(slow.backends)
    assert decode_apps(b'[{"id": "/a", "tasks": "x"}]') == [{"id": "/a", "tasks": "x"}]  # plain dicts


def test_decoded_apps_read_like_dicts() -> None:
    """lb.model reads the structs exactly as the dicts of GET /v2/apps/{id}: get, [], `in`, a Mapping."""
    (app,) = decode_apps(b'[{"id": "/a", "env": {"X": "1"}, "tasks": [{"id": "t", "ports": [1]}]}]')
    assert isinstance(app, Mapping) and app.get("id") == app["id"] == "/a" and app.get("env", 0) == 0
    assert list(app["tasks"][0].get("ports")) == [1] and app.get("container") is None and "tasks" in app
    with pytest.raises(KeyError):
        app["env"]


@pytest.mark.parametrize("text", [b"[1, 2]", b'{"apps": 3}', b"{}", b'"apps"'])
def test_not_a_list_of_apps(text: bytes) -> None:
    with pytest.raises(NotAppsDocument):
        decode_apps(text)


def test_not_json() -> None:
    with pytest.raises(ValueError):
        decode_apps(b"{nope")
