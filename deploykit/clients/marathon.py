"""A thin Marathon REST client on requests.

Why not the PyPI `marathon` package: it breaks on Python 3.10+ (`collections.Iterable`),
maps app JSON into typed models that reject or silently drop fields it does not know
(so `networks`, `secrets`, `unreachableStrategy` and friends get lost on a round-trip),
and its event stream never reconnects. Here app JSON passes through as plain dicts,
exactly as rendered and exactly as Marathon answered.

Behaviour:
- The Marathon base URL comes from a *leader provider*: a callable returning candidate
  URLs, best first (a static list, or the leader read from ZooKeeper; see
  `zk_leader_provider`). A `X-Marathon-Leader` answer header is remembered and tried first
  next time, so the client follows a failover without waiting for a standby to proxy.
- Timeouts on every request; GETs (idempotent) are retried on connection errors and
  502/503/504 on the next candidate URL. Writes are retried only when the connection was
  refused (the request never reached Marathon), never after a timeout, so a PUT can never
  start two deployments.
- Errors become deploykit.errors types carrying Marathon's own message: 409 locked ->
  MarathonLocked (with the blocking deployment ids), 422/400 -> MarathonRejected (with
  `details`), 401/403 -> AuthError, 5xx -> RemoteError, connection problems ->
  UnreachableError. The password never appears in a message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import quote

import requests

from deploykit.errors import EXIT_INVALID, AuthError, InternalError, LockedError, RemoteError, UnreachableError

log = logging.getLogger(__name__)

LeaderProvider = Callable[[], Sequence[str]]

DEFAULT_TIMEOUT = (3.05, 30.0)  # (connect, read) seconds
RETRY_STATUSES = frozenset({502, 503, 504})
APP_EMBEDS = ("app.tasks", "app.counts", "app.deployments", "app.lastTaskFailure", "app.readiness")


class MarathonLocked(LockedError):
    """409: the app is locked by running deployment(s). `deployment_ids` names them."""

    def __init__(self, message: str, deployment_ids: list[str]):
        super().__init__(message)
        self.deployment_ids = deployment_ids

    def to_dict(self) -> dict:
        return {**super().to_dict(), "deployments": self.deployment_ids}


class MarathonRejected(RemoteError):
    """400/422: Marathon refused the app definition; `body["details"]` says where."""

    exit_code = EXIT_INVALID


def static_leader(urls: Iterable[str]) -> LeaderProvider:
    """A provider for a fixed URL list (Marathon proxies to its leader from any member)."""
    fixed = [u.rstrip("/") for u in urls]
    return lambda: fixed


def zk_leader_provider(
    zk_client: Any, zk_path: str, fallback: Iterable[str] = (), scheme: str = "http"
) -> LeaderProvider:
    """A provider reading the leader from ZooKeeper on each call, falling back to `fallback` URLs."""
    from deploykit.clients.zk import marathon_leader

    fallback_urls = [u.rstrip("/") for u in fallback]

    def provider() -> list[str]:
        try:
            leader = marathon_leader(zk_client, zk_path)
        except (UnreachableError, RemoteError) as exc:
            log.warning("no Marathon leader from ZooKeeper (%s); using the URL list", exc)
            leader = None
        urls = [f"{scheme}://{leader}"] if leader else []
        return urls + [u for u in fallback_urls if u not in urls]

    return provider


def _app_path(app_id: str) -> str:
    return "/v2/apps/" + quote(app_id.strip("/"), safe="/")


def _message(resp: requests.Response) -> tuple[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        text = resp.text.strip()
        return (text[:300] or resp.reason or f"HTTP {resp.status_code}"), text[:2000]
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"]), body
    return f"HTTP {resp.status_code}", body


def _details_text(body: Any) -> str:
    details = body.get("details") if isinstance(body, dict) else None
    if isinstance(details, list):
        parts = []
        for d in details:
            if isinstance(d, dict):
                parts.append(f"{d.get('path', '?')}: {'; '.join(map(str, d.get('errors', [])))}")
        return ", ".join(parts)
    if isinstance(details, str):
        return details
    return ""


class MarathonClient:
    """Marathon's REST API, plain dicts in and out. Inject one per command; it is not a global."""

    def __init__(
        self,
        leader: LeaderProvider | Sequence[str],
        *,
        auth: tuple[str, str] | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retries: int = 2,
        session: requests.Session | None = None,
        follow_leader: bool = True,
    ):
        """`follow_leader=False` when Marathon sits behind a proxy or load balancer whose
        address must be used even though Marathon names its own host:port as leader."""
        self._provider: LeaderProvider = leader if callable(leader) else static_leader(leader)
        self._follow_leader = follow_leader
        self._auth = auth
        self.timeout = timeout
        self.retries = retries
        self._session = session or requests.Session()
        self._leader_hint: str | None = None
        self.last_url: str | None = None

    # -- plumbing ----------------------------------------------------------------
    @property
    def auth(self) -> tuple[str, str] | None:
        return self._auth

    def candidates(self) -> list[str]:
        """Base URLs to try, best first: the leader Marathon last named, then the provider's."""
        urls = list(self._provider())
        if self._leader_hint and self._leader_hint in urls:
            urls.remove(self._leader_hint)
            urls.insert(0, self._leader_hint)
        elif self._leader_hint:
            urls.insert(0, self._leader_hint)
        if not urls:
            raise UnreachableError("no Marathon URL: the environment names none and ZooKeeper knows no leader")
        return urls

    def close(self) -> None:
        self._session.close()

    def request(
        self, method: str, path: str, *, params: dict | list | None = None, json_body: Any = None, ok404: bool = False
    ) -> requests.Response | None:
        idempotent = method in ("GET", "HEAD")
        errors: list[str] = []
        attempts = max(1, self.retries + 1)
        for attempt in range(attempts):
            for base in self.candidates():
                try:
                    resp = self._session.request(
                        method,
                        base + path,
                        params=params,
                        json=json_body,
                        auth=self._auth,
                        timeout=self.timeout,
                        headers={"Accept": "application/json"},
                    )
                except requests.ConnectionError as exc:
                    errors.append(f"{base}: {_short(exc)}")
                    if self._leader_hint == base:
                        self._leader_hint = None
                    if not idempotent and not _refused(exc):
                        raise UnreachableError(
                            f"Marathon connection failed during {method} {path} at {base}; "
                            "the request may or may not have been applied: "
                            f"{_short(exc)}"
                        ) from None
                    continue
                except requests.Timeout as exc:
                    errors.append(f"{base}: timed out")
                    if not idempotent:
                        raise UnreachableError(
                            f"Marathon did not answer {method} {path} at {base} in time; "
                            "the request may or may not have been applied"
                        ) from None
                    log.debug("timeout on %s: %s", base, exc)
                    continue
                except requests.exceptions.InvalidJSONError as exc:  # NaN/inf in a body: validation missed it
                    raise InternalError(f"the body of {method} {path} is not valid JSON: {exc}") from None
                except requests.RequestException as exc:
                    raise UnreachableError(f"Marathon request {method} {path} failed: {_short(exc)}") from None
                leader = resp.headers.get("X-Marathon-Leader")
                if leader and self._follow_leader:
                    self._leader_hint = leader.rstrip("/")
                self.last_url = base
                if resp.status_code in RETRY_STATUSES and idempotent:
                    errors.append(f"{base}: HTTP {resp.status_code}")
                    continue
                if resp.status_code == 404 and ok404:
                    return None
                if resp.status_code >= 400:
                    raise self._error(method, path, resp)
                return resp
            if attempt + 1 < attempts:
                time.sleep(min(2.0, 0.25 * (2**attempt)))
        raise UnreachableError(f"Marathon unreachable ({method} {path}): {_summarise(errors, attempts)}")

    def _error(self, method: str, path: str, resp: requests.Response) -> Exception:
        msg, body = _message(resp)
        where = f"Marathon {method} {path} -> {resp.status_code}"
        status = resp.status_code
        if status == 409 and isinstance(body, dict) and "deployments" in body:
            ids = [d.get("id") for d in body.get("deployments") or [] if isinstance(d, dict) and d.get("id")]
            return MarathonLocked(f"{where}: {msg} (deployments: {', '.join(ids) or 'unknown'})", ids)
        if status in (400, 422):
            details = _details_text(body)
            return MarathonRejected(f"{where}: {msg}" + (f": {details}" if details else ""), status=status, body=body)
        if status == 403 and "running deployments" in msg:
            return LockedError(f"{where}: {msg}")
        if status in (401, 403):
            return AuthError(f"{where}: {msg}", status=status, body=body)
        return RemoteError(f"{where}: {msg}", status=status, body=body)

    def _json(self, method: str, path: str, **kw) -> Any:
        resp = self.request(method, path, **kw)
        if resp is None:
            return None
        if not resp.content:
            return {}
        try:
            return resp.json()
        except ValueError:
            raise RemoteError(f"Marathon {method} {path}: answer is not JSON", status=resp.status_code) from None

    # -- API -----------------------------------------------------------------------
    def ping(self) -> str:
        """Check Marathon answers (GET /v2/info); returns the base URL that answered."""
        self._json("GET", "/v2/info")
        return self.last_url or ""

    def info(self) -> dict:
        return self._json("GET", "/v2/info")

    def get_app(self, app_id: str, embed: Sequence[str] = APP_EMBEDS) -> dict | None:
        """The app with tasks etc., or None when Marathon does not know it."""
        params = [("embed", e) for e in embed]
        body = self._json("GET", _app_path(app_id), params=params, ok404=True)
        return None if body is None else body.get("app")

    def list_apps(self, embed: Sequence[str] = ("apps.tasks",), app_id: str | None = None) -> list[dict]:
        params: list[tuple[str, str]] = [("embed", e) for e in embed]
        if app_id:
            params.append(("id", app_id))
        return self._json("GET", "/v2/apps", params=params).get("apps", [])

    def put_app(self, app: dict, *, force: bool = False) -> dict:
        """PUT the full definition (partialUpdate=false): fields we omit go back to defaults.

        Returns {"deploymentId", "version"}; the id comes from the body or the
        Marathon-Deployment-Id header.
        """
        params = {"partialUpdate": "false", "force": "true" if force else "false"}
        resp = self.request("PUT", _app_path(app["id"]), params=params, json_body=app)
        assert resp is not None
        body = resp.json() if resp.content else {}
        dep = body.get("deploymentId") or resp.headers.get("Marathon-Deployment-Id")
        if not dep and isinstance(body.get("deployments"), list) and body["deployments"]:
            dep = body["deployments"][0].get("id")
        return {"deploymentId": dep, "version": body.get("version"), "created": resp.status_code == 201}

    def app_versions(self, app_id: str) -> list[str]:
        """Version timestamps, newest first (as Marathon lists them)."""
        body = self._json("GET", _app_path(app_id) + "/versions", ok404=True)
        return [] if body is None else list(body.get("versions", []))

    def app_version(self, app_id: str, version: str) -> dict | None:
        return self._json("GET", f"{_app_path(app_id)}/versions/{quote(version)}", ok404=True)

    def deployments(self) -> list[dict]:
        return self._json("GET", "/v2/deployments")

    def delete_deployment(self, deployment_id: str, *, force: bool = False) -> dict:
        params = {"force": "true" if force else "false"}
        return self._json("DELETE", f"/v2/deployments/{quote(deployment_id)}", params=params)

    def queue(self) -> list[dict]:
        return self._json("GET", "/v2/queue").get("queue", [])

    def events(self, event_types: Sequence[str] | None = None, **kw):
        """An EventStream on the same leader provider and credentials (see marathon_events)."""
        from deploykit.clients.marathon_events import EventStream

        return EventStream(self.candidates, event_types=event_types, auth=self._auth, **kw)


def _short(exc: Exception) -> str:
    text = str(exc)
    # requests' messages embed the whole urllib3 pool repr; keep the cause.
    for marker in ("Connection refused", "Name or service not known", "timed out", "Connection reset"):
        if marker in text:
            return marker
    return type(exc).__name__


def _refused(exc: Exception) -> bool:
    return "Connection refused" in str(exc) or "NewConnectionError" in repr(exc)


def _summarise(errors: list[str], attempts: int) -> str:
    """Each URL's last error once (not once per retry), how often it was tried, and what to check."""
    last: dict[str, str] = {}
    for entry in errors:
        base, _, what = entry.partition(": ")
        last[base] = what
    tries = f" ({attempts} attempts each)" if attempts > 1 else ""
    text = "; ".join(f"{base}: {what}" for base, what in last.items()) + tries
    if any("refused" in what.lower() for what in last.values()):
        text += (". Nothing listens there: check marathon.urls in the environment file,"
                 " or start the local devcluster: deploykit local up --detach")
    return text
