"""Annotated field types whose errors carry our own message and hint.

Each raises PydanticCustomError with context {"message", "hint"}; deploykit.spec.problems
turns that into a Problem. Keeping messages here means pydantic's wording never leaks
to users and every range/enum error names the allowed values.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from deploykit.durations import DurationError, format_duration, parse_duration
from deploykit.hints import did_you_mean


def fail(message: str, hint: str | None = None) -> PydanticCustomError:
    return PydanticCustomError("deploykit", "{message}", {"message": message, "hint": hint})


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _non_finite(value: Any) -> bool:
    """YAML's .nan/.inf: comparisons with NaN are all False, so a range check alone lets it through."""
    return isinstance(value, float) and not math.isfinite(value)


NOT_FINITE_HINT = "JSON (and so Marathon) has no NaN or infinity: give a number"


def duration(lo: float, hi: float, *, whole_seconds: bool = False) -> Any:
    """A duration in [lo, hi] seconds; `whole_seconds` for Marathon fields that count in seconds."""

    def check(value: Any) -> float:
        if _non_finite(value):
            raise fail(f"{value!r} is not a finite duration", "e.g. 30s, 5m")
        try:
            seconds = parse_duration(value)
        except DurationError as exc:
            raise fail(str(exc), exc.hint) from None
        allowed = f"allowed: {format_duration(lo) if lo else '0s'} to {format_duration(hi)}"
        if not lo <= seconds <= hi:
            raise fail(f"{value!r} is out of range", allowed)
        if whole_seconds and seconds != int(seconds):
            raise fail(f"{value!r} is not a whole number of seconds", "Marathon counts these in seconds, e.g. 2s")
        return float(seconds)

    return Annotated[float, BeforeValidator(check)]


def number(lo: float, hi: float, *, integer: bool = False, unit: str = "", lo_open: bool = False) -> Any:
    """An int/float in range; the hint always states the range (and the unit)."""
    suffix = f" {unit}" if unit else ""
    bound = f"more than {_fmt(lo)}" if lo_open else _fmt(lo)
    allowed = f"allowed: {bound} to {_fmt(hi)}{suffix}"

    def check(value: Any) -> Any:
        if not _is_number(value):
            kind = "a whole number" if integer else "a number"
            raise fail(f"must be {kind}, not {_describe(value)}", allowed)
        if _non_finite(value):
            raise fail(f"{value!r} is not a finite number", f"{NOT_FINITE_HINT}; {allowed}")
        if integer and value != int(value):
            raise fail(f"{value!r} must be a whole number", allowed)
        too_low = value <= lo if lo_open else value < lo
        if too_low or value > hi:
            raise fail(f"{value!r} is out of range", allowed)
        return int(value) if integer else float(value)

    return Annotated[int if integer else float, BeforeValidator(check)]


def choice(*options: str) -> Any:
    """One of `options`; a near miss gets a did-you-mean."""

    def check(value: Any) -> str:
        if value not in options:
            shown = value if isinstance(value, str) else _describe(value)
            raise fail(
                f"{shown!r} is not one of {', '.join(options)}", did_you_mean(str(value), options, fallback="allowed")
            )
        return value

    return Annotated[str, BeforeValidator(check)]


def pattern(regex: str, what: str, hint: str) -> Any:
    compiled = re.compile(regex)

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise fail(f"{what} must be a string, not {_describe(value)}", hint)
        if not compiled.match(value):
            raise fail(f"{value!r} is not a valid {what}", hint)
        return value

    return Annotated[str, BeforeValidator(check)]


def scalar_string(value: Any) -> str:
    """Env/config values: strings and numbers; YAML booleans must be quoted (yes/on/true all mean True)."""
    if isinstance(value, bool):
        raise fail("is a YAML boolean, not a string (yes/no/on/off/true/false)", 'quote the value, e.g. "true"')
    if _non_finite(value):
        spelt = ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
        raise fail(f"{spelt} is YAML's NaN/infinity, not a string", f'quote it if you mean the text: "{spelt}"')
    if _is_number(value):
        return str(value)
    if not isinstance(value, str):
        raise fail(f"must be a string, not {_describe(value)}")
    return value


ScalarStr = Annotated[str, BeforeValidator(scalar_string)]


def _fmt(x: float) -> str:
    return str(int(x)) if x == int(x) else str(x)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    return f"{type(value).__name__} {value!r}"[:80]
