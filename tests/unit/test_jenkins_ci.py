"""Commands Jenkins runs are non-interactive: no colour or live display in CI, even on a pseudo-terminal."""

from __future__ import annotations

import os
import sys

import pytest

from deploykit.cli.common import console, in_ci
from deploykit.jenkins import groovy
from deploykit.jenkins.appinfo import load_app_facts
from deploykit.jenkins.pipeline import PipelineOptions, build_pipeline, render_jenkinsfile
from tests.harness.jenkins_double import write_sample_tree


@pytest.fixture
def pty_stderr(monkeypatch):
    master, slave = os.openpty()
    stream = os.fdopen(slave, "w")  # tests install it themselves: pytest swaps sys.stderr between phases
    for var in ("CI", "NO_COLOR", "BUILD_URL", "JOB_NAME"):
        monkeypatch.delenv(var, raising=False)
    yield stream
    stream.close()
    os.close(master)


def test_terminal_outside_ci(pty_stderr, monkeypatch):
    monkeypatch.setattr(sys, "stderr", pty_stderr)
    assert console(stderr=True).is_terminal


@pytest.mark.parametrize("env", [{"CI": "true"}, {"BUILD_URL": "http://ci/job/x/1/", "JOB_NAME": "x"},
                                 {"NO_COLOR": "1"}])
def test_plain_in_ci_even_on_a_tty(pty_stderr, monkeypatch, env):
    monkeypatch.setattr(sys, "stderr", pty_stderr)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    con = console(stderr=True)
    assert not con.is_terminal and con.no_color


def test_in_ci_values():
    assert in_ci({"CI": "TRUE"}) and in_ci({"CI": "1"}) and not in_ci({"CI": "false"})
    assert not in_ci({"JENKINS_URL": "https://ci.example.com"})  # a laptop running `jenkins sync`
    assert not in_ci({"BUILD_URL": "u"})


def test_pipeline_runs_deploykit_non_interactively(tmp_path):
    tree = write_sample_tree(tmp_path)
    options = PipelineOptions(envs=("staging",))
    text = render_jenkinsfile(build_pipeline(load_app_facts(tree["cart"], ["staging"], tree["envs"]), options))
    env_block = groovy.parse(text).block("pipeline").block("environment")
    lines = {s.head for s in env_block.steps()}
    assert "CI = 'true'" in lines and "NO_COLOR = '1'" in lines
    for step in groovy.parse(text).block("pipeline").steps("sh"):
        cmd = step.strings[0]
        if cmd.startswith("deploykit "):
            assert "--output json" in cmd and "--junit" in cmd and "< /dev/tty" not in cmd


def test_every_deploykit_command_in_the_pipeline_parses(tmp_path):
    """The options the Jenkinsfile passes exist on the real commands (no "No such option" at 3 a.m.)."""
    import shlex

    import click

    from deploykit.cli import main

    tree = write_sample_tree(tmp_path)
    options = PipelineOptions(envs=("staging", "prod"))
    text = render_jenkinsfile(build_pipeline(load_app_facts(tree["cart"], ["staging", "prod"], tree["envs"]),
                                             options))
    env = {"DEPLOYKIT_APP": "app.yaml", "DEPLOYKIT_RESULTS": "deploykit-results"}
    seen = []
    for step in groovy.parse(text).block("pipeline").steps("sh"):
        words = shlex.split(step.strings[0])
        if words[0] != "deploykit":
            continue
        words = words[: words.index(">")]
        for var, value in env.items():
            words = [w.replace(f"${var}", value) for w in words]
        ctx = click.Context(main)
        cmd = main.get_command(ctx, words[1])
        assert cmd is not None, words
        sub = cmd.make_context(words[1], words[2:], parent=ctx)  # raises UsageError on an unknown option
        assert sub.params.get("output") == "json" and sub.params.get("junit_path"), words
        seen.append(words[1])
    assert seen == ["build", "build", "deploy", "deploy"]
