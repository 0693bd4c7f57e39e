"""Did-you-mean hints shared by every validator (app.yaml, environment files, lb settings, jenkins options)."""

from __future__ import annotations

from collections.abc import Iterable


def did_you_mean(
    word: str, choices: Iterable[str], *, fallback: str | None = "known", cutoff: float = 0.6
) -> str | None:
    """'did you mean "interval"?' when something is close, else the list of choices (None with fallback=None)."""
    import difflib  # only when there is a mistake to explain; keeps the happy path's imports short

    options = sorted(str(c) for c in choices)
    close = difflib.get_close_matches(str(word), options, n=1, cutoff=cutoff)
    if not close:
        lowered = {o.lower(): o for o in options}
        if str(word).lower() in lowered:
            close = [lowered[str(word).lower()]]
    if close:
        return f"did you mean {close[0]!r}?"
    if not options or fallback is None:
        return None
    return f"{fallback}: {', '.join(options)}"
