"""`deploykit jenkins jenkinsfile|sync`: parse options, call deploykit.jenkins, print."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import click

from deploykit.cli.common import env_dir_option, handle_errors, out_option, output_options
from deploykit.errors import Problem, ValidationError

TOKEN_ENV = "JENKINS_API_TOKEN"


def _pipeline_options(func):
    opts = [
        click.option("--approve", default="prod,production", show_default=True,
                     help="Environments that wait for a manual `input` before their deploy."),
        click.option("--submitter", default=None, help="Jenkins users/groups allowed to approve (comma-separated)."),
        click.option("--build-env", default=None, help="Environment whose registry build/push use (default: first)."),
        click.option("--build-timeout", type=int, default=30, show_default=True, help="Minutes for Build and Push."),
        click.option("--deploy-timeout", type=int, default=30, show_default=True, help="Minutes per Deploy stage."),
        click.option("--approval-timeout", type=int, default=24, show_default=True, help="Hours to wait for approval."),
        click.option("--lock-timeout", default="5m", show_default=True,
                     help="How long a deploy waits for deploykit's lock when someone else holds it."),
        click.option("--templates", "templates_dir", type=click.Path(file_okay=False), default=None,
                     help="Folder with your own Jenkinsfile.j2 / jenkins-job.xml.j2 (default: the shipped ones)."),
        env_dir_option,
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def _options(envs: str, approve: str, **kw):
    from deploykit.jenkins.appinfo import parse_env_list
    from deploykit.jenkins.pipeline import PipelineOptions

    return PipelineOptions(
        envs=tuple(parse_env_list(envs)),
        approve=tuple(a.strip() for a in approve.split(",") if a.strip()),
        submitter=kw.get("submitter"),
        build_env=kw.get("build_env"),
        build_timeout_minutes=kw["build_timeout"],
        deploy_timeout_minutes=kw["deploy_timeout"],
        approval_timeout_hours=kw["approval_timeout"],
        lock_timeout=kw["lock_timeout"],
        app_path=kw.get("app_path"),
        repo_url=kw.get("repo_url"),
        branch=kw.get("branch") or "main",
        regenerate=_command_line(),
    )


def _command_line() -> str:
    """The command as typed, minus defaults (shown in the Jenkinsfile header so it can be regenerated)."""
    ctx = click.get_current_context()
    words = ctx.command_path.split()
    words[0] = "deploykit"
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if isinstance(param, click.Argument):
            words += [shlex.quote(str(v)) for v in (value if isinstance(value, tuple) else (value,))]
        elif value not in (None, False, param.default) and param.name not in ("output", "junit_path", "out"):
            flag = max(param.opts, key=len)
            words += [flag] if value is True else [flag, shlex.quote(str(value))]
    return " ".join(words)


@click.group("jenkins")
def jenkins() -> None:
    """Render Jenkinsfiles and keep Jenkins pipeline jobs in sync with app repos.

    \b
    Examples:
      deploykit jenkins jenkinsfile app.yaml --env staging,prod --out Jenkinsfile
      JENKINS_URL=https://ci.example.com JENKINS_USER=bot JENKINS_API_TOKEN=... \\
        deploykit jenkins sync --env staging,prod --folder deploys --dry-run apps/
    """


@jenkins.command("jenkinsfile")
@click.argument("app_file", type=click.Path(dir_okay=False))
@click.option("--env", "envs", default="staging,prod", show_default=True,
              help="Environments to deploy to, in order (comma-separated).")
@out_option(None, "Write here instead of stdout (e.g. Jenkinsfile at the repo root).")
@click.option("--app-path", default=None, help="app.yaml path inside the workspace (default: relative to repo root).")
@_pipeline_options
@output_options
@handle_errors("jenkins jenkinsfile")
def jenkinsfile_cmd(app_file: str, envs: str, out: str | None, templates_dir: str | None, env_dir: str | None,
                    approve: str, output: str, junit_path: str | None, **kw) -> dict:
    """Render a declarative Jenkinsfile: Build, Push, then Deploy <env> for each environment.

    Prod-like environments wait for a manual input; every deploy runs inside lock(); credentials
    are bound with withCredentials from ids given as build parameters (no secret is ever in the file).

    \b
    Example:
      deploykit jenkins jenkinsfile examples/hello/app.yaml --env staging,prod --out Jenkinsfile
    """
    from deploykit.jenkins.service import render_for_app

    options = _options(envs, approve, **kw)
    to_file = out not in (None, "-")
    base = Path(out).resolve().parent if to_file else None
    facts, _, text = render_for_app(app_file, options, templates_dir=templates_dir, env_dir=env_dir, base=base)
    doc = {"app": facts.app_id, "envs": list(options.envs), "path": out if to_file else None}
    if to_file:
        _write(Path(out), text)
        if output == "text":
            click.echo(f"wrote {out} ({facts.app_id}: {', '.join(options.envs)})", err=True)
    elif output == "text":
        click.echo(text, nl=False)
    else:
        doc["jenkinsfile"] = text  # stdout holds one JSON document, so the text travels inside it
    return doc


@jenkins.command("sync")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--env", "envs", required=True, help="Environments the jobs deploy to, in order (comma-separated).")
@click.option("--url", envvar="JENKINS_URL", default=None, help="Jenkins URL [env: JENKINS_URL].")
@click.option("--user", envvar="JENKINS_USER", default=None, help="Jenkins user [env: JENKINS_USER].")
@click.option("--token-env", default=TOKEN_ENV, show_default=True,
              help="Variable holding the user's API token (never passed on the command line).")
@click.option("--folder", default=None, help="Jenkins folder for the jobs (nested: a/b); created if missing.")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option("--repo-url", default=None, help="Git URL the jobs check out (default: the app repo's origin).")
@click.option("--branch", default="main", show_default=True, help="Branch the jobs build.")
@click.option("--timeout", "http_timeout", type=float, default=10.0, show_default=True, help="HTTP timeout (s).")
@_pipeline_options
@output_options
@handle_errors("jenkins sync")
def sync_cmd(paths: tuple[str, ...], envs: str, url: str | None, user: str | None, token_env: str,
             folder: str | None, dry_run: bool, templates_dir: str | None, env_dir: str | None, approve: str,
             http_timeout: float, output: str, junit_path: str | None, **kw) -> dict:
    """Create or update one pipeline job per app (app.yaml files, or folders searched for them).

    Idempotent: a job whose config.xml is unchanged (after normalising what Jenkins rewrites)
    is not touched. Prints a unified diff of every change; --dry-run changes nothing.

    \b
    Example:
      deploykit jenkins sync --env staging,prod --folder shop --dry-run services/
    """
    from deploykit.jenkins.service import prepare_jobs, run_sync

    token = os.environ.get(token_env) or None
    _check_connection_options(url, user, token, token_env)
    options = _options(envs, approve, **kw)
    jobs = prepare_jobs(list(paths), options, folder=folder, templates_dir=templates_dir, env_dir=env_dir)

    from deploykit.clients.jenkins import JenkinsClient

    client = JenkinsClient(url, user=user, token=token, timeout=http_timeout)
    report = run_sync(client, jobs, dry_run=dry_run, progress=lambda m: click.echo(m, err=True))
    report["url"] = client.url
    if output != "json":
        _show(report)
    return report


def _check_connection_options(url: str | None, user: str | None, token: str | None, token_env: str) -> None:
    problems = []
    if not url:
        problems.append(Problem(None, "--url", "no Jenkins URL", "pass --url or set JENKINS_URL"))
    elif "@" in urlsplit(url).netloc:  # never echo it: the part before @ may be a token
        problems.append(Problem(None, "--url", "the Jenkins URL contains credentials",
                                "use JENKINS_USER and JENKINS_API_TOKEN instead of user:token@ in the URL"))
    elif not url.startswith(("http://", "https://")) or not urlsplit(url).hostname:
        problems.append(Problem(None, "--url", f"{url!r} is not an http(s) URL", "e.g. https://jenkins.example.com"))
    if user and not token:
        problems.append(Problem(None, token_env, f"JENKINS_USER is set but ${token_env} is empty",
                                "create an API token at <jenkins>/me/configure and export it"))
    if token and not user:
        problems.append(Problem(None, "--user", f"${token_env} is set but no user", "set JENKINS_USER or --user"))
    if problems:
        raise ValidationError(problems)


def _show(report: dict) -> None:
    for job in report["jobs"]:
        verb = {"create": "create", "update": "update", "unchanged": "unchanged"}[job["action"]]
        prefix = "would " if report["dry_run"] and verb != "unchanged" else ""
        click.echo(f"{prefix}{verb}: {job['job']}  (from {job['source']})")
        for folder in job["folders"]:
            click.echo(f"  {prefix}create folder {folder}")
        if job["diff"]:
            click.echo(job["diff"], nl=not job["diff"].endswith("\n"))
    s = report["summary"]
    tail = " (dry run: nothing changed)" if report["dry_run"] else ""
    click.echo(f"{s['create']} to create, {s['update']} to update, {s['unchanged']} unchanged{tail}")


def _write(path: Path, text: str) -> None:
    from deploykit.atomicfile import atomic_write

    atomic_write(path, text, mode=0o600)
