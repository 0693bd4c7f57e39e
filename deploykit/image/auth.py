"""Registry credentials: read from the environment variables the environment file names,
handed to the tools in a private auth file that exists only for one push.

Why a file: a password on a command line is visible in `ps` and in logged commands;
a 0600 file in a 0700 temp dir, deleted afterwards, is neither. The password is never
in a repr, log line or error message.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from deploykit.errors import Problem, ValidationError


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def __str__(self) -> str:
        return f"{self.username}:********"


def credentials_from_env(registry: object | None, environ: Mapping[str, str], *, file: str | None = None
                         ) -> Credentials | None:
    """Credentials per the env file's registry section (`username_env`, `password_env`), or None
    when it names none. A named variable that is unset is a Problem (naming it, never a value)."""
    if registry is None:
        return None
    user_var = getattr(registry, "username_env", None)
    pass_var = getattr(registry, "password_env", None)
    if not user_var and not pass_var:
        return None
    problems = []
    for key, var in (("username_env", user_var), ("password_env", pass_var)):
        if not var:
            problems.append(Problem(file, f"registry.{key}", "is required when the other credential is set"))
        elif not environ.get(var):
            problems.append(Problem(file, f"registry.{key}", f"environment variable {var} is not set",
                                    f"export {var} before pushing"))
    if problems:
        raise ValidationError(problems)
    return Credentials(environ[user_var], environ[pass_var])


def auth_document(host: str, creds: Credentials) -> dict:
    """The containers-auth.json / docker config.json shape both tools read."""
    token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
    auths = {host: {"auth": token}}
    if host in ("docker.io", "index.docker.io"):
        auths["https://index.docker.io/v1/"] = {"auth": token}  # the key the docker CLI looks up for Hub
    return {"auths": auths}


@contextmanager
def private_authfile(host: str, creds: Credentials | None) -> Iterator[Path | None]:
    """Yield the path of `<0700 dir>/config.json` (0600) for `host`, removed on exit; None without creds."""
    if creds is None:
        yield None
        return
    tmp = tempfile.mkdtemp(prefix="dk-auth-")
    try:
        path = Path(tmp) / "config.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(auth_document(host, creds), fh)
        yield path
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
