"""Turn pydantic validation errors into deploykit Problems with paths, lines and hints."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from deploykit.errors import Problem
from deploykit.hints import did_you_mean
from deploykit.spec.yamlsrc import PathKey, SourceDoc, format_path

_TYPE_MESSAGES = {
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "dict_type": "must be a mapping (key: value)",
    "model_type": "must be a mapping (key: value)",
    "model_attributes_type": "must be a mapping (key: value)",
    "list_type": "must be a list",
    "missing": "is required",
}


def from_pydantic(
    exc: PydanticValidationError,
    model: type[BaseModel],
    file: str | None,
    source: SourceDoc | None = None,
    prefix: PathKey = (),
    line_for: typing.Callable[[PathKey], int | None] | None = None,
) -> list[Problem]:
    """One Problem per pydantic error. `prefix` is prepended to paths (e.g. for env files)."""
    problems = []
    for err in exc.errors(include_url=False):
        loc: PathKey = tuple(err["loc"])
        ctx = err.get("ctx") or {}
        kind = err["type"]
        hint = None
        if "message" in ctx:
            message, hint = ctx["message"], ctx.get("hint")
        elif kind == "extra_forbidden":
            message = "unknown key"
            hint = did_you_mean(str(loc[-1]), allowed_keys(model, loc[:-1]), fallback="known keys")
        elif kind in _TYPE_MESSAGES:
            message = _TYPE_MESSAGES[kind]
            hint = f"add {loc[-1]}:" if kind == "missing" else f"got {_short(err.get('input'))}"
            keys = allowed_keys(model, loc) if kind in ("model_type", "model_attributes_type") else []
            if keys:
                hint += f"; keys: {', '.join(keys)}"
        else:
            message = err["msg"]
        path = (*prefix, *loc)
        line = line_for(path) if line_for is not None else (source.line_of(path) if source else None)
        problems.append(Problem(file, format_path(path), message, hint, line))
    return problems


def allowed_keys(model: type[BaseModel], loc: PathKey) -> list[str]:
    """Field names of the model found at `loc` inside `model` (for did-you-mean)."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if not isinstance(part, str) or part not in current.model_fields:
                return []
            current = current.model_fields[part].annotation
            continue
        origin = typing.get_origin(current)
        args = typing.get_args(current)
        if origin in (list, tuple) and args:
            current = args[0]
        elif origin is dict and len(args) == 2:
            current = args[1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """Strip Optional[...] and Annotated[...]."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return f"{type(value).__name__} {value!r}"[:60]
