"""examples/hello/config.ctmpl rendered the way consul-template reads Consul, against the stand-in.

consul-template cannot be installed here, so this test evaluates the small subset of its
template language the example uses (env, key, keyOrDefault, ls/tree with range, printf,
comments, trim markers) and performs each dependency with the HTTP access pattern
consul-template uses, through py-consul: a first read, then blocking queries with the
returned index. It checks the template renders from a pushed version, that a missing
`key` holds rendering until the key appears, and that a quiet (immutable) tree keeps
blocking queries parked instead of spinning.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import consul
import pytest

from deploykit.clients.consul import ConsulClient
from deploykit.render.config import config_prefix, config_tree
from deploykit.spec.loader import load_app

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CTMPL = REPO / "examples" / "hello" / "config.ctmpl"
ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


class Blocked(Exception):
    """A `key` dependency is missing: consul-template would keep waiting (blocking query) before writing."""

    def __init__(self, path: str, index: str):
        super().__init__(path)
        self.path, self.index = path, index


class MiniConsulTemplate:
    """Just enough of consul-template to render the example and record its dependencies."""

    def __init__(self, c: consul.Consul, environ: dict[str, str]):
        self.c, self.environ = c, environ
        self.deps: dict[tuple[str, str], str] = {}  # (kind, path) -> X-Consul-Index seen

    def _key(self, path: str) -> bytes | None:
        index, entry = self.c.kv.get(path)  # GET /v1/kv/<path>, 404 still carries X-Consul-Index
        self.deps[("key", path)] = index
        if entry is None:
            return None
        return entry["Value"] or b""

    def _list(self, prefix: str, only_children: bool) -> list[tuple[str, str]]:
        index, entries = self.c.kv.get(prefix, recurse=True)  # GET /v1/kv/<prefix>?recurse
        self.deps[("ls" if only_children else "tree", prefix)] = index
        pairs = []
        for e in entries or []:
            rel = e["Key"][len(prefix):].lstrip("/")
            if not rel or rel.endswith("/") or (only_children and "/" in rel):
                continue  # ls: direct children only; both skip folder keys (our completion marker is one)
            pairs.append((rel, (e["Value"] or b"").decode()))
        return pairs

    def _arg(self, expr: str, scope: dict[str, str]) -> str:
        expr = expr.strip()
        m = re.fullmatch(r'\(printf "([^"]*)" (\$\w+)\)', expr)
        if m:
            return m.group(1).replace("%s", scope[m.group(2)])
        if expr.startswith("$"):
            return scope[expr]
        return expr.strip('"')

    def render(self, text: str) -> str:
        tokens: list[tuple[str, str]] = []
        pos = 0
        for m in ACTION.finditer(text):
            chunk = text[pos:m.start()]
            if m.group(1):
                chunk = chunk.rstrip()
            if tokens and tokens[-1][0] == "trim-next":
                tokens.pop()
                chunk = chunk.lstrip()
            tokens.append(("text", chunk))
            tokens.append(("action", m.group(2)))
            if m.group(3):
                tokens.append(("trim-next", ""))
            pos = m.end()
        rest = text[pos:]
        if tokens and tokens[-1][0] == "trim-next":
            tokens.pop()
            rest = rest.lstrip()
        tokens.append(("text", rest))
        out, _ = self._run(tokens, 0, {})
        return out

    def _run(self, tokens: list[tuple[str, str]], i: int, scope: dict[str, str]) -> tuple[str, int]:
        out: list[str] = []
        while i < len(tokens):
            kind, body = tokens[i]
            i += 1
            if kind == "text":
                out.append(body)
                continue
            if body.startswith("/*"):
                continue
            if body == "end":
                return "".join(out), i
            m = re.fullmatch(r'(\$\w+) := env "(\w+)"', body)
            if m:
                scope[m.group(1)] = self.environ.get(m.group(2), "")
                continue
            m = re.fullmatch(r"range (ls|tree) (.+)", body)
            if m:
                pairs = self._list(self._arg(m.group(2), scope), m.group(1) == "ls")
                start = i
                for key, value in pairs:
                    part, i = self._run(tokens, start, {**scope, ".Key": key, ".Value": value})
                    out.append(part)
                if not pairs:  # skip the body: run it once for its end position, drop what it printed
                    _, i = self._run(tokens, start, {**scope, ".Key": "", ".Value": ""})
                continue
            if body in (".Key", ".Value"):
                out.append(scope[body])
                continue
            m = re.fullmatch(r"keyOrDefault (\(.*?\)) \"(.*)\"", body)
            if m:
                value = self._key(self._arg(m.group(1), scope))
                out.append(m.group(2) if value is None else value.decode())
                continue
            m = re.fullmatch(r"key (.+)", body)
            if m:
                path = self._arg(m.group(1), scope)
                value = self._key(path)
                if value is None:
                    raise Blocked(path, self.deps[("key", path)])
                out.append(value.decode())
                continue
            if body.startswith("$"):
                out.append(scope[body])
                continue
            raise AssertionError(f"the mini renderer does not know {{{{ {body} }}}}")
        return "".join(out), i


def _push_hello(url: str) -> str:
    spec = load_app(REPO / "examples" / "hello" / "app.yaml", "local")
    tree = config_tree(spec)
    prefix = config_prefix("config", spec.id, tree.hash)
    ConsulClient(url).write_config_tree(prefix, tree.items)
    return prefix


def test_hello_template_renders_from_its_version(consul_server):
    prefix = _push_hello(consul_server.url)
    c = consul.Consul(host=consul_server.host, port=consul_server.port)
    tmpl = MiniConsulTemplate(c, {"DEPLOYKIT_CONFIG_PREFIX": prefix})
    out = tmpl.render(CTMPL.read_text())
    lines = out.splitlines()
    assert lines[0] == f"# hello runtime config, rendered by consul-template from {prefix}"
    assert "greeting=hello" in lines and "feature.new_banner=false" in lines
    assert "# keys in this version: app.properties feature.new_banner greeting" in lines
    assert (REPO / "examples" / "hello" / "config" / "app.properties").read_text().strip() in out
    assert set(tmpl.deps) == {("key", f"{prefix}/greeting"), ("key", f"{prefix}/feature.new_banner"),
                              ("key", f"{prefix}/app.properties"), ("ls", prefix)}
    # the tree is immutable: consul-template's blocking queries stay parked until their wait ends
    start = time.monotonic()
    for (kind, path), index in tmpl.deps.items():
        new_index, _ = c.kv.get(path, index=index, wait="0.4s", recurse=(kind != "key"))
        assert new_index == index
    assert time.monotonic() - start >= 4 * 0.4 * 0.95


def test_missing_key_holds_rendering_until_it_appears(consul_server):
    c = consul.Consul(host=consul_server.host, port=consul_server.port)
    prefix = "config/examples/hello/0000000000000000"
    c.kv.put(f"{prefix}/feature.new_banner", "true")
    tmpl = MiniConsulTemplate(c, {"DEPLOYKIT_CONFIG_PREFIX": prefix})
    with pytest.raises(Blocked) as info:
        tmpl.render(CTMPL.read_text())
    blocked = info.value
    writer = threading.Thread(target=lambda: (time.sleep(0.3), c.kv.put(f"{prefix}/greeting", "hi"),
                                              c.kv.put(f"{prefix}/app.properties", "a=b")))
    writer.start()
    index, entry = c.kv.get(blocked.path, index=blocked.index, wait="10s")  # what consul-template waits on
    writer.join()
    assert entry is not None and int(index) > int(blocked.index)
    out = tmpl.render(CTMPL.read_text())
    assert "greeting=hi" in out and "feature.new_banner=true" in out and "a=b" in out
