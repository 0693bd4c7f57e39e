"""Shared fixtures. Service fixtures live in tests/harness/ and are registered here."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.harness.zookeeper", "tests.harness.haproxy", "tests.harness.registry", "tests.harness.buildah",
                  "tests.harness.consul", "tests.harness.jenkins_double", "tests.harness.devcluster",
                  "tests.harness.docker", "tests.harness.summary"]

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


# ---- no CLI invocation of the suite ends in a traceback (issue 17) ----------------------------------------------
# A command that crashes prints one line and writes its traceback to $DEPLOYKIT_CRASH_DIR (deploykit.crashlog).
# The whole session, subprocesses included, shares one such folder; a test after which a new log appears
# fails, unless it is marked `internal_error` (it provokes exit 70 on purpose) or uses its own folder.
@pytest.fixture(scope="session")
def _session_crash_dir(tmp_path_factory) -> Path:
    import os

    folder = tmp_path_factory.mktemp("deploykit-crashes")
    previous = os.environ.get("DEPLOYKIT_CRASH_DIR")
    os.environ["DEPLOYKIT_CRASH_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("DEPLOYKIT_CRASH_DIR", None)
    else:
        os.environ["DEPLOYKIT_CRASH_DIR"] = previous


@pytest.fixture(autouse=True)
def _no_crash_logs(request, _session_crash_dir: Path):
    before = set(_session_crash_dir.iterdir())
    yield
    new = sorted(set(_session_crash_dir.iterdir()) - before)
    if new and request.node.get_closest_marker("internal_error") is None:
        for log in new:
            log.rename(log.with_suffix(".seen"))  # reported once, by the test that caused it
        tail = new[0].with_suffix(".seen").read_text()[-3000:]
        pytest.fail(f"a deploykit command crashed (exit 70) during this test; {len(new)} log(s), the first ends:\n"
                    f"{tail}", pytrace=False)
