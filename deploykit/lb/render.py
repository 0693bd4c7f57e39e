"""RoutingModel -> haproxy.cfg text, from the Jinja2 templates in haproxy/ (no network I/O).

The output is complete on its own: current servers sit in their slots with their addresses,
spare slots are present but disabled, so an HAProxy started from the file alone routes every
app and the daemon can fill spare slots through the Runtime API without a reload.
Backends are rendered one by one and cached by identity (a Backend is immutable and models
share unchanged ones), so after an event only the backends that changed are rendered again;
the rest of the file is a join of cached text.

The shipped templates are also compiled ahead of time into plain Python functions
(deploykit/lb/compiled_templates.py, `python -m deploykit.lb.template_compiler`), byte-identical
to Jinja2's output. They are used while every template the Renderer would load has exactly the
text they were compiled from; anything else (a custom folder, an edited installed template)
goes through Jinja2, which is imported only then: `import jinja2` plus compiling the templates
costs as much as rendering 1,000 backends, and `lb render` is measured against json.load.
"""

from __future__ import annotations

import os.path

from deploykit.errors import Problem, ValidationError
from deploykit.lb.model import Backend, LbSettings, RoutingModel, build_model, paused_gc
from deploykit.records import Record
from deploykit.resources import data_path

TYPE_CHECKING = False  # typing stays out of `lb render` (see deploykit.records)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import jinja2

MAIN_TEMPLATE = "haproxy.cfg.j2"
BACKEND_TEMPLATE = "backend.cfg.j2"


def make_environment(loader: jinja2.BaseLoader | None = None) -> jinja2.Environment:
    """The Jinja2 Environment templates are rendered with (the template compiler parses with it too)."""
    import jinja2

    return jinja2.Environment(
        loader=loader,
        autoescape=False,  # haproxy.cfg, not HTML; every label value is validated instead
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        auto_reload=False,
    )


def slot_layout(backend: Backend) -> list[tuple]:
    """Slots in order: ("server", "s3", Server, "10.0.0.7:31005") for a filled slot, ("spare", 4, 8, "")
    for a run of empty ones (the address is pre-joined: it saves the template three lookups per server).

    Keeping declaration order equal to slot order gives server s{i} the HAProxy id i, so
    the server-state file and the Runtime API agree with the config across reloads.
    """
    items: list[tuple] = []
    run_start = 0
    for i, server in enumerate(backend.slots, start=1):
        if server is None:
            if not run_start:
                run_start = i
            continue
        if run_start:
            items.append(("spare", run_start, i - 1, ""))
            run_start = 0
        address = f"[{server.address}]" if ":" in server.address else server.address
        items.append(("server", f"s{i}", server, f"{address}:{server.port}"))
    if run_start:
        items.append(("spare", run_start, len(backend.slots), ""))
    return items


def shipped_template_dir() -> str:
    """The shipped haproxy/ templates folder (source tree or wheel)."""
    return data_path("haproxy")


class Renderer:
    """Renders haproxy.cfg; keep one per daemon so templates load once and backend text is reused."""

    def __init__(self, template_dir: str | Path | None = None):
        shipped = shipped_template_dir()
        self._dir = os.fspath(template_dir) if template_dir else shipped
        if not os.path.isdir(self._dir):
            raise ValidationError([Problem(self._dir, "", "template folder not found")])
        functions = _compiled_functions(self._dir, shipped)
        #: True when the ahead-of-time compiled templates are used (the templates on disk are the shipped ones)
        self.compiled = functions is not None
        self._main, self._backend = functions or _jinja_functions(self._dir, shipped)
        # id(backend) -> (backend, text). Models share unchanged Backend objects, so identity is the
        # cheap, exact key (hashing 3,000 backends by value cost more than rendering the changed ones).
        self._cache: dict[int, tuple[Backend, str]] = {}

    def render_backend(self, backend: Backend) -> str:
        """One backend's text (cached while the same Backend object is in use)."""
        hit = self._cache.get(id(backend))
        if hit is not None and hit[0] is backend:
            return hit[1]
        try:
            return self._backend(b=backend, slots=slot_layout(backend))
        except Exception as exc:
            raise self._failed(BACKEND_TEMPLATE, exc) from exc

    def render(self, model: RoutingModel) -> str:
        """The whole haproxy.cfg. Backends not in this model are dropped from the cache."""
        cache: dict[int, tuple[Backend, str]] = {}
        old = self._cache
        backend_fn = self._backend
        chunks = []
        try:
            for backend in model.backends.values():
                key = id(backend)
                hit = old.get(key)
                if hit is not None and hit[0] is backend:
                    text = hit[1]
                else:
                    text = backend_fn(b=backend, slots=slot_layout(backend))
                cache[key] = (backend, text)
                chunks.append(text)
        except Exception as exc:
            raise self._failed(BACKEND_TEMPLATE, exc) from exc
        self._cache = cache
        try:
            return self._main(
                settings=model.settings, model=model, http_routes=model.http_routes,
                port_frontends=model.port_frontends, backends="\n".join(chunks),
            )
        except Exception as exc:
            raise self._failed(MAIN_TEMPLATE, exc) from exc

    @property
    def template_dir(self) -> Path:
        """The folder templates are loaded from (the shipped one unless a custom folder was given)."""
        from pathlib import Path

        return Path(self._dir)

    def _failed(self, name: str, exc: Exception) -> ValidationError:
        """Any error raised while rendering is a mistake in a (user's) template: exit 2 naming it."""
        return ValidationError([Problem(os.path.join(self._dir, name), "",
                                        f"template failed to render: {type(exc).__name__}: {exc}")])


def _compiled_functions(template_dir: str, shipped: str) -> tuple[Callable[..., str], Callable[..., str]] | None:
    """The compiled (main, backend) functions if every template Jinja2 would load here has the exact text they
    were compiled from; else None. Reads four small files: a local edit of the installed templates, or a custom
    folder overriding any of them, must get what its author wrote."""
    from deploykit.lb import compiled_templates

    custom = os.path.realpath(template_dir) != os.path.realpath(shipped)
    for name, source in compiled_templates.SOURCES.items():
        path = os.path.join(template_dir, name)
        if custom and not os.path.isfile(path):
            path = os.path.join(shipped, name)  # what the Jinja2 path's ChoiceLoader falls back to
        try:
            with open(path, "rb") as f:
                if f.read().decode("utf-8") != source:
                    return None
        except (OSError, UnicodeDecodeError):
            return None
    functions = compiled_templates.FUNCTIONS
    return functions[MAIN_TEMPLATE], functions[BACKEND_TEMPLATE]


def _jinja_functions(template_dir: str, shipped: str) -> tuple[Callable[..., str], Callable[..., str]]:
    """(main, backend) rendering through Jinja2; a custom folder only needs the templates it changes."""
    import jinja2

    loader: jinja2.BaseLoader = jinja2.FileSystemLoader(template_dir)
    if os.path.realpath(template_dir) != os.path.realpath(shipped):
        loader = jinja2.ChoiceLoader([loader, jinja2.FileSystemLoader(shipped)])
    env = make_environment(loader)
    env_globals = dict(env.globals)  # range, dict, namespace, ... for custom templates

    def function(name: str) -> Callable[..., str]:
        try:
            template = env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            raise ValidationError(
                [Problem(os.path.join(template_dir, exc.name or name), "", f"template syntax error: {exc.message}",
                         line=exc.lineno)]
            ) from exc
        except jinja2.TemplateNotFound as exc:  # only when the shipped templates are missing too
            problem = Problem(os.path.join(template_dir, name), "", f"template {exc.name} not found")
            raise ValidationError([problem]) from exc
        render_func, new_context = template.root_render_func, template.new_context

        def render(**context: object) -> str:
            # Template.render without its per-call overhead (thousands of calls per config)
            return "".join(render_func(new_context({**env_globals, **context}, shared=True)))

        return render

    return function(MAIN_TEMPLATE), function(BACKEND_TEMPLATE)


def render_config(model: RoutingModel, template_dir: str | Path | None = None) -> str:
    """One-shot render (CLI, tests). A daemon should keep a Renderer instead."""
    return Renderer(template_dir).render(model)


class RenderResult(Record):
    """What `lb render` did, for its summary line and --output json."""

    model: RoutingModel
    out: str
    size: int
    servers: int
    apps: list  # the parsed input, for QuickExit to keep

    def summary(self) -> str:
        m = self.model
        return (f"wrote {self.out}: {len(m.backends)} backends, {self.servers} servers, "
                f"{len(m.rejected)} apps skipped, {len(m.ignored)} labels ignored")

    def report_lines(self) -> list[str]:
        """`lb render`'s stderr lines (skipped apps, ignored labels, summary), one source for its click and
        click-free paths. Ids and labels come from the input file: control characters are shown escaped,
        so a crafted app id cannot forge report lines or send escape sequences to a terminal."""
        def shown(text: str) -> str:
            return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)

        m = self.model
        lines = [f"skipped {shown(r.app_id)}: {shown(r.reason)}" for r in m.rejected]
        lines += [f"ignored {shown(i.app_id)} {shown(i.label)}: {shown(i.reason)}" for i in m.ignored]
        lines.append(self.summary())
        return lines

    def to_dict(self) -> dict:
        m = self.model
        return {
            "out": self.out, "bytes": self.size, "backends": len(m.backends), "servers": self.servers,
            "rejected": [{"app_id": r.app_id, "reason": r.reason} for r in m.rejected],
            "ignored": [{"app_id": i.app_id, "label": i.label, "reason": i.reason} for i in m.ignored],
        }


def load_apps(path: str) -> list:
    """The apps of a saved /v2/apps?embed=apps.tasks response ({"apps": [...]} or a bare list); '-' is stdin."""
    import json
    import sys

    name = "<stdin>" if path == "-" else path
    try:
        if path == "-":
            doc = json.load(sys.stdin)
        else:
            with open(path, "rb") as f:
                doc = json.load(f)
    except OSError as exc:
        raise ValidationError([Problem(name, "", f"cannot read: {exc.strerror or exc}")]) from exc
    except ValueError as exc:
        raise ValidationError([Problem(name, "", f"not valid JSON: {exc}")]) from exc
    apps = doc.get("apps") if isinstance(doc, dict) else doc
    if not isinstance(apps, list) or not all(isinstance(a, dict) for a in apps):
        raise ValidationError([Problem(name, "apps", "expected a list of app objects",
                                       hint="save the output of GET /v2/apps?embed=apps.tasks")])
    return apps


def settings_for(env_name: str | None, env_dir: str | None, groups: tuple[str, ...]) -> LbSettings:
    """LbSettings from an environment file's haproxy section (if asked for), with --group on top."""
    section: dict = {}
    if env_name:
        from deploykit.envs import load_environment

        env = load_environment(env_name, env_dir)
        if env.haproxy is not None:
            section = env.haproxy.model_dump()
    settings = LbSettings.from_mapping(section)
    if groups:
        settings = settings._replace(groups=tuple(sorted(set(groups))))
    return settings


def render_apps_file(apps_json: str, *, out: str = "-", groups: tuple[str, ...] = (),
                     template_dir: str | None = None, env_name: str | None = None, env_dir: str | None = None,
                     strict: bool = False) -> RenderResult:
    """`deploykit lb render`: saved apps response -> haproxy.cfg file (or stdout)."""
    import sys

    settings = settings_for(env_name, env_dir, groups)
    if template_dir is None and env_name:
        template_dir = settings.extra.get("template_dir") or None
    renderer = Renderer(template_dir)  # before reading the input: a bad template fails fast
    with paused_gc():  # one allocation-heavy pass over a big document, no cycles to collect
        apps = load_apps(apps_json)
        model = build_model(apps, settings)
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
    return RenderResult(model, out if out != "-" else "<stdout>", len(text), model.server_count, apps)
