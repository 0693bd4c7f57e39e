"""MarathonClient and EventStream against a small local HTTP server answering with the
exact bodies of marathon-api.md (error shapes, 302 from a standby, SSE framing). The same
clients run against the devcluster in tests/integration/test_deploy*.py."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deploykit.clients.marathon import MarathonClient, MarathonLocked, MarathonRejected
from deploykit.clients.marathon_events import Connected, Event, EventStream, SSEParser
from deploykit.errors import AuthError, RemoteError, UnreachableError
from tests.harness.common import free_port


class Canned:
    """A server whose answers are set per path: (status, headers, body) or a callable."""

    def __init__(self):
        self.routes: dict[str, object] = {}
        self.hits: list[tuple[str, str, dict]] = []
        canned = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _do(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                canned.hits.append((self.command, self.path, dict(self.headers)))
                route = canned.routes.get(f"{self.command} {path}")
                if callable(route):
                    return route(self, body)
                status, headers, payload = route or (500, {}, {"message": "URI not found"})
                data = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_DELETE = do_POST = _do

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def canned():
    c = Canned()
    yield c
    c.close()


def test_error_shapes_become_deploykit_errors(canned):
    locked = {
        "message": "App is locked by one or more deployments. Override with the option '?force=true'. "
        "View details at '/v2/deployments/<DEPLOYMENT_ID>'.",
        "deployments": [{"id": "dep-1"}],
    }
    canned.routes["PUT /v2/apps/a"] = (409, {}, locked)
    c = MarathonClient([canned.url], retries=0)
    with pytest.raises(MarathonLocked) as ei:
        c.put_app({"id": "/a"})
    assert ei.value.deployment_ids == ["dep-1"] and ei.value.exit_code == 3 and "locked" in str(ei.value)

    invalid = {"message": "Object is not valid",
               "details": [{"path": "/upgradeStrategy/minimumHealthCapacity", "errors": ["is greater than 1"]}]}
    canned.routes["PUT /v2/apps/a"] = (422, {}, invalid)
    with pytest.raises(MarathonRejected) as ei:
        c.put_app({"id": "/a"})
    assert "minimumHealthCapacity: is greater than 1" in str(ei.value) and ei.value.exit_code == 2

    canned.routes["GET /v2/info"] = (401, {}, {"message": "Invalid username or password."})
    c2 = MarathonClient([canned.url], auth=("u", "pw-canary"), retries=0)
    with pytest.raises(AuthError) as ei:
        c2.ping()
    assert "Invalid username" in str(ei.value) and "pw-canary" not in str(ei.value)
    assert canned.hits[-1][2]["Authorization"].startswith("Basic ")

    canned.routes["GET /v2/deployments"] = (500, {}, {"message": "boom"})
    with pytest.raises(RemoteError, match="boom"):
        c.deployments()


def test_put_is_full_replace_and_reads_deployment_id(canned):
    canned.routes["PUT /v2/apps/shop/cart"] = (200, {"Marathon-Deployment-Id": "d-7"}, {"version": "v2"})
    c = MarathonClient([canned.url])
    assert c.put_app({"id": "/shop/cart", "x-unknown": {"kept": True}}) == {
        "deploymentId": "d-7", "version": "v2", "created": False}
    method, path, _ = canned.hits[-1]
    assert method == "PUT" and "partialUpdate=false" in path and "force=false" in path


def test_get_falls_over_to_next_url_and_retries_503_but_put_does_not(canned):
    dead = f"http://127.0.0.1:{free_port()}"
    canned.routes["GET /v2/apps/a"] = (200, {}, {"app": {"id": "/a"}})
    c = MarathonClient([dead, canned.url], retries=1)
    assert c.get_app("/a") == {"id": "/a"}
    assert c.last_url == canned.url

    calls = []

    def flaky(h, body):
        calls.append(1)
        status = 503 if len(calls) == 1 else 200
        data = json.dumps({"message": "busy"} if status == 503 else []).encode()
        h.send_response(status)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    canned.routes["GET /v2/deployments"] = flaky
    assert c.deployments() == [] and len(calls) == 2

    canned.routes["PUT /v2/apps/a"] = (503, {}, {"message": "busy"})
    n = len(canned.hits)
    with pytest.raises(RemoteError):
        c.put_app({"id": "/a"})
    assert len(canned.hits) == n + 1  # exactly one PUT reached the server


def test_unknown_app_is_none_and_nothing_reachable_is_unreachable(canned):
    canned.routes["GET /v2/apps/nope"] = (404, {}, {"message": "App '/nope' does not exist"})
    assert MarathonClient([canned.url]).get_app("/nope") is None
    c = MarathonClient([f"http://127.0.0.1:{free_port()}"], retries=0)
    with pytest.raises(UnreachableError):
        c.ping()


def test_follows_x_marathon_leader(canned):
    other = Canned()
    try:
        canned.routes["GET /v2/info"] = (200, {"X-Marathon-Leader": other.url}, {"name": "marathon"})
        other.routes["GET /v2/info"] = (200, {"X-Marathon-Leader": other.url}, {"name": "marathon"})
        c = MarathonClient([canned.url])
        c.ping()
        assert c.candidates()[0] == other.url
        c.ping()
        assert c.last_url == other.url
    finally:
        other.close()


def test_sse_parser_handles_crlf_heartbeats_and_split_chunks():
    p = SSEParser()
    stream = b'\r\nevent: deployment_success\r\ndata: {"eventType":"deployment_success","id":"d"}\r\n\r\n\r\n'
    got = []
    for i in range(0, len(stream), 7):
        got += p.feed(stream[i : i + 7])
    assert got == [("deployment_success", '{"eventType":"deployment_success","id":"d"}')]


def sse_route(events: list[dict], hold: float):
    def route(h, body):
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream;charset=UTF-8")
        h.send_header("Connection", "close")
        h.end_headers()
        if h.headers.get("Accept") != "text/event-stream":
            return
        for ev in events:
            h.wfile.write(f"event: {ev['eventType']}\r\ndata: {json.dumps(ev)}\r\n\r\n".encode())
            h.wfile.flush()
        time.sleep(hold)  # then silent: no heartbeat

    return route


def test_event_stream_follows_302_reconnects_on_silence_and_stops(canned):
    leader = Canned()
    try:
        canned.routes["GET /v2/events"] = (302, {"Location": leader.url + "/v2/events"}, b"")
        leader.routes["GET /v2/events"] = sse_route([{"eventType": "deployment_success", "id": "d1"}], 1.5)
        es = EventStream(lambda: [canned.url], event_types=["deployment_success"],
                         heartbeat_interval=0.25, silence_factor=2, backoff_initial=0.05)
        thread, q = es.start_thread()
        got = [q.get(timeout=5) for _ in range(4)]
        t0 = time.monotonic()
        es.stop()
        thread.join(2)
        assert not thread.is_alive() and time.monotonic() - t0 < 0.5  # stop does not wait for a heartbeat
        assert got[0] == Connected(leader.url, False)
        assert got[1] == Event("deployment_success", {"eventType": "deployment_success", "id": "d1"})
        assert got[2] == Connected(leader.url, True)  # silence past 2 heartbeats -> reconnected
        events_hits = [h for h in leader.hits if h[1].startswith("/v2/events")]
        assert all(h[2]["Accept"] == "text/event-stream" for h in events_hits)
        assert "event_type=deployment_success" in events_hits[0][1]
    finally:
        leader.close()
