"""Config tree: canonical content hash, keys, prefix."""

from __future__ import annotations

from pathlib import Path

from deploykit.render.config import ConfigTree, config_prefix, config_tree, content_hash
from deploykit.spec import load_app


def app(tmp_path: Path, config: str) -> Path:
    (tmp_path / "app.properties").write_text("a=1\n")
    path = tmp_path / "app.yaml"
    path.write_text(f"id: /shop/cart\n{config}")
    return path


def test_values_and_files_become_items(tmp_path: Path) -> None:
    spec = load_app(app(tmp_path, "config:\n  values: {b: x, a: 2}\n  files: {app.properties: app.properties}\n"), None)
    tree = config_tree(spec)
    assert tree.items == {"a": b"2", "app.properties": b"a=1\n", "b": b"x"}
    assert list(tree.items) == sorted(tree.items)
    assert tree.hash is not None and len(tree.hash) == 16 and int(tree.hash, 16) >= 0


def test_hash_is_order_independent_and_content_sensitive() -> None:
    one = content_hash({"a": b"1", "b": b"2"})
    assert one == content_hash({"b": b"2", "a": b"1"})
    assert one != content_hash({"a": b"1", "b": b"3"})
    # length prefixes: moving bytes between key and value changes the hash
    assert content_hash({"ab": b"c"}) != content_hash({"a": b"bc"})


def test_empty_config_has_no_hash(tmp_path: Path) -> None:
    assert config_tree(load_app(app(tmp_path, ""), None)) == ConfigTree(None, {})


def test_prefix() -> None:
    assert config_prefix("config", "/shop/cart", "0123456789abcdef") == "config/shop/cart/0123456789abcdef"
    assert config_prefix("/kv/config/", "shop/cart", "h") == "kv/config/shop/cart/h"
