"""The deploy: validate -> lock -> config -> Marathon -> wait -> roll back (DESIGN §4).

Also `diff`, `status`, `history` and `rollback`, which share its pieces. The CLI only
parses options and prints what these functions return (the report's JSON) or raise (a
deploykit error whose `to_dict()` carries the same report).

One module per job:
- `inputs`: every check that needs no network (`prepare`, `resolve_target`), all problems at once;
- `wiring`: the Marathon, Consul and lock clients of an environment (`connected`, a context manager);
- `deployment`: the deploy/rollback state machine (`Deployment`), `deploy()` and `rollback()`;
- `revert`: `deploykit rollback` (an earlier version, PUT and watched like a deploy);
- `orphans`: deployments left by a deploy client that is gone (killed): adopted or seen through;
- `watching`: PUT and wait, the I/O loop that feeds deploykit/watch.py;
- `report`: `DeployReport`, what `--output json` promises, and the errors that carry it;
- `history_store`: how each version ended, kept in Consul;
- `views`: the read-only `diff`, `status` and `history`.

Ordering is the safety argument:
1. Every input (app.yaml, environment file, secrets, image, credentials) is checked
   before any network call; all problems at once (exit 2).
2. Marathon must answer before anything is written (exit 4, Consul untouched).
3. The per-(env, app) lock is taken; it is re-checked before each later change, and its
   loss aborts the deploy there (exit 3), leaving Marathon's deployment to a human.
4. The config tree goes to Consul first; if that fails Marathon is never touched (exit 4).
5. The event stream is subscribed *before* the PUT so a fast deployment cannot be missed;
   /v2/deployments and the app are polled as a fallback (watch.py decides).
6. On failure the previous definition is PUT back with force=true (our failed deployment
   still holds the app) and watched the same way under its own budget.
7. Old config versions are garbage-collected, keeping every hash a known version uses.
"""

from deploykit.deploy.deployment import Deployment, deploy, plan_for, referenced_config_hashes
from deploykit.deploy.history_store import HISTORY_PREFIX, history_key, read_history, record_history
from deploykit.deploy.inputs import DeployOptions, Prepared, Target, prepare, resolve_target
from deploykit.deploy.report import (
    DeployFailure,
    DeployInterrupted,
    DeployLocked,
    DeployReport,
    RollbackFailure,
    Unreachable,
    scrub_error,
)
from deploykit.deploy.revert import rollback
from deploykit.deploy.views import diff, history, status
from deploykit.deploy.watching import WATCH_EVENTS, Stop
from deploykit.deploy.wiring import Clients, connected

__all__ = [
    "HISTORY_PREFIX",
    "WATCH_EVENTS",
    "Clients",
    "DeployFailure",
    "DeployInterrupted",
    "DeployLocked",
    "DeployOptions",
    "DeployReport",
    "Deployment",
    "Prepared",
    "RollbackFailure",
    "Stop",
    "Target",
    "Unreachable",
    "connected",
    "deploy",
    "diff",
    "history",
    "history_key",
    "plan_for",
    "prepare",
    "read_history",
    "record_history",
    "referenced_config_hashes",
    "resolve_target",
    "rollback",
    "scrub_error",
    "status",
]
