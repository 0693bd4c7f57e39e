"""Durations written as `30s`, `5m`, `1h`, `250ms` or `1m30s`, parsed to float seconds."""

from __future__ import annotations

import re

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$")
HINT = "write a number with a unit: 500ms, 30s, 5m, 1h"


class DurationError(ValueError):
    """Carries a message and a hint; never contains more than the offending text."""

    def __init__(self, message: str, hint: str = HINT):
        super().__init__(message)
        self.hint = hint


def parse_duration(value: object) -> float:
    """Seconds as float. Bare numbers are refused: `30` could mean seconds or milliseconds."""
    if isinstance(value, bool) or value is None:
        raise DurationError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        raise DurationError(f"{value!r} has no unit", f"did you mean '{value}s'? {HINT}")
    if not isinstance(value, str):
        raise DurationError(f"a duration must be a string like '30s', not a {type(value).__name__}")
    text = value.strip().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        raise DurationError(f"{value!r} has no unit", f"did you mean '{text}s'? {HINT}")
    if not _WHOLE.match(text):
        raise DurationError(f"{value!r} is not a duration")
    return sum(float(num) * UNITS[unit] for num, unit in _PART.findall(text))


def format_duration(seconds: float) -> str:
    """Shortest exact spelling, for messages (e.g. 90 -> '90s', 0.5 -> '500ms')."""
    if seconds and seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds % 3600 == 0 and seconds:
        return f"{int(seconds // 3600)}h"
    if seconds % 60 == 0 and seconds:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"
