"""Health and readiness probes (HTTP, HTTPS, TCP, COMMAND), run from the server like Marathon's.

MESOS_HTTP/MESOS_TCP/MESOS_HTTPS checks, which Mesos agents run on real clusters, are
probed the same way here (there is no agent); see docs/devcluster.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import aiohttp

from deploykit.devcluster.tasks import HOST

_NO_VERIFY = ssl.create_default_context()
_NO_VERIFY.check_hostname = False
_NO_VERIFY.verify_mode = ssl.CERT_NONE


async def probe_http(session: aiohttp.ClientSession, url: str, timeout: float) -> tuple[bool, str | None]:
    """Healthy when 200 <= status < 400, as Marathon's HTTP check."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False,
                               ssl=_NO_VERIFY if url.startswith("https") else None) as resp:
            await resp.read()
            if 200 <= resp.status < 400:
                return True, None
            return False, f"{resp.status} {resp.reason}"
    except asyncio.TimeoutError:
        return False, f"Request to {url} timed out after {timeout}s"
    except (aiohttp.ClientError, OSError) as exc:
        return False, f"{type(exc).__name__}: {exc}"


async def probe_tcp(port: int, timeout: float) -> tuple[bool, str | None]:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
    except asyncio.TimeoutError:
        return False, f"Connection to {HOST}:{port} timed out after {timeout}s"
    except OSError as exc:
        return False, f"{type(exc).__name__}: {exc}"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True, None


async def probe_command(cmd: str, cwd: str, env: dict[str, str], timeout: float) -> tuple[bool, str | None]:
    proc = await asyncio.create_subprocess_exec(
        "sh", "-c", cmd, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
    )
    try:
        rc = await asyncio.wait_for(proc.wait(), timeout)
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return False, f"Command timed out after {timeout}s"
    return (rc == 0), (None if rc == 0 else f"Command exited with status {rc}")


async def readiness_probe(session: aiohttp.ClientSession, url: str, timeout: float,
                          ready_codes: list[int]) -> tuple[bool, dict]:
    """One readiness request; returns (ready, lastResponse)."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False,
                               ssl=_NO_VERIFY if url.startswith("https") else None) as resp:
            body = await resp.text(errors="replace")
            last = {"status": resp.status, "contentType": resp.headers.get("Content-Type", ""), "body": body[:4096]}
            return resp.status in ready_codes, last
    except (asyncio.TimeoutError, aiohttp.ClientError, OSError) as exc:
        return False, {"status": 0, "contentType": "", "body": f"{type(exc).__name__}: {exc}"}
