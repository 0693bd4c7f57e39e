"""Kept so older imports keep working: the one duration parser is deploykit.durations."""

from __future__ import annotations

from deploykit.durations import HINT, UNITS, DurationError, format_duration, parse_duration

__all__ = ["HINT", "UNITS", "DurationError", "format_duration", "parse_duration"]
