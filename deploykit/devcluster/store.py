"""Apps and their versions on disk: `<state dir>/marathon/apps/<slug>.json`, written atomically.

One file per app holds every stored version (newest last, at most `max_versions`, like
Marathon's `--max_versions`) and which one is current. A leader and a standby that share
the state dir share this store; only the leader writes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from deploykit.devcluster.util import app_state_name, atomic_write_json, new_uuid

log = logging.getLogger(__name__)


class AppStore:
    def __init__(self, state_dir: Path, max_versions: int = 50) -> None:
        self.root = state_dir / "marathon"
        self.apps_dir = self.root / "apps"
        self.max_versions = max_versions

    def _path(self, app_id: str) -> Path:
        return self.apps_dir / app_state_name(app_id)

    def load_all(self) -> dict[str, dict]:
        """{app id: {"current": def, "versions": {ts: def}}} for every stored app."""
        out: dict[str, dict] = {}
        if not self.apps_dir.is_dir():
            return out
        for f in sorted(self.apps_dir.glob("*.json")):
            try:
                doc = json.loads(f.read_text())
                versions = {v["version"]: v for v in doc["versions"]}
                out[doc["id"]] = {"current": versions[doc["current"]], "versions": versions}
            except (OSError, ValueError, KeyError) as exc:
                log.error("skipping unreadable state file %s: %s", f, exc)
        return out

    def save(self, app_id: str, current: dict, versions: dict[str, dict]) -> dict[str, dict]:
        """Persist an app; returns the (possibly trimmed) versions."""
        ordered = sorted(versions)
        if len(ordered) > self.max_versions:
            for old in ordered[: len(ordered) - self.max_versions]:
                if old != current["version"]:
                    versions.pop(old)
        atomic_write_json(self._path(app_id), {
            "id": app_id, "current": current["version"], "versions": [versions[v] for v in sorted(versions)],
        })
        return versions

    def delete(self, app_id: str) -> None:
        self._path(app_id).unlink(missing_ok=True)

    # Deployments in flight, so a restarted or newly elected leader resumes them (Marathon keeps its plans
    # in ZooKeeper for the same reason).
    def save_deployment(self, doc: dict) -> None:
        atomic_write_json(self.root / "deployments" / f"{doc['id']}.json", doc)

    def delete_deployment(self, dep_id: str) -> None:
        (self.root / "deployments" / f"{dep_id}.json").unlink(missing_ok=True)

    def load_deployments(self) -> list[dict]:
        out = []
        for f in sorted((self.root / "deployments").glob("*.json")):
            try:
                out.append(json.loads(f.read_text()))
            except (OSError, ValueError) as exc:
                log.error("skipping unreadable deployment file %s: %s", f, exc)
        return sorted(out, key=lambda d: d.get("version", ""))

    def framework_id(self) -> str:
        """Stable across restarts, as a Mesos framework id is."""
        f = self.root / "framework_id"
        if f.exists():
            return f.read_text().strip()
        fid = f"{new_uuid()}-0000"
        self.root.mkdir(parents=True, exist_ok=True)
        f.write_text(fid)
        return fid
