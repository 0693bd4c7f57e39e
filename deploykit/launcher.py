"""The `deploykit` console script: answers `--help` and `--version` without importing click.

`lb render` goes to the click-free deploykit.lb_render_fast first, which steps aside (to
click) for any argument it does not fully understand. Everything else goes to the click group
in deploykit.cli. The fast help is used only when no line needs wrapping at the current width
(otherwise click formats it), and a unit test checks that it is byte-identical to click's
output at several widths.
"""

from __future__ import annotations

import os
import sys

CLICK_MAX_WIDTH = 100  # deploykit.cli's context_settings max_content_width


def _width() -> int:
    """The text width click would use: terminal (or $COLUMNS, else 80) capped at 100, minus 2."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 80
    return max(min(columns, CLICK_MAX_WIDTH) - 2, 50)


def _rows(rows: list[tuple[str, str]], width: int) -> list[str] | None:
    first = min(max(len(name) for name, _ in rows), 30) + 2
    out = []
    for name, text in rows:
        if len(name) > first - 2 or 2 + first + len(text) > width:
            return None
        out.append(f"  {name.ljust(first)}{text}")
    return out


def fast_help() -> str | None:
    """Click's help for the root group, or None when wrapping would be needed."""
    from deploykit.commands import COMMANDS, MAIN_HELP, MAIN_OPTIONS

    width = _width()
    lines = ["Usage: deploykit [OPTIONS] COMMAND [ARGS]...", ""]
    for paragraph in MAIN_HELP.strip("\n").split("\n\n"):
        if paragraph.startswith("\b\n"):
            lines += [f"  {line}".rstrip() for line in paragraph[2:].splitlines()]
        else:
            joined = " ".join(part.strip() for part in paragraph.splitlines())
            if 2 + len(joined) > width:
                return None
            lines.append(f"  {joined}")
        lines.append("")
    options = _rows(list(MAIN_OPTIONS), width)
    commands = _rows([(name, entry[2]) for name, entry in COMMANDS.items()], width)
    if options is None or commands is None:
        return None
    lines += ["Options:", *options, "", "Commands:", *commands]
    return "\n".join(lines) + "\n"


def main() -> None:
    args = sys.argv[1:]
    if args in (["--help"], ["-h"]):
        text = fast_help()
        if text is not None:
            sys.stdout.write(text)
            return
    elif args == ["--version"]:
        from deploykit import __version__

        sys.stdout.write(f"deploykit, version {__version__}\n")
        return
    from deploykit.errors import QuickExit

    try:
        if args[:2] == ["lb", "render"]:  # the benchmarked command: click-free when it can be
            import gc

            gc.disable()  # its imports form no cycles worth collecting: automatic collections only cost time
            from deploykit.lb_render_fast import run

            code = run(args[2:])
            if code is not None:
                sys.exit(code)
            gc.enable()
        from deploykit.cli import main as cli

        cli()
    except QuickExit as done:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:  # a closed pipe: what it would have done at normal exit too
            pass
        os._exit(done.code)
