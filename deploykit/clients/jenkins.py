"""Jenkins client: python-jenkins behind a small interface, its exceptions turned into deploykit.errors.

python-jenkins reports 401, 403 and 500 alike as "Possibly authentication failed", lets
requests' ConnectionError escape untranslated, and maps 404 to NotFoundException. This
wrapper recovers the HTTP status from the underlying response so the user gets a clear
message: bad credentials -> AuthError (exit 2), unreachable or timed out ->
UnreachableError (exit 4), anything else -> RemoteError. The API token is passed to
python-jenkins only; it is never part of a message, repr or log line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import jenkins
import requests

from deploykit.errors import AuthError, DeployKitError, RemoteError, UnreachableError

T = TypeVar("T")


class JenkinsClient:
    """The few Jenkins operations deploykit needs. Construct one and inject it (no globals)."""

    def __init__(self, url: str, user: str | None = None, token: str | None = None, timeout: float = 10.0):
        parts = urlsplit(url.rstrip("/"))
        # shown in every message: never with user:token@ in it
        self.url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        self.user = user
        self._server = jenkins.Jenkins(url.rstrip("/"), username=user, password=token, timeout=timeout)

    def __repr__(self) -> str:
        return f"JenkinsClient(url={self.url!r}, user={self.user!r})"

    # --- reads -------------------------------------------------------------------------------

    def whoami(self) -> dict:
        """Who Jenkins thinks we are: the cheapest check that URL and credentials work."""
        return self._call("check credentials", lambda: self._server.get_whoami())

    def job_config(self, name: str) -> str | None:
        """config.xml of job `name` (folders as "a/b/job"), or None when it does not exist."""
        return self._call(f"read {name}/config.xml", lambda: self._server.get_job_config(name), missing_ok=True)

    def item_class(self, name: str) -> str | None:
        """Jenkins class of item `name` (e.g. the Folder class), or None when it does not exist."""
        info = self._call(f"read {name}", lambda: self._server.get_job_info(name), missing_ok=True)
        return info.get("_class") if info else None

    def job_info(self, name: str) -> dict:
        return self._call(f"read job {name}", lambda: self._server.get_job_info(name))

    def build_info(self, name: str, number: int) -> dict:
        return self._call(f"read build {name} #{number}", lambda: self._server.get_build_info(name, number))

    def queue_item(self, number: int) -> dict:
        return self._call(f"read queue item {number}", lambda: self._server.get_queue_item(number))

    # --- writes ------------------------------------------------------------------------------

    def create_folder(self, name: str) -> None:
        self._call(f"create folder {name}", lambda: self._server.create_folder(name))

    def create_job(self, name: str, config_xml: str) -> None:
        self._call(f"create job {name}", lambda: self._server.create_job(name, config_xml))

    def update_job(self, name: str, config_xml: str) -> None:
        self._call(f"update job {name}", lambda: self._server.reconfig_job(name, config_xml))

    def build(self, name: str, parameters: dict[str, str] | None = None) -> int:
        """Queue a build; returns the queue item number."""
        return self._call(f"start a build of {name}", lambda: self._server.build_job(name, parameters))

    # --- error translation -------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T], missing_ok: bool = False) -> T | None:
        try:
            return fn()
        except jenkins.NotFoundException:
            if missing_ok:
                return None
            raise RemoteError(f"Jenkins at {self.url}: cannot {what}: not found (HTTP 404)", status=404) from None
        except jenkins.TimeoutException:
            raise UnreachableError(f"Jenkins at {self.url} did not answer in time (while trying to {what})") from None
        except requests.exceptions.ConnectionError as exc:
            reason = _reason(exc)
            raise UnreachableError(f"cannot reach Jenkins at {self.url}: {reason} (while trying to {what})") from None
        except requests.exceptions.Timeout:
            raise UnreachableError(f"Jenkins at {self.url} did not answer in time (while trying to {what})") from None
        except requests.exceptions.HTTPError as exc:
            raise self._http_error(what, exc.response) from None
        except jenkins.JenkinsException as exc:
            # some python-jenkins calls (get_job_info) re-raise a 404 as a plain JenkinsException
            if missing_ok and isinstance(exc.__context__, jenkins.NotFoundException):
                return None
            raise self._jenkins_error(what, exc) from None

    def _http_error(self, what: str, response: Any) -> DeployKitError:
        status = getattr(response, "status_code", None)
        text = _summary(getattr(response, "text", "") or "")
        header = (getattr(response, "headers", None) or {}).get("X-Error")
        detail = header or text or getattr(response, "reason", "") or "error"
        return RemoteError(f"Jenkins at {self.url}: cannot {what}: HTTP {status}: {detail}", status=status, body=text)

    def _jenkins_error(self, what: str, exc: jenkins.JenkinsException) -> DeployKitError:
        response = getattr(exc.__context__, "response", None)
        status = getattr(response, "status_code", None)
        if status is None:
            m = re.search(r"\[(\d{3})\]", str(exc))
            status = int(m.group(1)) if m else None
        if status == 401:
            who = f"user {self.user!r}" if self.user else "anonymous access"
            return AuthError(
                f"Jenkins at {self.url} refused the credentials for {who} (HTTP 401). "
                "Check JENKINS_USER and JENKINS_API_TOKEN (an API token from <jenkins>/me/configure, not a password).",
                status=401,
            )
        if status == 403:
            who = f"user {self.user!r}" if self.user else "anonymous (no JENKINS_USER/JENKINS_API_TOKEN set)"
            return AuthError(
                f"Jenkins at {self.url} denied permission to {what} for {who} (HTTP 403). "
                "The user needs Job/Create, Job/Configure and Job/Read (and Overall/Read).",
                status=403,
            )
        body = _summary(getattr(response, "text", "") or "") if response is not None else ""
        message = body or str(exc).splitlines()[0]
        return RemoteError(f"Jenkins at {self.url}: cannot {what}: {message}", status=status, body=body or None)


def _reason(exc: Exception) -> str:
    text = str(exc)
    for known in ("Connection refused", "Name or service not known", "No route to host", "timed out"):
        if known in text:
            return known.lower()
    return "connection failed"


def _summary(text: str, limit: int = 300) -> str:
    """First meaningful line of a Jenkins error body (often HTML: keep the <p> or <h1> text)."""
    m = re.search(r"<p[^>]*>(.*?)</p>", text, re.S) or re.search(r"<h1[^>]*>(.*?)</h1>", text, re.S)
    if m:
        text = re.sub(r"<[^>]+>", "", m.group(1))
    text = " ".join(text.split())
    return text[:limit]

