"""The devcluster against Marathon's official AppDefinition schema (deploykit/schemas/marathon/).

What we return validates against the schema, and what the schema rejects we reject too, except
unknown fields: the 1.5+ server reads bodies with RAML-generated readers that ignore them.
"""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft4Validator

from deploykit.devcluster.appdef import parse_app
from deploykit.devcluster.errors import ApiError
from deploykit.resources import schema_path

VALIDATOR = Draft4Validator(json.loads(schema_path("marathon/AppDefinition.json").read_text()))

GOOD = [
    {"id": "/a", "cmd": "serve"},
    {"id": "/shop/cart", "args": ["/bin/serve", "--port", "8080"], "instances": 3, "env": {"A": "1"},
     "labels": {"HAPROXY_GROUP": "external"}, "portDefinitions": [{"port": 10001, "name": "http"}],
     "healthChecks": [{"path": "/health", "portIndex": 0}, {"protocol": "TCP"}],
     "readinessChecks": [{"path": "/ready"}], "fetch": [{"uri": "file:///tmp/x.tgz"}],
     "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.2}},
    {"id": "/d", "container": {"type": "DOCKER", "docker": {"image": "nginx"},
                               "portMappings": [{"containerPort": 80, "name": "http"}]},
     "networks": [{"mode": "container/bridge"}]},
]

BAD = [
    {"id": "/a", "cmd": "x", "upgradeStrategy": {"minimumHealthCapacity": 2}},
    {"id": "/a", "cmd": "x", "healthChecks": [{"protocol": "GRPC"}]},
    {"id": "/a", "cmd": "x", "args": ["y"]},
    {"id": "/Prod/App", "cmd": "x"},
    {"cmd": "x"},
    {"id": "/a", "cmd": "x", "env": {"A": 1}},
]


@pytest.mark.parametrize("doc", GOOD)
def test_what_we_store_and_return_is_schema_valid(doc):
    app = parse_app(doc)
    app["version"] = "2026-01-01T00:00:00.000Z"
    errors = [("/".join(map(str, e.absolute_path)), e.message) for e in VALIDATOR.iter_errors(app)]
    assert errors == []


@pytest.mark.parametrize("doc", BAD)
def test_what_the_schema_rejects_we_reject_with_422(doc):
    assert list(VALIDATOR.iter_errors(doc))
    with pytest.raises(ApiError) as exc:
        parse_app(doc)
    assert exc.value.status == 422 and exc.value.body["details"]


def test_unknown_fields_are_ignored_like_the_raml_readers():
    doc = {"id": "/a", "cmd": "x", "notAField": 1}
    assert list(VALIDATOR.iter_errors(doc))
    assert "notAField" not in parse_app(doc)
