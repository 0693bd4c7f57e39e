"""`deploykit validate` and `deploykit render`: parse options, call deploykit.spec/render, print.

Imports of the library stay inside the functions so `deploykit --help` never pays for them.
"""

from __future__ import annotations

from pathlib import Path

import click

from deploykit.cli.common import console, env_dir_option, env_options, handle_errors, output_options, print_json


@click.command(
    epilog="""\b
Examples:
  deploykit validate examples/hello/app.yaml --env local
  deploykit validate apps/*/app.yaml --env prod --output json
""",
)
@click.argument("app_files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--env",
    "env_name",
    default=None,
    help="Environment to validate against (default: the base and every overlay, no environment-file rules).",
)
@env_dir_option
@output_options
@handle_errors("validate")
def validate(
    app_files: tuple[str, ...], env_name: str | None, env_dir: str | None, output: str, junit_path: str | None
):
    """Check app.yaml files (and the environment file): every problem at once, exit 2 if any."""
    from rich.markup import escape

    from deploykit.envs import load_environment
    from deploykit.errors import ValidationError
    from deploykit.render.marathon import render_app
    from deploykit.spec import load_app, overlay_names

    problems = []
    checked = []
    environment = None
    if env_name is not None:
        try:
            environment = load_environment(env_name, env_dir)
        except ValidationError as exc:
            problems.extend(exc.problems)
    for app_file in app_files:
        if env_name is None:  # no --env: the base and every overlay, without environment-file rules
            for overlay in overlay_names(app_file):
                try:
                    load_app(app_file, overlay, with_environment_file=False)
                except ValidationError as exc:
                    problems.extend(p for p in exc.problems if p not in problems)
        try:
            spec = load_app(app_file, None if environment is None else env_name, environment)
            if environment is not None:
                render_app(spec, environment, None)  # catches `marathon:` keys that clash with the app
        except ValidationError as exc:
            problems.extend(p for p in exc.problems if p not in problems)
            continue
        if not any(p.file == str(Path(app_file)) for p in problems):
            checked.append({"file": app_file, "id": spec.id, "env": env_name})
    if output == "text":  # the files that passed say so even when another one failed
        con = console()
        for item in checked:
            con.print(f"[green]ok[/] {escape(item['file'])} ({escape(item['id'])}, env {item['env'] or '<base>'})")
    if problems:
        raise ValidationError(problems)
    return {"apps": checked}


@click.command(
    epilog="""\b
Examples:
  deploykit render examples/hello/app.yaml --env local
  deploykit render app.yaml --env prod --image-tag 1.4.2 --output yaml
  deploykit render app.yaml --env prod --from-build build.json > app.json
""",
)
@click.argument("app_file", type=click.Path(dir_okay=False))
@env_options
@click.option("--image-tag", default=None, help="Run this tag of the app's image.")
@click.option("--image-digest", default=None, help="Run this digest (sha256:...) of the app's image.")
@click.option(
    "--from-build",
    "from_build",
    default=None,
    type=click.Path(dir_okay=False),
    help="Run the digest recorded by `deploykit push` (build.json).",
)
@click.option(
    "--output",
    "-o",
    "output",
    type=click.Choice(["json", "yaml"]),
    default="json",
    show_default=True,
    help="Format of the app definition on stdout (errors always go to stderr).",
)
@click.option(
    "--show-secrets", is_flag=True, help="Print secret values (read from their variables) instead of ********."
)
@handle_errors("render", document_output=True)
def render(
    app_file: str,
    env_name: str,
    env_dir: str | None,
    image_tag: str | None,
    image_digest: str | None,
    from_build: str | None,
    output: str,
    show_secrets: bool,
):
    """Print the Marathon app JSON for an environment (valid against the official schema)."""
    import os

    from deploykit.buildrecord import load_record
    from deploykit.envs import load_environment
    from deploykit.errors import ValidationError
    from deploykit.render.marathon import image_reference, render_with_config
    from deploykit.spec import load_app, resolve_secrets

    problems = []
    try:
        environment = load_environment(env_name, env_dir)
    except ValidationError as exc:
        problems.extend(exc.problems)
        environment = None
    record = None
    if from_build:
        try:
            record = load_record(from_build)
        except ValidationError as exc:
            problems.extend(exc.problems)
    try:  # without a valid environment, still report the app's own problems in the same run
        spec = load_app(app_file, env_name if environment else None, environment)
    except ValidationError as exc:
        problems.extend(exc.problems)
    if problems or environment is None:
        raise ValidationError(problems)
    image = image_reference(
        spec, tag=image_tag, digest=image_digest, build_record=record, registry_url=environment.registry.url
    )
    secrets = resolve_secrets(spec, os.environ) if show_secrets else None
    app, _ = render_with_config(
        spec, environment, image, secrets=secrets, mask_secrets=not show_secrets,
        git_sha=record.git_sha if record else None,
    )
    if output == "yaml":
        import yaml

        click.echo(yaml.safe_dump(app, sort_keys=False, default_flow_style=False), nl=False)
    else:
        print_json(app)
    return None
