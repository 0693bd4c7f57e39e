"""The Jenkins double answers python-jenkins the way Jenkins does (so the sync tests mean something)."""

from __future__ import annotations

import jenkins
import pytest
import requests

pytestmark = pytest.mark.integration
JOB = "<flow-definition><description>d</description><definition class='x'><script>s</script></definition>" \
      "</flow-definition>"


@pytest.fixture
def server(jenkins_double):
    return jenkins.Jenkins(jenkins_double.url, username=jenkins_double.user, password=jenkins_double.token)


def test_info_version_whoami(server, jenkins_double):
    with pytest.raises(jenkins.BadHTTPException):
        server.get_version()  # like Jenkins: python-jenkins sends no credentials before its first API call
    assert server.get_whoami()["id"] == "deployer"
    assert server.get_version() == "2.440.3"
    assert server.get_info()["jobs"] == []
    who = requests.get(f"{jenkins_double.url}/whoAmI/api/json", auth=(jenkins_double.user, jenkins_double.token))
    assert who.json()["authenticated"] is True and who.json()["name"] == "deployer"


def test_folders_jobs_and_configs(server, jenkins_double):
    server.create_folder("team")
    with pytest.raises(jenkins.JenkinsException, match="Probably it already exists"):
        server.create_folder("team")
    server.create_job("team/app", JOB)
    assert server.job_exists("team/app") and not server.job_exists("team/other")
    assert server.is_folder("team") and not server.is_folder("team/app")
    stored = server.get_job_config("team/app")
    assert stored.startswith("<?xml version='1.1'") and 'plugin="workflow-job@' in stored
    with pytest.raises(jenkins.JenkinsException, match="already exists"):
        server.create_job("team/app", JOB)
    with pytest.raises(jenkins.JenkinsException, match="folder for the job does not exist"):
        server.create_job("nope/app", JOB)
    server.reconfig_job("team/app", JOB.replace(">s<", ">t<"))
    assert "<script>t</script>" in server.get_job_config("team/app")
    with pytest.raises(jenkins.NotFoundException):
        server.get_job_config("team/missing")
    assert [j["name"] for j in server.get_info("job/team")["jobs"]] == ["app"]


def test_build_queue_and_build_info(server):
    server.create_job("app", JOB)
    queue_id = server.build_job("app", {"ENV": "prod"})
    item = server.get_queue_item(queue_id)
    assert item["_class"] == "hudson.model.Queue$LeftItem"
    number = item["executable"]["number"]
    build = server.get_build_info("app", number)
    assert build["result"] == "SUCCESS" and build["actions"][0]["parameters"] == [{"name": "ENV", "value": "prod"}]
    assert server.get_job_info("app")["lastBuild"]["number"] == number
    with pytest.raises(jenkins.JenkinsException, match="does not exist"):
        server.get_build_info("app", 42)


def test_security(jenkins_double):
    bad = jenkins.Jenkins(jenkins_double.url, username="deployer", password="wrong")
    with pytest.raises(jenkins.JenkinsException, match=r"\[401\]") as err:
        bad.get_whoami()
    assert "Invalid password/token for user: deployer" in str(err.value)
    anonymous = jenkins.Jenkins(jenkins_double.url)
    with pytest.raises(jenkins.JenkinsException, match=r"\[403\]"):
        anonymous.get_info()
    # a POST without the crumb is refused like Jenkins' CSRF protection does
    r = requests.post(f"{jenkins_double.url}/createItem?name=x", data=JOB,
                      auth=(jenkins_double.user, jenkins_double.token), headers={"Content-Type": "text/xml"})
    assert r.status_code == 403 and "No valid crumb" in r.text
