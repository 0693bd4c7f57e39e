"""The `deploykit` command line (the console script): a click group whose subcommands are imported lazily.

Each command lives in its own module and is imported only when it runs, so `deploykit --help`
lists the commands from the table below without paying for pydantic, kazoo, requests or aiohttp.
The CLI holds no logic: it parses, calls the library and prints.
"""

from __future__ import annotations

import importlib
import sys

import click

from deploykit import __version__
from deploykit.hints import did_you_mean

# name -> (module, attribute, the one-line help `deploykit --help` shows without importing the module)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "validate": ("deploykit.cli.spec_cmds", "validate", "Check app.yaml files and their environment."),
    "render": ("deploykit.cli.spec_cmds", "render", "Print the Marathon app JSON for an environment."),
    "build": ("deploykit.cli.image_cmds", "build", "Build the app's image, tagged from git."),
    "push": ("deploykit.cli.image_cmds", "push", "Push the built image and pin its digest."),
    "config": ("deploykit.cli.config_cmds", "config", "Read, write and watch Consul KV config."),
    "deploy": ("deploykit.cli.deploy_cmds", "deploy", "Deploy an app: lock, config, Marathon, wait, roll back."),
    "diff": ("deploykit.cli.deploy_cmds", "diff", "Show what a deploy would change; touch nothing."),
    "status": ("deploykit.cli.deploy_cmds", "status", "Show an app's versions, instances and deployments."),
    "history": ("deploykit.cli.deploy_cmds", "history", "List an app's deployed versions."),
    "rollback": ("deploykit.cli.deploy_cmds", "rollback", "Return an app to an earlier version."),
    "lb": ("deploykit.cli.lb_cmds", "lb", "HAProxy sync daemon and offline config render."),
    "local": ("deploykit.cli.local_cmds", "local", "Run the local devcluster (Marathon + Consul, Docker, registry)."),
    "jenkins": ("deploykit.cli.jenkins_cmds", "jenkins", "Render Jenkinsfiles and sync Jenkins jobs."),
}

MAIN_HELP = """\
deploykit: build, deploy and route Docker apps on Mesos/Marathon.

\b
Examples:
  deploykit local up --detach
  deploykit validate examples/hello/app.yaml --env local
  deploykit deploy examples/hello/app.yaml --env local --output json
"""


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr, _ = entry
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, _, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["deploykit.argv"] = list(args)  # for invoke's last line of defence
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        """Run the subcommand; whatever escapes it (a bug, Ctrl-C) is reported, never a raw traceback.

        Commands report their own errors through cli.common.handle_errors; this catches what escapes
        before or around that (an import, an option callback), so the rule holds for every command.
        """
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except (Exception, KeyboardInterrupt) as exc:
            from deploykit.cli.common import output_format_in, report_error

            argv = ctx.meta.get("deploykit.argv", [])
            report_error(exc, self._command_name(argv), output_format_in(argv))

    @staticmethod
    def _command_name(argv: list[str]) -> str:
        """`config get` or `validate` from raw arguments, importing nothing (the import may be what failed)."""
        words = [w for w in argv[:2] if not w.startswith("-")][:2]
        if not words or words[0] not in COMMANDS:
            return "deploykit"
        module_name, attr, _ = COMMANDS[words[0]]
        module = sys.modules.get(module_name)
        is_group = isinstance(getattr(module, attr, None), click.Group)
        return " ".join(words if is_group else words[:1])

    def resolve_command(self, ctx, args):
        name = args[0] if args else None
        if name is not None and name not in COMMANDS and not name.startswith("-"):
            hint = did_you_mean(name, COMMANDS, fallback=None)
            ctx.fail(f"No such command {name!r}." + (f" {hint.capitalize()}" if hint else ""))
        return super().resolve_command(ctx, args)


@click.group(
    cls=LazyGroup,
    help=MAIN_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="deploykit")
def main() -> None:
    """The root group; its help text is MAIN_HELP."""
