"""JUnit XML: the shape Jenkins' junit step reads, checked element by element."""

from __future__ import annotations

import json
import re
from xml.etree import ElementTree as ET

import pytest

from deploykit.junit import Case, write_cases, write_report

DECIMAL = re.compile(r"^\d+(\.\d+)?$")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")
SUITE_ATTRS = {"name", "tests", "failures", "errors", "skipped", "time", "timestamp", "hostname"}
CASE_ATTRS = {"name", "classname", "time"}
CASE_CHILDREN = {"failure", "error", "skipped", "system-out", "system-err"}


def validate_junit(path) -> ET.Element:
    """The common JUnit schema (Ant/Surefire shape) as Jenkins' JUnit plugin parses it."""
    text = path.read_bytes()
    assert text.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    root = ET.fromstring(text)
    assert root.tag in ("testsuites", "testsuite")
    suites = list(root) if root.tag == "testsuites" else [root]
    assert suites and all(s.tag == "testsuite" for s in suites)
    for suite in suites:
        assert set(suite.attrib) <= SUITE_ATTRS and suite.get("name")
        for key in ("tests", "failures", "errors", "skipped"):
            assert suite.get(key, "0").isdigit(), key
        assert DECIMAL.match(suite.get("time", "0"))
        assert ISO.match(suite.get("timestamp"))
        cases = [c for c in suite if c.tag == "testcase"]
        assert all(c.tag in ("testcase", "properties", "system-out", "system-err") for c in suite)
        assert int(suite.get("tests")) == len(cases)
        failed = 0
        for case in cases:
            assert set(case.attrib) <= CASE_ATTRS and case.get("name") and case.get("classname")
            assert DECIMAL.match(case.get("time"))
            assert {c.tag for c in case} <= CASE_CHILDREN
            for f in case.findall("failure"):
                assert f.get("message") and f.get("type") and "\n" not in f.get("message")
                failed += 1
        assert int(suite.get("failures")) == failed
    return root


def test_success_report(tmp_path):
    path = tmp_path / "deep" / "dir" / "deploy.xml"  # missing folders are created
    doc = {"ok": True, "app": "/shop/cart", "env": "prod", "elapsed_seconds": 12.5, "result": "deployed"}
    write_report(str(path), suite="deploykit", case="deploy", result=doc)
    root = validate_junit(path)
    (case,) = root.iter("testcase")
    assert case.get("name") == "deploy /shop/cart (prod)" and case.get("classname") == "deploykit.deploy"
    assert case.get("time") == "12.500" and case.find("failure") is None
    assert json.loads(case.find("system-out").text)["result"] == "deployed"


def test_failure_report_has_message_type_and_details(tmp_path):
    path = tmp_path / "deploy.xml"
    doc = {"ok": False, "command": "deploy", "exit_code": 1, "error": "DeployFailed",
           "message": "deployment failed: health checks\nrolled back to v2", "timings": {"total_seconds": 3}}
    write_report(str(path), suite="deploykit", case="deploy", result=doc)
    root = validate_junit(path)
    failure = root.find("testsuite/testcase/failure")
    assert failure.get("message") == "deployment failed: health checks"
    assert failure.get("type") == "DeployFailed"
    assert "rolled back to v2" in failure.text
    assert root.find("testsuite").get("failures") == "1"


def test_control_characters_and_ansi_are_removed(tmp_path):
    path = tmp_path / "build.xml"
    doc = {"ok": False, "error": "BuildError", "message": "\x1b[31mstep 3 failed\x1b[0m \x00\x07done"}
    write_report(str(path), suite="deploykit", case="jenkins sync", result=doc)
    root = validate_junit(path)
    failure = root.find("testsuite/testcase/failure")
    assert failure.get("message") == "step 3 failed done"
    assert root.find("testsuite/testcase").get("classname") == "deploykit.jenkins-sync"


def test_multi_case_report(tmp_path):
    path = tmp_path / "phases.xml"
    cases = [Case("validate", True, 0.1), Case("lock", True, 0.2),
             Case("marathon", False, 30, message="timed out", error_type="UnreachableError", details="...")]
    write_cases(str(path), suite="deploykit deploy", cases=cases, classname="deploykit.deploy")
    root = validate_junit(path)
    suite = root.find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "1" and suite.get("time") == "30.300"


@pytest.mark.parametrize("bad", [{"elapsed_seconds": "n/a"}, {"elapsed_seconds": -3}])
def test_odd_timings_do_not_break_the_report(tmp_path, bad):
    path = tmp_path / "r.xml"
    write_report(str(path), suite="deploykit", case="status", result={"ok": True, **bad})
    assert validate_junit(path).find("testsuite/testcase").get("time") == "0.000"


def test_cli_writes_junit_on_error(tmp_path):
    from click.testing import CliRunner

    from deploykit.cli import main

    path = tmp_path / "r.xml"
    result = CliRunner().invoke(main, ["jenkins", "sync", "--env", "staging", "--junit", str(path), str(tmp_path)],
                                env={"JENKINS_URL": None, "JENKINS_USER": None, "JENKINS_API_TOKEN": None})
    assert result.exit_code == 2
    failure = validate_junit(path).find("testsuite/testcase/failure")
    assert failure.get("type") == "ValidationError"
