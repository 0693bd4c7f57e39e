"""The command table and top-level help, free of click so the launcher can use them.

`deploykit --help` is the most common first command; importing click alone costs about
three times Python's own start-up, so deploykit.launcher prints this help without it.
deploykit.cli builds the real click group from the same data.
"""

from __future__ import annotations

# name -> (module, attribute, one-line help shown by `deploykit --help` without importing)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "validate": ("deploykit.cli.spec_cmds", "validate", "Check app.yaml files and their environment."),
    "render": ("deploykit.cli.spec_cmds", "render", "Print the Marathon app JSON for an environment."),
    "build": ("deploykit.cli.image_cmds", "build", "Build the app's image, tagged from git."),
    "push": ("deploykit.cli.image_cmds", "push", "Push the built image and pin its digest."),
    "config": ("deploykit.cli.config_cmds", "config", "Read, write and watch Consul KV config."),
    "deploy": ("deploykit.cli.deploy_cmds", "deploy", "Deploy an app: lock, config, Marathon, wait, roll back."),
    "diff": ("deploykit.cli.deploy_cmds", "diff", "Show what a deploy would change; touch nothing."),
    "status": ("deploykit.cli.deploy_cmds", "status", "Show an app's versions, instances and deployments."),
    "history": ("deploykit.cli.deploy_cmds", "history", "List an app's deployed versions."),
    "rollback": ("deploykit.cli.deploy_cmds", "rollback", "Return an app to an earlier version."),
    "lb": ("deploykit.cli.lb_cmds", "lb", "HAProxy sync daemon and offline config render."),
    "local": ("deploykit.cli.local_cmds", "local", "Run the local devcluster (Marathon + Consul)."),
    "jenkins": ("deploykit.cli.jenkins_cmds", "jenkins", "Render Jenkinsfiles and sync Jenkins jobs."),
}

MAIN_HELP = """\
deploykit: build, deploy and route Docker apps on Mesos/Marathon.

\b
Examples:
  deploykit local up --detach
  deploykit validate examples/hello/app.yaml --env local
  deploykit deploy examples/hello/app.yaml --env local --output json
"""

# The root group's own options, as click lists them (tests/unit/test_cli_spec.py keeps them in step).
MAIN_OPTIONS: tuple[tuple[str, str], ...] = (
    ("--version", "Show the version and exit."),
    ("-h, --help", "Show this message and exit."),
)
