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
