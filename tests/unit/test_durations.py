"""The one duration grammar (deploykit.durations) and its three entry points."""

from __future__ import annotations

import pytest

from deploykit.durations import DurationError, parse_duration, parse_go_duration, parse_seconds


@pytest.mark.parametrize(("text", "seconds"), [("1m30s", 90), ("100ms", 0.1), ("1h", 3600), ("2h45m", 9900),
                                               ("1.5h", 5400), ("300us", 0.0003), ("-1m", -60)])
def test_go_grammar(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["1m 30s", "5 m", "1d", "m5", "--5s"])
def test_go_grammar_rejects(text: str) -> None:
    with pytest.raises(DurationError):
        parse_go_duration(text)


def test_seconds_flag_takes_bare_numbers_and_go_durations() -> None:
    assert [parse_seconds(t) for t in ("10", "0.25", "1m30s", "-1")] == [10.0, 0.25, 90.0, -1.0]
    with pytest.raises(ValueError):
        parse_seconds("soon")


def test_user_input_refuses_signs_and_bare_numbers() -> None:
    assert parse_duration("1m 30s") == 90.0
    for bad in ("-5s", "+5s", "30"):
        with pytest.raises(DurationError):
            parse_duration(bad)
