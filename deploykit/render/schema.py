"""The official Marathon AppDefinition schema, loaded once and only when first needed."""

from __future__ import annotations

import functools
import json
import math
from typing import Any

from deploykit.errors import InternalError
from deploykit.resources import schema_path

SCHEMA_FILE = "marathon/AppDefinition.json"


@functools.cache
def app_schema() -> dict[str, Any]:
    return json.loads(schema_path(SCHEMA_FILE).read_text())


@functools.cache
def _validator() -> Any:
    from jsonschema import Draft4Validator

    # The file's "$schema" names no draft; Marathon's own tests used draft-4, and all $refs are local.
    return Draft4Validator(app_schema())


def app_properties() -> list[str]:
    """Top-level field names of a Marathon app (for did-you-mean on `marathon:` keys)."""
    return sorted(app_schema()["properties"])


def non_finite_paths(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Paths of NaN/infinity inside a JSON-like value: JSON has neither, and the schema's range checks let them by."""
    if isinstance(value, float) and not math.isfinite(value):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite_paths(v, (*path, k))]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in non_finite_paths(v, (*path, i))]
    return []


NOT_FINITE = "is not a finite number (JSON has no NaN or infinity)"


def field_errors(name: str, value: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """Schema violations of one top-level field's value (used to check `marathon:` escape-hatch keys)."""
    from jsonschema import Draft4Validator

    schema = app_schema()
    sub = {**schema["properties"][name], "definitions": schema.get("definitions", {})}
    errors = Draft4Validator(sub).iter_errors(value)
    # `required` is skipped: escape-hatch mappings are merged into what deploykit renders, which fills them.
    found = [(tuple(e.absolute_path), e.message[:200]) for e in errors if e.validator != "required"]
    return found + [(p, NOT_FINITE) for p in non_finite_paths(value)]


def schema_errors(app_json: dict[str, Any]) -> list[str]:
    """'path: message' per violation; [] means valid."""
    errors = sorted(_validator().iter_errors(app_json), key=lambda e: list(map(str, e.absolute_path)))
    found = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]
    return found + [f"{'/'.join(map(str, p)) or '<root>'}: {NOT_FINITE}" for p in non_finite_paths(app_json)]


def validate_against_schema(app_json: dict[str, Any]) -> None:
    """Raise InternalError if the rendered JSON violates the schema: that is a deploykit bug, not user error."""
    errors = schema_errors(app_json)
    if errors:
        raise InternalError("rendered Marathon JSON fails the AppDefinition schema: " + "; ".join(errors[:10]))
