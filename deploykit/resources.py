"""Locate data shipped with deploykit: templates/, haproxy/, chef_attrs/ and schemas.

templates/, haproxy/ and chef_attrs/ live at the top of the source tree (users copy and
override them) and are packed into the wheel as deploykit/_data/<name> (see pyproject).
A source checkout or editable install uses the top-level folders; an installed wheel
uses the packed copy. Pure path arithmetic, no I/O beyond `is_dir`.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_SOURCE_ROOT = PACKAGE_DIR.parent


def data_dir(name: str) -> Path:
    """Return the directory for `name` ("templates", "haproxy" or "chef_attrs")."""
    packed = PACKAGE_DIR / "_data" / name
    if packed.is_dir():
        return packed
    source = _SOURCE_ROOT / name
    if source.is_dir():
        return source
    raise FileNotFoundError(f"deploykit data folder {name!r} is missing from this installation")


def schema_path(name: str) -> Path:
    """Path of a JSON schema shipped inside the package (deploykit/schemas/...)."""
    return PACKAGE_DIR / "schemas" / name
