"""JUnit XML summaries so Jenkins shows deploykit results as test results.

Shape is the common one Jenkins' junit step reads: a <testsuites> root holding one
<testsuite name tests failures errors skipped time timestamp hostname> with one
<testcase classname name time> per result; a failed case carries <failure message type>
with the details as text, every case carries <system-out> with the JSON result so the
whole outcome is visible in Jenkins' test view. Text is stripped of characters XML 1.0
forbids (ANSI escapes from build logs would otherwise make Jenkins reject the file).
The result documents passed in are already secret-free (callers mask secrets).
"""

from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from xml.etree import ElementTree as ET

from deploykit.atomicfile import atomic_write

# XML 1.0 Char production, minus what we never want in a report
_INVALID_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
MESSAGE_LIMIT = 1000


@dataclass(frozen=True)
class Case:
    """One test case: a command's result, or one phase of it."""

    name: str
    ok: bool
    seconds: float = 0.0
    message: str | None = None  # failure message (one line)
    error_type: str | None = None  # failure type (exception class)
    details: str | None = None  # failure text
    output: str | None = None  # system-out


def clean(text: object) -> str:
    """Text safe for XML 1.0: ANSI colour codes and forbidden control characters removed."""
    return _INVALID_XML.sub("", _ANSI.sub("", str(text)))


def _seconds(result: dict) -> float:
    value = result.get("elapsed_seconds") or (result.get("timings") or {}).get("total_seconds") or 0
    try:
        return max(float(value), 0.0)
    except (TypeError, ValueError):
        return 0.0


def case_name(case: str, result: dict) -> str:
    """`deploy` -> `deploy /shop/cart (prod)` when the result names the app and environment."""
    app = result.get("app") or result.get("app_id")
    env = result.get("env") or result.get("environment")
    if isinstance(app, dict):
        app = app.get("id")
    name = case
    if isinstance(app, str) and app:
        name += f" {app}"
    if isinstance(env, str) and env:
        name += f" ({env})"
    return name


def case_from_result(case: str, result: dict) -> Case:
    ok = bool(result.get("ok", False))
    body = json.dumps(result, indent=2, default=str)
    if ok:
        return Case(case_name(case, result), True, _seconds(result), output=body)
    message = str(result.get("message") or "failed").strip().splitlines()
    return Case(
        case_name(case, result),
        False,
        _seconds(result),
        message=message[0] if message else "failed",
        error_type=str(result.get("error") or "Error"),
        details=body,
        output=body,
    )


def build_suites(suite: str, cases: list[Case], *, classname: str | None = None) -> ET.Element:
    failures = sum(1 for c in cases if not c.ok)
    total = sum(c.seconds for c in cases)
    root = ET.Element("testsuites", name=suite, tests=str(len(cases)), failures=str(failures), errors="0",
                      time=f"{total:.3f}")
    ts = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{total:.3f}",
        timestamp=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
        hostname=clean(socket.gethostname()) or "localhost",
    )
    for c in cases:
        tc = ET.SubElement(ts, "testcase", classname=classname or suite, name=clean(c.name), time=f"{c.seconds:.3f}")
        if not c.ok:
            failure = ET.SubElement(
                tc, "failure", message=clean(c.message or "failed")[:MESSAGE_LIMIT], type=clean(c.error_type or "Error")
            )
            failure.text = clean(c.details or c.message or "")
        if c.output:
            ET.SubElement(tc, "system-out").text = clean(c.output)
    return root


def build_report(suite: str, case: str, result: dict) -> ET.Element:
    """One command's result as a report with one test case (classname `<suite>.<command>`)."""
    command = "-".join(case.split()) or "command"
    return build_suites(suite, [case_from_result(case, result)], classname=f"{suite}.{command}")


def write_xml(path: str, root: ET.Element) -> None:
    """Write atomically, so Jenkins never archives a half-written file; creates the folder."""
    atomic_write(os.path.abspath(path), ET.tostring(root, encoding="utf-8", xml_declaration=True), mode=0o600)


def write_report(path: str, *, suite: str, case: str, result: dict) -> None:
    write_xml(path, build_report(suite, case, result))


def write_cases(path: str, *, suite: str, cases: list[Case], classname: str | None = None) -> None:
    """Several cases in one report (e.g. one per deploy phase, or one per synced job)."""
    write_xml(path, build_suites(suite, cases, classname=classname))
