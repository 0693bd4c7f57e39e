"""Pure: an app's `config:` section -> the immutable Consul KV tree and its content hash.

The hash names the version: `<prefix>/<app id>/<hash>/<key>`. Same content, same hash,
so redeploying unchanged config writes nothing new and old tasks keep their tree.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deploykit.spec.models import AppSpec

_DOMAIN = b"deploykit-config/1\0"  # changes only if the encoding below ever changes


@dataclass(frozen=True)
class ConfigTree:
    """`items`: KV key (relative to the version prefix) -> value bytes. `hash` is None when empty."""

    hash: str | None
    items: dict[str, bytes] = field(default_factory=dict)


def config_tree(spec: AppSpec) -> ConfigTree:
    """Values (UTF-8) and file contents (as read by the loader), keyed and hashed canonically."""
    items: dict[str, bytes] = {key: value.encode() for key, value in spec.config.values.items()}
    items.update(spec.config_contents)
    if not items:
        return ConfigTree(None, {})
    ordered = dict(sorted(items.items()))
    return ConfigTree(content_hash(ordered), ordered)


def content_hash(items: dict[str, bytes]) -> str:
    """First 16 hex digits of sha256 over length-prefixed (key, value) pairs in key order."""
    digest = hashlib.sha256(_DOMAIN)
    for key in sorted(items):
        raw_key = key.encode()
        value = items[key]
        digest.update(len(raw_key).to_bytes(4, "big") + raw_key + len(value).to_bytes(8, "big") + value)
    return digest.hexdigest()[:16]


def config_prefix(consul_prefix: str, app_id: str, config_hash: str) -> str:
    """'config' + '/shop/cart' + hash -> 'config/shop/cart/<hash>' (what tasks get in DEPLOYKIT_CONFIG_PREFIX)."""
    return f"{consul_prefix.strip('/')}/{app_id.strip('/')}/{config_hash}"
