"""Fields of a Marathon app that the server owns (pure data).

Marathon echoes an app back with them (version, task counts, deployments, tasks, ...); they
are never part of a definition. `deploykit.plan` drops them before comparing, and app.yaml's
`marathon:` escape hatch may not set them (deploykit.spec.rules): sending them back confuses
Marathon (marathon#1136).
"""

from __future__ import annotations

SERVER_OWNED_FIELDS = frozenset(
    {
        "version",
        "versionInfo",
        "tasksStaged",
        "tasksRunning",
        "tasksHealthy",
        "tasksUnhealthy",
        "deployments",
        "tasks",
        "lastTaskFailure",
        "readinessCheckResults",
        "taskStats",
        "counts",
    }
)
