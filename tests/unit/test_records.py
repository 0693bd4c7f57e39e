"""deploykit.records.Record behaves like typing.NamedTuple for the way deploykit uses it."""

from __future__ import annotations

import pickle
from typing import NamedTuple

import pytest

from deploykit.errors import Problem
from deploykit.records import Record


class Point(Record):
    """A point."""

    x: int
    y: int = 0
    label: str | None = None

    @property
    def norm1(self) -> int:
        return abs(self.x) + abs(self.y)

    def moved(self, dx: int) -> Point:
        return self._replace(x=self.x + dx)


class TypedPoint(NamedTuple):
    x: int
    y: int = 0
    label: str | None = None


def test_fields_defaults_methods_and_docstring() -> None:
    p = Point(1, label="a")
    assert (p.x, p.y, p.label, p.norm1) == (1, 0, "a", 1)
    assert Point._fields == TypedPoint._fields == ("x", "y", "label")
    assert Point._field_defaults == TypedPoint._field_defaults == {"y": 0, "label": None}
    assert p.moved(2) == Point(3, 0, "a") and p._asdict() == {"x": 1, "y": 0, "label": "a"}
    assert repr(p) == "Point(x=1, y=0, label='a')" and Point.__doc__ == "A point."
    assert isinstance(p, tuple) and Point.__module__ == __name__


def test_immutable_hashable_slotted_and_picklable() -> None:
    p = Point(1, 2)
    with pytest.raises(AttributeError):
        p.x = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        p.extra = 1  # type: ignore[attr-defined]
    assert hash(p) == hash(Point(1, 2)) and {p, Point(1, 2)} == {p}
    assert pickle.loads(pickle.dumps(p)) == p


def test_missing_field_and_bad_default_order() -> None:
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="without a default follows"):
        class Bad(Record):
            a: int = 1
            b: int


def test_problem_is_a_record() -> None:
    p = Problem("app.yaml", "health.path", "must start with /", hint="did you mean '/health'?")
    assert p.to_dict() == {"file": "app.yaml", "path": "health.path", "message": "must start with /",
                           "hint": "did you mean '/health'?", "line": None}
    assert str(p) == "app.yaml: health.path: must start with / (did you mean '/health'?)"
