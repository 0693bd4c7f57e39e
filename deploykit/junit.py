"""JUnit XML summaries so Jenkins shows deploykit results as test results.

Shape is the common one Jenkins' junit step reads: <testsuite name tests failures
errors time> with one <testcase classname name time>, and a <failure message type>
child holding the error text when the command failed.
"""

from __future__ import annotations

import json
import os
import tempfile
from xml.etree import ElementTree as ET


def build_report(suite: str, case: str, result: dict) -> ET.Element:
    ok = bool(result.get("ok", False))
    seconds = result.get("elapsed_seconds") or (result.get("timings") or {}).get("total_seconds") or 0
    ts = ET.Element(
        "testsuite",
        name=suite,
        tests="1",
        failures="0" if ok else "1",
        errors="0",
        skipped="0",
        time=f"{float(seconds):.3f}",
    )
    tc = ET.SubElement(ts, "testcase", classname=suite, name=case, time=f"{float(seconds):.3f}")
    if not ok:
        failure = ET.SubElement(
            tc, "failure", message=str(result.get("message", "failed")), type=str(result.get("error", "Error"))
        )
        failure.text = json.dumps(result, indent=2, default=str)
    else:
        out = ET.SubElement(tc, "system-out")
        out.text = json.dumps(result, indent=2, default=str)
    return ts


def write_report(path: str, *, suite: str, case: str, result: dict) -> None:
    """Write atomically, so Jenkins never archives a half-written file."""
    tree = ET.ElementTree(build_report(suite, case, result))
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".junit-", suffix=".xml")
    with os.fdopen(fd, "wb") as fh:
        tree.write(fh, encoding="utf-8", xml_declaration=True)
    os.replace(tmp, path)
