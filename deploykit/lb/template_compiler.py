"""Compile the shipped Jinja2 templates (haproxy/) into plain Python functions, ahead of time.

Why: `lb render` must cost little more than parsing its input, and `import jinja2` plus compiling
the templates is a fixed cost as large as rendering 1,000 backends. The templates stay the single
source of truth; this generator turns each one into a function (template variables in, str out)
in deploykit/lb/compiled_templates.py, checked in together with the exact source it was compiled
from, so the Renderer uses it only while the templates on disk are still those.

The templates are parsed by jinja2 itself (same Environment options as the Renderer, so whitespace
control is already applied), and only the constructs the shipped templates use are supported:
output, names, attributes, constants, the `join` filter, ==/!=, not/and/or, if/elif/else, for
(tuple targets, no else/filter/loop variable), set and set-block, and include of another shipped
template. Anything else is refused with the template name and line: the generated code never
silently differs from Jinja2. Semantics kept: output is str(value) (autoescape off), `join` maps
str over the items, truthiness is Python's, attribute access is getattr, a for loop is a scope.
Known difference: values interpolated into one line may be evaluated in another order than Jinja2
does, which can only change WHICH error is reported when a template fails (never the output).

    python -m deploykit.lb.template_compiler           # regenerate compiled_templates.py
    python -m deploykit.lb.template_compiler --check   # exit 1 if the checked-in file is stale
"""

from __future__ import annotations

import keyword
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import nodes

from deploykit.lb.render import make_environment
from deploykit.resources import data_dir

#: The shipped templates, the ones compiled (order = order in the generated module).
TEMPLATES = ("haproxy.cfg.j2", "global.cfg.j2", "frontends.cfg.j2", "backend.cfg.j2")
OUTPUT = Path(__file__).with_name("compiled_templates.py")
WIDTH = 120  # the repository's ruff line length
# Python names the generated code itself relies on; a template variable may not shadow them.
_RESERVED = frozenset({"str", "map"})
_SIMPLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


class CompileError(ValueError):
    """A template uses something the compiler does not support (message: template:line: what)."""

    def __init__(self, template: str, lineno: int | None, message: str):
        self.template, self.lineno = template, lineno
        super().__init__(f"{template}:{lineno or '?'}: {message} (the template compiler supports only the "
                         "constructs the shipped templates use; see deploykit/lb/template_compiler.py)")


def function_name(template: str) -> str:
    """haproxy.cfg.j2 -> haproxy_cfg."""
    stem = template.removesuffix(".j2")
    return re.sub(r"\W", "_", stem if not stem[:1].isdigit() else f"t_{stem}")


# ---------------------------------------------------------------------------------------------
# literal text -> Python string literals, split to fit the line length

def _escape_char(ch: str, in_fstring: bool) -> str:
    if ch == "\\":
        return "\\\\"
    if ch == '"':
        return '\\"'
    if ch == "\n":
        return "\\n"
    if ch == "\t":
        return "\\t"
    if ch in "{}" and in_fstring:
        return ch * 2
    code = ord(ch)
    if 32 <= code < 127:
        return ch
    if code < 256:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


@dataclass(frozen=True)
class Part:
    """A piece of output: literal text, or a simple Python expression whose str() is output."""

    text: str = ""
    code: str = ""
    names: frozenset[str] = frozenset()
    is_str: bool = False  # code is a temporary known to hold a str (needs no conversion)

    @property
    def is_expr(self) -> bool:
        return bool(self.code)


def string_literals(parts: list[Part], indent: int) -> list[str]:
    """Python source for the concatenation of `parts`: one or more adjacent (f-)string literals, one per
    output line (and shorter when a line is too long), so the generated code reads like the output."""
    budget = WIDTH - indent - 4  # f, two quotes, margin
    segments: list[list[tuple[str, str]]] = [[]]  # (kind, raw)
    used = 0
    for part in parts:
        tokens = [("expr", part.code)] if part.is_expr else [("char", ch) for ch in part.text]
        for kind, raw in tokens:
            size = len(raw) + 4 if kind == "expr" else len(_escape_char(raw, True))
            if used + size > budget and segments[-1]:
                current = segments[-1]
                cut = max((i for i, tok in enumerate(current) if tok == ("char", " ")), default=len(current) - 1)
                segments[-1], rest = current[: cut + 1], current[cut + 1:]  # break after a space if there is one
                segments.append(rest)
                used = sum(len(r) + 4 if k == "expr" else len(_escape_char(r, True)) for k, r in rest)
            segments[-1].append((kind, raw))
            used += size
            if kind == "char" and raw == "\n" and any(r != "\n" for _, r in segments[-1]):
                segments.append([])
                used = 0
    out = []
    for segment in segments:
        if not segment:
            continue
        is_f = any(kind == "expr" for kind, _ in segment)
        body = "".join("{" + raw + "!s}" if kind == "expr" else _escape_char(raw, is_f) for kind, raw in segment)
        out.append(("f" if is_f else "") + '"' + body + '"')
    return out or ['""']


def _py_const(value: object, where: tuple[str, int | None]) -> str:
    if isinstance(value, str):
        return '"' + "".join(_escape_char(ch, False) for ch in value) + '"'
    if value is None or isinstance(value, (bool, int)) or (isinstance(value, float) and math.isfinite(value)):
        return repr(value)
    raise CompileError(*where, f"constant of type {type(value).__name__} is not supported")


# ---------------------------------------------------------------------------------------------
# scopes

@dataclass
class _Scope:
    """Names of one Jinja scope (the template, or one for-loop body) -> Python identifiers."""

    parent: _Scope | None
    idents: dict[str, str]  # every name this scope binds (pre-scanned) -> its Python identifier
    bound: dict[str, str] = field(default_factory=dict)  # the ones bound so far, in template order


def _bound_here(body: list[nodes.Node]) -> set[str]:
    """Names bound directly in this scope (set, set-block; for-loop targets belong to the loop's scope)."""
    found: set[str] = set()
    for node in body:
        if isinstance(node, (nodes.Assign, nodes.AssignBlock)) and isinstance(node.target, nodes.Name):
            found.add(node.target.name)
        elif isinstance(node, nodes.If):
            for branch in [node.body, *[e.body for e in node.elif_], node.else_]:
                found |= _bound_here(branch)
    return found


def _names_in(node: nodes.Node, skip: nodes.Node | None, include_free: dict[str, list[str]]) -> set[str]:
    """Every name read or bound under `node`, outside the subtree `skip` (includes count as reads)."""
    found: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if n is skip:
            continue
        if isinstance(n, nodes.Name):
            found.add(n.name)
        elif isinstance(n, nodes.Include) and isinstance(n.template, nodes.Const):
            found |= set(include_free.get(n.template.value, ()))
        stack.extend(n.iter_child_nodes())
    return found


# ---------------------------------------------------------------------------------------------
# one template -> one function

class _FunctionCompiler:
    def __init__(self, template: str, tree: nodes.Template, free_vars: dict[str, list[str]], reserved: frozenset[str]):
        self.template = template
        self.tree = tree
        self.include_free = free_vars  # free variables of the templates compiled already
        self.reserved = reserved  # the generated functions' names and the builtins the code calls
        self.lines: list[str] = []
        self.free: list[str] = []
        self.counter = 0

    # -- helpers
    def fail(self, node: nodes.Node, message: str) -> CompileError:
        return CompileError(self.template, getattr(node, "lineno", None), message)

    def fresh(self, prefix: str = "_t") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def emit_string(self, indent: int, head: str, parts: list[Part], tail: str = "") -> None:
        """`head <string> tail`, on one line when it fits, else the literals one per line in parentheses."""
        if len(parts) == 1 and parts[0].is_str:
            self.emit(indent, head + parts[0].code + tail)
            return
        literals = string_literals(parts, 4 * (indent + 1))
        one = "    " * indent + head + " ".join(literals) + tail
        if len(literals) == 1 and len(one) <= WIDTH:
            self.lines.append(one)
            return
        in_call = head.endswith("(") and tail.startswith(")")  # call parentheses suffice
        self.emit(indent, head if in_call else head + "(")
        for literal in literals:
            self.emit(indent + 1, literal)
        self.emit(indent, tail if in_call else ")" + tail)

    def check_name(self, node: nodes.Node, name: str) -> None:
        if name == "loop":
            raise self.fail(node, "the loop variable is not supported")
        if name.startswith("_") or keyword.iskeyword(name) or name in self.reserved:
            raise self.fail(node, f"variable name {name!r} is not supported")

    def resolve(self, node: nodes.Node, name: str, scope: _Scope) -> str:
        self.check_name(node, name)
        s: _Scope | None = scope
        while s is not None:
            if name in s.bound:
                return s.bound[name]
            if name in s.idents:
                raise self.fail(node, f"{name!r} is read before it is set in the same block")
            s = s.parent
        if name not in self.free:
            self.free.append(name)
        return name

    # -- expressions: (code, names it reads, simple enough to sit inside an f-string)
    def expr(self, node: nodes.Expr, scope: _Scope) -> tuple[str, frozenset[str]]:
        where = (self.template, getattr(node, "lineno", None))
        if isinstance(node, nodes.Name):
            if node.ctx != "load":
                raise self.fail(node, "assignment inside an expression is not supported")
            ident = self.resolve(node, node.name, scope)
            return ident, frozenset({ident})
        if isinstance(node, nodes.Getattr):
            code, names = self.expr(node.node, scope)
            if not node.attr.isidentifier() or keyword.iskeyword(node.attr):
                raise self.fail(node, f"attribute {node.attr!r} is not supported")
            atom = isinstance(node.node, (nodes.Name, nodes.Getattr, nodes.Filter)) or (
                isinstance(node.node, nodes.Const) and isinstance(node.node.value, str))
            return f"{code if atom else f'({code})'}.{node.attr}", names
        if isinstance(node, nodes.Const):
            return _py_const(node.value, where), frozenset()
        if isinstance(node, nodes.Filter):
            return self.filter(node, scope)
        if isinstance(node, nodes.Compare):
            code, names = self.expr(node.expr, scope)
            out = [self._paren(node.expr, code)]
            for operand in node.ops:
                if operand.op not in ("eq", "ne"):
                    raise self.fail(node, f"comparison {operand.op!r} is not supported (only == and !=)")
                right, more = self.expr(operand.expr, scope)
                out += ["==" if operand.op == "eq" else "!=", self._paren(operand.expr, right)]
                names |= more
            return " ".join(out), names
        if isinstance(node, nodes.Not):
            code, names = self.expr(node.node, scope)
            return f"not {self._paren(node.node, code)}", names
        if isinstance(node, (nodes.And, nodes.Or)):
            left, names = self.expr(node.left, scope)
            right, more = self.expr(node.right, scope)
            op = "and" if isinstance(node, nodes.And) else "or"
            return f"{self._paren(node.left, left)} {op} {self._paren(node.right, right)}", names | more
        raise self.fail(node, f"expression {type(node).__name__} is not supported")

    @staticmethod
    def _paren(node: nodes.Node, code: str) -> str:
        return code if isinstance(node, (nodes.Name, nodes.Getattr, nodes.Const, nodes.Filter)) else f"({code})"

    def filter(self, node: nodes.Filter, scope: _Scope) -> tuple[str, frozenset[str]]:
        if node.name != "join":
            raise self.fail(node, f"filter {node.name!r} is not supported (only join)")
        if node.kwargs or node.dyn_args or node.dyn_kwargs or len(node.args) > 1 or node.node is None:
            raise self.fail(node, "join takes only a separator here")
        sep = ""
        if node.args:
            if not isinstance(node.args[0], nodes.Const) or not isinstance(node.args[0].value, str):
                raise self.fail(node, "join's separator must be a string constant")
            sep = node.args[0].value
        code, names = self.expr(node.node, scope)
        # jinja2's join with autoescape off: str(sep).join(map(str, value))
        return f"{_py_const(sep, (self.template, node.lineno))}.join(map(str, {code}))", names

    def output_part(self, node: nodes.Expr, scope: _Scope, indent: int) -> Part:
        code, names = self.expr(node, scope)
        if _SIMPLE.match(code):
            return Part(code=code, names=names)
        temp = self.fresh()  # hoisted: an f-string (py3.10) cannot hold quotes of its own kind
        self.emit(indent, f"{temp} = {code}")
        return Part(code=temp)

    # -- statements: output accumulates as parts; control flow yields temporaries holding strings
    def block(self, body: list[nodes.Node], scope: _Scope, indent: int) -> list[Part]:
        parts: list[Part] = []
        for node in body:
            if isinstance(node, nodes.Output):
                for child in node.nodes:
                    if isinstance(child, nodes.TemplateData):
                        parts.append(Part(text=child.data))
                    elif isinstance(child, nodes.Const):
                        parts.append(Part(text=str(child.value)))
                    else:
                        parts.append(self.output_part(child, scope, indent))
            elif isinstance(node, nodes.If):
                part = self.if_(node, scope, indent)
                if part is not None:
                    parts.append(part)
            elif isinstance(node, nodes.For):
                parts.append(self.for_(node, scope, indent))
            elif isinstance(node, (nodes.Assign, nodes.AssignBlock)):
                parts = self.assign(node, scope, indent, parts)
            elif isinstance(node, nodes.Include):
                parts.append(self.include(node, scope, indent))
            else:
                raise self.fail(node, f"{type(node).__name__} is not supported")
        return [p for p in parts if p.is_expr or p.text]

    def assign(self, node: nodes.Assign | nodes.AssignBlock, scope: _Scope, indent: int,
               parts: list[Part]) -> list[Part]:
        target = node.target
        if not isinstance(target, nodes.Name):
            raise self.fail(node, "only `set name = ...` is supported")
        self.check_name(node, target.name)
        ident = scope.idents[target.name]
        # output already collected that reads the old value must keep it: capture it now
        kept = []
        for part in parts:
            if ident in part.names:
                temp = self.fresh()
                self.emit(indent, f"{temp} = {part.code}")
                part = Part(code=temp)
            kept.append(part)
        if isinstance(node, nodes.Assign):
            code, _ = self.expr(node.node, scope)
            self.emit(indent, f"{ident} = {code}")
        else:
            if node.filter is not None:
                raise self.fail(node, "a filter on a set block is not supported")
            self.emit_string(indent, f"{ident} = ", self.block(node.body, scope, indent))
        scope.bound[target.name] = ident
        return kept

    def if_(self, node: nodes.If, scope: _Scope, indent: int) -> Part | None:
        branches: list[tuple[str | None, list[nodes.Node]]] = [(self.expr(node.test, scope)[0], node.body)]
        branches += [(self.expr(e.test, scope)[0], e.body) for e in node.elif_]
        branches.append((None, node.else_))
        for _, body in branches:
            for inner in body:
                if isinstance(inner, (nodes.Assign, nodes.AssignBlock)):
                    raise self.fail(inner, "set inside if is not supported")
        temp = self.fresh()
        start = len(self.lines)
        compiled = []
        for test, body in branches:
            mark = len(self.lines)
            parts = self.block(body, scope, indent + 1)
            compiled.append((test, self.lines[mark:], parts))
            del self.lines[mark:]
        del self.lines[start:]
        if all(not p for _, _, p in compiled):
            return None
        if len(compiled) == 2 and not compiled[0][1] and not compiled[1][1]:
            yes = " ".join(string_literals(compiled[0][2], 0))
            no = " ".join(string_literals(compiled[1][2], 0))
            line = f"{temp} = {yes} if {compiled[0][0]} else {no}"
            if len("    " * indent + line) <= WIDTH:
                self.emit(indent, line)
                return Part(code=temp, is_str=True)
        for i, (test, lines, parts) in enumerate(compiled):
            if test is None:
                self.emit(indent, "else:")
            else:
                self.emit(indent, f"{'if' if i == 0 else 'elif'} {test}:")
            self.lines.extend(lines)
            self.emit_string(indent + 1, f"{temp} = ", parts)
        return Part(code=temp, is_str=True)

    def for_(self, node: nodes.For, scope: _Scope, indent: int) -> Part:
        if node.else_ or node.test is not None or node.recursive:
            raise self.fail(node, "for with else, a filter or recursive is not supported")
        iterable, _ = self.expr(node.iter, scope)
        items = [node.target] if isinstance(node.target, nodes.Name) else getattr(node.target, "items", [])
        if not items or not all(isinstance(t, nodes.Name) for t in items):
            raise self.fail(node, "for targets must be names")
        targets = [t.name for t in items]
        # A loop is a scope: its names must not clobber a same-named variable used outside it.
        outside = _names_in(self.tree, node, self.include_free)
        idents: dict[str, str] = {}
        for name in sorted(_bound_here(node.body) | set(targets)):
            self.check_name(node, name)
            # a renamed one starts with "_" (no template name does) and ends with a unique number
            idents[name] = self.fresh(f"_{name}_") if name in outside else name
        loop = _Scope(scope, idents, {name: idents[name] for name in targets})
        target_code = ", ".join(idents[name] for name in targets)
        acc = self.fresh("_l")
        self.emit(indent, f"{acc} = []")
        self.emit(indent, f"for {target_code} in {iterable}:")
        mark = len(self.lines)
        parts = self.block(node.body, loop, indent + 1)
        if parts:
            self.emit_string(indent + 1, f"{acc}.append(", parts, ")")
        elif len(self.lines) == mark:
            self.emit(indent + 1, "pass")
        temp = self.fresh()
        self.emit(indent, f'{temp} = "".join({acc})')
        return Part(code=temp, is_str=True)

    def include(self, node: nodes.Include, scope: _Scope, indent: int) -> Part:
        if not isinstance(node.template, nodes.Const) or node.ignore_missing or not node.with_context:
            raise self.fail(node, "only `include \"name\"` of a shipped template is supported")
        name = node.template.value
        if name not in self.include_free:
            raise self.fail(node, f"include of {name!r}: not a compiled template (or an include cycle)")
        args = []
        names: set[str] = set()
        for var in self.include_free[name]:
            ident = self.resolve(node, var, scope)
            args.append(f"{var}={ident}")
            names.add(ident)
        call = f"{function_name(name)}({', '.join(args)})"
        if len(call) <= 80:
            return Part(code=call, names=frozenset(names))
        temp = self.fresh()  # too long for a line of the f-string: one argument per line
        self.emit(indent, f"{temp} = {function_name(name)}(")
        for arg in args:
            self.emit(indent + 1, f"{arg},")
        self.emit(indent, ")")
        return Part(code=temp, is_str=True)

    def compile(self) -> list[str]:
        top = _Scope(None, {name: name for name in _bound_here(self.tree.body)})
        for name in top.idents:
            self.check_name(self.tree, name)
        parts = self.block(self.tree.body, top, 1)
        body = self.lines
        self.lines = []
        params = "".join(f"{name}, " for name in self.free)
        self.emit(0, f"def {function_name(self.template)}(*, {params}**_) -> str:")
        self.lines.extend(body)
        self.emit_string(1, "return ", parts)
        return self.lines


def _includes(tree: nodes.Template) -> list[str]:
    return [n.template.value for n in tree.find_all(nodes.Include) if isinstance(n.template, nodes.Const)]


def compile_templates(sources: dict[str, str]) -> str:
    """{template name: source} -> the text of the generated module (included templates compiled first)."""
    env = make_environment()
    trees = {}
    for name, source in sources.items():
        try:
            trees[name] = env.parse(source, name=name)
        except Exception as exc:  # jinja2.TemplateSyntaxError
            raise CompileError(name, getattr(exc, "lineno", None), f"syntax error: {exc}") from exc
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order or name not in trees:
            return
        if name in visiting:
            raise CompileError(name, None, "include cycle")
        visiting.add(name)
        for inc in _includes(trees[name]):
            visit(inc)
        visiting.discard(name)
        order.append(name)

    for name in sources:
        visit(name)
    free: dict[str, list[str]] = {}
    functions: dict[str, list[str]] = {}
    reserved = _RESERVED | {function_name(name) for name in sources}
    for name in order:
        compiler = _FunctionCompiler(name, trees[name], free, reserved)
        functions[name] = compiler.compile()
        free[name] = compiler.free
    out = [
        "# generated by `python -m deploykit.lb.template_compiler`, do not edit",
        '"""The shipped haproxy/ templates compiled to plain Python (see deploykit/lb/template_compiler.py).',
        "",
        "FUNCTIONS[name](**variables) returns what Jinja2 renders from SOURCES[name], byte for byte; the",
        "Renderer uses them only while the template files on disk equal SOURCES.",
        '"""',
        "",
    ]
    for name in order:
        out += ["", *functions[name], ""]
    out += ["", "FUNCTIONS = {"]
    out += [f'    "{name}": {function_name(name)},' for name in sources]
    out += ["}", "", "SOURCES = {"]
    for name, source in sources.items():
        out.append(f'    "{name}": (')
        out += ["        " + literal for literal in string_literals([Part(text=source)], 8)]
        out.append("    ),")
    out.append("}")
    return "\n".join(out) + "\n"


def shipped_sources(folder: Path | None = None) -> dict[str, str]:
    """The shipped templates' text, read as the Renderer reads it (bytes decoded as UTF-8)."""
    folder = folder or data_dir("haproxy")
    return {name: (folder / name).read_bytes().decode("utf-8") for name in TEMPLATES}


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m deploykit.lb.template_compiler",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the checked-in module is stale")
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    try:
        text = compile_templates(shipped_sources())
    except CompileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    current = args.output.read_text(encoding="utf-8") if args.output.is_file() else None
    if args.check:
        if current != text:
            print(f"{args.output} is stale: run python -m deploykit.lb.template_compiler", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    if current != text:
        args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
