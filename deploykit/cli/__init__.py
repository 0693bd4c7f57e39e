"""The `deploykit` command line: a click group whose subcommands are imported lazily.

Each command lives in its own module and is imported only when it runs (or when
`--help` lists it by name), so `deploykit --help` does not pay for pydantic, kazoo,
requests or aiohttp. The CLI holds no logic: it parses, calls the library and prints.
"""

from __future__ import annotations

import importlib

import click

from deploykit import __version__

# The command table and root help live in the click-free deploykit.commands, so the console
# script (deploykit.launcher) can answer `deploykit --help` without importing click.
from deploykit.commands import COMMANDS, MAIN_HELP  # COMMANDS is re-exported


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

    def resolve_command(self, ctx, args):
        name = args[0] if args else None
        if name is not None and name not in COMMANDS and not name.startswith("-"):
            import difflib

            close = difflib.get_close_matches(name, list(COMMANDS), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            ctx.fail(f"No such command {name!r}.{hint}")
        return super().resolve_command(ctx, args)


@click.group(
    cls=LazyGroup,
    help=MAIN_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="deploykit")
def main() -> None:
    """The root group; its help text is deploykit.commands.MAIN_HELP."""
