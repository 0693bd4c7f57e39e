"""`Record`: typing.NamedTuple's class syntax, without importing typing at run time.

`deploykit lb render` is measured against json.load of its input (issue 8): at 1,000 apps the
whole command has about 40 ms beyond the parse, and `import typing` (with contextlib) plus
typing.NamedTuple's per-class work cost 3-4 ms of it. The value types that command touches
(deploykit.errors.Problem, deploykit.lb.labels, deploykit.lb.model, RenderResult) subclass
Record instead: the same immutable, hashable, by-value tuples (collections.namedtuple underneath,
fields from the class annotations, defaults from class attributes, methods and properties kept).
Type checkers are told it is typing.NamedTuple, so they check fields as usual.
"""

from __future__ import annotations

import collections

TYPE_CHECKING = False  # typing's own constant would import typing
if TYPE_CHECKING:
    from typing import NamedTuple as Record
else:

    class _RecordMeta(type):
        """Turns `class P(Record): x: int; y: int = 0` into a namedtuple subclass with __slots__ = ()."""

        def __new__(mcls, name: str, bases: tuple, namespace: dict):
            if not bases:  # Record itself
                return super().__new__(mcls, name, bases, namespace)
            fields = list(namespace.get("__annotations__", {}))
            defaults = [namespace[f] for f in fields if f in namespace]
            if any(f not in namespace for f in fields[len(fields) - len(defaults):]):
                raise TypeError(f"{name}: a field without a default follows one with a default")
            base = collections.namedtuple(name, fields, defaults=defaults, module=namespace.get("__module__"))
            body = {k: v for k, v in namespace.items() if k not in fields}
            body["__slots__"] = ()
            return type(name, (base,), body)

    class Record(metaclass=_RecordMeta):
        """Base class: subclass it like typing.NamedTuple."""
