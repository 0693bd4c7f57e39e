"""Optional ACL tokens for the Consul stand-in: enough of Consul's key_prefix rules to test 403s.

A token maps to either a word for every key ("management", "write", "read", "deny") or a
dict of key prefix -> "write" | "read" | "deny" where the longest matching prefix wins
(Consul's `key_prefix` rules). Requests without a token get `default_policy`
("allow" = like a management token, "deny" = nothing). Unknown tokens are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

LEVELS = {"deny": 0, "read": 1, "write": 2}
TokenRules = str | Mapping[str, str]


class UnknownToken(Exception):
    """The request named a token the server does not know (Consul: 403 "ACL not found")."""


@dataclass(frozen=True)
class Authorizer:
    """What one token may do with keys and sessions."""

    rules: Mapping[str, int]  # prefix -> level; "" is the default for all keys
    management: bool = False

    def level(self, key: str) -> int:
        if self.management:
            return 2
        best, best_len = 0, -1
        for prefix, lvl in self.rules.items():
            if key.startswith(prefix) and len(prefix) > best_len:
                best, best_len = lvl, len(prefix)
        return best

    def can_read(self, key: str) -> bool:
        return self.level(key) >= 1

    def can_write(self, key: str) -> bool:
        return self.level(key) >= 2

    def can_write_prefix(self, prefix: str) -> bool:
        """Write on the prefix and on everything under it (Consul's rule for recursive deletes)."""
        if self.management:
            return True
        if not self.can_write(prefix):
            return False
        return all(lvl >= 2 for p, lvl in self.rules.items() if p.startswith(prefix))

    @property
    def can_session(self) -> bool:
        return self.management or any(lvl >= 2 for lvl in self.rules.values())


ALLOW_ALL = Authorizer(rules={}, management=True)
DENY_ALL = Authorizer(rules={})


def _compile(rules: TokenRules) -> Authorizer:
    if isinstance(rules, str):
        if rules == "management":
            return ALLOW_ALL
        if rules not in LEVELS:
            raise ValueError(f"unknown ACL policy {rules!r} (use management, write, read or deny)")
        return Authorizer(rules={"": LEVELS[rules]})
    compiled = {}
    for prefix, word in rules.items():
        if word not in LEVELS:
            raise ValueError(f"unknown ACL level {word!r} for prefix {prefix!r} (use write, read or deny)")
        compiled[prefix] = LEVELS[word]
    return Authorizer(rules=compiled)


class Acl:
    """Token -> Authorizer; `None` tokens mapping means ACLs are off and everything is allowed."""

    def __init__(self, tokens: Mapping[str, TokenRules] | None, default_policy: str = "allow") -> None:
        if default_policy not in ("allow", "deny"):
            raise ValueError("default_policy must be 'allow' or 'deny'")
        self.enabled = tokens is not None
        self._tokens = {tok: _compile(rules) for tok, rules in (tokens or {}).items()}
        self._anonymous = ALLOW_ALL if default_policy == "allow" else DENY_ALL

    def authorize(self, token: str | None) -> Authorizer:
        if not self.enabled:
            return ALLOW_ALL
        if not token or token == "anonymous":
            return self._anonymous
        auth = self._tokens.get(token)
        if auth is None:
            raise UnknownToken()
        return auth
