"""`deploykit lb`: the HAProxy sync daemon (`lb run`) and the offline config render (`lb render`).

`run` lives in deploykit.cli.lb_run_cmd and is imported only when used, so `lb render`
(also the benchmark) does not pay for the daemon's imports.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from deploykit.cli.common import FormatChoice, env_dir_option, handle_errors, out_option
from deploykit.errors import Problem, ValidationError
from deploykit.lb.render import RenderResult

_LAZY = {"run": ("deploykit.cli.lb_run_cmd", "run")}


class _LbGroup(click.Group):
    """Adds subcommands from modules that are imported on first use (and may not exist yet)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        lazy = [name for name, (module, _) in _LAZY.items() if importlib.util.find_spec(module) is not None]
        return sorted({*super().list_commands(ctx), *lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in _LAZY:
            module, attr = _LAZY[cmd_name]
            if importlib.util.find_spec(module) is not None:
                command = getattr(importlib.import_module(module), attr)
        return command


@click.group(cls=_LbGroup)
def lb() -> None:
    """HAProxy sync daemon and offline config render.

    \b
    Examples:
      deploykit lb run --env prod
      deploykit lb render --apps-json apps.json --out haproxy.cfg
    """


@lb.command("render")
@click.option("--apps-json", "apps_json", required=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="A saved /v2/apps?embed=apps.tasks response ('-' for stdin).")
@click.option("--group", "groups", multiple=True, help="Route only apps in this HAPROXY_GROUP (repeatable).")
@click.option("--ssl-certs", "ssl_certs", multiple=True, type=click.Path(),
              help="Certificate file or folder for the https frontend (repeatable; like marathon-lb's --ssl-certs).")
@click.option("--templates", "template_dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Folder with the haproxy/ templates to override (others: the shipped ones).")
@out_option("-", "Where to write haproxy.cfg ('-': stdout).")
@click.option("--env", "env_name", default=None, help="Take HAProxy settings from this environment's file.")
@env_dir_option
@click.option("--strict", is_flag=True, help="Exit 2 when any app is rejected (default: skip it and warn).")
@click.option("--quiet", "-q", is_flag=True, help="No summary on stderr.")
@click.option("--output", "-o", "output", type=FormatChoice(["text", "json"]), default="text", show_default=True,
              help="json: print the summary (skipped apps, ignored labels) as one JSON document; needs --out FILE.")
@handle_errors("lb render")
def render_cmd(apps_json: str, groups: tuple[str, ...], ssl_certs: tuple[str, ...], template_dir: str | None, out: str,
               env_name: str | None, env_dir: str | None, strict: bool, quiet: bool, output: str) -> RenderResult:
    """Render haproxy.cfg from a saved Marathon /v2/apps?embed=apps.tasks response.

    \b
    Apps with invalid or unsafe labels are skipped (listed on stderr); every other app is routed.
    Example:
      curl -s 'http://marathon:8080/v2/apps?embed=apps.tasks' > apps.json
      deploykit lb render --apps-json apps.json --group external --out haproxy.cfg && haproxy -c -f haproxy.cfg
    """
    if output == "json" and out == "-":
        raise ValidationError([Problem(None, "--output", "--output json writes the summary to stdout",
                                       hint="give the config a file: --out haproxy.cfg")])
    from deploykit.lb.model import build_model
    from deploykit.lb.render import renderer_for
    from deploykit.lb.settings import settings_from_environment

    env = None
    if env_name:
        from deploykit.envs import load_environment  # pydantic: only when an environment is asked for

        env = load_environment(env_name, env_dir)
    # the same settings and templates as `lb run`
    settings = settings_from_environment(env, groups=groups, ssl_certs=ssl_certs)
    renderer = renderer_for(env, template_dir)  # before reading the input: a bad template fails fast
    model = build_model(_read_apps(apps_json), settings)
    if strict and model.rejected:
        raise ValidationError([Problem(apps_json, r.app_id, r.reason) for r in model.rejected])
    text = renderer.render(model)
    if out == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        try:
            with open(out, "w") as f:
                f.write(text)
        except OSError as exc:
            raise ValidationError([Problem(out, "", f"cannot write: {exc.strerror or exc}")]) from exc
    result = RenderResult(model, out if out != "-" else "<stdout>", len(text))
    if not quiet and output == "text":
        click.echo("".join(line + "\n" for line in result.report_lines()), err=True, nl=False)
    return result  # its to_dict() is the JSON summary


def _read_apps(path: str) -> list[dict]:
    """The apps of a saved /v2/apps?embed=apps.tasks response ({"apps": [...]} or a bare list); '-' is stdin."""
    from deploykit.lb.marathon_json import NotAppsDocument, decode_apps

    name = "<stdin>" if path == "-" else path
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
        return decode_apps(data)
    except OSError as exc:
        raise ValidationError([Problem(name, "", f"cannot read: {exc.strerror or exc}")]) from exc
    except NotAppsDocument as exc:
        raise ValidationError([Problem(name, "apps", str(exc),
                                       hint="save the output of GET /v2/apps?embed=apps.tasks")]) from exc
    except ValueError as exc:
        raise ValidationError([Problem(name, "", f"not valid JSON: {exc}")]) from exc
