"""`deploykit jenkins sync` and the Jenkins client against the Jenkins HTTP double (real python-jenkins calls)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jenkins as python_jenkins
import pytest
from click.testing import CliRunner

from deploykit.cli import main
from deploykit.clients.jenkins import JenkinsClient
from deploykit.errors import AuthError, RemoteError, UnreachableError
from tests.harness.common import free_port
from tests.harness.jenkins_double import write_sample_tree

pytestmark = pytest.mark.integration
REPO = "https://git.example.com/shop/services.git"


@pytest.fixture
def tree(tmp_path):
    return write_sample_tree(tmp_path)


def sync(double, tree, *extra, token=None, user="deployer", envs="staging,prod"):
    env = {"JENKINS_URL": double.url, "JENKINS_USER": user, "JENKINS_API_TOKEN": token or double.token}
    args = ["jenkins", "sync", "--env", envs, "--env-dir", str(tree["envs"]), "--repo-url", REPO, *extra]
    if not any(a == str(tree["apps"]) or a.endswith("app.yaml") for a in extra):
        args.append(str(tree["apps"]))
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def test_create_then_noop_then_update(jenkins_double, tree):
    d = jenkins_double
    first = sync(d, tree, "--folder", "team/shop")
    assert first.exit_code == 0, first.output
    assert "create: team/shop/shop-cart" in first.output and "create: team/shop/shop-web" in first.output
    assert "+++ b/team/shop/shop-cart/config.xml" in first.output  # the diff of what is created
    assert d.state.items["team"].kind == "folder" and d.state.items["team/shop"].kind == "folder"
    cart = d.config("team/shop/shop-cart")
    assert "<name>STAGING_CART_DB_PASSWORD_CREDENTIALS_ID</name>" in cart  # parameters before the first run
    assert "stage(&apos;Deploy prod&apos;)" in cart or "stage('Deploy prod')" in cart
    assert "CpsFlowDefinition" in cart and REPO in cart

    # python-jenkins itself sees a pipeline job
    server = python_jenkins.Jenkins(d.url, username=d.user, password=d.token)
    assert server.get_job_info("team/shop/shop-cart")["_class"] == "org.jenkinsci.plugins.workflow.job.WorkflowJob"

    # unchanged: nothing is written, even after a pipeline run rewrote actions/properties
    d.record_pipeline_run("team/shop/shop-cart", ["PROD_CONSUL_HTTP_TOKEN_CREDENTIALS_ID"])
    writes = len(d.state.writes())
    second = sync(d, tree, "--folder", "team/shop")
    assert second.exit_code == 0, second.output
    assert "0 to create, 0 to update, 2 unchanged" in second.output
    assert len(d.state.writes()) == writes

    # a change in app.yaml (a new secret) updates only that job, with a diff naming it
    tree["cart"].write_text(tree["cart"].read_text().replace(
        "  DB_PASSWORD: {from_env: CART_DB_PASSWORD}\n",
        "  DB_PASSWORD: {from_env: CART_DB_PASSWORD}\n  SMTP_PASSWORD: {from_env: CART_SMTP_PASSWORD}\n"))
    third = sync(d, tree, "--folder", "team/shop")
    assert third.exit_code == 0, third.output
    assert "update: team/shop/shop-cart" in third.output and "unchanged: team/shop/shop-web" in third.output
    assert any(line.startswith("+") and "CART_SMTP_PASSWORD" in line for line in third.output.splitlines())
    posts = [r.path for r in d.state.writes()[writes:]]
    assert posts == ["/job/team/job/shop/job/shop-cart/config.xml"]
    updated = d.config("team/shop/shop-cart")
    assert "CART_SMTP_PASSWORD" in updated
    assert "DeclarativeJobPropertyTrackerAction" in updated  # runtime state kept across the update
    # the new credential's parameter is declared at once, so the next build already has its default
    assert "<name>PROD_CART_SMTP_PASSWORD_CREDENTIALS_ID</name>" in updated
    assert "<defaultValue>shop-cart-prod-cart-smtp-password</defaultValue>" in updated


def test_dry_run_changes_nothing(jenkins_double, tree):
    d = jenkins_double
    result = sync(d, tree, "--dry-run", "--output", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["ok"] is True and doc["dry_run"] is True
    assert doc["summary"] == {"create": 2, "update": 0, "unchanged": 0}
    assert {j["job"] for j in doc["jobs"]} == {"shop-cart", "shop-web"}
    assert d.state.writes() == [] and d.state.items == {}


def test_env_change_shows_diff_and_json_report(jenkins_double, tree, tmp_path):
    d = jenkins_double
    assert sync(d, tree, str(tree["cart"]), envs="staging").exit_code == 0
    junit = tmp_path / "out" / "sync.xml"
    result = sync(d, tree, str(tree["cart"]), "--dry-run", "--output", "json", "--junit", str(junit))
    doc = json.loads(result.output)
    (job,) = doc["jobs"]
    assert job["action"] == "update" and "Deploy prod" in job["diff"]
    assert "<testcase" in junit.read_text()


def test_auth_failure_message(jenkins_double, tree):
    d = jenkins_double
    bad = "wrong-token-9d1e"
    result = sync(d, tree, token=bad)
    assert result.exit_code == 2
    assert "refused the credentials for user 'deployer' (HTTP 401)" in result.output
    assert "JENKINS_API_TOKEN" in result.output
    assert bad not in result.output and d.token not in result.output
    assert d.state.items == {}


def test_anonymous_is_denied_with_a_hint(jenkins_double, tree):
    d = jenkins_double
    env = {"JENKINS_URL": d.url, "JENKINS_USER": None, "JENKINS_API_TOKEN": None}
    args = ["jenkins", "sync", "--env", "staging", "--env-dir", str(tree["envs"]), "--repo-url", REPO,
            str(tree["apps"])]
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 2
    assert "HTTP 403" in result.output and "anonymous" in result.output


def test_unreachable_jenkins_exits_4(tree):
    port = free_port()  # nothing listens there
    env = {**os.environ, "JENKINS_URL": f"http://127.0.0.1:{port}", "JENKINS_USER": "deployer",
           "JENKINS_API_TOKEN": "t0ken-not-shown"}
    cmd = [sys.executable, "-c", "from deploykit.cli import main; main()", "jenkins", "sync", "--env", "staging",
           "--env-dir", str(tree["envs"]), "--repo-url", REPO, "--output", "json", str(tree["apps"])]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 4, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["error"] == "UnreachableError" and "cannot reach Jenkins" in doc["message"]
    assert "t0ken-not-shown" not in proc.stdout + proc.stderr


def test_invalid_input_touches_nothing(jenkins_double, tree):
    d = jenkins_double
    tree["web"].write_text("id: /shop/web\nimage: registry.example.com/shop/web\ninstanses: 1\n")
    result = sync(d, tree)
    assert result.exit_code == 2 and "instanses" in result.output
    assert d.state.requests == []  # validated before Jenkins was contacted


def test_missing_url_and_token_are_reported_together(tree):
    env = {"JENKINS_URL": None, "JENKINS_USER": "deployer", "JENKINS_API_TOKEN": None}
    result = CliRunner().invoke(main, ["jenkins", "sync", "--env", "staging", str(tree["apps"])], env=env)
    assert result.exit_code == 2
    assert "no Jenkins URL" in result.output and "JENKINS_API_TOKEN is empty" in result.output


def test_client_build_queue_and_errors(jenkins_double, tree):
    d = jenkins_double
    client = JenkinsClient(d.url, user=d.user, token=d.token)
    assert client.whoami()["id"] == "deployer"
    xml = "<flow-definition><description>x</description></flow-definition>"
    client.create_job("solo", xml)
    with pytest.raises(RemoteError, match="A job already exists with the name"):
        client._call("create job solo", lambda: client._server.jenkins_open(
            python_jenkins.requests.Request("POST", f"{d.url}/createItem?name=solo", data=xml,
                                            headers={"Content-Type": "text/xml"})))
    with pytest.raises(RemoteError, match="folder for the job does not exist"):
        client.create_job("nofolder/job", xml)
    number = client.build("solo", {"ENV": "staging"})
    item = client.queue_item(number)
    run = item["executable"]["number"]
    info = client.build_info("solo", run)
    assert info["result"] == "SUCCESS" and info["number"] == 1
    assert client.job_info("solo")["lastBuild"]["number"] == 1
    assert client.job_config("missing") is None and client.item_class("missing") is None
    with pytest.raises(RemoteError, match="does not exist"):
        client.job_info("missing")
    with pytest.raises(RemoteError, match="does not exist"):
        client.build_info("solo", 99)
    assert "token" not in repr(client) and d.token not in repr(client)
    with pytest.raises(AuthError):
        JenkinsClient(d.url, user="deployer", token="nope").whoami()
    with pytest.raises(UnreachableError):
        JenkinsClient(f"http://127.0.0.1:{free_port()}", user="u", token="t", timeout=2).whoami()


def test_folder_name_taken_by_a_job(jenkins_double, tree):
    d = jenkins_double
    JenkinsClient(d.url, user=d.user, token=d.token).create_job("team", "<flow-definition/>")
    result = sync(d, tree, "--folder", "team")
    assert result.exit_code == 4 and "is not a folder" in result.output


def test_duplicate_app_ids_refused(jenkins_double, tree):
    d = jenkins_double
    other = Path(tree["apps"]) / "copy" / "app.yaml"
    other.parent.mkdir()
    other.write_text(tree["web"].read_text())
    result = sync(d, tree)
    assert result.exit_code == 2 and "is also made from" in result.output
    assert d.state.requests == []


def test_url_with_credentials_is_refused_without_echoing_it(tree):
    env = {"JENKINS_URL": "https://bot:s3cr3t-tok@jenkins.example.com", "JENKINS_USER": None,
           "JENKINS_API_TOKEN": None}
    result = CliRunner().invoke(main, ["jenkins", "sync", "--env", "staging", str(tree["apps"])], env=env)
    assert result.exit_code == 2 and "contains credentials" in result.output
    assert "s3cr3t-tok" not in result.output
    client = JenkinsClient("http://bot:s3cr3t-tok@127.0.0.1:1", timeout=1)
    with pytest.raises(UnreachableError) as err:
        client.whoami()
    assert "s3cr3t-tok" not in str(err.value) and "s3cr3t-tok" not in repr(client)


def test_item_of_another_kind_is_not_overwritten(jenkins_double, tree):
    d = jenkins_double
    freestyle = "<project><builders/><publishers/></project>"
    JenkinsClient(d.url, user=d.user, token=d.token).create_job("shop-cart", freestyle)
    writes = len(d.state.writes())
    result = sync(d, tree)
    assert result.exit_code == 2 and "of another kind (<project>)" in result.output
    assert len(d.state.writes()) == writes and "<project>" in d.config("shop-cart")
