"""The Jenkinsfile: a pure model built from AppFacts + options, rendered through templates/Jenkinsfile.j2.

The model decides what the pipeline must contain (stages, credential bindings, locks,
timeouts, approvals); the template only decides how it looks. The rendered text is
parsed back (deploykit.jenkins.groovy) and checked, so an overridden template that
drops a stage or interpolates secrets into `sh` is refused before it reaches Jenkins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from deploykit import __version__
from deploykit.durations import DurationError, parse_duration
from deploykit.errors import InternalError, Problem, ValidationError
from deploykit.hints import did_you_mean
from deploykit.jenkins import groovy
from deploykit.jenkins.appinfo import AppFacts, EnvCredentials
from deploykit.jenkins.templating import render

TEMPLATE = "Jenkinsfile.j2"
RESULTS_DIR = "deploykit-results"
DEFAULT_APPROVE = ("prod", "production")


@dataclass(frozen=True)
class Binding:
    """One Jenkins credential bound to the variable(s) deploykit reads; the id is a build parameter."""

    kind: str  # "string" or "usernamePassword"
    param: str  # build parameter that holds the credentials id
    default_id: str
    variables: tuple[str, ...]  # (variable,) or (username variable, password variable)
    description: str


@dataclass(frozen=True)
class DeployStage:
    env: str
    approval: bool
    lock_resource: str
    bindings: tuple[Binding, ...]
    command: str
    clean: str  # removes this stage's results left in the workspace by an earlier build
    artifacts: str  # what the stage archives
    report: str  # the JUnit file it records


@dataclass(frozen=True)
class PipelineOptions:
    envs: tuple[str, ...]
    approve: tuple[str, ...] = DEFAULT_APPROVE  # environments that need a manual input first
    submitter: str | None = None  # Jenkins users/groups allowed to approve (comma-separated)
    build_env: str | None = None  # environment whose registry settings build/push use (default: first)
    build_timeout_minutes: int = 30
    deploy_timeout_minutes: int = 30
    approval_timeout_hours: int = 24
    lock_timeout: str = "5m"  # how long a deploy waits for deploykit's own lock (held from outside Jenkins)
    app_path: str | None = None  # app.yaml path as seen from the workspace root
    repo_url: str | None = None  # set by `sync`: the inline pipeline checks this repo out itself
    branch: str = "main"
    deploykit: str = "deploykit"  # command used in `sh` steps
    regenerate: str = ""  # the command line that produced the file, shown in its header


@dataclass(frozen=True)
class Pipeline:
    """Everything Jenkinsfile.j2 sees (as `p`)."""

    version: str
    app_id: str
    app_path: str
    regenerate: str
    results_dir: str
    build_clean: str
    build_command: str
    push_command: str
    push_bindings: tuple[Binding, ...]
    deploys: tuple[DeployStage, ...]
    parameters: tuple[Binding, ...]
    build_timeout_minutes: int
    deploy_timeout_minutes: int
    approval_timeout_hours: int
    submitter: str | None
    repo_url: str | None
    branch: str
    stash: str = "deploykit-build-record"
    build_artifacts: str = f"{RESULTS_DIR}/build.json, {RESULTS_DIR}/push.json, build.json"
    build_reports: str = f"{RESULTS_DIR}/build.xml, {RESULTS_DIR}/push.xml"
    checkout_param: str = "GIT_CREDENTIALS_ID"
    notify_param: str = "NOTIFY_WEBHOOK_CREDENTIALS_ID"
    expected_stages: tuple[str, ...] = field(default=())

    @property
    def all_parameters(self) -> tuple[tuple[str, str, str], ...]:
        """(name, default, description) of every build parameter, for the Jenkinsfile and the job config."""
        out = [(b.param, b.default_id, b.description) for b in self.parameters]
        if self.repo_url:
            out.append((self.checkout_param, "", "Jenkins credentials id for cloning the app repository (empty: none)"))
        out.append((self.notify_param, "", "Jenkins credentials id (secret text) of a webhook URL told about "
                    "failures (empty: none)"))
        return tuple(out)


def _command_line_duration(text: str) -> bool:
    """A duration `deploykit deploy --lock-timeout` accepts, written without spaces (it goes on a sh line as-is)."""
    if not text or any(ch.isspace() for ch in text):
        return False
    try:
        parse_duration(text)
    except DurationError:
        return False
    return True


def _var_id(var: str) -> str:
    return var.lower().replace("_", "-")


def _param(*parts: str) -> str:
    return "_".join(p.upper().replace("-", "_") for p in parts) + "_CREDENTIALS_ID"


def _string(param: str, default_id: str, var: str, what: str) -> Binding:
    return Binding("string", param, default_id, (var,), f"Jenkins credentials id (secret text) for {what}")


def env_bindings(facts: AppFacts, env: str) -> tuple[Binding, ...]:
    """Credentials a deploy to `env` needs: Consul token, Marathon password, the app's secrets."""
    creds = facts.credentials.get(env, EnvCredentials())
    out: list[Binding] = []
    if creds.consul_token_env:
        var = creds.consul_token_env
        out.append(_string(_param(env, var), f"{env}-{_var_id(var)}", var, f"${var} (Consul token, {env})"))
    if creds.marathon_password_env:
        var = creds.marathon_password_env
        out.append(_string(_param(env, var), f"{env}-{_var_id(var)}", var, f"${var} (Marathon password, {env})"))
    for var in facts.secret_vars.get(env, ()):
        default = f"{facts.slug}-{env}-{_var_id(var)}"
        out.append(_string(_param(env, var), default, var, f"${var} (secret of {facts.app_id}, {env})"))
    return tuple(out)


def registry_bindings(creds: EnvCredentials) -> tuple[Binding, ...]:
    user, password = creds.registry_username_env, creds.registry_password_env
    if user and password:
        desc = f"Jenkins credentials id (username with password) for ${user} / ${password} (image registry)"
        return (Binding("usernamePassword", _param(password), _var_id(password), (user, password), desc),)
    if password:
        return (_string(_param(password), _var_id(password), password, f"${password} (image registry)"),)
    return ()


def build_pipeline(facts: AppFacts, options: PipelineOptions) -> Pipeline:
    """Pure: decide stages, commands and bindings. Raises ValidationError for bad options."""
    problems: list[Problem] = []
    envs = tuple(options.envs)
    build_env = options.build_env or envs[0]
    if build_env not in envs:
        problems.append(Problem(None, "--build-env", f"{build_env!r} is not one of --env {','.join(envs)}",
                                did_you_mean(build_env, envs, fallback=None)))
    if tuple(options.approve) != DEFAULT_APPROVE:  # an explicit list: a typo must not skip an approval
        for name in options.approve:
            if name not in envs:
                problems.append(Problem(None, "--approve", f"{name!r} is not one of --env {','.join(envs)}",
                                        did_you_mean(name, envs, fallback=None)))
    for name, value in (("build", options.build_timeout_minutes), ("deploy", options.deploy_timeout_minutes)):
        if not 1 <= value <= 24 * 60:
            problems.append(Problem(None, f"--{name}-timeout", f"{value} minutes is out of range", "1..1440"))
    if not 1 <= options.approval_timeout_hours <= 24 * 14:
        problems.append(Problem(None, "--approval-timeout", "out of range", "1..336 hours"))
    if not _command_line_duration(options.lock_timeout):
        problems.append(Problem(None, "--lock-timeout", f"{options.lock_timeout!r} is not a duration",
                                "e.g. 0s, 90s, 5m, 1h"))
    if problems:
        raise ValidationError(problems)

    dk = options.deploykit
    app_path = options.app_path or facts.path.name
    results = RESULTS_DIR
    build_cmd = (
        f'{dk} build "$DEPLOYKIT_APP" --env {build_env} --output json'
        f' --junit "$DEPLOYKIT_RESULTS/build.xml" > "$DEPLOYKIT_RESULTS/build.json"'
    )
    push_cmd = (
        f'{dk} build "$DEPLOYKIT_APP" --env {build_env} --push --build-record build.json --output json'
        f' --junit "$DEPLOYKIT_RESULTS/push.xml" > "$DEPLOYKIT_RESULTS/push.json"'
    )
    deploys = []
    for env in envs:
        cmd = (
            f'{dk} deploy "$DEPLOYKIT_APP" --env {env} --from-build build.json --lock-timeout {options.lock_timeout}'
            " --output json"
            f' --junit "$DEPLOYKIT_RESULTS/deploy-{env}.xml" > "$DEPLOYKIT_RESULTS/deploy-{env}.json"'
        )
        out = f"{results}/deploy-{env}"
        deploys.append(
            DeployStage(
                env=env,
                approval=env in options.approve,
                lock_resource=f"deploykit:{env}:{facts.app_id}",
                bindings=env_bindings(facts, env),
                command=cmd,
                clean=f'mkdir -p "$DEPLOYKIT_RESULTS" && rm -f "$DEPLOYKIT_RESULTS/deploy-{env}.json" '
                f'"$DEPLOYKIT_RESULTS/deploy-{env}.xml"',
                artifacts=f"{out}.json",
                report=f"{out}.xml",
            )
        )
    push = registry_bindings(facts.credentials.get(build_env, EnvCredentials()))
    params: dict[str, Binding] = {}
    for b in (*push, *(b for d in deploys for b in d.bindings)):
        params.setdefault(b.param, b)
    return Pipeline(
        version=__version__,
        app_id=facts.app_id,
        app_path=app_path,
        regenerate=options.regenerate,
        results_dir=results,
        build_clean='rm -rf "$DEPLOYKIT_RESULTS" build.json && mkdir -p "$DEPLOYKIT_RESULTS"',
        build_command=build_cmd,
        push_command=push_cmd,
        push_bindings=push,
        deploys=tuple(deploys),
        parameters=tuple(params.values()),
        build_timeout_minutes=options.build_timeout_minutes,
        deploy_timeout_minutes=options.deploy_timeout_minutes,
        approval_timeout_hours=options.approval_timeout_hours,
        submitter=options.submitter,
        repo_url=options.repo_url,
        branch=options.branch,
        expected_stages=expected_stages(envs, options.approve),
    )


def expected_stages(envs: tuple[str, ...], approve: tuple[str, ...]) -> tuple[str, ...]:
    names = ["Build", "Push"]
    for env in envs:
        if env in approve:
            names.append(f"Approve {env}")
        names.append(f"Deploy {env}")
    return tuple(names)


def render_jenkinsfile(pipeline: Pipeline, templates_dir: str | Path | None = None) -> str:
    """Render and check. A broken user template is a ValidationError; a broken shipped one is a bug."""
    text = render(TEMPLATE, templates_dir, p=pipeline)
    problems = check_jenkinsfile(text, pipeline)
    if problems:
        if templates_dir is None:
            raise InternalError("; ".join(str(p) for p in problems))
        raise ValidationError(problems)
    return text


def check_jenkinsfile(text: str, pipeline: Pipeline, file: str = "Jenkinsfile") -> list[Problem]:
    """What Jenkins cannot tell us before a build runs: structure, stages, secret handling."""
    try:
        root = groovy.parse(text)
    except groovy.GroovySyntaxError as exc:
        return [Problem(file, "", str(exc), "check the template's braces and quotes", line=exc.line)]
    problems: list[Problem] = []
    pipelines = root.blocks("pipeline")
    if len(pipelines) != 1:
        return [Problem(file, "pipeline", f"expected one top-level pipeline block, found {len(pipelines)}")]
    top = pipelines[0]
    stages_block = top.block("stages")
    if stages_block is None:
        return [Problem(file, "pipeline.stages", "missing")]
    all_stages = [n for n in stages_block.walk() if n.is_block and n.name == "stage"]  # nested ones too
    stages = {s.strings[0] if s.strings else "": s for s in all_stages}
    order = [s.strings[0] if s.strings else "" for s in all_stages]
    missing = [s for s in pipeline.expected_stages if s not in stages]
    problems += [Problem(file, f"stages.{s}", "stage is missing", line=top.line) for s in missing]
    present = [s for s in order if s in pipeline.expected_stages]
    wanted = [s for s in pipeline.expected_stages if s in stages]
    if present != wanted:
        problems.append(Problem(file, "stages", f"stages are out of order: {present}", f"expected {wanted}"))
    for d in pipeline.deploys:
        stage = stages.get(f"Deploy {d.env}")
        if stage is None:
            continue
        locks = [n for n in stage.walk() if n.is_block and n.name == "lock"]
        deploy_steps = [s for lk in locks for s in lk.steps("sh") if any("deploy" in x for x in s.strings)]
        if not deploy_steps:
            problems.append(Problem(file, f"stages.Deploy {d.env}", "the deploy `sh` step is not inside lock(...)"))
    for step in top.steps("sh"):
        if step.gstrings:
            problems.append(
                Problem(
                    file,
                    "sh",
                    "a double-quoted Groovy string with $ is passed to sh",
                    "use single quotes so the shell, not Groovy, expands variables (secrets stay masked)",
                    line=step.line,
                )
            )
    for node in top.walk():
        if node.name == "withCredentials":
            for value in re.findall(r"credentialsId : (\S+)", node.head):
                if value != "params":
                    problems.append(
                        Problem(
                            file,
                            "withCredentials",
                            f"credentialsId is {value}, not a build parameter",
                            "bind credentials by an id taken from params.* so each Jenkins can map its own",
                            line=node.line,
                        )
                    )
    return problems
