"""`deploykit config get|put|ls|watch|push`: Consul KV for people, against the environment's Consul.

The Consul URL, KV prefix and the *name* of the token variable come from the environment
file (--env/--env-dir); the token itself is read from that variable and never printed.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

import click

from deploykit.cli.common import env_options, handle_errors, output_options


def _client(env_name: str, env_dir: str | None, url: str | None):
    """The environment's Consul (or --consul-url), with its token; returns (client, environment)."""
    from deploykit.clients.consul import ConsulClient
    from deploykit.envs import load_environment

    env = load_environment(env_name, env_dir)
    return ConsulClient(url or env.consul.url, token=env.consul_token()), env


def _text(value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(value).decode()


def _url_option(func):
    return click.option("--consul-url", "url", default=None, help="Override the environment's Consul URL.")(func)


@click.group()
def config() -> None:
    """Read, write and watch Consul KV config (versioned app config lives under <prefix>/<app id>/<hash>/).

    \b
    Examples:
      deploykit config ls config/examples/hello/ --env local
      deploykit config get ops/maintenance --env local
    """


@config.command("get")
@click.argument("key")
@env_options
@_url_option
@output_options
@handle_errors("config get")
def get_cmd(key: str, env_name: str, env_dir: str | None, url: str | None, output: str,
            junit_path: str | None) -> dict[str, Any]:
    """Print the value of KEY (exit 2, with the nearest keys as a hint, if it does not exist).

    \b
    Example:
      deploykit config get config/examples/hello/<hash>/greeting --env local
    """
    client, _ = _client(env_name, env_dir, url)
    entry = client.get(key, with_meta=True)
    if entry is None:
        raise _missing_key(client, key)
    value: bytes = entry["Value"]
    if output == "text":
        sys.stdout.buffer.write(value + (b"" if value.endswith(b"\n") or not value else b"\n"))
        sys.stdout.flush()
    return {"key": key, "value": _text(value), "flags": entry.get("Flags", 0),
            "modify_index": entry.get("ModifyIndex"), "session": entry.get("Session")}


def _missing_key(client, key: str):
    """Exit 2 (invalid input, DESIGN §3), naming the key and its nearest neighbours; exit 1 means a rolled-back deploy.

    One extra listing of the key's folder, only on this error path.
    """
    from deploykit.errors import DeployKitError, Problem, ValidationError
    from deploykit.hints import did_you_mean

    folder = key[: key.rstrip("/").rfind("/") + 1]
    try:
        neighbours = [k for k in client.ls(folder) if k != key]
    except DeployKitError:  # the hint is a courtesy: the answer is still "no such key"
        neighbours = []
    where = repr(folder) if folder else "the top level"
    hint = did_you_mean(key, neighbours, fallback=None)
    if hint is None and neighbours:
        shown = ", ".join(neighbours[:8]) + (f" (+{len(neighbours) - 8} more)" if len(neighbours) > 8 else "")
        hint = f"{where} holds: {shown}"
    elif hint is None:
        hint = f"nothing under {where}; list keys with: deploykit config ls -r"
    return ValidationError([Problem(None, key, f"no such key in Consul at {client.url}", hint)])


@config.command("put")
@click.argument("key")
@click.argument("value", required=False)
@click.option("--file", "file", type=click.File("rb"), default=None, help="Read the value from a file ('-': stdin).")
@click.option("--cas", type=int, default=None, help="Only if the key's ModifyIndex is this (0: only if missing).")
@click.option("--flags", type=click.IntRange(0, 2**64 - 1), default=None, help="Opaque uint64 stored with the key.")
@env_options
@_url_option
@output_options
@handle_errors("config put")
def put_cmd(key: str, value: str | None, file, cas: int | None, flags: int | None, env_name: str,
            env_dir: str | None, url: str | None, output: str, junit_path: str | None) -> dict[str, Any]:
    """Write VALUE (or --file) to KEY. With --cas, exit 3 if someone changed the key first.

    \b
    Example:
      deploykit config put ops/maintenance true --env local
    """
    from deploykit.errors import LockedError, Problem, ValidationError

    if (value is None) == (file is None):
        raise ValidationError([Problem(None, "value", "give either VALUE or --file", "e.g. config put k v")])
    data = file.read() if file is not None else value.encode()
    client, _ = _client(env_name, env_dir, url)
    if not client.put(key, data, cas=cas, flags=flags):
        raise LockedError(f"{key} was not written: its ModifyIndex is not {cas} (check-and-set lost)")
    if output == "text":
        click.echo(f"wrote {key} ({len(data)} bytes)")
    return {"key": key, "bytes": len(data)}


@config.command("ls")
@click.argument("prefix", default="")
@click.option("--recursive", "-r", is_flag=True, help="List every key, not one level.")
@env_options
@_url_option
@output_options
@handle_errors("config ls")
def ls_cmd(prefix: str, recursive: bool, env_name: str, env_dir: str | None, url: str | None, output: str,
           junit_path: str | None) -> dict[str, Any]:
    """List the keys under PREFIX, one level deep like a directory (-r for all).

    \b
    Examples:
      deploykit config ls config/examples/hello/ --env local
      deploykit config ls -r ops/ --env local -o json
    """
    client, _ = _client(env_name, env_dir, url)
    keys = client.ls(prefix, separator=None if recursive else "/")
    if output == "text":
        for k in keys:
            click.echo(k)
    return {"prefix": prefix, "keys": keys}


@config.command("watch")
@click.argument("prefix")
@click.option("--key", "exact", is_flag=True, help="Watch exactly this key, not a prefix.")
@click.option("--wait", default="60s", show_default=True, help="How long each blocking query may wait.")
@click.option("--retry-for", type=click.FloatRange(0), default=60.0, show_default=True,
              help="Seconds to keep retrying while Consul is unreachable (e.g. a devcluster restart).")
@env_options
@_url_option
@click.option("--output", "-o", "output", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one JSON object per change, one per line.")
@handle_errors("config watch")
def watch_cmd(prefix: str, exact: bool, wait: str, retry_for: float, env_name: str, env_dir: str | None,
              url: str | None, output: str) -> None:
    """Print changes under PREFIX as they happen (blocking queries) until Ctrl-C.

    \b
    Example:
      deploykit config watch config/examples/hello/ --env local
    """
    client, _ = _client(env_name, env_dir, url)
    for event in client.watch(prefix, prefix=not exact, wait=wait, retry_for=retry_for):
        if output == "json":
            doc = {"index": event.index,
                   "changed": {k: (None if v is None else _text(v)) for k, v in sorted(event.changed.items())}}
            click.echo(json.dumps(doc))
        else:
            for k, v in sorted(event.changed.items()):
                click.echo(f"[{event.index}] {'deleted' if v is None else 'set'} {k}"
                           + ("" if v is None else f" = {_text(v)}"))
        sys.stdout.flush()


@config.command("push")
@click.argument("app_yaml", type=click.Path(dir_okay=False, exists=True))
@env_options
@_url_option
@output_options
@handle_errors("config push")
def push_cmd(app_yaml: str, env_name: str, env_dir: str | None, url: str | None, output: str,
             junit_path: str | None) -> dict[str, Any]:
    """Write the app's versioned config tree (what deploy does in step 3) and print its prefix.

    \b
    The prefix is what tasks get as DEPLOYKIT_CONFIG_PREFIX. Writing the same config again
    writes nothing (same content, same hash).
    Example:
      deploykit config push examples/hello/app.yaml --env local
    """
    from deploykit.render.config import config_prefix, config_tree
    from deploykit.spec.loader import load_app

    client, env = _client(env_name, env_dir, url)
    spec = load_app(app_yaml, env_name, env)
    tree = config_tree(spec)
    if tree.hash is None:
        if output == "text":
            click.echo(f"{spec.id} has no config: nothing to write")
        return {"app": spec.id, "prefix": None, "written": False, "keys": 0, "txns": 0}
    prefix = config_prefix(env.consul.prefix, spec.id, tree.hash)
    result = client.write_config_tree(prefix, tree.items)
    if output == "text":
        state = f"wrote {result.keys} keys in {result.txns} transaction(s)" if result.written else "already present"
        click.echo(prefix)
        click.echo(f"{spec.id}: {state}", err=True)
    return {"app": spec.id, "prefix": prefix, "hash": tree.hash, "written": result.written, "keys": result.keys,
            "txns": result.txns}
