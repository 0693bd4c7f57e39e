#!/usr/bin/env bash
# The test command: installs what the tests need (scripts/setup.sh), checks style
# with ruff, then runs the whole suite (unit + integration against real ZooKeeper,
# HAProxy, docker-registry, buildah, dockerd and the devcluster, all started by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check deploykit tests bench examples
.venv/bin/python -m pytest -q "$@"
