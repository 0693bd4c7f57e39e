"""What `deploykit jenkins jenkinsfile|sync` do, as library calls (the CLI only parses and prints).

Everything is validated and rendered first, for every app at once, before Jenkins is
contacted: a sync with one broken app.yaml changes no job at all.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from deploykit.errors import Problem, ValidationError
from deploykit.jenkins import jobxml, sync
from deploykit.jenkins.appinfo import AppFacts, load_app_facts
from deploykit.jenkins.pipeline import Pipeline, PipelineOptions, build_pipeline, render_jenkinsfile


def workspace_path(app_file: Path, base: Path | None) -> str:
    """app.yaml as the pipeline sees it: relative to the git repo root (the Jenkins workspace) when there is
    one, else to `base` (where the Jenkinsfile is written), else just its name (Jenkinsfile next to it)."""
    origin = sync.git_origin(app_file.parent)
    root = origin[0] if origin else (base or app_file.parent)
    try:
        rel = Path(os.path.relpath(app_file.resolve(), root.resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return app_file.name
    return app_file.name if rel.startswith("../") else rel


def render_for_app(
    app_file: str | Path,
    options: PipelineOptions,
    *,
    templates_dir: str | Path | None = None,
    env_dir: str | Path | None = None,
    base: Path | None = None,
) -> tuple[AppFacts, Pipeline, str]:
    """Load + validate one app and render its Jenkinsfile."""
    app_file = Path(app_file)
    facts = load_app_facts(app_file, list(options.envs), env_dir)
    if options.app_path is None:
        options = replace(options, app_path=workspace_path(app_file, base))
    pipeline = build_pipeline(facts, options)
    return facts, pipeline, render_jenkinsfile(pipeline, templates_dir)


def prepare_jobs(
    paths: list[str],
    options: PipelineOptions,
    *,
    folder: str | None = None,
    templates_dir: str | Path | None = None,
    env_dir: str | Path | None = None,
) -> list[tuple[jobxml.JobConfig, str]]:
    """Render every app's job config.xml; all problems of all apps are reported together."""
    sync.check_folder(folder)
    problems: list[Problem] = []
    jobs: list[tuple[jobxml.JobConfig, str]] = []
    for app_file in sync.find_app_files(paths):
        try:
            opts = options
            if opts.repo_url is None:
                origin = sync.git_origin(app_file.parent)
                if origin is None or origin[1] is None:
                    problems.append(
                        Problem(
                            str(app_file),
                            "--repo-url",
                            "cannot tell which git repository the job should check out",
                            "run from a clone with an `origin` remote, or pass --repo-url",
                        )
                    )
                    continue
                opts = replace(opts, repo_url=origin[1])
            facts, pipeline, script = render_for_app(app_file, opts, templates_dir=templates_dir, env_dir=env_dir)
        except ValidationError as exc:
            problems += exc.problems
            continue
        name = sync.job_name(facts.app_id, folder)
        description = (
            f"Deploys {facts.app_id} to {', '.join(options.envs)}. Managed by `deploykit jenkins sync` "
            f"from {app_file.name}: changes made here are overwritten by the next sync."
        )
        job = jobxml.JobConfig(name=name, description=description, script=script, source=str(app_file),
                               parameters=pipeline.all_parameters)
        jobs.append((job, jobxml.render_job_xml(job, templates_dir)))
    if problems:
        raise ValidationError(problems)
    sync.check_unique([j for j, _ in jobs])
    return jobs


def run_sync(
    client: sync.JenkinsLike,
    jobs: list[tuple[jobxml.JobConfig, str]],
    *,
    dry_run: bool,
    progress: Callable[[str], None] = lambda _: None,
) -> dict:
    changes = sync.plan(client, jobs)
    if not dry_run:
        sync.apply(client, changes, progress)
    counts = {a: sum(1 for c in changes if c.action == a) for a in ("create", "update", "unchanged")}
    return {"dry_run": dry_run, "summary": counts, "jobs": [c.to_dict() for c in changes]}
