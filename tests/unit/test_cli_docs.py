"""docs/cli.md lists every flag of every command and is generated from the click definitions (issue 17)."""

from __future__ import annotations

import re
from pathlib import Path

import click

from deploykit.cli import docgen

REPO = Path(__file__).resolve().parents[2]


def test_docs_cli_md_is_current():
    """If this fails: python -m deploykit.cli.docgen (and commit docs/cli.md)."""
    assert docgen.main(["--check"]) == 0


def test_every_visible_flag_of_every_command_is_on_the_page():
    from deploykit.cli import main

    page = (REPO / "docs" / "cli.md").read_text()
    ctx = click.Context(main)
    for name, command in docgen._walk(main, [], ctx):
        section = page.split(f"## `deploykit {name}`", 1)[1].split("\n## ", 1)[0]
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert f"`{param.opts[0]}`" in section, (name, param.opts)


def test_the_exit_codes_people_read_are_the_ones_the_code_uses():
    codes = {code for code, _ in docgen.EXIT_CODES}
    readme = (REPO / "README.md").read_text()
    listed = readme.split("Exit codes:", 1)[1].split("\n\n", 1)[0]
    assert {int(c) for c in re.findall(r"(?<![\w-])(\d+) [a-z]", listed)} == codes
    from deploykit import errors

    defined = {v for k, v in vars(errors).items() if k.startswith("EXIT_")} | {errors.InternalError.exit_code}
    assert defined == codes
