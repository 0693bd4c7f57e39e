"""hello: the tiny service deploykit's examples and tests deploy (stdlib only).

GET /        -> "hello from <version>" (Marathon app version and Consul config prefix)
GET /health  -> 200 "ok" (500 when HELLO_FAIL_HEALTH=1: the deploy tests' broken version; 500 for the
                first HELLO_HEALTHY_AFTER seconds: a slow but good version)
GET /ready   -> 200 "ready"
Port: the first argument (the image runs `server.py 8080`: in BRIDGE networking the app listens on
its containerPort), else $PORT0 (a command task or HOST networking), else 8080.
Every answer carries X-Task-Id: $MESOS_TASK_ID (which task answered).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STARTED = time.monotonic()


class Handler(BaseHTTPRequestHandler):
    server_version = "hello/1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/health":
            warming = time.monotonic() - STARTED < float(os.environ.get("HELLO_HEALTHY_AFTER") or 0)
            failing = os.environ.get("HELLO_FAIL_HEALTH") == "1" or warming
            self._reply(500 if failing else 200, "unhealthy\n" if failing else "ok\n")
        elif path == "/ready":
            self._reply(200, "ready\n")
        elif path == "/":
            version = os.environ.get("MARATHON_APP_VERSION", "unknown")
            prefix = os.environ.get("DEPLOYKIT_CONFIG_PREFIX", "")
            self._reply(200, f"hello from {version} config={prefix} greeting={os.environ.get('GREETING', '')}\n")
        else:
            self._reply(404, "not found\n")

    def _reply(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        # which task answered: lets a load balancer test count distinct responders
        self.send_header("X-Task-Id", os.environ.get("MESOS_TASK_ID", ""))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt: str, *args: object) -> None:  # one line per request on stderr
        sys.stderr.write(f"{self.address_string()} {fmt % args}\n")


def main() -> None:
    port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PORT0") or 8080)
    httpd = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    # Marathon stops tasks with SIGTERM: exit promptly and cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"hello listening on {port}", flush=True)
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()


if __name__ == "__main__":
    main()
