#!/usr/bin/env bash
# Quick start on one machine, the real pipeline: set up; start the devcluster (Marathon + Consul
# stand-in), a Docker engine (the one that answers, or dockerd as root) and a registry on :5000;
# make the offline Python base image once; build and push examples/hello's image; deploy it by
# digest; start the HAProxy sync daemon; send a request through HAProxy to a container.
# Everything stays on 127.0.0.1 and under ./.deploykit/. Stop it all with: bash scripts/quickstart.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
DK=.venv/bin/deploykit
STATE=.deploykit
LB_PID=$STATE/lb.pid
BUILD_RECORD=$STATE/hello-build.json

stop() {
  if [ -f "$LB_PID" ] && kill -0 "$(cat "$LB_PID")" 2>/dev/null; then
    kill -TERM "$(cat "$LB_PID")" && echo "stopped deploykit lb run"
  fi
  rm -f "$LB_PID"
  [ -x "$DK" ] && "$DK" local down || true
}

if [ "${1:-}" = "stop" ]; then
  stop
  exit 0
fi

bash scripts/setup.sh
mkdir -p "$STATE"

echo "==> 1/6 devcluster (Marathon API on :8080, Consul KV on :8500), Docker engine, registry on :5000"
if ! "$DK" local status >/dev/null 2>&1; then
  "$DK" local up --detach
fi

echo "==> 2/6 base image 127.0.0.1:5000/deploykit/python:3.11 from Debian packages (once)"
"$DK" local base-image --registry 127.0.0.1:5000

echo "==> 3/6 build and push examples/hello (FROM that base) to the local registry"
"$DK" build examples/hello/app.yaml --env local --push --quiet --build-record "$BUILD_RECORD"

echo "==> 4/6 deploy it by digest (validate, lock, config to Consul, Marathon, wait for healthy containers)"
"$DK" deploy examples/hello/app.yaml --env local --from-build "$BUILD_RECORD"

echo "==> 5/6 HAProxy sync daemon (HAProxy on 127.0.0.1:8000, metrics on :9090)"
if ! { [ -f "$LB_PID" ] && kill -0 "$(cat "$LB_PID")" 2>/dev/null; }; then
  setsid nohup "$DK" lb run --env local --stop-haproxy > "$STATE/lb.log" 2>&1 < /dev/null &
  echo $! > "$LB_PID"
fi

echo "==> 6/6 request through HAProxy to a container: curl -H 'Host: hello.local' http://127.0.0.1:8000/"
for _ in $(seq 1 100); do
  if out=$(curl -fsS -m 2 -H 'Host: hello.local' http://127.0.0.1:8000/ 2>/dev/null); then
    echo "$out"
    echo
    echo "It works. Try: $DK local status | $DK status /examples/hello --env local | bash scripts/quickstart.sh stop"
    exit 0
  fi
  sleep 0.2
done
echo "no answer through HAProxy after 20 s; daemon log: $STATE/lb.log" >&2
tail -n 20 "$STATE/lb.log" >&2 || true
exit 1
