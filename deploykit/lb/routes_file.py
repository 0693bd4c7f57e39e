"""The routing `lb run` installed, saved next to its config (`haproxy.cfg.routes.json`).

Which app holds each service port and host+path (lb.claims): after a restart the daemon starts from it,
so an app that held a route keeps it against a newcomer even before any model exists.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from deploykit.atomicfile import atomic_write


def path_for(config_path: Path) -> Path:
    return config_path.with_name(config_path.name + ".routes.json")


def save(path: Path, claims: Mapping[tuple, str]) -> None:
    """Atomically; OSError when the folder cannot be written."""
    doc = sorted([*key, app_id] for key, app_id in claims.items())
    atomic_write(path, json.dumps(doc, separators=(",", ":")) + "\n")


def load(path: Path) -> dict[tuple, str] | None:
    """None when nothing was saved; ValueError (with the reason) when the file cannot be used."""
    try:
        doc = json.loads(path.read_text())
        return {tuple(row[:-1]): row[-1] for row in doc}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, IndexError) as exc:
        raise ValueError(str(exc)) from None
