"""Whether this process runs in a CI job: one rule for plain output (CLI) and for dirty-tree refusal (image builds)."""

from __future__ import annotations

import os
from collections.abc import Mapping


def in_ci(environ: Mapping[str, str] | None = None) -> bool:
    """True in a CI job (CI=true, or Jenkins' BUILD_URL + JOB_NAME; Jenkins does not set CI).

    Some agents give builds a pseudo-terminal, so isatty() alone would turn on spinners and colour codes
    that end up as noise in the Jenkins log.
    """
    env = os.environ if environ is None else environ
    if str(env.get("CI", "")).lower() in ("1", "true", "yes"):
        return True
    return bool(env.get("BUILD_URL") and env.get("JOB_NAME"))
