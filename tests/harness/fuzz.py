"""Seeds for the fuzz tests: a fixed one (the same examples every run) and one that rotates daily.

The rotating seed is the UTC date as YYYYMMDD, so each day's runs explore new inputs and a failure
reproduces all that day; DEPLOYKIT_FUZZ_SEED=<n> replays any seed. The seed is in each test's id
(`[seed=20261204]`), which pytest prints for every failure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

FIXED_SEED = 17


def rotating_seed() -> int:
    explicit = os.environ.get("DEPLOYKIT_FUZZ_SEED")
    return int(explicit) if explicit else int(time.strftime("%Y%m%d", time.gmtime()))


SEEDS = [FIXED_SEED, rotating_seed()]


def fuzz_examples(default: int) -> int:
    """Examples per seed: the suite's bounded default, or more for a local hunt (DEPLOYKIT_FUZZ_EXAMPLES=2000)."""
    return int(os.environ.get("DEPLOYKIT_FUZZ_EXAMPLES", default))


def seed_id(value: int) -> str:
    return f"seed={value}"


def run_fuzz(fuzz_seed: int, strategy: st.SearchStrategy, check: Callable[[Any], None], max_examples: int) -> None:
    """Run `check` on `max_examples` examples of `strategy` drawn from `fuzz_seed` (no example database)."""

    @seed(fuzz_seed)
    @settings(max_examples=max_examples, database=None, deadline=None, derandomize=False, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(strategy)
    def fuzz(example: Any) -> None:
        check(example)

    fuzz()


# ---- hostile values ---------------------------------------------------------------------------------------------
CONTROL = "".join(chr(c) for c in range(32)) + "\x7f\x85\u2028\u2029"
NASTY_STRINGS = ["", " ", "-", "--help", "~", "..", "../../etc/passwd", "/", "//", "\\", "$HOME", "${X}", "%s%n",
                 "{{ 7*7 }}", "{% raw %}", "'", '"', "#", "a#b", "a b", "x\ny", "\r\n", "\x00", "\u202e", "🚀",
                 "ﬁ", "İ", "\ufeff", "a" * 3000, "0x10", "1e999", "-0", "NaN", ".nan", "Infinity", "null", "~",
                 "yes", "on", "true", "*", "&a", "!!python/object:os.system", "[", "{", "}", "|", ">"]
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
control_text = st.text(alphabet=st.sampled_from(CONTROL + "ab/.:#{}$"), max_size=12)
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**70), 2**70),
                    st.sampled_from([0, -1, 2**31, 2**63, 2**64, 10**30, 1e308, -1e308, 5e-324]))
scalars = st.one_of(numbers, text, control_text, st.sampled_from(NASTY_STRINGS), st.booleans(), st.none())
hostile = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.one_of(text, st.integers()), inner,
                                                                           max_size=4)),
    max_leaves=12,
)


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


deep = st.integers(1, 200).map(_nested)
hostile_or_deep = st.one_of(hostile, deep)
