"""load_app: app.yaml -> validated AppSpec, with every problem reported at once."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as PydanticValidationError

from deploykit.errors import Problem, ValidationError
from deploykit.spec.models import AppDoc, AppSpec
from deploykit.spec.problems import from_pydantic
from deploykit.spec.rules import check_all, load_attachments
from deploykit.spec.yamlsrc import PathKey, SourceDoc, format_path, load_yaml

if TYPE_CHECKING:
    from deploykit.envs import Environment


def load_app(
    path: str | Path,
    env_name: str | None,
    environment: Environment | None = None,
    *,
    env_dir: str | Path | None = None,
    with_environment_file: bool = True,
) -> AppSpec:
    """Load app.yaml, merge `environments.<env_name>` over the base and validate everything.

    The environment file is loaded by name (see deploykit.envs) unless `environment` is
    given or `with_environment_file` is False (overlay only, e.g. to check every overlay
    in CI); its problems are reported together with the app's. Rules that depend on the
    environment (security allows, HAProxy groups, docker vs process tasks) run only when
    there is one. Raises deploykit.errors.ValidationError listing every Problem.
    """
    path = Path(path)
    file = str(path)
    if environment is not None and env_name is None:
        env_name = environment.name
    problems: list[Problem] = []
    if environment is None and env_name is not None and with_environment_file:
        from deploykit.envs import load_environment

        try:
            environment = load_environment(env_name, env_dir)
        except ValidationError as exc:
            problems.extend(exc.problems)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ValidationError(
            [*problems, Problem(file, "", "file not found", "give the path to an app.yaml")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        hint = "app.yaml must be UTF-8 text" if isinstance(exc, UnicodeDecodeError) else "give the path to an app.yaml"
        raise ValidationError([*problems, Problem(file, "", f"cannot read: {exc}", hint)]) from None
    source = load_yaml(text, file)
    problems.extend(source.problems)
    if source.data is None and not source.problems:
        problems.append(Problem(file, "", "the file is empty", "start with id: /group/app"))
    if source.data is None:
        raise ValidationError(problems)
    if not isinstance(source.data, Mapping):
        raise ValidationError(
            [*problems, Problem(file, "", "app.yaml must be a mapping of keys", "start with id: /group/app", 1)]
        )

    merged = merge_overlay(source.data, env_name)
    # An unknown key that only an overlay sets is reported once, at environments.<env>.<key> (rules.py),
    # not a second time as if it were a top-level key of the merged view.
    for key in [k for k in merged if k not in source.data and k not in AppDoc.model_fields]:
        del merged[key]

    def line_for(p: PathKey) -> int | None:
        return _line(source, env_name, p)

    doc: AppDoc | None = None
    try:
        doc = AppDoc.model_validate(merged)
    except PydanticValidationError as exc:
        problems.extend(from_pydantic(exc, AppDoc, file, line_for=line_for))
    findings = check_all(merged, environment)
    app_dir = path.resolve().parent
    contents, uris, attach_findings = load_attachments(merged, app_dir)
    for p, message, hint in [*findings, *attach_findings]:
        problems.append(Problem(file, format_path(p), message, hint, line_for(p)))
    if problems:
        raise ValidationError(_ordered(problems))
    assert doc is not None
    fields = {name: getattr(doc, name) for name in AppDoc.model_fields}
    return AppSpec.model_construct(
        **fields,
        file=path.resolve(),
        app_dir=app_dir,
        env_name=env_name,
        config_contents=contents,
        fetch_uris=uris,
        key_lines=_key_lines(source, env_name),
    )


def overlay_names(path: str | Path) -> list[str]:
    """Names under `environments:` (best effort: [] when the file cannot be read or parsed)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, yaml.YAMLError):  # load_app reports it
        return []
    overlays = data.get("environments") if isinstance(data, Mapping) else None
    return sorted(str(name) for name in overlays) if isinstance(overlays, Mapping) else []


def merge_overlay(data: Mapping[str, Any], env_name: str | None) -> dict[str, Any]:
    """Base keys with `environments.<env_name>` deep-merged on top (None in an overlay removes a key)."""
    from deploykit.envs import deep_merge

    overlays = data.get("environments")
    overlay = overlays.get(env_name) if isinstance(overlays, Mapping) and env_name else None
    if not isinstance(overlay, Mapping):
        return dict(data)
    overlay = {k: v for k, v in overlay.items() if k != "environments"}
    return deep_merge(data, overlay)


def _line(source: SourceDoc, env_name: str | None, path: PathKey) -> int | None:
    """Line of `path` in the merged view: the overlay's line if it set the key, else the base's."""
    p = tuple(path)
    while p:
        if env_name is not None and ("environments", env_name, *p) in source.lines:
            return source.lines[("environments", env_name, *p)]
        if p in source.lines:
            return source.lines[p]
        p = p[:-1]
    return source.lines.get(())


def _key_lines(source: SourceDoc, env_name: str | None) -> dict[str, int]:
    """Formatted key path -> line in the merged view (overlay lines win)."""
    base: dict[str, int] = {}
    overlay: dict[str, int] = {}
    prefix = ("environments", env_name)
    for path, line in source.lines.items():
        if env_name is not None and path[:2] == prefix and len(path) > 2:
            overlay[format_path(path[2:])] = line
        elif path:
            base[format_path(path)] = line
    return {**base, **overlay}


def _ordered(problems: list[Problem]) -> list[Problem]:
    """Environment-file problems first, then app.yaml problems in line order; drop exact repeats."""
    seen: set[tuple] = set()
    unique = []
    for p in problems:
        key = (p.file, p.path, p.message)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return sorted(unique, key=lambda p: (p.file is not None and p.file.endswith((".yaml", ".yml")), p.line or 0))


def resolve_secrets(spec: AppSpec, environ: Mapping[str, str]) -> dict[str, str]:
    """Secret values from the deployer's environment, keyed by the app's env var name.

    A missing variable is a Problem naming the variable, never a value. Returned values
    must only go to Marathon (render masks them unless asked not to).
    """
    problems: list[Problem] = []
    values: dict[str, str] = {}
    for name, ref in spec.secrets.items():
        value = environ.get(ref.from_env)
        if not value:
            problems.append(
                spec.problem(
                    format_path(("secrets", name, "from_env")),
                    f"environment variable {ref.from_env} is not set",
                    f"export {ref.from_env} before deploying (its value is never printed)",
                )
            )
        else:
            values[name] = value
    if problems:
        raise ValidationError(problems)
    return values
