#!/usr/bin/env bash
# Install everything deploykit and its tests need on a fresh Debian machine:
# system packages (ZooKeeper, HAProxy, buildah, docker.io, docker-registry, mmdebstrap, busybox) and a
# virtualenv at .venv with deploykit installed (editable) plus its test extras.
# Idempotent: packages already present are not reinstalled.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v haproxy >/dev/null || need+=(haproxy)
[ -f /usr/share/java/zookeeper.jar ] || need+=(zookeeper)
command -v buildah >/dev/null || need+=(buildah)
command -v docker-registry >/dev/null || need+=(docker-registry)
# The Docker engine the devcluster runs image apps with; /usr/bin/docker is the client matching it
# (another `docker` earlier on PATH does not count). mmdebstrap makes the offline Python base image.
{ [ -x /usr/bin/docker ] && command -v dockerd >/dev/null; } || need+=(docker.io)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v curl >/dev/null || need+=(curl)
command -v java >/dev/null || need+=(default-jre-headless)
command -v npm >/dev/null || need+=(nodejs npm)  # npm-groovy-lint checks the generated Jenkinsfiles
PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null; then
  need+=(python3 python3-venv)
elif ! "$PY" -c 'import ensurepip, venv' 2>/dev/null; then
  need+=(python3-venv)  # Debian ships venv's ensurepip separately
fi
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing system packages: ${need[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[dev]'

# npm-groovy-lint 15 (CodeNarc on the installed JRE; 18 needs Node 22, which Debian does not ship),
# project-local in .tools/ so nothing global changes. The suite lints the generated Jenkinsfiles with it.
GROOVYLINT_VERSION=15.2.2
if ! grep -qs "\"version\": \"$GROOVYLINT_VERSION\"" .tools/groovylint/node_modules/npm-groovy-lint/package.json; then
  npm install -q --no-audit --no-fund --prefix .tools/groovylint "npm-groovy-lint@$GROOVYLINT_VERSION" >/dev/null
fi
