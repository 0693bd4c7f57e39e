"""Durations as people write them for Consul, Marathon and app.yaml ("1m30s", "100ms", "1h"), in float seconds.

One grammar for the whole project, Go's time.ParseDuration: one or more decimal numbers, each with a unit
(ns, us/µs, ms, s, m, h). Pure: no I/O, no imports from the rest of deploykit, so every layer may use it.

- parse_go_duration: exactly Go's rules (sign allowed, bare "0"); what the Consul stand-in accepts.
- parse_duration: what users type into app.yaml and CLI options; refuses bare numbers (seconds or
  milliseconds?) and signs, and explains why in a hint.
- parse_seconds: command-line flags where a bare number has always meant seconds ("10" or "10s").
"""

from __future__ import annotations

import re

UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
HINT = "write a number with a unit: 500ms, 30s, 5m, 1h"


class DurationError(ValueError):
    """Carries a message and a hint; never contains more than the offending text."""

    def __init__(self, message: str, hint: str = HINT):
        super().__init__(message)
        self.hint = hint


def _sum_parts(text: str) -> float | None:
    """Seconds in an unsigned run of number+unit parts, or None when `text` is not exactly that."""
    total, pos = 0.0, 0
    for m in _PART.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * UNITS[m.group(2)]
        pos = m.end()
    return total if text and pos == len(text) else None


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string; DurationError (a ValueError) when it is not one."""
    text = text.strip()
    if text in ("0", "+0", "-0"):
        return 0.0
    sign = 1.0
    if text and text[0] in "+-":
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if not text:
        raise DurationError("empty duration")
    seconds = _sum_parts(text)
    if seconds is None:
        raise DurationError(f"invalid duration {text!r}")
    return sign * seconds


def parse_seconds(text: str) -> float:
    """A Go duration, or a bare number meaning seconds (command-line flags such as `--event-heartbeat 10`)."""
    if _NUMBER.fullmatch(text.strip()):
        return float(text)
    return parse_go_duration(text)


def parse_duration(value: object) -> float:
    """Seconds as float, for user input. Bare numbers are refused: `30` could mean seconds or milliseconds."""
    if isinstance(value, bool) or value is None:
        raise DurationError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        raise DurationError(f"{value!r} has no unit", f"did you mean '{value}s'? {HINT}")
    if not isinstance(value, str):
        raise DurationError(f"a duration must be a string like '30s', not a {type(value).__name__}")
    text = value.strip().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        raise DurationError(f"{value!r} has no unit", f"did you mean '{text}s'? {HINT}")
    seconds = _sum_parts(text)
    if seconds is None:
        raise DurationError(f"{value!r} is not a duration")
    return seconds


def format_duration(seconds: float) -> str:
    """Shortest exact spelling in one unit, for messages (e.g. 90 -> '90s', 0.5 -> '500ms', 7200 -> '2h')."""
    if seconds and seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds % 3600 == 0 and seconds:
        return f"{int(seconds // 3600)}h"
    if seconds % 60 == 0 and seconds:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


def format_go_duration(seconds: float) -> str:
    """Go's own spelling, as Consul prints session TTLs ("30s", "1m30s", "1h0m0s", "1.5s")."""
    if seconds == int(seconds):
        h, rem = divmod(int(seconds), 3600)
        m, sec = divmod(rem, 60)
        return (f"{h}h" if h else "") + (f"{m}m" if m or h else "") + f"{sec}s"
    return f"{seconds:g}s"
