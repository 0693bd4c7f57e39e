"""lb.template_compiler: the shipped templates compiled to Python render exactly what Jinja2 renders.

The compiled module is checked in; these tests keep it fresh, compare it byte for byte with Jinja2
over models that take every branch of the templates, check that unsupported constructs are refused
(never silently different), and that edited templates still go through Jinja2.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest

from deploykit.lb import compiled_templates, render
from deploykit.lb.model import LbSettings, RoutingModel, build_model
from deploykit.lb.render import Renderer, make_environment
from deploykit.lb.template_compiler import OUTPUT, TEMPLATES, CompileError, compile_templates, main, shipped_sources
from deploykit.resources import data_dir

REPO = Path(__file__).resolve().parents[2]


def make_apps(n_apps: int, tasks: int) -> dict:
    """bench/gen_apps.py's synthetic /v2/apps response (loaded by path: bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("dk_bench_gen_apps", REPO / "bench" / "gen_apps.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.make_apps(n_apps, tasks)

# ------------------------------------------------------------------------------------------------ fresh

def test_checked_in_module_is_fresh() -> None:
    assert OUTPUT.read_text(encoding="utf-8") == compile_templates(shipped_sources()), (
        "deploykit/lb/compiled_templates.py is stale: run .venv/bin/python -m deploykit.lb.template_compiler"
    )
    assert main(["--check"]) == 0
    assert shipped_sources() == compiled_templates.SOURCES
    assert set(compiled_templates.FUNCTIONS) == set(TEMPLATES)


def test_check_flags_a_stale_file_and_regeneration_fixes_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "compiled.py"
    out.write_text(OUTPUT.read_text().replace("    mode http\\n", "    mode tcp\\n", 1))
    assert main(["--check", "-o", str(out)]) == 1
    assert "stale" in capsys.readouterr().err
    assert main(["-o", str(out)]) == 0
    assert out.read_text() == OUTPUT.read_text()
    assert main(["--check", "-o", str(out)]) == 0


def test_generated_code_is_ruff_clean(tmp_path: Path) -> None:
    ruff = REPO / ".venv" / "bin" / "ruff"
    if not ruff.exists():
        ruff = Path(shutil.which("ruff") or "ruff")
    done = subprocess.run([str(ruff), "check", "--no-cache", str(OUTPUT)], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


# ------------------------------------------------------------------------------------- byte-identical

def task(tid: str, port: int, state: str = "TASK_RUNNING", host: str = "10.0.0.1") -> dict:
    return {"id": tid, "host": host, "ports": [port], "state": state}


def app(app_id: str, service_port: int, labels: dict, tasks: list[dict]) -> dict:
    return {"id": app_id, "portDefinitions": [{"port": service_port}],
            "labels": {"HAPROXY_GROUP": "external", **labels}, "tasks": tasks}


def tasks(prefix: str, n: int, port: int = 31000, **kw: str) -> list[dict]:
    return [task(f"{prefix}{i}", port + i, **kw) for i in range(1, n + 1)]


def branch_apps() -> list[dict]:
    """Apps taking every branch of the shipped templates."""
    return [
        app("/web/multi", 10001, {"HAPROXY_0_VHOST": "a.example.com,b.example.com,c.example.com"},
            tasks("m", 3)),
        app("/web/redirect", 10002, {"HAPROXY_0_VHOST": "secure.example.com", "HAPROXY_0_REDIRECT_TO_HTTPS": "true",
                                     "DEPLOYKIT_0_CHECK_PATH": "/health"}, tasks("r", 2)),
        app("/web/path", 10003, {"HAPROXY_0_VHOST": "shop.example.com", "HAPROXY_0_PATH": "/api",
                                 "HAPROXY_0_REDIRECT_TO_HTTPS": "true"}, tasks("p", 1)),
        app("/web/pathonly", 10004, {"HAPROXY_0_MODE": "http", "HAPROXY_0_PATH": "/static"}, tasks("o", 1)),
        app("/web/sticky", 10005, {"HAPROXY_0_VHOST": "sticky.example.com", "HAPROXY_0_STICKY": "true",
                                   "HAPROXY_0_BALANCE": "leastconn", "DEPLOYKIT_0_CHECK_PATH": "/ready",
                                   "DEPLOYKIT_0_CHECK_INTERVAL_MS": "1500", "DEPLOYKIT_0_CHECK_RISE": "3",
                                   "DEPLOYKIT_0_CHECK_FALL": "4"}, tasks("s", 4)),
        app("/db/tcp", 10006, {"HAPROXY_0_MODE": "tcp"}, tasks("t", 2)),
        app("/db/sticky", 10007, {"HAPROXY_0_STICKY": "1"}, tasks("u", 1)),
        app("/web/porthttp", 10008, {"HAPROXY_0_MODE": "http"}, tasks("h", 2)),
        app("/web/v6", 10009, {"HAPROXY_0_VHOST": "v6.example.com"},
            [task("v1", 31100, host="fd00::5"), task("v2", 31101, host="2001:db8::1"), task("v3", 31102)]),
        app("/web/empty", 10010, {"HAPROXY_0_VHOST": "empty.example.com"}, []),
        app("/evil", 10011, {"HAPROXY_0_VHOST": "x.example.com\nlisten evil"}, tasks("e", 1)),
    ]


def later_apps() -> list[dict]:
    """The next state: spare runs at the start (m1 gone) and in the middle (s2, s3 gone), draining tasks."""
    apps_ = branch_apps()
    apps_[0]["tasks"] = [task("m2", 31002), task("m3", 31003)]
    apps_[1]["tasks"] = [task("r1", 31001, state="TASK_KILLING"), task("r2", 31002)]
    apps_[4]["tasks"] = [task("s1", 31001), task("s4", 31004, state="TASK_KILLING")]
    apps_[5]["tasks"] = [task("t1", 31001), task("t2", 31002, state="TASK_KILLING")]
    return apps_


SETTINGS = [
    LbSettings(groups=("external",)),
    LbSettings(http_port=18080, bind_address="127.0.0.1", maxconn=20000, stats_socket="/tmp/dk admin.sock",
               hard_stop_after="5m", mworker_max_reloads=3, timeout_tunnel="2h", groups=("external",)),
    LbSettings(bind_address="::1", maxconn=1, min_slots=1, headroom=1.0),
]


def models() -> list[tuple[str, RoutingModel]]:
    out: list[tuple[str, RoutingModel]] = []
    for i, settings in enumerate(SETTINGS):
        first = build_model(branch_apps(), settings)
        second = build_model(later_apps(), settings, prev=first)
        out += [(f"settings{i}-first", first), (f"settings{i}-later", second),
                (f"settings{i}-empty", build_model([], settings))]
    out.append(("gen_apps-300x5", build_model(make_apps(300, 5)["apps"], SETTINGS[0])))
    return out


def test_models_cover_every_branch() -> None:
    """Guard for the test below: the models really take each branch (else 'identical' proves little)."""
    texts = "\n".join(Renderer().render(m) for _, m in models())
    for needle in ["    maxconn 20000", "lower -m str a.example.com b.example.com c.example.com }",
                   "{ path_beg /api }", "use_backend web_pathonly_0 if { path_beg /static }",
                   "http-request redirect scheme https", "option httpchk GET /ready", "dynamic-cookie-key",
                   "stick on src", "server-template s 1-1 ", "server-template s 2-3 ", "    server s1 [fd00::5]:",
                   "    server s1 10.0.0.1:31001 disabled", "frontend port_10006\n", "    mode tcp\n",
                   "frontend port_10008\n    bind ", "    bind 127.0.0.1:18080", "    bind ::1:10006",
                   "    bind :10006", "backend web_empty_0\n", "timeout tunnel 2h"]:
        assert needle in texts, needle
    assert "default-server check inter 2000ms rise 2 fall 3\n    server-template s 1-8 " in texts


def test_compiled_output_is_byte_identical_to_jinja(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = Renderer()
    assert compiled.compiled
    monkeypatch.setattr(render, "_compiled_functions", lambda template_dir, shipped: None)
    jinja_renderer = Renderer()  # the shipped templates through Jinja2
    assert not jinja_renderer.compiled
    for label, model in models():
        expected = jinja_renderer.render(model)
        assert compiled.render(model) == expected, label
        backend = next(iter(model.backends.values()), None)
        if backend is not None:
            assert compiled.render_backend(backend) == jinja_renderer.render_backend(backend), label


# ----------------------------------------------------------------------------- constructs, refusals

def compiled_function(source: str, name: str = "t.j2", **others: str):
    namespace: dict = {}
    exec(compile_templates({name: source, **others}), namespace)  # the generated module, as Python runs it
    return namespace["FUNCTIONS"][name]


def jinja_render(source: str, context: dict, **others: str) -> str:
    env = make_environment(jinja2.DictLoader({"t.j2": source, **others}))
    return env.get_template("t.j2").render(context)


class Obj:
    def __init__(self, **kw: object):
        self.__dict__.update(kw)


@pytest.mark.parametrize("source, context", [
    ("{% if a %}A{% elif b %}B{% else %}C{% endif %}|{{ a }}{{ b }}", {"a": 0, "b": None}),
    ("{% if a %}A{% elif b %}B{% else %}C{% endif %}", {"a": "", "b": [1]}),
    ("{% if not a and (b or c) and a != b %}yes{% endif %}{{ c|join }}", {"a": 0, "b": "", "c": (1, "x", None)}),
    ("{{ o.p.q }} {{ none }} {{ true }} {{ 1.5 }} {{ 'br{a}ce' }} \\ \" '", {"o": Obj(p=Obj(q={"k": 1}))}),
    ("{% set x = 1 %}{{ x }}{% set x = 2 %}{{ x }}{% for i in l %}{% set x = i %}{{ x }}{% endfor %}{{ x }}",
     {"l": [7, 8]}),
    ("{% for x in l %}{% for x, y in x %}[{{ x }}{{ y }}]{% endfor %}{% endfor %}{{ x }}", {"l": [[(1, 2)]], "x": 0}),
    ("{% for i in l %}{% set s %}<{{ i }}{% if i == 2 %}!{% endif %}>{% endset %}{{ s }}{{ s }}{% endfor %}",
     {"l": [1, 2, 3]}),
    ("{%- for i in l -%}\n  {{ i|join(', ') }}\n{%- endfor %}\n\u00e9\u2603\t{{ '\U0001f600' }}\n", {"l": ["ab", []]}),
    ("{% for i in l %}{% include 'inc.j2' %}{% endfor %}{% include 'inc.j2' %}", {"l": [1, 2], "i": "top"}),
    ("{% for x in l %}{{ x }}{{ x_1 }}{{ x_2 }}{% endfor %}{{ x }}", {"l": "ab", "x": 0, "x_1": 1, "x_2": 2}),
])
def test_supported_constructs_match_jinja(source: str, context: dict) -> None:
    inc = {"inc.j2": "({{ i }})"}
    assert compiled_function(source, **inc)(**context) == jinja_render(source, context, **inc)


@pytest.mark.parametrize("source, what", [
    ("line one\n\n{{ x|upper }}", "filter 'upper'"),
    ("\n{% for i in range(3) %}{% endfor %}", "Call"),
    ("\n{% for i in l %}{{ loop.index }}{% endfor %}", "loop variable"),
    ("\n{% macro m() %}{% endmacro %}", "Macro"),
    ("\n{{ a[0] }}", "Getitem"),
    ("\n{{ a + 1 }}", "Add"),
    ("\n{% if a %}{% set b = 1 %}{% endif %}", "set inside if"),
    ("\n{% for i in l %}{{ x }}{% set x = 1 %}{% endfor %}", "read before it is set"),
    ("\n{% for i in l %}{% else %}none{% endfor %}", "else"),
    ("\n{% include 'other.j2' %}", "not a compiled template"),
    ("\n{{ a < b }}", "comparison 'lt'"),
    ("\n{{ _private }}", "'_private'"),
    ("\n{% set a, b = 1, 2 %}", "only `set name"),
    ("\n{{ inc }}", "'inc' is not supported"),  # would shadow the function of the included template
])
def test_unsupported_constructs_are_refused_with_template_and_line(source: str, what: str) -> None:
    with pytest.raises(CompileError, match=r"t\.j2:[23]: ") as info:
        compile_templates({"t.j2": source, "inc.j2": "x"})
    assert what in str(info.value)
    assert info.value.template == "t.j2" and info.value.lineno in (2, 3)


def test_generator_refuses_instead_of_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "haproxy"
    shutil.copytree(data_dir("haproxy"), folder)
    (folder / "backend.cfg.j2").write_text("backend {{ b.name|upper }}\n")
    monkeypatch.setattr("deploykit.lb.template_compiler.data_dir", lambda name: folder)
    out = tmp_path / "compiled.py"
    assert main(["-o", str(out)]) == 2
    assert "backend.cfg.j2:1: filter 'upper' is not supported" in capsys.readouterr().err
    assert not out.exists()


# ------------------------------------------------------------------------ edited templates -> Jinja2

def edited_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "haproxy"
    shutil.copytree(data_dir("haproxy"), folder)
    path = folder / "backend.cfg.j2"
    path.write_text(path.read_text().replace("    balance {{ b.balance }}\n",
                                             "    balance {{ b.balance }}\n    # edited {{ b.app_id }}\n"))
    return folder


def test_custom_folder_with_an_edit_goes_through_jinja(tmp_path: Path) -> None:
    model = models()[0][1]
    renderer = Renderer(edited_copy(tmp_path))
    assert not renderer.compiled
    assert "    balance roundrobin\n    # edited /db/sticky\n" in renderer.render(model)


def test_custom_folder_with_identical_copies_uses_the_compiled_functions(tmp_path: Path) -> None:
    folder = tmp_path / "same"
    shutil.copytree(data_dir("haproxy"), folder)
    assert Renderer(folder).compiled
    only_main = tmp_path / "only-main"
    only_main.mkdir()
    shutil.copy(data_dir("haproxy") / "haproxy.cfg.j2", only_main)  # the others come from the shipped folder
    assert Renderer(only_main).compiled
    (only_main / "global.cfg.j2").write_text("global\n")  # overrides an included template
    renderer = Renderer(only_main)
    assert not renderer.compiled
    assert "\nglobal\n\n\nfrontend http_in\n" in renderer.render(models()[0][1])


def test_edited_shipped_templates_are_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An admin editing the installed templates in place gets what they wrote, not the compiled copy."""
    folder = edited_copy(tmp_path)
    monkeypatch.setattr(render, "shipped_template_dir", lambda: str(folder))
    renderer = Renderer()
    assert not renderer.compiled and renderer.template_dir == folder
    assert "    # edited /db/tcp\n" in renderer.render(models()[0][1])
    (folder / "backend.cfg.j2").write_bytes((data_dir("haproxy") / "backend.cfg.j2").read_bytes())
    assert Renderer().compiled


def test_shipped_template_dir_is_the_resources_data_dir() -> None:
    assert render.shipped_template_dir() == str(data_dir("haproxy"))
    assert Renderer().template_dir == data_dir("haproxy")


def test_compiled_path_errors_are_validation_errors() -> None:
    from deploykit.errors import ValidationError

    model = models()[0][1]
    broken = model._replace(settings=None)
    with pytest.raises(ValidationError, match=r"haproxy\.cfg\.j2.*AttributeError"):
        Renderer().render(broken)


def test_default_render_never_imports_jinja2_or_pathlib() -> None:
    """`lb render` is measured against json.load: jinja2 (~25 ms) and pathlib (urllib.parse, ipaddress) stay out."""
    code = (
        "import sys\n"
        "from deploykit.lb.model import LbSettings, build_model\n"
        "from deploykit.lb.render import Renderer\n"
        "apps = [{'id': '/a', 'portDefinitions': [{'port': 10001}], 'labels': {'HAPROXY_GROUP': 'x',"
        " 'HAPROXY_0_VHOST': 'a.example.com'}, 'tasks': [{'id': 't1', 'host': '10.0.0.1', 'ports': [31001],"
        " 'state': 'TASK_RUNNING'}]}]\n"
        "r = Renderer()\n"
        "text = r.render(build_model(apps, LbSettings()))\n"
        "assert r.compiled and 'use_backend a_0' in text, text\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jinja2', 'markupsafe', 'pathlib')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
