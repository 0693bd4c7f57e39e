"""`deploykit build` and `deploykit push`: parse options, call deploykit.image, print.

Build logs stream to stderr (unless --quiet) so stdout stays one JSON document under
--output json; the library decides everything else.
"""

from __future__ import annotations

import click

from deploykit.cli.common import console, env_options, handle_errors, output_options


def _backend_options(func):
    func = click.option("--buildah-runroot", envvar="DEPLOYKIT_BUILDAH_RUNROOT", default=None,
                        help="buildah --runroot (default: buildah's own).")(func)
    func = click.option("--buildah-root", envvar="DEPLOYKIT_BUILDAH_ROOT", default=None,
                        help="buildah --root: image storage folder (default: buildah's own).")(func)
    func = click.option("--storage-driver", envvar="DEPLOYKIT_STORAGE_DRIVER", default="vfs", show_default=True,
                        help="buildah storage driver; vfs needs no kernel overlay support.")(func)
    func = click.option("--backend", type=click.Choice(["auto", "buildah", "docker"]), default="auto",
                        envvar="DEPLOYKIT_IMAGE_BACKEND", show_default=True,
                        help="auto: docker when a daemon answers, else buildah.")(func)
    return func


def _common_options(func):
    func = click.option("--quiet", "-q", is_flag=True, help="Do not stream the tool's output to stderr.")(func)
    func = click.option("--allow-dirty", is_flag=True,
                        help="Build from uncommitted changes even when CI=true (tags get -dirty).")(func)
    func = click.option("--tag", "tags", multiple=True, metavar="TAG",
                        help="Extra tag (repeatable), besides <git short sha> and <branch>-<build number>.")(func)
    func = click.option("--image", default=None, metavar="REPO",
                        help="Repository to use instead of app.yaml's `image` (no tag).")(func)
    return func


def _push_options(func):
    func = click.option("--build-record", "record_path", default="build.json", show_default=True,
                        type=click.Path(dir_okay=False),
                        help="Where to write the build record read by `render|deploy --from-build`.")(func)
    func = click.option("--immutable-tags", is_flag=True,
                        help="Refuse (nothing pushed) if a tag already names a different image.")(func)
    return func


def _runner(quiet: bool):
    from deploykit.image.runner import Runner

    err = console(stderr=True)
    return Runner(echo=None if quiet else (lambda line: err.out(line, highlight=False)))


def _own_outputs(*paths: str | None) -> list:
    """Files this command writes: they must not make the work tree look dirty."""
    from pathlib import Path

    return [Path(p) for p in paths if p]


def _warn(warnings: list[str]) -> None:
    err = console(stderr=True)
    for w in warnings:
        err.print(f"[yellow]warning:[/] {w}")


def _make_backend(backend: str, runner, storage_driver: str, root: str | None, runroot: str | None):
    from deploykit.image.select import make_backend

    return make_backend(backend, runner, storage_driver=storage_driver or None, root=root, runroot=runroot)


def _push(plan, settings, backend_obj, immutable_tags: bool, record_path: str, output: str, built=None) -> dict:
    from deploykit.clients.registry import RegistryClient
    from deploykit.image.pipeline import push_image

    client = RegistryClient(settings.host, insecure=settings.insecure, credentials=settings.credentials)
    result = push_image(plan, backend_obj, client, credentials=settings.credentials, insecure=settings.insecure,
                        immutable_tags=immutable_tags, record_path=record_path, built=built)
    _warn(result.warnings)
    if output == "text":
        console().print(f"pushed [bold]{result.record.pinned}[/] (tags: {', '.join(result.record.tags)})")
        console().print(f"build record: {record_path}")
    return {**result.to_dict(), "build_record": record_path}


@click.command()
@click.argument("app", type=click.Path(dir_okay=False), default="app.yaml")
@env_options
@_common_options
@click.option("--build-arg", "build_args", multiple=True, metavar="NAME=VALUE", help="Build argument (repeatable).")
@click.option("--target", default=None, help="Build this stage of a multi-stage Dockerfile.")
@click.option("--no-cache", is_flag=True, help="Do not use cached layers.")
@click.option("--timeout", default=1800.0, show_default=True, type=float, help="Seconds before the build is killed.")
@click.option("--push", "do_push", is_flag=True, help="Push after a successful build (see `deploykit push`).")
@_push_options
@_backend_options
@output_options
@handle_errors("build")
def build(app, env_name, env_dir, image, tags, allow_dirty, quiet, build_args, target, no_cache, timeout, do_push,
          immutable_tags, record_path, backend, storage_driver, buildah_root, buildah_runroot, output, junit_path):
    """Build the app's image (Dockerfile from app.yaml's `build`), tagged from git.

    \b
    Tags: <git short sha>, plus <BRANCH_NAME>-<BUILD_NUMBER> under Jenkins, plus --tag.
    Labels: org.opencontainers.image.revision/source/created.
    \b
    Examples:
      deploykit build examples/hello/app.yaml --env staging
      deploykit build app.yaml --env prod --push --immutable-tags --output json
      deploykit build app.yaml --build-arg BASE=localhost/base --backend buildah
    """
    from deploykit.image.app import plan_for_app
    from deploykit.image.pipeline import build_image

    plan, settings = plan_for_app(app, env_name, env_dir, image=image, build_args=build_args, target=target,
                                  extra_tags=tags, allow_dirty=allow_dirty, no_cache=no_cache, timeout=timeout,
                                  own_outputs=_own_outputs(record_path, junit_path))
    _warn(plan.warnings)
    runner = _runner(quiet)
    backend_obj = _make_backend(backend, runner, storage_driver, buildah_root, buildah_runroot)
    result = build_image(plan, backend_obj)
    if output == "text":
        console().print(f"built {', '.join(result.refs)} ({result.image_id[:19]}) with {backend_obj.name}")
    doc = {"backend": backend_obj.name, **plan.to_dict(), **result.to_dict()}
    if do_push:
        doc["push"] = _push(plan, settings, backend_obj, immutable_tags, record_path, output, built=result.info)
    return doc


@click.command()
@click.argument("app", type=click.Path(dir_okay=False), default="app.yaml")
@env_options
@_common_options
@_push_options
@_backend_options
@output_options
@handle_errors("push")
def push(app, env_name, env_dir, image, tags, allow_dirty, quiet, immutable_tags, record_path, backend,
         storage_driver, buildah_root, buildah_runroot, output, junit_path):
    """Push the image `deploykit build` made (every tag), pin the registry's digest, write the build record.

    \b
    Registry credentials come from the variables the environment file names
    (registry.username_env / password_env); plain HTTP only with registry.insecure.
    \b
    Examples:
      deploykit push examples/hello/app.yaml --env staging
      deploykit push app.yaml --env prod --immutable-tags --build-record build.json --output json
    """
    from deploykit.image.app import plan_for_app

    plan, settings = plan_for_app(app, env_name, env_dir, image=image, extra_tags=tags, allow_dirty=allow_dirty,
                                  own_outputs=_own_outputs(record_path, junit_path))
    _warn(plan.warnings)
    runner = _runner(quiet)
    backend_obj = _make_backend(backend, runner, storage_driver, buildah_root, buildah_runroot)
    return {"backend": backend_obj.name, **plan.to_dict(),
            **_push(plan, settings, backend_obj, immutable_tags, record_path, output)}
