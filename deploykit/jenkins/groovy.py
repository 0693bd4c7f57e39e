"""A small parser for the declarative-pipeline subset of Groovy that Jenkinsfiles use.

Why: a Jenkinsfile is rendered from a template users may override, and Jenkins only
finds a broken one when a build runs. Parsing the result into blocks (`stage('x') {`)
and steps (`sh '...'`) lets `deploykit jenkins jenkinsfile` refuse a file with missing
stages, unbalanced braces, or Groovy-interpolated strings handed to `sh` (the pattern
Jenkins itself flags as leaking secrets), and lets tests assert the structure.

It is not a Groovy parser: it tokenises strings, comments and brackets correctly and
treats every `head { ... }` as a block and every other line as a step.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

_IDENT = re.compile(r"[A-Za-z_$][\w$]*")
_NUMBER = re.compile(r"\d+(\.\d+)?")


class GroovySyntaxError(ValueError):
    def __init__(self, message: str, line: int):
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass(frozen=True)
class Token:
    kind: str  # "ident", "number", "string", "gstring", "punct", "newline", "other"
    text: str  # for strings: the decoded value
    line: int


@dataclass
class Node:
    """A block (`children` set, possibly empty) or a step (`is_block` False)."""

    name: str
    head: str  # the text before `{` (block) or the whole statement (step)
    strings: list[str]  # string literals in the head, decoded
    gstrings: list[str]  # double-quoted strings containing `$` (Groovy interpolation)
    line: int
    is_block: bool = False
    children: list[Node] = field(default_factory=list)

    def blocks(self, name: str) -> list[Node]:
        return [c for c in self.children if c.is_block and c.name == name]

    def block(self, name: str) -> Node | None:
        found = self.blocks(name)
        return found[0] if found else None

    def walk(self) -> Iterator[Node]:
        for child in self.children:
            yield child
            yield from child.walk()

    def steps(self, name: str | None = None) -> list[Node]:
        return [n for n in self.walk() if not n.is_block and (name is None or n.name == name)]


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, line, n = 0, 1, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            tokens.append(Token("newline", "\n", line))
            line += 1
            i += 1
        elif c in " \t\r":
            i += 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise GroovySyntaxError("unterminated /* comment", line)
            line += text.count("\n", i, end)
            i = end + 2
        elif c in "'\"":
            quote = c * 3 if text.startswith(c * 3, i) else c
            start_line = line
            j = i + len(quote)
            value: list[str] = []
            while True:
                if j >= n or (len(quote) == 1 and text[j] == "\n"):
                    raise GroovySyntaxError("unterminated string", start_line)
                if text.startswith(quote, j):
                    break
                if text[j] == "\\" and j + 1 < n:
                    value.append(_unescape(text[j + 1]))
                    j += 2
                    continue
                if text[j] == "\n":
                    line += 1
                value.append(text[j])
                j += 1
            decoded = "".join(value)
            kind = "gstring" if c == '"' and "$" in decoded else "string"
            tokens.append(Token(kind, decoded, start_line))
            i = j + len(quote)
        elif m := _IDENT.match(text, i):
            tokens.append(Token("ident", m.group(), line))
            i = m.end()
        elif m := _NUMBER.match(text, i):
            tokens.append(Token("number", m.group(), line))
            i = m.end()
        elif c in "{}()[],:":
            tokens.append(Token("punct", c, line))
            i += 1
        else:
            tokens.append(Token("other", c, line))
            i += 1
    return tokens


def _unescape(ch: str) -> str:
    return {"n": "\n", "t": "\t", "r": "\r"}.get(ch, ch)


def parse(text: str) -> Node:
    """Parse into a tree rooted at a synthetic block named "<file>"."""
    root = Node("<file>", "", [], [], 0, is_block=True)
    stack = [root]
    pending: list[Token] = []
    depth = 0  # () and [] nesting: newlines inside them do not end a statement
    opener: list[tuple[str, int]] = []

    def flush() -> None:
        if pending:
            stack[-1].children.append(_node(pending, is_block=False))
            pending.clear()

    for tok in tokenize(text):
        if tok.kind == "punct" and tok.text in "([":
            depth += 1
            opener.append((tok.text, tok.line))
        elif tok.kind == "punct" and tok.text in ")]":
            if not opener or opener[-1][0] != {")": "(", "]": "["}[tok.text]:
                raise GroovySyntaxError(f"unbalanced {tok.text!r}", tok.line)
            opener.pop()
            depth -= 1
        if tok.kind == "newline":
            if depth == 0:
                flush()
            continue
        if tok.kind == "punct" and tok.text == "{" and depth == 0:
            node = _node(pending or [Token("ident", "<closure>", tok.line)], is_block=True)
            pending.clear()
            stack[-1].children.append(node)
            stack.append(node)
            continue
        if tok.kind == "punct" and tok.text == "}" and depth == 0:
            flush()
            if len(stack) == 1:
                raise GroovySyntaxError("'}' without a matching '{'", tok.line)
            stack.pop()
            continue
        pending.append(tok)
    if opener:
        raise GroovySyntaxError(f"{opener[-1][0]!r} is never closed", opener[-1][1])
    flush()
    if len(stack) > 1:
        raise GroovySyntaxError(f"block {stack[-1].name!r} is never closed", stack[-1].line)
    return root


def _node(tokens: list[Token], *, is_block: bool) -> Node:
    name = tokens[0].text if tokens[0].kind == "ident" else ""
    head = " ".join(_show(t) for t in tokens)
    strings = [t.text for t in tokens if t.kind in ("string", "gstring")]
    gstrings = [t.text for t in tokens if t.kind == "gstring"]
    return Node(name, head, strings, gstrings, tokens[0].line, is_block=is_block)


def _show(tok: Token) -> str:
    return repr(tok.text) if tok.kind in ("string", "gstring") else tok.text
