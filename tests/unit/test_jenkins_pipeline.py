"""Jenkinsfile rendering: golden files per option set, and the structure parsed back."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from deploykit.errors import ValidationError
from deploykit.jenkins import groovy
from deploykit.jenkins.appinfo import load_app_facts, parse_env_list
from deploykit.jenkins.pipeline import PipelineOptions, build_pipeline, check_jenkinsfile, render_jenkinsfile
from tests.harness.jenkins_double import write_sample_tree

GOLDEN = Path(__file__).parent / "golden" / "jenkins"
UPDATE = os.environ.get("DEPLOYKIT_UPDATE_GOLDEN") == "1"
CANARY = "canary-secret-value-7f3a"

OPTION_SETS = {
    "staging-prod": PipelineOptions(envs=("staging", "prod"), regenerate="deploykit jenkins jenkinsfile app.yaml"),
    "staging-only": PipelineOptions(
        envs=("staging",), regenerate="deploykit jenkins jenkinsfile app.yaml --env staging"
    ),
    "approvals-timeouts": PipelineOptions(
        envs=("staging", "prod"), approve=("staging", "prod"), submitter="release-managers",
        build_timeout_minutes=45, deploy_timeout_minutes=20, approval_timeout_hours=4, lock_timeout="90s",
        regenerate="custom",
    ),
    "sync-checkout": PipelineOptions(
        envs=("staging", "prod"), repo_url="https://git.example.com/shop/cart.git", branch="release",
        app_path="services/cart/app.yaml", regenerate="deploykit jenkins sync",
    ),
}


@pytest.fixture
def tree(tmp_path, monkeypatch):
    # the secret variables hold a canary: it must never reach the rendered file
    for var in ("CART_DB_PASSWORD", "CART_PAYMENT_KEY", "CONSUL_HTTP_TOKEN", "REGISTRY_PASSWORD", "MARATHON_PASSWORD"):
        monkeypatch.setenv(var, CANARY)
    return write_sample_tree(tmp_path)


def render(tree, options: PipelineOptions, templates_dir=None) -> str:
    facts = load_app_facts(tree["cart"], list(options.envs), tree["envs"])
    return render_jenkinsfile(build_pipeline(facts, options), templates_dir)


def stage_map(text: str) -> dict[str, groovy.Node]:
    """Every stage, nested ones included, in document order."""
    top = groovy.parse(text).block("pipeline")
    assert top is not None
    return {s.strings[0]: s for s in top.block("stages").walk() if s.is_block and s.name == "stage"}


def agent_of(stage: groovy.Node) -> str | None:
    agents = [s.head for s in stage.children if s.name == "agent"]
    return agents[0] if agents else None


@pytest.mark.parametrize("name", sorted(OPTION_SETS))
def test_golden(tree, name):
    text = render(tree, OPTION_SETS[name])
    golden = GOLDEN / f"{name}.Jenkinsfile"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text(), f"regenerate with DEPLOYKIT_UPDATE_GOLDEN=1 if the change is intended ({name})"


@pytest.mark.parametrize("name", sorted(OPTION_SETS))
def test_structure(tree, name):
    options = OPTION_SETS[name]
    text = render(tree, options)
    top = groovy.parse(text).block("pipeline")
    assert top is not None
    assert [s.head for s in top.steps("agent") if s in top.children] == ["agent none"]
    stages = stage_map(text)
    expected = ["Build and push", "Build", "Push"]
    for env in options.envs:
        expected += ([f"Approve {env}"] if env in options.approve else []) + [f"Deploy {env}"]
    assert list(stages) == expected

    # Build and Push share one agent (the image stays on that node); build.json travels by stash
    assert agent_of(stages["Build and push"]) == "agent any"
    assert [s.strings[0] for s in stages["Build and push"].block("stages").blocks("stage")] == ["Build", "Push"]
    push_sh = stages["Push"].steps("sh")
    assert len(push_sh) == 1 and "--push --build-record build.json" in push_sh[0].strings[0]
    assert stages["Push"].steps("stash")[0].strings == ["deploykit-build-record", "build.json"]
    build_post = stages["Build and push"].block("post").block("always")
    assert [s.name for s in build_post.steps()] == ["archiveArtifacts", "junit"]
    assert "rm -rf" in stages["Build"].steps("sh")[0].strings[0]  # no stale results from an earlier build
    for env in options.envs:
        deploy = stages[f"Deploy {env}"]
        assert agent_of(deploy) == "agent any"
        steps = [s.name for s in deploy.block("steps").children]
        assert steps == (["git"] if options.repo_url else []) + ["unstash", "sh", "lock"]
        stage_timeout = deploy.block("options").steps("timeout")
        assert f"time : {options.deploy_timeout_minutes}" in stage_timeout[0].head
        (lock,) = [n for n in deploy.walk() if n.is_block and n.name == "lock"]
        assert f"deploykit:{env}:/shop/cart" in lock.strings
        (sh,) = lock.steps("sh")
        cmd = sh.strings[0]
        assert f"deploykit deploy \"$DEPLOYKIT_APP\" --env {env} --from-build build.json --lock-timeout" in cmd
        assert "--output json" in cmd
        assert f'--junit "$DEPLOYKIT_RESULTS/deploy-{env}.xml"' in cmd
        (creds,) = [n for n in deploy.walk() if n.name == "withCredentials"]
        assert "'CONSUL_HTTP_TOKEN'" in creds.head and "'CART_DB_PASSWORD'" in creds.head
        assert ("'CART_PAYMENT_KEY'" in creds.head) == (env == "prod")  # overlay-only secret
        assert ("'MARATHON_PASSWORD'" in creds.head) == (env == "prod")
        always = deploy.block("post").block("always")
        assert always.steps("junit")[0].strings[0] == f"deploykit-results/deploy-{env}.xml"
        if env in options.approve:
            approve = stages[f"Approve {env}"]
            assert agent_of(approve) is None  # waiting for a human holds no executor
            (t,) = [n for n in approve.walk() if n.is_block and n.name == "timeout"]
            assert f"time : {options.approval_timeout_hours}" in t.head and "'HOURS'" in t.head
            (inp,) = t.steps("input")
            assert f"Deploy /shop/cart to {env}?" in inp.strings
            if options.submitter:
                assert options.submitter in inp.strings
    if options.repo_url:
        gits = top.steps("git")
        assert len(gits) == 1 + len(options.envs)
        assert all(options.repo_url in g.strings and "credentialsId : params . GIT_CREDENTIALS_ID" in g.head
                   for g in gits)
    failure = top.block("post").block("failure")
    (node,) = [n for n in failure.walk() if n.is_block and n.name == "node"]  # sh needs a node under agent none
    assert node.steps("sh")
    facts = load_app_facts(tree["cart"], list(options.envs), tree["envs"])
    assert check_jenkinsfile(text, build_pipeline(facts, options)) == []


@pytest.mark.parametrize("name", sorted(OPTION_SETS))
def test_no_secret_literal(tree, name):
    text = render(tree, OPTION_SETS[name])
    assert CANARY not in text
    top = groovy.parse(text).block("pipeline")
    for step in top.steps("sh"):
        assert not step.gstrings, f"Groovy-interpolated sh at line {step.line}"
    bindings = [n for n in top.walk() if n.name == "withCredentials"]
    assert bindings
    for node in bindings:
        assert "credentialsId : params ." in node.head
        assert "credentialsId : '" not in node.head  # never a literal id, let alone a secret
    # every secret variable the app reads is bound somewhere, and only as a variable name
    for var in ("CART_DB_PASSWORD", "CONSUL_HTTP_TOKEN", "REGISTRY_PASSWORD"):
        assert any(f"'{var}'" in n.head for n in bindings)
    params = top.block("parameters").steps("string")
    assert all(p.head.count("defaultValue") == 1 for p in params)
    assert not any("password" in s.lower() and "=" in s for p in params for s in p.strings)


def test_user_template_extends_and_overrides_notify(tree, tmp_path):
    custom = tmp_path / "tpl"
    custom.mkdir()
    (custom / "Jenkinsfile.j2").write_text(
        '{% extends "deploykit/Jenkinsfile.j2" %}\n'
        "{% block notify %}\n            mail to: 'team@example.com', subject: 'deploy failed', body: 'see log'\n"
        "{% endblock %}\n"
    )
    text = render(tree, OPTION_SETS["staging-prod"], custom)
    failure = groovy.parse(text).block("pipeline").block("post").block("failure")
    assert [s.name for s in failure.steps()] == ["mail"]


def test_user_template_missing_a_stage_is_refused(tree, tmp_path):
    custom = tmp_path / "tpl"
    custom.mkdir()
    (custom / "Jenkinsfile.j2").write_text(
        "pipeline {\n  agent any\n  stages {\n    stage('Build') { steps { sh 'make' } }\n  }\n}\n"
    )
    with pytest.raises(ValidationError) as err:
        render(tree, OPTION_SETS["staging-prod"], custom)
    missing = {p.path for p in err.value.problems}
    assert {"stages.Push", "stages.Deploy staging", "stages.Approve prod", "stages.Deploy prod"} <= missing


def test_user_template_with_interpolated_sh_and_literal_credential_is_refused(tree, tmp_path):
    custom = tmp_path / "tpl"
    custom.mkdir()
    base = (Path(__file__).resolve().parents[2] / "templates" / "Jenkinsfile.j2").read_text()
    broken = base.replace(
        "unstash {{ p.stash | groovy }}",
        "sh \"echo $CONSUL_HTTP_TOKEN\"\n                withCredentials([string(credentialsId: 'prod-token', "
        "variable: 'T')]) { sh 'true' }",
    )
    (custom / "Jenkinsfile.j2").write_text(broken)
    with pytest.raises(ValidationError) as err:
        render(tree, OPTION_SETS["staging-only"], custom)
    messages = " ".join(p.message for p in err.value.problems)
    assert "double-quoted Groovy string" in messages
    assert "not a build parameter" in messages


def test_template_syntax_error_names_file_and_line(tree, tmp_path):
    custom = tmp_path / "tpl"
    custom.mkdir()
    (custom / "Jenkinsfile.j2").write_text("pipeline {\n{% if %}\n}\n")
    with pytest.raises(ValidationError) as err:
        render(tree, OPTION_SETS["staging-only"], custom)
    (problem,) = err.value.problems
    assert problem.line == 2 and "Jenkinsfile.j2" in problem.file


def test_missing_templates_dir(tree, tmp_path):
    with pytest.raises(ValidationError, match="is not a directory"):
        render(tree, OPTION_SETS["staging-only"], tmp_path / "nope")


def test_invalid_inputs_reported_together(tree):
    with pytest.raises(ValidationError) as err:
        parse_env_list("staging, pr od,staging")
    assert len(err.value.problems) == 2
    with pytest.raises(ValidationError) as err:
        load_app_facts(tree["cart"], ["staging", "qa", "uat"], tree["envs"])
    assert {p.message for p in err.value.problems} >= {"no environment file qa.json", "no environment file uat.json"} \
        or len(err.value.problems) >= 2
    facts = load_app_facts(tree["cart"], ["staging"], tree["envs"])
    with pytest.raises(ValidationError) as err:
        build_pipeline(facts, replace(OPTION_SETS["staging-only"], deploy_timeout_minutes=0, approval_timeout_hours=0))
    assert {p.path for p in err.value.problems} == {"--deploy-timeout", "--approval-timeout"}
    with pytest.raises(ValidationError) as err:
        build_pipeline(facts, replace(OPTION_SETS["staging-only"], approve=("stagign",), build_env="prod",
                                      lock_timeout="5 minutes"))
    by_path = {p.path: p for p in err.value.problems}
    assert by_path["--approve"].hint == "did you mean 'staging'?" and "--build-env" in by_path
    assert "--lock-timeout" in by_path


def test_app_errors_come_from_the_spec_loader(tree):
    tree["cart"].write_text("id: /shop/cart\nimage: registry.example.com/shop/cart\ninstanses: 2\n")
    with pytest.raises(ValidationError) as err:
        load_app_facts(tree["cart"], ["staging"], tree["envs"])
    assert any("instances" in (p.hint or "") for p in err.value.problems)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pipeline {\n  stages {\n}\n", "never closed"),
        ("pipeline {\n}\n}\n", "without a matching"),
        ("pipeline {\n  sh 'oops\n}\n", "unterminated string"),
        ("pipeline {\n  sh(\n}\n", "never closed"),
        ("pipeline {\n  sh(]\n}\n", "unbalanced"),
    ],
)
def test_groovy_parser_errors(text, message):
    with pytest.raises(groovy.GroovySyntaxError, match=message):
        groovy.parse(text)


def test_groovy_parser_strings_and_comments():
    root = groovy.parse(
        "// c { not a block\n/* also { not */\npipeline {\n  sh '''multi\n{line}'''\n"
        "  echo \"x ${y}\"\n  sh 'it\\'s'\n}\n"
    )
    top = root.block("pipeline")
    assert [s.strings for s in top.steps("sh")] == [["multi\n{line}"], ["it's"]]
    assert top.steps("echo")[0].gstrings == ["x ${y}"]
