"""Consul KV client (py-consul underneath): keys, trees, blocking watches, transactions, sessions, config versions.

Every py-consul / requests error becomes a deploykit.errors type here (UnreachableError,
AuthError, RemoteError), and the ACL token never appears in a message: it travels only in
the X-Consul-Token header and is scrubbed from any error text just in case.

Versioned config (DESIGN §3): an app's config lives at `<prefix>/<app id>/<hash>/<key>`,
immutable. `write_config_tree` writes it in transactions of at most 64 operations; the
folder key `<prefix>/<app id>/<hash>/` is the *completion marker*, written in the LAST
transaction, so a tree left half-written by a crash never counts as present and is simply
written again. (consul-template's `tree` and `ls` skip folder keys, so apps never see it.)
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import consul
import requests
from consul.callback import CB

from deploykit.errors import EXIT_INVALID, AuthError, Problem, RemoteError, UnreachableError, ValidationError

log = logging.getLogger(__name__)

MAX_TXN_OPS = 64  # Consul's limit per /v1/txn in the versions we target (newer ones allow 128)
MAX_VALUE_SIZE = 512 * 1024  # Consul's default kv_max_value_size
TXN_BODY_BUDGET = 400 * 1024  # stay well under txn_max_req_len (512 KiB by default) after base64 and JSON


@dataclass(frozen=True)
class WriteResult:
    """What write_config_tree did: `written` False means the complete tree was already there."""

    written: bool
    keys: int
    txns: int


@dataclass(frozen=True)
class WatchEvent:
    """One answer of a watch: the index, the full current view, and what changed since the last event.

    `changed` maps key -> new value, or None when the key was deleted. The first event
    reports every present key as changed.
    """

    index: int
    items: dict[str, bytes]
    changed: dict[str, bytes | None] = field(default_factory=dict)


class KeyNotFound(RemoteError):
    """The key asked for does not exist: exit 2, invalid input (exit 1 would claim a deploy was rolled back)."""

    exit_code = EXIT_INVALID

    def __init__(self, message: str):
        super().__init__(message, status=404)


class TxnError(RemoteError):
    """A transaction was rolled back (409); `errors` is Consul's list of {OpIndex, What}."""

    def __init__(self, errors: list[dict[str, Any]], hint: str = ""):
        self.errors = errors
        what = "; ".join(f"op {e.get('OpIndex')}: {e.get('What')}" for e in errors)
        super().__init__(f"Consul rolled the transaction back: {what}{hint}", status=409, body=errors)


class TxnDenied(TxnError, AuthError):
    """Rolled back because the ACL token may not write some of the keys: exit 2 like a refused PUT (403), since
    retrying cannot help (a pipeline treats exit 4 as "try again")."""

    def __init__(self, errors: list[dict[str, Any]]):
        super().__init__(errors, " (check the token the environment names)")


def _refused(exc: Exception) -> bool:
    return "Connection refused" in str(exc) or "NewConnectionError" in repr(exc)


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _as_bytes(value: bytes | str | None) -> bytes:
    if value is None:
        return b""
    return value.encode() if isinstance(value, str) else bytes(value)


def check_key(key: str, what: str = "key") -> str:
    """Refuse a key Consul's KV API cannot name (py-consul would assert): a leading '/', as app ids have."""
    if key.startswith("/"):
        fixed = key.lstrip("/")
        hint = f"Consul keys have no leading '/': use {fixed!r}" if fixed else "an empty prefix ('') lists everything"
        raise ValidationError([Problem(None, what, f"{key!r} starts with '/'", hint)])
    return key


class ConsulClient:
    """A Consul agent (or the devcluster's stand-in) at `url`, with an optional ACL token."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 10) -> None:
        parts = urlsplit(url if "//" in url else f"http://{url}")
        if not parts.hostname:
            raise ValidationError([Problem(None, "consul.url", f"not a URL: {url!r}", "e.g. http://127.0.0.1:8500")])
        self.url = f"{parts.scheme}://{parts.hostname}:{parts.port or 8500}"
        self.timeout = timeout
        self._token = token or None
        self._c = consul.Consul(
            host=parts.hostname, port=parts.port or 8500, scheme=parts.scheme or "http", connections_timeout=timeout
        )
        self._c.token = self._token  # py-consul prefers $CONSUL_HTTP_TOKEN over the argument; we decide here

    def __repr__(self) -> str:
        return f"ConsulClient({self.url!r}, token={'***' if self._token else None})"

    def close(self) -> None:
        self._c.http.session.close()

    # ---- error translation -------------------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            hint = (" (nothing listens there: check consul.url in the environment file, or start the local"
                    " devcluster: deploykit local up --detach)") if _refused(exc) else ""
            name = type(exc).__name__
            raise UnreachableError(f"Consul at {self.url} did not answer ({what}): {name}{hint}") from None
        except consul.ACLPermissionDenied as exc:
            body = self._scrub(str(exc))
            raise AuthError(
                f"Consul refused {what}: {body or 'permission denied'} (check the token the environment names)",
                status=403, body=body,
            ) from None
        except consul.NotFound as exc:
            text = self._scrub(str(exc))
            raise RemoteError(f"Consul found nothing for {what}: {text}", status=404, body=text) from None
        except consul.ACLDisabled as exc:
            raise AuthError(f"Consul refused {what}: {self._scrub(str(exc))}", status=401) from None
        except consul.ConsulException as exc:
            text = self._scrub(str(exc))
            status = int(text[:3]) if text[:3].isdigit() else None
            raise RemoteError(f"Consul failed {what}: {text}", status=status, body=text) from None
        except requests.RequestException as exc:
            raise UnreachableError(f"Consul at {self.url} failed ({what}): {type(exc).__name__}") from None

    def _headers(self) -> dict[str, str]:
        return {"X-Consul-Token": self._token} if self._token else {}

    # ---- KV ----------------------------------------------------------------------------------------------------
    def get(self, key: str, *, with_meta: bool = False) -> bytes | dict[str, Any] | None:
        """The value of `key` (None if missing); with_meta=True gives Consul's entry (Value decoded to bytes)."""
        _, entry = self._call(f"reading {key}", self._c.kv.get, check_key(key))
        if entry is None:
            return None
        if entry.get("Value") is None:
            entry["Value"] = b""
        return entry if with_meta else entry["Value"]

    def put(self, key: str, value: bytes | str, *, flags: int | None = None, cas: int | None = None) -> bool:
        """Write a key; with `cas` only if its ModifyIndex matches (0 = only if missing). False when CAS lost."""
        return bool(
            self._call(f"writing {key}", self._c.kv.put, check_key(key), _as_bytes(value), cas=cas, flags=flags)
        )

    def delete(self, key: str, *, recurse: bool = False, cas: int | None = None) -> bool:
        return bool(
            self._call(f"deleting {key}", self._c.kv.delete, check_key(key), recurse=recurse or None, cas=cas)
        )

    def ls(self, prefix: str, separator: str | None = "/") -> list[str]:
        """Key names under `prefix`, folded at `separator` like a directory listing ([] when nothing is there)."""
        _, keys = self._call(
            f"listing {prefix}", self._c.kv.get, check_key(prefix, "prefix"), keys=True, separator=separator
        )
        return list(keys or [])

    def tree(self, prefix: str) -> dict[str, bytes]:
        """Every key under `prefix` (folder keys ending in '/' skipped) -> value."""
        return {k: v for k, v in self._entries(prefix)[1].items() if not k.endswith("/")}

    def _entries(self, prefix: str, index: int | None = None, wait: str | None = None) -> tuple[int, dict[str, bytes]]:
        idx, entries = self._call(
            f"reading {prefix or '/'}", self._c.kv.get, check_key(prefix, "prefix"), recurse=True,
            index=index or None, wait=wait,
        )
        return int(idx), {e["Key"]: (e.get("Value") or b"") for e in (entries or [])}

    def watch(
        self, target: str, *, prefix: bool = True, index: int | None = None, wait: str = "60s",
        min_interval: float = 0.1, retry_for: float = 0.0,
    ) -> Iterator[WatchEvent]:
        """Follow a key (prefix=False) or a prefix with blocking queries; yields only when the data changed.

        Follows Consul's rules for clients: the index can go backwards (reset to 0 and read
        again), a return is not proof of change (compare data), never block on index 0, and
        keep iterations at least `min_interval` apart so a misbehaving server cannot make us spin.
        While Consul is unreachable it retries with back-off for up to `retry_for` seconds
        (a restarting agent), then raises UnreachableError.
        """
        last: dict[str, bytes] | None = None
        idx = index or 0
        failing_since: float | None = None
        backoff = 0.25
        while True:
            started = time.monotonic()
            try:
                if prefix:
                    new_idx, items = self._entries(target, idx, wait)
                else:
                    raw_idx, entry = self._call(
                        f"watching {target}", self._c.kv.get, check_key(target), index=idx or None, wait=wait
                    )
                    new_idx = int(raw_idx)
                    items = {} if entry is None else {target: entry.get("Value") or b""}
            except UnreachableError:
                failing_since = failing_since or started
                if started - failing_since >= retry_for:
                    raise
                log.warning("Consul at %s is unreachable; retrying the watch in %.2gs", self.url, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            failing_since, backoff = None, 0.25
            if new_idx < idx:
                log.info("consul index for %s went backwards (%d -> %d); reading again", target, idx, new_idx)
                idx = 0
                continue
            if last is None or items != last:
                before = last or {}
                changed: dict[str, bytes | None] = {k: v for k, v in items.items() if before.get(k) != v}
                changed.update({k: None for k in before if k not in items})
                last = items
                yield WatchEvent(new_idx, dict(items), changed)
            idx = max(new_idx, 1)
            pause = min_interval - (time.monotonic() - started)
            if pause > 0:
                time.sleep(pause)

    # ---- transactions ------------------------------------------------------------------------------------------
    def txn(self, ops: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Apply up to 64 KV operations atomically; returns Consul's Results (values decoded to bytes).

        Each op is Consul's KV op body, e.g. {"Verb": "set", "Key": "k", "Value": b"v"} (bytes are
        base64-encoded here) or already wrapped as {"KV": {...}}. Raises TxnError on rollback.
        """
        if len(ops) > MAX_TXN_OPS:
            raise ValueError(f"a Consul transaction takes at most {MAX_TXN_OPS} operations, got {len(ops)}")
        payload = []
        for op in ops:
            body = dict(op.get("KV", op))
            if isinstance(body.get("Value"), (bytes, bytearray)):
                body["Value"] = _b64(bytes(body["Value"]))
            payload.append({"KV": body})

        def parse(response: Any) -> Any:
            if response.code in (200, 409):
                doc = json.loads(response.body)
                if response.code == 409:
                    errors = doc.get("Errors") or []
                    denied = any("permission denied" in str(e.get("What", "")).lower() for e in errors)
                    raise (TxnDenied if denied else TxnError)(errors)
                return doc.get("Results") or []
            CB._status(response)  # raises the py-consul exception _call translates
            raise consul.ConsulException(f"{response.code} {response.body}")

        results = self._call(
            "a transaction", self._c.http.put, parse, "/v1/txn", data=json.dumps(payload), headers=self._headers()
        )
        for r in results:
            kv = r.get("KV") or {}
            if kv.get("Value") is not None:
                kv["Value"] = base64.b64decode(kv["Value"])
        return results

    # ---- sessions and locks ------------------------------------------------------------------------------------
    def session_create(
        self, name: str | None = None, ttl: float | None = None, behavior: str = "release", lock_delay: float = 15
    ) -> str:
        """A new session id. `ttl` in seconds (Consul: 10..86400; it expires after up to 2x TTL without renew)."""
        body: dict[str, Any] = {"Behavior": behavior, "LockDelay": f"{lock_delay:g}s"}
        if name:
            body["Name"] = name
        if ttl:
            body["TTL"] = f"{ttl:g}s"
        return self._call(
            "creating a session", self._c.http.put, CB.json(is_id=True), "/v1/session/create",
            data=json.dumps(body), headers=self._headers(),
        )

    def session_renew(self, session: str) -> dict[str, Any] | None:
        """Reset the session's TTL; None when the session no longer exists (expired or destroyed)."""
        try:
            return self._call("renewing a session", self._c.session.renew, session)
        except RemoteError as exc:
            if exc.status == 404:
                return None
            raise

    def session_destroy(self, session: str) -> bool:
        return bool(self._call("destroying a session", self._c.session.destroy, session))

    def session_info(self, session: str) -> dict[str, Any] | None:
        return self._call("reading a session", self._c.session.info, session)[1]

    def acquire(self, key: str, session: str, value: bytes | str = b"") -> bool:
        """Take the lock on `key` for `session` (False if someone else holds it or lock-delay is running)."""
        return bool(self._call(f"locking {key}", self._c.kv.put, check_key(key), _as_bytes(value), acquire=session))

    def release(self, key: str, session: str, value: bytes | str | None = None) -> bool:
        """Give the lock up (False if `session` does not hold it). Keeps the value unless one is given."""
        if value is None:
            current = self.get(key)
            value = current if isinstance(current, bytes) else b""
        return bool(self._call(f"unlocking {key}", self._c.kv.put, check_key(key), _as_bytes(value), release=session))

    # ---- versioned config --------------------------------------------------------------------------------------
    def write_config_tree(self, prefix: str, items: Mapping[str, bytes]) -> WriteResult:
        """Write `<prefix>/<key>` for every item, unless the complete tree is already there; verify by reading back.

        Transactions of at most 64 operations (and ~400 KiB); the completion marker
        `<prefix>/` goes in the last one. Raises ValidationError for a value over Consul's
        512 KiB limit (before writing anything), RemoteError if the read-back differs.
        """
        prefix = prefix.rstrip("/")
        too_big = [
            Problem(None, f"config.{k}", f"value is {len(v)} bytes; Consul's limit is {MAX_VALUE_SIZE}",
                    "keep large files out of Consul, or split them")
            for k, v in items.items() if len(v) > MAX_VALUE_SIZE
        ]
        if too_big:
            raise ValidationError(too_big)
        marker = prefix + "/"
        if self.get(marker) is not None:
            self._verify(prefix, items)
            return WriteResult(written=False, keys=len(items), txns=0)
        ops = [{"Verb": "set", "Key": f"{prefix}/{k}", "Value": bytes(v)} for k, v in sorted(items.items())]
        meta = json.dumps({"keys": len(items), "written_at": int(time.time())}).encode()
        ops.append({"Verb": "set", "Key": marker, "Value": meta})
        chunks = _chunk(ops)
        for chunk in chunks:
            self.txn(chunk)
        self._verify(prefix, items)
        return WriteResult(written=True, keys=len(items), txns=len(chunks))

    def _verify(self, prefix: str, items: Mapping[str, bytes]) -> None:
        found = {k[len(prefix) + 1:]: v for k, v in self.tree(prefix + "/").items()}
        if found != dict(items):
            missing = sorted(set(items) - set(found))
            extra = sorted(set(found) - set(items))
            differ = sorted(k for k in set(items) & set(found) if items[k] != found[k])
            raise RemoteError(
                f"config tree {prefix}/ does not read back as written (missing {missing[:5]}, unexpected "
                f"{extra[:5]}, different {differ[:5]}); someone changed an immutable version",
                status=None,
            )

    def list_config_versions(self, app_prefix: str) -> list[tuple[str, int]]:
        """Complete config versions of an app as (hash, ModifyIndex of its marker), newest first."""
        app_prefix = app_prefix.rstrip("/") + "/"
        markers = [k for k in self.ls(app_prefix, separator=None) if _is_version_marker(app_prefix, k)]
        versions: list[tuple[str, int]] = []
        for start in range(0, len(markers), MAX_TXN_OPS):
            ops = [{"Verb": "get-or-empty", "Key": k} for k in markers[start:start + MAX_TXN_OPS]]
            for r in self.txn(ops):
                kv = r["KV"]
                if kv.get("ModifyIndex"):
                    versions.append((kv["Key"][len(app_prefix):-1], kv["ModifyIndex"]))
        versions.sort(key=lambda v: v[1], reverse=True)
        return versions

    def gc_config(self, app_prefix: str, keep: int, referenced: set[str]) -> list[str]:
        """Delete old versions: keep the newest `keep` complete ones and every referenced hash; returns what went.

        Trees left incomplete by a crashed write are deleted too (unless referenced), so run
        this under the app's deploy lock, when no write of this app can be in flight.
        """
        app_prefix = app_prefix.rstrip("/") + "/"
        complete = [h for h, _ in self.list_config_versions(app_prefix)]
        folders = [k for k in self.ls(app_prefix, separator="/") if k.endswith("/")]
        all_hashes = {k[len(app_prefix):].split("/", 1)[0] for k in folders}
        keep_set = set(complete[:max(0, keep)]) | set(referenced)
        doomed = sorted(h for h in all_hashes if h and h not in keep_set)
        for h in doomed:
            self.delete(f"{app_prefix}{h}/", recurse=True)
        return doomed


def _is_version_marker(app_prefix: str, key: str) -> bool:
    rest = key[len(app_prefix):]
    return key.startswith(app_prefix) and rest.endswith("/") and rest.count("/") == 1 and len(rest) > 1


def _chunk(ops: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split ops into transactions of <= 64 ops and ~TXN_BODY_BUDGET bytes, order kept (the marker stays last)."""
    chunks: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for op in ops:
        cost = len(op["Key"]) + (len(op["Value"]) * 4 // 3) + 64
        if current and (len(current) >= MAX_TXN_OPS or size + cost > TXN_BODY_BUDGET):
            chunks.append(current)
            current, size = [], 0
        current.append(op)
        size += cost
    if current:
        chunks.append(current)
    return chunks
