"""`deploykit deploy`, `diff`, `status`, `history`, `rollback`: parse, call deploykit.deploy, print.

Progress goes to stderr (a rich live view on a terminal, plain lines otherwise), so stdout
holds only the result: a summary for people or exactly one JSON document with --output json.
"""

from __future__ import annotations

import signal
import sys
import time
from typing import Any

import click

from deploykit.cli.common import console, env_options, handle_errors, output_options


class DurationType(click.ParamType):
    """`90s`, `10m`, `1m30s` (a bare number is refused: seconds or minutes?)."""

    name = "duration"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        if isinstance(value, float):
            return value
        from deploykit.durations import DurationError, parse_duration

        try:
            return parse_duration(value)
        except DurationError as exc:
            self.fail(f"{exc} ({exc.hint})", param, ctx)


DURATION = DurationType()


def image_options(func):
    func = click.option("--from-build", type=click.Path(dir_okay=False), help="Build record written by push.")(func)
    func = click.option("--image-digest", help="Run this digest of the app's image (sha256:...).")(func)
    func = click.option("--image-tag", help="Run this tag of the app's image.")(func)
    return func


class Progress:
    """Prints deploy progress on stderr: rich live status on a terminal, plain lines otherwise."""

    def __init__(self) -> None:
        self.con = console(stderr=True)
        self.live = self.con.is_terminal
        self._status = None
        self._last_line = ""
        self._last_time = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase.endswith("_wait"):
            line = self._wait_line(phase, info)
            if self.live:
                if self._status is None:
                    self._status = self.con.status(line)
                    self._status.start()
                else:
                    self._status.update(line)
                return
            # plain logs: a line when something other than the clock changed, else every 10 s
            key = self._wait_line(phase, {**info, "elapsed_seconds": 0})
            now = time.monotonic()
            if key != self._last_line or now - self._last_time > 10:
                self._last_line, self._last_time = key, now
                self.con.print(line)
            return
        self.close()
        text = info.get("message") or info.get("what") or info.get("prefix") or ""
        self.con.print(f"[bold]{phase}[/]: {text}" if self.live else f"{phase}: {text}")

    def _wait_line(self, phase: str, info: dict) -> str:
        new = info.get("new_version")
        parts = []
        for version, c in (info.get("versions") or {}).items():
            tag = "new" if version == new else "old"
            parts.append(f"{tag} {c['healthy']}/{c['running']} healthy")
        fails = info.get("failures") or {}
        nfail = fails.get("task_failed", 0) + fails.get("unhealthy_kills", 0)
        step = info.get("step") or "waiting"
        text = f"{phase.replace('_wait', '')} {info.get('id')}: {step}; {', '.join(parts) or 'no tasks yet'}"
        text += f"; {info.get('elapsed_seconds', 0):.0f}s of {info.get('timeout', 0):.0f}s"
        if nfail or fails.get("failed_health_checks"):
            text += f"; failures {nfail}, failed checks {fails.get('failed_health_checks', 0)}"
        return text

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


def _with_stop(fn):
    """Run fn(stop) with SIGTERM recorded into `stop` (the wait loop acts on it)."""
    from deploykit.deploy import Stop

    stop = Stop()
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, lambda *_: stop.request("SIGTERM"))
    except ValueError:  # not the main thread (tests calling the command in a thread)
        previous = None
    try:
        return fn(stop)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _summary(doc: dict) -> None:
    con = console()
    versions = doc.get("versions") or {}
    con.print(f"[bold]{doc.get('result')}[/]: {doc.get('app_id')} in {doc.get('environment')}")
    if doc.get("deploymentId"):
        con.print(f"  deployment: {doc['deploymentId']}")
    if versions.get("from") or versions.get("to"):
        before = versions.get("from") or "none (first deploy)"
        con.print(f"  version: {before} -> {versions.get('to') or 'unchanged'}")
    cfg = doc.get("config") or {}
    if cfg.get("prefix"):
        con.print(f"  config: {cfg['prefix']}" + (" (written)" if cfg.get("written") else ""))
    t = doc.get("timings") or {}
    if t:
        con.print("  timings: " + ", ".join(f"{k}={v}" for k, v in t.items() if v is not None))
    for err in doc.get("errors") or []:
        con.print(f"  warning: {err}")


@click.command()
@click.argument("app_yaml", type=click.Path(dir_okay=False))
@env_options
@image_options
@click.option("--timeout", type=DURATION, default=None, help="Deploy budget (default: derived from the app).")
@click.option("--rollback-timeout", type=DURATION, default=None, help="Rollback budget (default: derived).")
@click.option("--lock-timeout", type=DURATION, default="0s", show_default=True, help="Wait this long for the lock.")
@click.option("--max-failures", type=click.IntRange(1), default=2, show_default=True,
              help="New-version task failures / unhealthy kills before giving up.")
@click.option("--no-rollback", is_flag=True, help="On failure leave the deployment for a human (exit 1).")
@click.option("--dry-run", is_flag=True, help="Show what would change; touch nothing.")
@click.option("--force", is_flag=True, help="Cancel a running deployment of the app (never the default).")
@click.option("--rollback-on-interrupt", is_flag=True,
              help="Ctrl-C/SIGTERM while waiting rolls back (for CI aborts) instead of leaving the deployment.")
@output_options
@handle_errors("deploy")
def deploy(app_yaml, env_name, env_dir, image_tag, image_digest, from_build, timeout, rollback_timeout, lock_timeout,
           max_failures, no_rollback, dry_run, force, rollback_on_interrupt, output, junit_path):
    """Deploy an app: validate, lock, write config, PUT to Marathon, wait, roll back on failure.

    \b
    Examples:
      deploykit deploy app.yaml --env prod --from-build build.json --output json
      deploykit deploy app.yaml --env local --dry-run
    """
    from deploykit.deploy import DeployOptions
    from deploykit.deploy import deploy as run_deploy

    opts = DeployOptions(app_path=app_yaml, env_name=env_name, env_dir=env_dir, image_tag=image_tag,
                         image_digest=image_digest, from_build=from_build, timeout=timeout,
                         rollback_timeout=rollback_timeout, lock_timeout=lock_timeout, no_rollback=no_rollback,
                         dry_run=dry_run, force=force, max_failures=max_failures,
                         rollback_on_interrupt=rollback_on_interrupt)
    progress = Progress()
    try:
        doc = _with_stop(lambda stop: run_deploy(opts, progress=progress, stop=stop))
    finally:
        progress.close()
    if output != "json":
        if doc.get("lines"):
            for line in doc["lines"]:
                click.echo(line)
        _summary(doc)
    return doc


@click.command()
@click.argument("app_yaml", type=click.Path(dir_okay=False))
@env_options
@image_options
@output_options
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes (like helm diff).")
@handle_errors("diff")
def diff(app_yaml, env_name, env_dir, image_tag, image_digest, from_build, output, junit_path, detailed_exitcode):
    """Show the exact change a deploy would make (Marathon JSON and config keys); touch nothing.

    \b
    Examples:
      deploykit diff app.yaml --env prod
      deploykit diff app.yaml --env prod --image-tag 1.4.2 --detailed-exitcode
    """
    from deploykit.deploy import DeployOptions
    from deploykit.deploy import diff as run_diff

    opts = DeployOptions(app_path=app_yaml, env_name=env_name, env_dir=env_dir, image_tag=image_tag,
                         image_digest=image_digest, from_build=from_build)
    doc = run_diff(opts)
    if output != "json":
        for line in doc["lines"]:
            click.echo(line)
    if detailed_exitcode and doc["result"] != "unchanged":
        if output == "json":
            from deploykit.cli.common import print_json

            print_json({"ok": True, "command": "diff", **doc})
        sys.exit(2)
    return doc


@click.command()
@click.argument("app")
@env_options
@output_options
@handle_errors("status")
def status(app, env_name, env_dir, output, junit_path):
    """Versions, instances, health and running deployments of APP (app.yaml path or Marathon id).

    \b
    Examples:
      deploykit status /shop/cart --env prod
      deploykit status app.yaml --env local --output json
    """
    from deploykit.deploy import resolve_target
    from deploykit.deploy import status as run_status

    doc = run_status(resolve_target(app, env_name, env_dir))
    if output != "json":
        con = console()
        if not doc["exists"]:
            con.print(f"{doc['app_id']}: not deployed in {doc['environment']}")
            return doc
        facts = [f"version {doc['version']}", f"{doc['healthy']}/{doc['instances']} healthy"]
        if doc.get("deployments"):
            facts[-1] += " (new version; old tasks are listed below)"
        facts.append(f"image {doc['image']}" if doc.get("image") else "no image (process tasks)")
        facts.append(f"config {doc['config_hash']}" if doc.get("config_hash") else "no config")
        con.print(f"[bold]{doc['app_id']}[/] in {doc['environment']}: " + ", ".join(facts))
        for version, c in doc["versions"].items():
            con.print(f"  {version}: {c['healthy']}/{c['running']} healthy")
        for dep in doc["deployments"]:
            con.print(f"  deployment {dep['id']}: {dep['age']}, step {dep['step']} {', '.join(dep['actions'])}")
            if dep.get("client"):
                con.print(f"    {dep['client']['message']}")
        failure = doc.get("last_task_failure")
        if failure:
            con.print(f"  last task failure: {failure.get('state')} {failure.get('message', '')}")
    return doc


@click.command()
@click.argument("app")
@env_options
@output_options
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True)
@handle_errors("history")
def history(app, env_name, env_dir, output, junit_path, limit):
    """Deployed versions of APP with image, git sha, who deployed, config hash and how each ended.

    \b
    Examples:
      deploykit history /shop/cart --env prod
      deploykit history app.yaml --env local --limit 5 --output json
    """
    from deploykit.deploy import history as run_history
    from deploykit.deploy import resolve_target

    doc = run_history(resolve_target(app, env_name, env_dir), limit=limit)
    if output != "json":
        from rich.table import Table

        table = Table("")
        table.add_column("version", no_wrap=True)
        for name in ("result", "image", "git sha", "deployed by", "config"):
            table.add_column(name)
        for row in doc["versions"]:
            result = row.get("result") or ""
            if row.get("reason"):
                result += f" ({row['reason']})"
            table.add_row("*" if row["current"] else "", row["version"], result, str(row["image"] or ""),
                          (row["git_sha"] or "")[:12], str(row["deployed_by"] or ""), str(row["config_hash"] or ""))
        console().print(table)
    return doc


@click.command()
@click.argument("app")
@env_options
@click.option("--to", "to_version", default=None, help="Version to return to (default: the previous one).")
@click.option("--timeout", type=DURATION, default=None, help="Budget (default: derived from the app).")
@click.option("--lock-timeout", type=DURATION, default="0s", show_default=True)
@click.option("--force", is_flag=True, help="Cancel a running deployment of the app.")
@output_options
@handle_errors("rollback")
def rollback(app, env_name, env_dir, to_version, timeout, lock_timeout, force, output, junit_path):
    """Return APP to an earlier version and wait for it (same watcher and report as deploy).

    \b
    Examples:
      deploykit rollback /shop/cart --env prod
      deploykit rollback /shop/cart --env prod --to 2026-11-25T17:02:11.753Z --force
    """
    from deploykit.deploy import DeployOptions, resolve_target
    from deploykit.deploy import rollback as run_rollback

    target = resolve_target(app, env_name, env_dir)
    opts = DeployOptions(app_path=app, env_name=env_name, env_dir=env_dir, timeout=timeout,
                         lock_timeout=lock_timeout, force=force)
    progress = Progress()
    try:
        doc = _with_stop(lambda stop: run_rollback(target, to_version=to_version, opts=opts, progress=progress,
                                                   stop=stop))
    finally:
        progress.close()
    if output != "json":
        _summary(doc)
    return doc
