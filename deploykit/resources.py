"""Locate data shipped with deploykit: templates/, haproxy/, chef_attrs/ and schemas.

templates/, haproxy/ and chef_attrs/ live at the top of the source tree (users copy and
override them) and are packed into the wheel as deploykit/_data/<name> (see pyproject).
A source checkout or editable install uses the top-level folders; an installed wheel
uses the packed copy. Pure path arithmetic, no I/O beyond `isdir`. The lookup itself
uses os.path (data_path): `lb render` calls it and is measured against json.load, and
pathlib brings urllib.parse and ipaddress (~2.5 ms); data_dir wraps it in a Path.
"""

from __future__ import annotations

import os.path

TYPE_CHECKING = False  # typing's own constant would import typing
if TYPE_CHECKING:
    from pathlib import Path

_PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__))


def data_path(name: str) -> str:
    """The directory for `name` ("templates", "haproxy" or "chef_attrs"), as a str."""
    for folder in (os.path.join(_PACKAGE_DIR, "_data", name), os.path.join(os.path.dirname(_PACKAGE_DIR), name)):
        if os.path.isdir(folder):
            return folder
    raise FileNotFoundError(f"deploykit data folder {name!r} is missing from this installation")


def data_dir(name: str) -> Path:
    """data_path(name) as a Path."""
    from pathlib import Path

    return Path(data_path(name))


def schema_path(name: str) -> Path:
    """Path of a JSON schema shipped inside the package (deploykit/schemas/...)."""
    from pathlib import Path

    return Path(_PACKAGE_DIR, "schemas", name)
