"""RoutingModel -> haproxy.cfg text, from the Jinja2 templates in haproxy/ (pure: no I/O beyond loading templates).

The output is complete on its own: current servers sit in their slots with their addresses,
spare slots are present but disabled, so an HAProxy started from the file alone routes every
app and the daemon can fill spare slots through the Runtime API without a reload.
A Renderer compiles the templates once (the daemon keeps one for its lifetime); backends are
rendered one by one and cached by identity (a Backend is immutable and models share unchanged
ones), so after an event only the backends that changed are rendered again.
"""

from __future__ import annotations

import os.path
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import jinja2

from deploykit.errors import Problem, ValidationError
from deploykit.lb.model import Backend, RoutingModel
from deploykit.resources import data_dir

if TYPE_CHECKING:
    from deploykit.envs import Environment

MAIN_TEMPLATE = "haproxy.cfg.j2"
BACKEND_TEMPLATE = "backend.cfg.j2"


def make_environment(loader: jinja2.BaseLoader | None = None) -> jinja2.Environment:
    """The Jinja2 Environment templates are rendered with."""
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
    return str(data_dir("haproxy"))


class Renderer:
    """Renders haproxy.cfg; keep one per daemon so templates load once and backend text is reused."""

    def __init__(self, template_dir: str | Path | None = None):
        shipped = shipped_template_dir()
        self._dir = os.fspath(template_dir) if template_dir else shipped
        if not os.path.isdir(self._dir):
            raise ValidationError([Problem(self._dir, "", "template folder not found")])
        self._main, self._backend = _jinja_functions(self._dir, shipped)
        # id(backend) -> (backend, text). Models share unchanged Backend objects, so identity is the
        # cheap, exact key (hashing 3,000 backends by value cost more than rendering the changed ones).
        self._cache: dict[int, tuple[Backend, str]] = {}

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
        return Path(self._dir)

    def _failed(self, name: str, exc: Exception) -> ValidationError:
        """Any error raised while rendering is a mistake in a (user's) template: exit 2 naming it."""
        return ValidationError([Problem(os.path.join(self._dir, name), "",
                                        f"template failed to render: {type(exc).__name__}: {exc}")])


def _jinja_functions(template_dir: str, shipped: str) -> tuple[Callable[..., str], Callable[..., str]]:
    """(main, backend) rendering through Jinja2; a custom folder only needs the templates it changes."""
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


def renderer_for(env: Environment | None, template_dir: str | None = None) -> Renderer:
    """The Renderer `lb run` and `lb render` use: --templates, else the environment's template_dir, else shipped."""
    if template_dir is None and env is not None and env.haproxy is not None:
        template_dir = env.haproxy.template_dir
    return Renderer(template_dir)


def render_config(model: RoutingModel, template_dir: str | Path | None = None) -> str:
    """One-shot render (CLI, tests). A daemon should keep a Renderer instead."""
    return Renderer(template_dir).render(model)


class RenderResult(NamedTuple):
    """What `lb render` did, for its summary line and --output json."""

    model: RoutingModel
    out: str
    size: int

    def summary(self) -> str:
        m = self.model
        return (f"wrote {self.out}: {len(m.backends)} backends, {m.server_count} servers, "
                f"{len(m.rejected)} apps skipped, {len(m.ignored)} labels ignored")

    def report_lines(self) -> list[str]:
        """`lb render`'s stderr lines (skipped apps, ignored labels, summary). Ids and labels come from the
        input file: control characters are shown escaped, so a crafted app id cannot forge report lines or
        send escape sequences to a terminal."""
        def shown(text: str) -> str:
            return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)

        m = self.model
        lines = [f"skipped {shown(r.app_id)}: {shown(r.reason)}" for r in m.rejected]
        lines += [f"ignored {shown(i.app_id)} {shown(i.label)}: {shown(i.reason)}" for i in m.ignored]
        lines += [f"dropped {shown(d.app_id)} {shown(d.reason)} (its vhost routing stays)" for d in m.dropped]
        lines.append(self.summary())
        return lines

    def to_dict(self) -> dict:
        m = self.model
        return {
            "out": self.out, "bytes": self.size, "backends": len(m.backends), "servers": m.server_count,
            "rejected": [{"app_id": r.app_id, "reason": r.reason} for r in m.rejected],
            "ignored": [{"app_id": i.app_id, "label": i.label, "reason": i.reason} for i in m.ignored],
            "dropped": [{"app_id": d.app_id, "reason": d.reason, "holder": d.holder} for d in m.dropped],
        }
