"""Options and output shared by every command.

One place decides how results and errors are shown: `--output json` prints exactly
one JSON document on stdout (errors included, machine-readable); human output goes
through rich, without colour unless stdout is a terminal. `--junit FILE` also writes
a JUnit XML summary for Jenkins. Exit codes come from the exception types in
deploykit.errors.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from deploykit.ci import in_ci
from deploykit.errors import EXIT_INTERRUPTED, DeployKitError, InternalError, ValidationError

env_dir_option = click.option(
    "--env-dir",
    type=click.Path(file_okay=False),
    envvar="DEPLOYKIT_ENV_DIR",
    default=None,
    help="Folder of Chef environment files (default: ./chef_attrs, then the shipped ones).",
)


def env_options(func: Callable) -> Callable:
    """--env NAME and --env-dir DIR (environment files, see deploykit.envs)."""
    func = env_dir_option(func)
    func = click.option("--env", "env_name", default="local", show_default=True, help="Environment name.")(func)
    return func


FORMAT_NAMES = ("text", "json", "yaml")


def _refuse_format_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and value.lower() in FORMAT_NAMES:
        raise click.BadParameter(
            f"{value!r} is a format name, not a file: the format is --output {value.lower()} (-o {value.lower()});"
            f" to write a file of that name, give ./{value}",
            ctx=ctx, param=param,
        )
    return value


class FormatChoice(click.Choice):
    """--output's choices; a value that looks like a file name is told where files go (--out FILE)."""

    def convert(self, value, param, ctx):
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as exc:
            has_out = ctx is not None and any("--out" in p.opts for p in ctx.command.params)
            if has_out and isinstance(value, str) and value.lower() not in FORMAT_NAMES:
                hint = f"-o is --output FORMAT: write a file with --out {value}"
                raise click.BadParameter(f"{exc.message.rstrip('.')}; {hint}", ctx=ctx, param=param) from None
            raise


def out_option(default: str | None, help: str) -> Callable:
    """--out FILE (no short form: -o is --output FORMAT in every command); a format name is refused with a hint."""
    return click.option("--out", "out", type=click.Path(dir_okay=False, allow_dash=True), default=default,
                        show_default=default is not None, callback=_refuse_format_name, help=help)


def output_options(func: Callable) -> Callable:
    """--output text|json and --junit FILE."""
    func = click.option(
        "--junit",
        "junit_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="Also write a JUnit XML summary (for Jenkins).",
    )(func)
    func = click.option(
        "--output",
        "-o",
        "output",
        type=FormatChoice(["text", "json"]),
        default="text",
        show_default=True,
        help="text for people, json for pipelines (one JSON document on stdout).",
    )(func)
    return func


def output_format_in(argv: list[str]) -> str:
    """The --output/-o value in raw arguments ("text" if none): for errors raised before options are parsed."""
    for i, word in enumerate(argv):
        if word in ("--output", "-o") and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith("--output="):
            return word.split("=", 1)[1]
        if word.startswith("-o") and len(word) > 2 and not word.startswith("--"):
            return word[2:]
    return "text"


def console(stderr: bool = False):
    """A rich Console that only colours a real terminal (never CI logs)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    is_tty = stream.isatty() and not os.environ.get("NO_COLOR") and not in_ci()
    # A pipe or CI log has no width; rich would assume 80 and squeeze tables into broken words.
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 160
    return Console(file=stream, force_terminal=is_tty, no_color=not is_tty, highlight=False, soft_wrap=True,
                   width=width)


def print_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, sort_keys=False, default=str))


def write_junit(path: str, suite: str, case: str, doc: dict) -> None:
    from deploykit.junit import write_report

    write_report(path, suite=suite, case=case, result=doc)


def handle_errors(command_name: str, *, document_output: bool = False) -> Callable:
    """Decorator: turn DeployKitError into printed errors + exit code, for text and json.

    The wrapped function receives `output` and `junit_path` (when declared) and returns
    a JSON-able dict, an object with to_dict(), or None. With --output json the dict is
    printed as-is. document_output: stdout is the command's document (`render > app.json`) and
    `output` its format, so errors are always text on stderr and never land in the file.
    """

    def deco(func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            output = "text" if document_output else kwargs.get("output", "text")
            junit_path = kwargs.get("junit_path")
            try:
                result = func(*args, **kwargs)
                doc = result.to_dict() if hasattr(result, "to_dict") else result
            except (DeployKitError, KeyboardInterrupt) as exc:
                report_error(exc, command_name, output, junit_path)
            except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
                raise
            except Exception as exc:  # the last line of defence: a bug, never a raw traceback
                report_error(exc, command_name, output, junit_path)
            if junit_path:
                _junit_or_warn(junit_path, command_name, {"ok": True, **(doc or {})})
            if output == "json" and doc is not None:
                print_json({"ok": True, "command": command_name, **doc})
            return doc

        return wrapper

    return deco


def report_error(
    exc: BaseException, command_name: str, output: str = "text", junit_path: str | None = None
) -> NoReturn:
    """Print an error the one way every command does, write the JUnit file if asked, and exit with its code.

    A DeployKitError keeps its own exit code; Ctrl-C is 130; anything else is a bug in deploykit:
    exit 70 with one line naming a log file that holds the traceback (deploykit.crashlog), so a person
    never sees a raw traceback and a pipeline still gets one JSON document.
    """
    if isinstance(exc, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if not isinstance(exc, DeployKitError):
        from deploykit.crashlog import write_crash_log

        exc = InternalError.from_exception(exc, write_crash_log(exc, command_name))
    err = {"ok": False, "command": command_name, "exit_code": exc.exit_code, **exc.to_dict()}
    if output == "json":
        print_json(err)
    else:
        show_error(exc)
    if junit_path:
        _junit_or_warn(junit_path, command_name, err)
    sys.exit(exc.exit_code)


def _junit_or_warn(path: str, command_name: str, doc: dict) -> None:
    """The JUnit file is a by-product: a folder that does not exist is a warning, not a crash or a changed result."""
    try:
        write_junit(path, "deploykit", command_name, doc)
    except OSError as exc:
        click.echo(f"warning: could not write {path}: {exc.strerror or exc}", err=True)


def show_error(exc: DeployKitError) -> None:
    from rich.markup import escape  # error text (user input, a build log tail) may contain "[/app]"

    con = console(stderr=True)
    if isinstance(exc, ValidationError):
        con.print(f"[bold red]error:[/] {len(exc.problems)} problem(s) found")
        for p in exc.problems:
            where = p.file or "<input>"
            if p.line:
                where += f":{p.line}"
            con.print(f"  [bold]{escape(where)}[/] [cyan]{escape(p.path or '<root>')}[/]: {escape(p.message)}",
                      markup=True)
            if p.hint:
                con.print(f"      hint: {escape(p.hint)}")
    else:
        con.print(f"[bold red]error:[/] {escape(str(exc))}")
