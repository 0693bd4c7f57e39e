"""The click-free `lb render` (deploykit.lb_render_fast) against the click command it stands in for.

Every argv runs twice through the real console-script entry point in a subprocess: once as shipped, once with
the fast path switched off (its run() replaced by "not mine"), so click handles it. Exit code, stdout, stderr
and every file written must be identical, and a marker file says which path handled the first run (and
whether click or rich had been imported by then), so a fast path that always stepped aside would fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from deploykit.cli.lb_cmds import render_cmd
from deploykit.lb_render_fast import ACCEPTED, OPTIONS, PATHS, REQUIRED, parse
from deploykit.resources import data_dir

ROOT = Path(__file__).resolve().parents[2]
ENVS = str(ROOT / "tests" / "unit" / "fixtures" / "spec" / "envs")  # legacy.json has a haproxy section

APPS = {"apps": [
    {"id": "/web", "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "web.example.com"},
     "portDefinitions": [{"port": 10001}],
     "tasks": [{"id": "w1", "host": "127.0.0.1", "ports": [31001], "state": "TASK_RUNNING"}]},
    {"id": "/evil", "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "x.example.com\n bind :1"},
     "portDefinitions": [{"port": 10002}]},
    {"id": "/bad\x1b[31m\nid", "labels": {"HAPROXY_GROUP": "external"}, "portDefinitions": [{"port": 10004}]},
    {"id": "/other", "labels": {"HAPROXY_GROUP": "internal", "HAPROXY_0_BACKEND_HEAD": "x"},
     "portDefinitions": [{"port": 10003}],
     "tasks": [{"id": "o1", "host": "127.0.0.1", "ports": [31003], "state": "TASK_RUNNING"}]},
]}
CLEAN = {"apps": [APPS["apps"][0], APPS["apps"][3]]}

_MARKED = """
import os, sys
import deploykit.lb_render_fast as fast
real = fast.run
def run(argv):
    took = True
    try:
        code = real(argv)
        took = code is not None
        return code
    finally:
        with open(os.environ["DK_FAST_MARK"], "w") as f:
            f.write(f"{'fast' if took else 'click'} click={'click' in sys.modules} rich={'rich' in sys.modules}")
fast.run = run
from deploykit.launcher import main; main()
"""
_CLICK_ONLY = """
import deploykit.lb_render_fast as fast
fast.run = lambda argv: None
from deploykit.launcher import main; main()
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("fast")
    (base / "apps.json").write_text(json.dumps(APPS))
    (base / "clean.json").write_text(json.dumps(CLEAN))
    (base / "list.json").write_text(json.dumps(APPS["apps"]))
    templates = base / "templates"
    templates.mkdir()
    main = (data_dir("haproxy") / "haproxy.cfg.j2").read_text()
    (templates / "haproxy.cfg.j2").write_text("# custom template\n" + main)
    broken = base / "broken"
    broken.mkdir()
    (broken / "haproxy.cfg.j2").write_text("{% if %}\n")
    (base / "plain-file").write_text("")
    return {"apps": str(base / "apps.json"), "clean": str(base / "clean.json"), "list": str(base / "list.json"),
            "tpl": str(templates), "broken": str(broken), "file": str(base / "plain-file"), "dir": str(base),
            "envs": ENVS}


def _launch(script: str, argv: list[str], workdir: Path, stdin: str | None, env: dict[str, str]):
    out = workdir / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    full_env = {k: v for k, v in os.environ.items() if k != "DEPLOYKIT_ENV_DIR" and not k.endswith("_COMPLETE")}
    full_env.update(env, DK_FAST_MARK=str(workdir / "mark"))
    done = subprocess.run([sys.executable, "-c", script, "lb", "render", *argv], cwd=out, input=stdin,
                          capture_output=True, text=True, timeout=60, env=full_env)
    written = {p.name: p.read_text() for p in sorted(out.iterdir())}
    return done.returncode, done.stdout, done.stderr, written


GOOD = [  # (argv, stdin, extra env): handled by the fast path
    (["--apps-json", "{apps}", "-o", "haproxy.cfg"], None, {}),
    (["--apps-json={apps}", "--out=haproxy.cfg", "--group", "external", "--group", "internal"], None, {}),
    (["--apps-json", "-"], "apps", {}),
    (["-q", "--apps-json", "{list}", "-ohaproxy.cfg"], None, {}),
    (["--apps-json", "{apps}", "--env", "legacy", "--env-dir", "{envs}", "-o", "haproxy.cfg"], None, {}),
    (["--apps-json", "{apps}", "--env", "legacy", "-o", "a.cfg", "-o", "b.cfg"], None, {"DEPLOYKIT_ENV_DIR": "{envs}"}),
    (["--apps-json", "{apps}", "--env", "local"], None, {}),
    (["--strict", "--apps-json", "{clean}", "-o", "haproxy.cfg", "--output", "text"], None, {}),
    (["--apps-json", "{apps}", "--templates", "{tpl}", "-o", "-"], None, {}),
]
FALLBACK = [  # (argv, stdin, env, exit code): usage errors, help, json, errors found while rendering, "-qo"
    (["--help"], None, {}, 0),
    (["-h", "--apps-json", "{apps}"], None, {}, 0),
    (["--apps-json", "{apps}", "--bogus"], None, {}, 2),
    (["--apps-json"], None, {}, 2),
    (["-o", "x.cfg"], None, {}, 2),
    (["--apps-json", "{apps}", "extra"], None, {}, 2),
    (["--apps-json", "{apps}", "--strict=1"], None, {}, 2),
    (["--apps-json", "{apps}", "-o", "x.cfg", "--output", "json"], None, {}, 0),
    (["--apps-json", "{apps}", "--output", "yaml"], None, {}, 2),
    (["--apps-json", "{apps}", "--templates", "{dir}/nope"], None, {}, 2),
    (["--apps-json", "{apps}", "--templates", "{file}"], None, {}, 2),
    (["--apps-json", "{dir}"], None, {}, 2),
    (["--apps-json", "{apps}", "--env", "legacy"], None, {"DEPLOYKIT_ENV_DIR": "{file}"}, 2),
    (["--apps-json", "{dir}/nope.json"], None, {}, 2),
    (["--apps-json", "{apps}", "--strict", "-o", "x.cfg"], None, {}, 2),
    (["--apps-json", "-", "--strict"], "apps", {}, 2),
    (["--apps-json", "-"], "[1, 2]", {}, 2),
    (["--apps-json", "{apps}", "--templates", "{broken}"], None, {}, 2),
    (["--apps-json", "{apps}", "--env", "nosuchenv"], None, {}, 2),
    (["-qo", "x.cfg", "--apps-json", "{apps}"], None, {}, 0),
]


def _ids(cases: list) -> list[str]:
    return [" ".join(case[0]) + (" <stdin" if case[1] else "") + (" +env" if case[2] else "") for case in cases]


def _check(case: tuple, files: dict[str, str], tmp_path: Path) -> tuple[str, tuple]:
    argv, stdin, env = case[:3]
    argv = [a.format(**files) for a in argv]
    env = {k: v.format(**files) for k, v in env.items()}
    stdin = Path(files["apps"]).read_text() if stdin == "apps" else stdin
    via_click = _launch(_CLICK_ONLY, argv, tmp_path, stdin, env)
    shipped = _launch(_MARKED, argv, tmp_path, stdin, env)
    assert shipped == via_click
    return (tmp_path / "mark").read_text(), shipped


@pytest.mark.parametrize("case", GOOD, ids=_ids(GOOD))
def test_fast_path_output_is_clicks(case: tuple, files: dict[str, str], tmp_path: Path) -> None:
    mark, (code, stdout, stderr, written) = _check(case, files, tmp_path)
    assert mark == "fast click=False rich=False"
    assert code == 0
    assert stderr == "" if "-q" in case[0] else stderr.splitlines()[-1].startswith("wrote ")
    assert "backend web_0" in stdout + "".join(written.values())


@pytest.mark.parametrize("case", FALLBACK, ids=_ids(FALLBACK))
def test_fallback_leaves_everything_to_click(case: tuple, files: dict[str, str], tmp_path: Path) -> None:
    mark, (code, _, stderr, _) = _check(case, files, tmp_path)
    assert mark.startswith("click ")
    assert code == case[3], stderr


def test_stdin_is_replayed_for_click_on_error(files: dict[str, str], tmp_path: Path) -> None:
    """--strict on stdin: the fast path read stdin, then stepped aside; click must still see the whole input."""
    _, (code, stdout, stderr, _) = _check((["--apps-json", "-", "--strict"], "apps", {}), files, tmp_path)
    assert code == 2 and stdout == "" and "/evil" in stderr and "not valid JSON" not in stderr


def test_report_lines_escape_control_characters(files: dict[str, str], tmp_path: Path) -> None:
    _, (code, _, stderr, _) = _check((["--apps-json", "{apps}", "-o", "x.cfg"], None, {}), files, tmp_path)
    assert code == 0 and "skipped /bad\\x1b[31m\\nid: app id is not a valid Marathon path id\n" in stderr
    assert "\x1b" not in stderr and "skipped /evil: " in stderr
    assert "ignored /other HAPROXY_0_BACKEND_HEAD: " in stderr


def test_console_script_does_not_import_click(files: dict[str, str], tmp_path: Path) -> None:
    """The unmodified entry point, with -X importtime (the process ends with os._exit, so ask the interpreter).

    Each of these costs `lb render` 1-25 ms at start-up (issue 8 measures the command against json.load):
    click and rich (CLI), jinja2 (the shipped templates are compiled), typing, dataclasses and contextlib
    (deploykit.records), pathlib and difflib (imported where needed).
    """
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "from deploykit.launcher import main; main()",
                           "lb", "render", "--apps-json", files["apps"], "-o", str(tmp_path / "h.cfg")],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    imported = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert done.returncode == 0 and "deploykit.lb.render" in imported
    heavy = ("click", "rich", "jinja2", "typing", "dataclasses", "contextlib", "pathlib", "difflib", "ipaddress")
    assert not {name for name in imported if name.split(".")[0] in heavy}
    assert "backend web_0" in (tmp_path / "h.cfg").read_text()


def test_option_table_matches_the_click_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast parser's table must not drift from the click command: names, kinds, env var, types, defaults."""
    monkeypatch.delenv("DEPLOYKIT_ENV_DIR", raising=False)
    params = {p.name: p for p in render_cmd.params}
    assert set(params) == set(OPTIONS)
    defaults = render_cmd.make_context("render", ["--apps-json", "x"]).params
    for dest, (names, kind, default, envvar) in OPTIONS.items():
        p = params[dest]
        assert isinstance(p, click.Option)
        assert sorted(p.opts + p.secondary_opts) == sorted(names), dest
        assert (p.is_flag, p.multiple, p.envvar) == (kind == "flag", kind == "multiple", envvar), dest
        assert (p.required, p.nargs, p.count) == (dest in REQUIRED, 1, False), dest
        if dest not in REQUIRED:
            assert defaults[dest] == default, dest
        if dest in PATHS:
            t = p.type
            assert isinstance(t, click.Path), dest
            assert (t.file_okay, t.dir_okay, t.exists, t.allow_dash) == PATHS[dest], dest
            assert (t.readable, t.writable, t.executable, t.resolve_path) == (True, False, False, False), dest
        elif dest in ACCEPTED:
            assert isinstance(p.type, click.Choice) and p.type.case_sensitive, dest
            assert set(ACCEPTED[dest]) <= set(p.type.choices), dest
        elif kind != "flag":
            assert p.type is click.STRING, dest
    assert render_cmd.context_settings.get("ignore_unknown_options") is not True
    assert render_cmd.context_settings.get("token_normalize_func") is None


PARSE_CASES = [
    ["--apps-json", "a.json"],
    ["--apps-json=a.json", "-o", "--strict"],
    ["--apps-json", "a.json", "-o=x"],
    ["--apps-json", "a.json", "-ox", "-o", "y"],
    ["--apps-json", "a.json", "--group=", "--group", "g2", "--env", "e", "--env", "f"],
    ["--apps-json", "a.json", "--env-dir", "d"],
    ["--apps-json", "a.json", "--quiet", "-q", "--strict", "--strict"],
    ["--apps-json", "a.json", "--output=text"],
    ["--apps-json", "a.json", "--out"],
    ["--apps-json", "a.json", "--quiet=1"],
    ["--apps-json", "a.json", "-qq"],
    ["--apps-json", "a.json", "--ou", "x"],
    ["--apps-json", "a.json", "--", "x"],
    ["--apps-json", "a.json", "-"],
    ["--apps-json", "a.json", "-x"],
    ["--apps-json", "a.json", "-apps-json", "b"],
    ["--apps-json", "a.json", "--output", "TEXT"],
    [],
]


@pytest.mark.parametrize("argv", PARSE_CASES, ids=[" ".join(a) or "<none>" for a in PARSE_CASES])
@pytest.mark.parametrize("env_dir", [None, "", "from-env"])
def test_parse_agrees_with_click(argv: list[str], env_dir: str | None, monkeypatch: pytest.MonkeyPatch,
                                 tmp_path: Path) -> None:
    """Where the fast parser answers, click's parse of the same argv gives the same values; where click
    refuses, the fast parser steps aside."""
    monkeypatch.chdir(tmp_path)
    environ = {} if env_dir is None else {"DEPLOYKIT_ENV_DIR": env_dir}
    monkeypatch.delenv("DEPLOYKIT_ENV_DIR", raising=False)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    fast = parse(argv, environ)
    try:
        slow = render_cmd.make_context("render", list(argv)).params
    except (click.UsageError, click.exceptions.Exit):
        slow = None
    if slow is None:
        assert fast is None
    elif fast is not None:
        assert fast == slow
    else:  # declined on purpose: only combined short flags
        assert "-qq" in argv


def test_closed_stdout_exits_1_like_click(files: dict[str, str], tmp_path: Path) -> None:
    """A reader that went away (`| head`): click exits 1 without a message; so does the fast path."""
    results = []
    for script in (_CLICK_ONLY, _MARKED):
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            done = subprocess.run([sys.executable, "-c", script, "lb", "render", "--apps-json", files["apps"]],
                                  stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, cwd=tmp_path,
                                  env={**os.environ, "DK_FAST_MARK": str(tmp_path / "mark")})
        finally:
            os.close(write_end)
        results.append((done.returncode, done.stderr))
    assert results[0] == results[1] == (1, "")
    assert (tmp_path / "mark").read_text().startswith("fast ")
