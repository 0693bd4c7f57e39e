"""Fuzzing every command's options (issue 17): whatever a person types, the exit code is a documented one.

Arguments are drawn from each click command's own parameters (names, types, choices), with hostile
values. Only exit codes of the documented table may come back, never 70 (a bug) and never an
exception escaping click. Nothing leaves the machine: every environment file, URL and folder points
at a temporary directory or a 127.0.0.1 port where nothing listens, and the three commands that run
until stopped (`lb run`, `local up`, `config watch`) get one pinned option that ends them during
validation. Bounded per run; seeds in tests/harness/fuzz.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import strategies as st

from deploykit.cli import main
from deploykit.cli.docgen import EXIT_CODES
from deploykit.errors import InternalError
from tests.harness.fuzz import NASTY_STRINGS, SEEDS, fuzz_examples, run_fuzz, seed_id, text
from tests.harness.procs import free_port

REPO = Path(__file__).resolve().parents[2]
# docs/cli.md's table (deploykit.cli.docgen); 70 is documented too, but it means a bug: finding it fails the test
DOCUMENTED_EXIT_CODES = {code for code, _ in EXIT_CODES} - {InternalError.exit_code}
EXAMPLES = fuzz_examples(50)  # per seed

# Commands that run until stopped: (pinned args ending them during validation, params not to fuzz)
PINNED = {
    "lb run": (["--env", "no-such-env"], {"env_name"}),
    "local up": (["--zk", "http://not-a-zk-url"], {"zk"}),
    "config watch": (["--retry-for", "0"], {"retry_for"}),
    # builds and pushes an image with a real engine (minutes): an invalid --output stops it at parsing,
    # so its other options are fuzzed by click's own conversion only
    "local base-image": (["--output", "xml"], {"output"}),
}
# Options whose value reaches the network: only URLs of ports where nothing listens
URL_PARAMS = {"url", "marathon_url", "marathon_urls", "zk_url", "zk", "repo_url"}
# Options naming a file the command writes: only paths inside the sandbox
WRITE_PARAMS = {"out", "junit_path", "record_path", "haproxy_config"}
NO_NUL = [s for s in NASTY_STRINGS if "\x00" not in s]  # a real argv cannot hold a NUL byte
safe_text = text.filter(lambda s: "\x00" not in s)


def every_command() -> dict[str, click.Command]:
    ctx = click.Context(main)
    found: dict[str, click.Command] = {}

    def walk(cmd: click.Command, path: list[str]) -> None:
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), [*path, name])
        else:
            found[" ".join(path)] = cmd

    walk(main, [])
    return found


class Sandbox:
    """Files, folders and dead URLs the fuzzer may name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        dead = [free_port() for _ in range(3)]
        self.urls = [f"http://127.0.0.1:{dead[0]}", f"http://127.0.0.1:{dead[1]}/x", f"zk://127.0.0.1:{dead[2]}/m",
                     "not a url", "", "http://", "ftp://127.0.0.1:1", "http://user:pw@127.0.0.1:1"]
        self.env_dir = root / "envs"
        self.env_dir.mkdir()
        for src in sorted((REPO / "chef_attrs").glob("*.json")):  # every shipped name, so none falls back
            doc = json.loads(src.read_text())
            dk = doc["default_attributes"]["deploykit"]
            dk.setdefault("marathon", {})["urls"] = [self.urls[0]]
            dk["marathon"].pop("zk", None)
            dk.setdefault("consul", {})["url"] = self.urls[0]
            dk.pop("zookeeper", None)
            dk["lock"] = "consul"
            (self.env_dir / src.name).write_text(json.dumps(doc))
        app_dir = root / "app"
        shutil.copytree(REPO / "examples" / "hello", app_dir)
        self.good_app = str(app_dir / "app.yaml")
        (root / "bad.yaml").write_text("id: /Bad App\nimage: x y\ninstancez: 2\n")
        (root / "empty.yaml").write_text("")
        (root / "list.yaml").write_text("- 1\n- 2\n")
        (root / "apps.json").write_text(json.dumps({"apps": [{"id": "/a", "labels": {"HAPROXY_GROUP": "external"},
                                                              "portDefinitions": [{"port": 10001}]}]}))
        (root / "broken.json").write_text("{")
        (root / "out").mkdir()
        read_only = [str(root / p) for p in ("bad.yaml", "empty.yaml", "list.yaml", "apps.json", "broken.json",
                                             "nope.yaml", "nope/x.yaml")]
        self.inputs = [*read_only, str(root), "-", "", "a" * 300, "~/nope"]
        self.writes = [str(root / "out" / "f"), str(root / "out" / "j.xml"), str(root / "missing" / "f"),
                       str(root / "out"), "-", "json", "./text", str(root / "bad.yaml.copy")]
        self.dirs = [str(self.env_dir), str(root / "out"), str(root / "nope"), str(root / "bad.yaml"), ""]


def _value(param: click.Parameter, box: Sandbox, command: str) -> st.SearchStrategy[str]:
    name, kind = param.name or "", param.type
    garbage = st.sampled_from(NO_NUL) | safe_text
    if name in URL_PARAMS:
        return st.sampled_from(box.urls)
    if name in WRITE_PARAMS:
        return st.sampled_from(box.writes)
    if name in ("env_name", "envs", "build_env"):
        return st.sampled_from(["local", "prod", "staging", "nosuch", "", "../x", "loc", "local,prod", "prod,,x"])
    if name in ("env_dir", "state_dir", "template_dir", "templates_dir"):
        return st.sampled_from(box.dirs)
    if isinstance(kind, click.Choice):
        return st.sampled_from([str(c) for c in kind.choices]) | garbage
    if isinstance(kind, click.types.IntParamType | click.IntRange):
        odd = st.sampled_from(["0", "-1", "1e3", "0x10", "99999999999999999999"])
        return st.integers(-(2**40), 2**40).map(str) | odd
    if isinstance(kind, click.types.FloatParamType | click.FloatRange):
        return st.sampled_from(["0", "-1", "0.5", "nan", "inf", "-inf", "1e309", "x"]) | garbage
    if isinstance(kind, click.Path | click.File):
        inputs = box.inputs if command in ("build", "push") else [*box.inputs, box.good_app]  # no real builds
        return st.sampled_from(inputs)
    if "timeout" in name or name in ("wait", "coalesce", "resync_interval", "heartbeat_interval", "event_heartbeat"):
        return st.sampled_from(["0s", "1s", "-1s", "5", "1h", "nan", "1e9s", "1m30s", "10ms", "", "s"]) | garbage
    if name == "metrics_addr":
        return st.sampled_from(["", "127.0.0.1:0", ":0", "9090", "x:y", "[::1]:0", "127.0.0.1:99999"])
    if name == "token_env":
        return st.sampled_from(["JENKINS_API_TOKEN", "NOPE_NOT_SET", ""])
    if name == "haproxy_bin":
        return st.sampled_from(["haproxy", "/nonexistent/haproxy", "true"])
    return garbage


def _arguments(command_name: str, command: click.Command, box: Sandbox) -> st.SearchStrategy[list[str]]:
    pinned, skip = PINNED.get(command_name, ([], set()))
    options = [p for p in command.params if isinstance(p, click.Option) and p.name not in skip]
    positionals = [p for p in command.params if isinstance(p, click.Argument)]

    def one_option(param: click.Option) -> st.SearchStrategy[list[str]]:
        flag = st.sampled_from(param.opts + param.secondary_opts)
        if param.is_flag:
            return flag.map(lambda f: [f])
        return st.tuples(flag, _value(param, box, command_name)).map(list)

    chosen = st.lists(st.sampled_from(options), max_size=5).flatmap(
        lambda ps: st.tuples(*[one_option(p) for p in ps])) if options else st.just(())
    args = st.tuples(*[st.lists(_value(p, box, command_name), min_size=1 if p.required else 0,
                                max_size=2 if p.nargs == -1 else 1) for p in positionals]) if positionals \
        else st.just(())
    return st.tuples(chosen, args).map(
        lambda t: [*command_name.split(), *pinned, *[w for opt in t[0] for w in opt], *[w for a in t[1] for w in a]])


@pytest.mark.parametrize("fuzz_seed", SEEDS, ids=seed_id)
def test_every_command_exits_only_with_documented_codes(fuzz_seed, tmp_path, monkeypatch):
    box = Sandbox(tmp_path)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # the default state dir, ./chef_attrs and relative outputs are all in the sandbox
    for var in ("JENKINS_URL", "JENKINS_USER", "JENKINS_API_TOKEN", "CONSUL_HTTP_TOKEN", "CONSUL_HTTP_ADDR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DEPLOYKIT_ENV_DIR", str(box.env_dir))
    monkeypatch.setenv("DEPLOYKIT_CRASH_DIR", str(tmp_path / "crashes"))
    commands = every_command()
    strategy = st.sampled_from(sorted(commands)).flatmap(lambda name: _arguments(name, commands[name], box))
    runner = CliRunner()
    seen: dict[int, int] = {}

    def check(argv: list[str]) -> None:
        r = runner.invoke(main, argv, input="")
        shown = repr([a if len(a) < 60 else a[:57] + "..." for a in argv])
        seen[r.exit_code] = seen.get(r.exit_code, 0) + 1
        escaped = r.exception is not None and not isinstance(r.exception, SystemExit)
        assert not escaped, f"{shown}: {r.exception!r}"
        assert r.exit_code in DOCUMENTED_EXIT_CODES, f"{shown} exited {r.exit_code}:\n{r.output[:2000]}"
        assert "Traceback" not in r.output

    run_fuzz(fuzz_seed, strategy, check, EXAMPLES)
    print(f"cli fuzz seed {fuzz_seed}: exit codes {dict(sorted(seen.items()))}")


def test_the_commands_that_run_until_stopped_are_pinned():
    """A new long-running command must get a pinned option here, or the fuzzer could start it for real."""
    assert set(PINNED) <= set(every_command())


# ---- what fuzzing found, kept as plain regression tests --------------------------------------------------------
@pytest.mark.parametrize(("argv", "code"), [
    (["local", "status", "--marathon-url", "not a url"], 2),  # ValueError: unknown url type (urllib)
    (["local", "status", "--marathon-url", "http://127.0.0.1:99999"], 2),
    (["status", "a" * 300], 4),  # OSError: File name too long (Path.is_file); an id, so Marathon is asked
    (["history", "/Shop/Cart!"], 2),  # not an app id: refused before asking Marathon
])
def test_found_by_fuzzing(argv, code, tmp_path, monkeypatch):
    box = Sandbox(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEPLOYKIT_ENV_DIR", str(box.env_dir))
    r = CliRunner().invoke(main, argv)
    assert r.exit_code == code and "Traceback" not in r.output, r.output
