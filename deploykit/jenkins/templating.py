"""Jinja2 environment for the Jenkins templates (Jenkinsfile.j2, jenkins-job.xml.j2).

Lookup order: the user's `--templates DIR` first, then the shipped templates/. The
shipped ones are also reachable as `deploykit/<name>`, so a user template can
`{% extends "deploykit/Jenkinsfile.j2" %}` and replace one block (e.g. `notify`)
instead of copying the whole file. XML templates are autoescaped; Groovy values go
through the `groovy` filter, which makes a single-quoted (non-interpolating) literal.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2

from deploykit.errors import Problem, ValidationError
from deploykit.resources import data_dir


def groovy_string(value: object) -> str:
    """A Groovy single-quoted string literal: no `$` interpolation, so nothing is expanded by Groovy."""
    text = str(value)
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


def template_env(user_dir: str | Path | None = None) -> jinja2.Environment:
    """One environment per templates folder: Jinja then compiles each template once per process
    (a sync of many apps renders the same two templates over and over), and still notices edits."""
    if user_dir is not None and not Path(user_dir).is_dir():
        raise ValidationError([Problem(str(user_dir), "--templates", "is not a directory")])
    return _cached_env(str(Path(user_dir).resolve()) if user_dir is not None else None)


@functools.lru_cache(maxsize=8)
def _cached_env(user_dir: str | None) -> jinja2.Environment:
    builtin = str(data_dir("templates"))
    loaders: list[jinja2.BaseLoader] = []
    if user_dir is not None:
        loaders.append(jinja2.FileSystemLoader(user_dir))
    loaders.append(jinja2.PrefixLoader({"deploykit": jinja2.FileSystemLoader(builtin)}))
    loaders.append(jinja2.FileSystemLoader(builtin))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=lambda name: bool(name) and name.endswith(".xml.j2"),
    )
    env.filters["groovy"] = groovy_string
    return env


def render(name: str, user_dir: str | Path | None, **context: object) -> str:
    """Render template `name`; template mistakes become ValidationError naming file and line."""
    env = template_env(user_dir)
    try:
        template = env.get_template(name)
        return template.render(**context)
    except jinja2.TemplateSyntaxError as exc:
        problem = Problem(exc.filename or name, "", f"template syntax: {exc.message}", line=exc.lineno)
        raise ValidationError([problem]) from None
    except jinja2.TemplateNotFound as exc:
        raise ValidationError([Problem(name, "", f"template {exc.name!r} not found")]) from None
    except jinja2.UndefinedError as exc:
        hint = "see docs/jenkins.md for the variables templates receive"
        raise ValidationError([Problem(name, "", f"template error: {exc.message}", hint)]) from None
