"""Time marathon-lb's in-process config generator on a saved /v2/apps?embed=apps.tasks response.

    .venv/bin/python bench/mlb_generate.py apps.json [out.cfg]

Prints "seconds cpu_seconds" for json.loads of the file + marathon-lb's `get_apps` + `config` (what its
`regenerate_config` does between fetching the apps and writing the file; no reload, no `haproxy -c`),
timed inside the process after its imports. The code is bench/marathon_lb/ (vendored, Apache-2.0).
Modules that only its event stream, DC/OS auth and zero-downtime-deploy paths use (pycurl, jwt,
dateutil) are stubbed when absent: nothing timed here calls them.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "marathon_lb"))
for name in ("pycurl", "jwt", "dateutil", "dateutil.parser"):
    try:
        __import__(name)
    except ImportError:
        sys.modules[name] = types.ModuleType(name)
sys.modules["dateutil"].parser = sys.modules["dateutil.parser"]  # type: ignore[attr-defined]

import marathon_lb  # noqa: E402
from lrucache import LRUCache  # noqa: E402


class SavedMarathon:
    """The Marathon object get_apps reads from (as marathon-lb's own tests give it), from a saved response."""

    def __init__(self, apps: list[dict]):
        self.apps = apps

    def list(self) -> list[dict]:
        return self.apps

    def health_check(self) -> bool:
        return True  # --health-check: route only tasks Marathon finds healthy, as deploykit does

    def strict_mode(self) -> bool:
        return False


def main() -> None:
    logging.disable(logging.CRITICAL)
    marathon_lb.ip_cache.set(LRUCache(1000))
    templater = marathon_lb.ConfigTemplater()
    data = Path(sys.argv[1]).read_bytes()
    wall, cpu = time.perf_counter(), time.process_time()
    apps = marathon_lb.get_apps(SavedMarathon(json.loads(data)["apps"]))
    text = marathon_lb.config(apps, ["external"], True, "", templater)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if len(sys.argv) > 2:
        Path(sys.argv[2]).write_text(text)
    print(wall, cpu)


if __name__ == "__main__":
    main()
