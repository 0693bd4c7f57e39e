"""Locate data shipped with deploykit: templates/, haproxy/, chef_attrs/ and schemas.

templates/, haproxy/ and chef_attrs/ live at the top of the source tree (users copy and
override them) and are packed into the wheel as deploykit/_data/<name> (see pyproject).
A source checkout or editable install uses the top-level folders; an installed wheel
uses the packed copy. Pure path arithmetic, no I/O beyond `is_dir`.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The directory for `name` ("templates", "haproxy" or "chef_attrs")."""
    for folder in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if folder.is_dir():
            return folder
    raise FileNotFoundError(f"deploykit data folder {name!r} is missing from this installation")


def schema_path(name: str) -> Path:
    """Path of a JSON schema shipped inside the package (deploykit/schemas/...)."""
    return _PACKAGE_DIR / "schemas" / name
