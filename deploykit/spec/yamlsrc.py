"""YAML loading that remembers where every key and item came from.

Validation errors must name the line in app.yaml, so we compose the YAML node graph
(which carries marks) and build plain Python data alongside a map from key path to
line number. Duplicate keys, which PyYAML silently collapses, are reported too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from deploykit.errors import Problem

PathKey = tuple[str | int, ...]


@dataclass
class SourceDoc:
    """Plain data plus `lines[path] -> 1-based line` for every mapping key and list item."""

    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def line_of(self, path: PathKey) -> int | None:
        """Line of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


MAX_DEPTH = 64  # app.yaml needs about 6; deeper is a mistake or an attack, and would exhaust the stack later
MAX_VALUES = 100_000  # after expanding aliases: `&a [*b, *b]` chains grow exponentially (a "billion laughs")
_SHAPE_HINT = "app.yaml is a few levels of keys; check for runaway nesting or YAML aliases (*name)"


def _shape_problem(root: yaml.Node) -> str | None:
    """Depth, alias cycles and expanded size of the node graph, checked without recursion."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value) if isinstance(node, yaml.SequenceNode) else [])
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            if depth[key] > MAX_DEPTH:
                return f"the document nests more than {MAX_DEPTH} levels deep"
            if size[key] > MAX_VALUES:
                return f"the document expands to more than {MAX_VALUES} values (through YAML aliases?)"
            continue
        if key in size:
            continue
        if key in on_path:
            return "a YAML alias refers to a value that contains it (a cycle)"
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)
    return None


def load_yaml(text: str, file: str | None) -> SourceDoc:
    """Parse `text`; a syntax error becomes a Problem with its line (data is then None)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        return SourceDoc(None, {}, [Problem(file, "", "the document nests too deeply to read", _SHAPE_HINT)])
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        return SourceDoc(
            None, {}, [Problem(file, "", f"YAML syntax error: {reason}", "check indentation and quoting", line)]
        )
    doc = SourceDoc(None)
    if node is None:
        return doc
    shape = _shape_problem(node)
    if shape is not None:
        return SourceDoc(None, {}, [Problem(file, "", shape, _SHAPE_HINT)])
    doc.lines[()] = node.start_mark.line + 1
    doc.data = _build(node, (), doc, file, yaml.SafeLoader(""))
    return doc


def _build(node: yaml.Node, path: PathKey, doc: SourceDoc, file: str | None, loader: yaml.SafeLoader) -> Any:
    """Plain data for `node`; `loader` only constructs scalars and resolves merge keys."""
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        explicit = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
        loader.flatten_mapping(node)  # resolve `<<: *anchor` merge keys (merged pairs come first)
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            key = key if isinstance(key, str) else str(key)
            key_path = (*path, key)
            line = key_node.start_mark.line + 1
            if id(key_node) in explicit:  # overriding a merged key is fine; repeating an explicit one is not
                if key in seen:
                    hint = "keep one; YAML keeps only the last"
                    doc.problems.append(Problem(file, format_path(key_path), "duplicate key", hint, line))
                seen.add(key)
            doc.lines[key_path] = line
            out[key] = _build(value_node, key_path, doc, file, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            doc.lines[(*path, i)] = item.start_mark.line + 1
            items.append(_build(item, (*path, i), doc, file, loader))
        return items
    return loader.construct_object(node, deep=True)


def format_path(path: PathKey) -> str:
    """('ports', 0, 'container') -> 'ports[0].container'; odd keys are quoted: values["a b"]."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.replace("_", "").replace("-", "").isalnum() and not part[:1].isdigit():
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out
