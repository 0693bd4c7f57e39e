"""Docker Registry HTTP API v2 client: just enough to pin what was pushed.

Why read the digest back from the registry instead of trusting the build tool: the
registry is what Marathon hosts will pull from, so its `Docker-Content-Digest` for a tag
is the ground truth for `image@sha256:...`. Also answers "which image does this tag point
at now?" for `--immutable-tags`.

Auth follows the registry's challenge: `Basic` (htpasswd) or `Bearer` (token service,
e.g. Docker Hub, Harbor, GitLab) with the credentials as basic auth to the token realm.
Plain HTTP only when the environment file says `registry.insecure`. requests' exceptions
become deploykit.errors types here; credentials never appear in messages.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.parse
import warnings
from dataclasses import dataclass

import requests
from urllib3.exceptions import InsecureRequestWarning

from deploykit.errors import AuthError, RemoteError, UnreachableError
from deploykit.image.auth import Credentials

MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)
ACCEPT = ", ".join(MANIFEST_TYPES)
_CHALLENGE_PARAM_RE = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Manifest:
    digest: str  # "sha256:<hex>" of the exact bytes the registry serves
    media_type: str
    body: bytes

    @property
    def config_digest(self) -> str | None:
        """The image config digest (= the local image id) for single-image manifests."""
        try:
            return (json.loads(self.body).get("config") or {}).get("digest")
        except (ValueError, AttributeError):
            return None


def api_host(host: str) -> str:
    """Docker Hub's API lives on registry-1.docker.io."""
    return "registry-1.docker.io" if host in ("docker.io", "index.docker.io") else host


class RegistryClient:
    """One registry host. Inject a `requests.Session` to share connections (or in tests)."""

    def __init__(
        self,
        host: str,
        *,
        insecure: bool = False,
        credentials: Credentials | None = None,
        session: requests.Session | None = None,
        timeout: float = 30.0,
    ):
        self.host = host
        self.insecure = insecure
        # insecure, like docker's insecure-registries: HTTPS without verification, else plain HTTP (decided once)
        self._scheme: str | None = None if insecure else "https"
        self.credentials = credentials
        self.session = session or requests.Session()
        self.timeout = timeout
        self._auth_header: str | None = None

    @property
    def base_url(self) -> str:
        return f"{self._scheme or 'https'}://{api_host(self.host)}"

    # -- public API ---------------------------------------------------------------------------------------------
    def ping(self) -> None:
        """Check that the registry answers the v2 API (and that our credentials are accepted)."""
        resp = self._request("GET", "/v2/", scope=None)
        if resp.status_code != 200:
            raise RemoteError(f"registry {self.host}: /v2/ answered {resp.status_code}", status=resp.status_code)

    def manifest_digest(self, repo: str, reference: str) -> str | None:
        """Digest a tag (or digest) points at, or None if there is no such manifest. HEAD, GET as fallback."""
        resp = self._request("HEAD", f"/v2/{repo}/manifests/{reference}", scope=f"repository:{repo}:pull")
        if resp.status_code == 404:
            return None
        self._raise_for(resp, f"manifest {repo}:{reference}")
        digest = resp.headers.get("Docker-Content-Digest")
        if digest:
            return digest
        manifest = self.get_manifest(repo, reference)
        return manifest.digest if manifest else None

    def get_manifest(self, repo: str, reference: str) -> Manifest | None:
        """GET a manifest; when `reference` is a digest the body is verified against it."""
        resp = self._request("GET", f"/v2/{repo}/manifests/{reference}", scope=f"repository:{repo}:pull")
        if resp.status_code == 404:
            return None
        self._raise_for(resp, f"manifest {repo}:{reference}")
        computed = "sha256:" + hashlib.sha256(resp.content).hexdigest()
        if reference.startswith("sha256:") and computed != reference:
            raise RemoteError(f"registry {self.host}: manifest {repo}@{reference} has content digest {computed}")
        digest = resp.headers.get("Docker-Content-Digest") or computed
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        return Manifest(digest=digest, media_type=media_type, body=resp.content)

    # -- plumbing -----------------------------------------------------------------------------------------------
    def _send(self, method: str, path: str, headers: dict[str, str]) -> requests.Response:
        if self._scheme is None:  # insecure and not probed yet: HTTPS unverified first, then plain HTTP
            try:
                resp = self._send_to("https", method, path, headers, verify=False)
            except UnreachableError:
                self._scheme = "http"
            else:
                self._scheme = "https"
                return resp
        return self._send_to(self._scheme, method, path, headers, verify=not self.insecure)

    def _send_to(self, scheme: str, method: str, path: str, headers: dict[str, str], *, verify: bool
                 ) -> requests.Response:
        url = f"{scheme}://{api_host(self.host)}{path}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", InsecureRequestWarning)
                return self.session.request(method, url, headers=headers, timeout=self.timeout, allow_redirects=True,
                                            verify=verify)
        except requests.exceptions.SSLError:
            raise UnreachableError(
                f"registry {self.host}: TLS handshake failed (if it serves plain HTTP or a self-signed certificate, "
                "set registry.insecure: true in the environment file)"
            ) from None
        except requests.exceptions.Timeout:
            raise UnreachableError(f"registry {self.host}: no answer within {self.timeout:g}s") from None
        except requests.exceptions.ConnectionError as exc:
            reason = type(exc).__name__
            inner = getattr(exc, "args", None)
            if inner and hasattr(inner[0], "reason"):
                reason = str(inner[0].reason)
            raise UnreachableError(f"registry {self.host} is unreachable at {scheme}://{self.host} ({reason})") \
                from None
        except requests.exceptions.RequestException as exc:
            raise UnreachableError(f"registry {self.host}: {type(exc).__name__}") from None

    def _request(self, method: str, path: str, *, scope: str | None) -> requests.Response:
        headers = {"Accept": ACCEPT}
        if self._auth_header:
            headers["Authorization"] = self._auth_header
        resp = self._send(method, path, headers)
        if resp.status_code == 403:
            raise self._auth_error(403)
        if resp.status_code != 401:
            return resp
        self._auth_header = self._answer_challenge(resp.headers.get("WWW-Authenticate", ""), scope)
        resp = self._send(method, path, {**headers, "Authorization": self._auth_header})
        if resp.status_code in (401, 403):
            raise self._auth_error(resp.status_code)
        return resp

    def _answer_challenge(self, challenge: str, scope: str | None) -> str:
        kind, _, params_text = challenge.partition(" ")
        params = dict(_CHALLENGE_PARAM_RE.findall(params_text))
        if kind.lower() == "basic":
            if self.credentials is None:
                raise self._auth_error(401)
            pair = f"{self.credentials.username}:{self.credentials.password}".encode()
            return "Basic " + base64.b64encode(pair).decode()
        if kind.lower() == "bearer" and params.get("realm"):
            query = {"service": params.get("service", "")}
            if scope or params.get("scope"):
                query["scope"] = scope or params["scope"]
            auth = (self.credentials.username, self.credentials.password) if self.credentials else None
            try:
                same_host = urllib.parse.urlsplit(params["realm"]).netloc == api_host(self.host)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", InsecureRequestWarning)
                    resp = self.session.get(params["realm"], params=query, auth=auth, timeout=self.timeout,
                                            verify=not (self.insecure and same_host))
            except requests.exceptions.RequestException as exc:
                raise UnreachableError(f"registry {self.host}: token service unreachable ({type(exc).__name__})") \
                    from None
            if resp.status_code in (401, 403):
                raise self._auth_error(resp.status_code)
            if resp.status_code != 200:
                raise RemoteError(f"registry {self.host}: token service answered {resp.status_code}",
                                  status=resp.status_code)
            try:
                doc = resp.json()
                token = doc.get("token") or doc.get("access_token")
            except ValueError:
                token = None
            if not token:
                raise RemoteError(f"registry {self.host}: token service sent no token")
            return f"Bearer {token}"
        raise self._auth_error(401)

    def _auth_error(self, status: int) -> AuthError:
        who = f"as {self.credentials.username!r}" if self.credentials else "without credentials"
        hint = "" if self.credentials else " (set registry.username_env/password_env in the environment file)"
        return AuthError(f"registry {self.host} refused access {who} (HTTP {status}){hint}", status=status)

    def _raise_for(self, resp: requests.Response, what: str) -> None:
        if resp.status_code >= 400:
            body: object = None
            try:
                body = resp.json()
            except ValueError:
                body = resp.text[:500] if resp.text else None
            raise RemoteError(f"registry {self.host}: {what} answered HTTP {resp.status_code}",
                              status=resp.status_code, body=body)
