"""`deploykit lb render` without importing click or rich, for the arguments it fully understands.

Issue 8 wants the whole command within 2x the time `json.load` takes on its input; at 1,000 apps
importing click and deploykit.cli alone is a tenth of that budget. The launcher calls run() first:
it parses the arguments with a small table that mirrors the click command's options (a unit test
compares OPTIONS and PATHS with `lb_cmds.render_cmd.params`) and returns None, "not mine", for
anything click would reject or treat specially (--help, unknown options, missing values,
--output json, a path click's type check refuses, shell completion). Click then runs as before
and prints what it always printed.

Errors: on a DeployKitError (unreadable input, --strict rejections, a bad template, ...) run()
returns None before anything was written, so click renders the same input again and reports the
error its usual way. That costs a second pass, only on the error path, and keeps exactly one
error formatter. It is safe because render_apps_file writes its output in one go at the very end,
after everything has been validated. Stdin ('-') is read up front and replayed for that second run.

render() and write_report() are also the body of the click command, so both paths do the same.
This module sits outside deploykit.cli because importing anything in that package imports click.
"""

from __future__ import annotations

import os
import stat
import sys

TYPE_CHECKING = False  # not typing's: importing typing would cost this command more than it saves
if TYPE_CHECKING:
    from collections.abc import Mapping

    from deploykit.lb.render import RenderResult

# dest -> (option strings, kind, default, envvar). kind: "value", "multiple" (repeatable value) or "flag".
OPTIONS: dict[str, tuple[tuple[str, ...], str, object, str | None]] = {
    "apps_json": (("--apps-json",), "value", None, None),
    "groups": (("--group",), "multiple", (), None),
    "template_dir": (("--templates",), "value", None, None),
    "out": (("-o", "--out"), "value", "-", None),
    "env_name": (("--env",), "value", None, None),
    "env_dir": (("--env-dir",), "value", None, "DEPLOYKIT_ENV_DIR"),
    "strict": (("--strict",), "flag", False, None),
    "quiet": (("--quiet", "-q"), "flag", False, None),
    "output": (("--output",), "value", "text", None),
}
REQUIRED = ("apps_json",)
ACCEPTED = {"output": ("text",)}  # values the fast path handles; other valid choices (json) go to click
# dest -> click.Path(file_okay, dir_okay, exists, allow_dash), checked the way click checks them
PATHS: dict[str, tuple[bool, bool, bool, bool]] = {
    "apps_json": (True, False, False, True),
    "template_dir": (False, True, True, False),
    "out": (True, False, False, True),
    "env_dir": (False, True, False, False),
}

# click's rule: "-x" (one dash, one letter) is a short option, anything else a long one
_LONG = {name: dest for dest, spec in OPTIONS.items() for name in spec[0] if len(name) > 2}
_SHORT = {name: dest for dest, spec in OPTIONS.items() for name in spec[0] if len(name) == 2}


def parse(argv: list[str], environ: Mapping[str, str]) -> dict | None:
    """The render command's keyword arguments from the argv after `lb render`, or None if click must decide."""
    values: dict = {dest: spec[2] for dest, spec in OPTIONS.items()}
    seen: dict[str, list[str]] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg[:1] != "-" or arg in ("-", "--"):
            return None  # render takes no arguments; '--' ends the options
        name, eq, attached = arg.partition("=")
        dest = _LONG.get(name)
        value: str | None = attached if eq else None
        if dest is None:
            dest = _SHORT.get(arg[:2]) if arg[1] != "-" else None
            if dest is None:
                return None  # unknown option, -h/--help
            value = arg[2:] or None  # "-oFILE" (also "-o=x", which click reads as "=x")
            if OPTIONS[dest][1] == "flag" and value is not None:
                return None  # "-qo FILE" and the like: leave combined short options to click
        kind = OPTIONS[dest][1]
        if kind == "flag":
            if value is not None:
                return None  # "--strict=yes": click says it takes no value
            values[dest] = True
            continue
        if value is None:
            if i == len(argv):
                return None  # missing value
            value = argv[i]  # taken even if it starts with '-', as click does
            i += 1
        seen.setdefault(dest, []).append(value)
    for dest, given in seen.items():
        values[dest] = tuple(given) if OPTIONS[dest][1] == "multiple" else given[-1]  # last one wins
    for dest, (_, _, _, envvar) in OPTIONS.items():
        if envvar and dest not in seen and environ.get(envvar):
            values[dest] = environ[envvar]
    if any(values[dest] is None for dest in REQUIRED):
        return None
    if any(values[dest] not in accepted for dest, accepted in ACCEPTED.items()):
        return None
    if not all(values[dest] is None or _path_ok(values[dest], *rule) for dest, rule in PATHS.items()):
        return None
    return values


def _path_ok(path: str, file_okay: bool, dir_okay: bool, exists: bool, allow_dash: bool) -> bool:
    """click.Path's check (readable=True, the default); False where click would refuse the value."""
    if file_okay and allow_dash and path == "-":
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return not exists
    if (not file_okay and stat.S_ISREG(mode)) or (not dir_okay and stat.S_ISDIR(mode)):
        return False
    return os.access(path, os.R_OK)


def render(apps_json: str, *, groups: tuple[str, ...], template_dir: str | None, out: str, env_name: str | None,
           env_dir: str | None, strict: bool) -> RenderResult:
    """render_apps_file with the cyclic GC off: a one-shot pass whose objects form no cycles."""
    import gc

    from deploykit.lb.render import render_apps_file

    # Automatic collections would walk the parsed response over and over (~0.1 s at 3,000 apps).
    # Frozen, not collected, when turned back on.
    gc.disable()
    try:
        return render_apps_file(apps_json, out=out, groups=groups, template_dir=template_dir,
                                env_name=env_name, env_dir=env_dir, strict=strict)
    finally:
        gc.freeze()
        gc.enable()


def write_report(result: RenderResult) -> None:
    """Skipped apps, ignored labels and the summary, on stderr."""
    sys.stderr.write("".join(line + "\n" for line in result.report_lines()))
    sys.stderr.flush()


def _replayable_stdin():
    """Reads stdin now and returns a function giving a fresh text stream over the same bytes.

    The error path runs click after the fast path has consumed stdin; click must see the same input.
    """
    import io

    original = sys.stdin
    data = original.buffer.read()

    def replay() -> io.TextIOWrapper:
        # newline="\n": what Python's own stdin does on POSIX (no newline translation)
        return io.TextIOWrapper(io.BytesIO(data), encoding=original.encoding, errors=original.errors, newline="\n")

    return replay


def run(argv: list[str]) -> int | None:
    """Render for the launcher. None: not handled, nothing written, let click run. An int: exit with it.

    On success it raises deploykit.errors.QuickExit(0) holding the result, as the click path does, so
    the launcher ends the process without freeing the parsed input.
    """
    import errno

    from deploykit.errors import EXIT_INTERRUPTED, DeployKitError, QuickExit

    if any(name.startswith("_") and name.endswith("_COMPLETE") for name in os.environ):
        return None  # click's shell completion
    opts = parse(argv, os.environ)
    if opts is None:
        return None
    quiet = opts.pop("quiet")
    del opts["output"]
    replay = None
    if opts["apps_json"] == "-":
        try:
            replay = _replayable_stdin()
        except (OSError, AttributeError, ValueError):  # no readable binary stdin: click copes with it
            return None
        sys.stdin = replay()
    try:
        result = render(**opts)
        if not quiet:
            write_report(result)
    except DeployKitError:
        if replay is not None:
            sys.stdin = replay()
        return None
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        raise QuickExit(1) from None  # a closed pipe: click exits 1 without a message
    raise QuickExit(0, keep=result)
