#!/usr/bin/env bash
# Quick start: set up, then show the example app rendered for the local devcluster.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
DK=.venv/bin/deploykit
$DK validate examples/hello/app.yaml --env local
$DK render examples/hello/app.yaml --env local
