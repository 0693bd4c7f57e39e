"""config.xml rendering, normalisation (what Jenkins rewrites is not a change), diff and runtime-state carry-over."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest
from click.testing import CliRunner

from deploykit.cli import main
from deploykit.errors import ValidationError
from deploykit.jenkins import groovy
from deploykit.jenkins.jobxml import JobConfig, carry_runtime_state, config_diff, normalise, render_job_xml, same_config
from deploykit.jenkins.sync import check_folder, find_app_files, git_origin, job_name
from tests.harness.jenkins_double import write_sample_tree

SCRIPT = "pipeline {\n    agent any\n    stages {\n        stage('Build') { steps { sh 'a > b && c' } }\n    }\n}\n"


PARAMS = (("PROD_CONSUL_HTTP_TOKEN_CREDENTIALS_ID", "prod-consul-http-token", "Consul token"),
          ("NOTIFY_WEBHOOK_CREDENTIALS_ID", "", "webhook"))


def job(script: str = SCRIPT, params=PARAMS) -> JobConfig:
    return JobConfig(name="team/shop-cart", description="Deploys <cart> & co", script=script, source="app.yaml",
                     parameters=params)


def param_names(root: ET.Element) -> list[str]:
    return [e.text for e in root.findall(
        "properties/hudson.model.ParametersDefinitionProperty/parameterDefinitions/"
        "hudson.model.StringParameterDefinition/name")]


def test_render_escapes_and_round_trips_the_script():
    xml = render_job_xml(job())
    root = ET.fromstring(xml.encode())
    assert root.tag == "flow-definition"
    assert root.find("definition").get("class") == "org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition"
    assert root.find("definition/script").text == SCRIPT
    assert root.find("definition/sandbox").text == "true"
    assert root.find("description").text == "Deploys <cart> & co"
    assert param_names(root) == [p[0] for p in PARAMS]  # "Build with Parameters" before the first run


def test_jenkins_reserialisation_is_not_a_change():
    from tests.harness.jenkins_double import reserialise

    mine = render_job_xml(job())
    theirs = reserialise(mine)
    assert theirs != mine and "plugin=" in theirs and theirs.startswith("<?xml version='1.1'")
    assert same_config(theirs, mine)
    assert config_diff(theirs, mine, "x") == ""


def test_runtime_actions_and_properties_are_ignored_and_carried_over():
    mine = render_job_xml(job())
    root = ET.fromstring(mine.encode())
    live_root = ET.fromstring(mine.encode())
    live_root.remove(live_root.find("actions"))
    live_root.insert(0, ET.fromstring("<actions><a.B plugin='p@1'/></actions>"))
    props = live_root.find("properties")
    props.remove(props.find("hudson.model.ParametersDefinitionProperty"))
    props.append(ET.fromstring("<hudson.model.ParametersDefinitionProperty><parameterDefinitions>"
                               "<hudson.model.StringParameterDefinition><name>OLD</name>"
                               "</hudson.model.StringParameterDefinition></parameterDefinitions>"
                               "</hudson.model.ParametersDefinitionProperty>"))
    props.append(ET.fromstring("<jenkins.model.BuildDiscarderProperty/>"))
    live = ET.tostring(live_root, encoding="unicode")
    assert same_config(live, mine) and param_names(root) != param_names(live_root)
    changed = render_job_xml(job(SCRIPT.replace("'a > b && c'", "'make'")))
    assert not same_config(live, changed)
    merged = ET.fromstring(carry_runtime_state(changed, live).encode())
    assert merged.find("actions/a.B") is not None  # what runs recorded is kept ...
    assert merged.find("properties/jenkins.model.BuildDiscarderProperty") is not None
    assert param_names(merged) == [p[0] for p in PARAMS]  # ... but the parameters are ours
    assert merged.find("definition/script").text.count("'make'") == 1
    assert [el.tag for el in merged][:3] == ["actions", "description", "keepDependencies"]


def test_diff_shows_script_lines():
    before = render_job_xml(job())
    after = render_job_xml(job(SCRIPT.replace("stage('Build')", "stage('Compile')")))
    diff = config_diff(before, after, "team/shop-cart")
    assert diff.startswith("--- a/team/shop-cart/config.xml\n+++ b/team/shop-cart/config.xml")
    assert "-        stage('Build')" in diff and "+        stage('Compile')" in diff
    created = config_diff(None, after, "team/shop-cart")
    assert created.startswith("--- /dev/null") and all(
        line.startswith(("+", "@", "-")) for line in created.splitlines())


def test_broken_user_job_template(tmp_path):
    (tmp_path / "jenkins-job.xml.j2").write_text("<flow-definition><script>{{ job.script }}</flow-definition>")
    with pytest.raises(ValidationError, match="not well-formed"):
        render_job_xml(job(), tmp_path)


def test_normalise_rejects_garbage():
    with pytest.raises(ValidationError):
        normalise("<not-closed>")


def test_job_names_and_app_discovery(tmp_path):
    tree = write_sample_tree(tmp_path)
    (tmp_path / "apps" / ".git").mkdir()
    (tmp_path / "apps" / "node_modules" / "x").mkdir(parents=True)
    (tmp_path / "apps" / "node_modules" / "x" / "app.yaml").write_text("id: /vendored\n")
    found = find_app_files([str(tree["apps"]), str(tree["cart"])])
    assert [p.parent.name for p in found] == ["cart", "web"]
    assert job_name("/shop/cart", None) == "shop-cart"
    assert job_name("/shop/cart", "/team/deploys/") == "team/deploys/shop-cart"
    with pytest.raises(ValidationError) as err:
        find_app_files([str(tmp_path / "envs"), str(tmp_path / "nope")])
    assert len(err.value.problems) == 2
    check_folder("team/deploys")
    check_folder(None)
    with pytest.raises(ValidationError) as err:
        check_folder("team//a?b/..")
    assert len(err.value.problems) == 3


def test_git_origin_reads_config(tmp_path):
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / ".git" / "config").write_text(
        '[core]\n\tbare = false\n[remote "origin"]\n\turl = git@git.example.com:shop/cart.git\n'
        "\tfetch = +refs/heads/*:refs/remotes/origin/*\n")
    (repo / "svc").mkdir()
    assert git_origin(repo / "svc") == (repo.resolve(), "git@git.example.com:shop/cart.git")
    wt = tmp_path / "wt"
    wt.mkdir()
    (repo / ".git" / "worktrees" / "wt").mkdir(parents=True)
    (repo / ".git" / "worktrees" / "wt" / "commondir").write_text("../..\n")
    (wt / ".git").write_text(f"gitdir: {repo / '.git' / 'worktrees' / 'wt'}\n")
    assert git_origin(wt) == (wt.resolve(), "git@git.example.com:shop/cart.git")


def test_cli_jenkinsfile_writes_file_next_to_app(tmp_path):
    tree = write_sample_tree(tmp_path)
    out = tree["cart"].parent / "Jenkinsfile"
    result = CliRunner().invoke(main, ["jenkins", "jenkinsfile", str(tree["cart"]), "--env", "staging,prod",
                                       "--env-dir", str(tree["envs"]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    top = groovy.parse(text).block("pipeline")
    assert "DEPLOYKIT_APP = 'app.yaml'" in text
    assert [s.strings[0] for s in top.block("stages").walk() if s.name == "stage"] == [
        "Build and push", "Build", "Push", "Deploy staging", "Approve prod", "Deploy prod"]
    assert "regenerate with" in text and "jenkins jenkinsfile" in text


def test_cli_jenkinsfile_bad_env_exits_2(tmp_path):
    tree = write_sample_tree(tmp_path)
    result = CliRunner().invoke(main, ["jenkins", "jenkinsfile", str(tree["cart"]), "--env", "staging,bad env",
                                       "--env-dir", str(tree["envs"])])
    assert result.exit_code == 2 and "not a valid environment name" in result.output
