"""Pure: AppSpec + Environment + image reference -> Marathon app JSON (DESIGN §3).

Deterministic: top-level keys in a fixed order, env and labels sorted, so two renders of
the same input are byte-identical and diffs stay small. Secrets are masked unless the
caller asks otherwise, and schema validation always runs on the masked document so a
schema error can never quote a secret.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from deploykit.errors import Problem, ValidationError
from deploykit.labels import (
    CONFIG_PREFIX_ENV,
    DEPLOYKIT_CONFIG_HASH,
    DEPLOYKIT_DEPLOYED_BY,
    DEPLOYKIT_GIT_SHA,
    DEPLOYKIT_IMAGE,
    DEPLOYKIT_SPEC_HASH,
    HAPROXY_GROUP,
    check_label,
    haproxy_label,
)
from deploykit.render.schema import schema_errors, validate_against_schema

if TYPE_CHECKING:
    from deploykit.buildrecord import BuildRecord
    from deploykit.envs import Environment
    from deploykit.render.config import ConfigTree
    from deploykit.spec.models import AppSpec, HaproxyCheck

__all__ = ["MASK", "image_reference", "render_app", "render_with_config", "repository", "validate_against_schema"]

MASK = "********"
TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_PROVENANCE = (DEPLOYKIT_DEPLOYED_BY, DEPLOYKIT_GIT_SHA, DEPLOYKIT_SPEC_HASH)


def repository(image: str) -> str:
    """'reg:5000/a/b:1.2@sha256:..' -> 'reg:5000/a/b' (a ':' after the last '/' starts a tag)."""
    image = image.split("@", 1)[0]
    head, _, last = image.rpartition("/")
    if ":" in last:
        last = last.split(":", 1)[0]
    return f"{head}/{last}" if head else last


def has_registry_host(image: str) -> bool:
    """Docker's rule: the first component names a registry if it has a '.' or ':' or is localhost."""
    first, _, rest = image.partition("/")
    return bool(rest) and (first == "localhost" or "." in first or ":" in first)


def in_registry(image: str, registry_url: str | None) -> str:
    """A host-less image lives in the environment's registry (`host[:port][/namespace]`), where push puts it."""
    if not registry_url or has_registry_host(image):
        return image
    base = re.sub(r"^[a-z]+://", "", registry_url.strip(), flags=re.IGNORECASE).strip("/")
    return f"{base}/{image}"


def image_reference(
    spec: AppSpec,
    tag: str | None = None,
    digest: str | None = None,
    build_record: BuildRecord | None = None,
    *,
    registry_url: str | None = None,
) -> str | None:
    """The full image reference to run: from a build record (pinned digest), a digest, a tag, or app.yaml as is.

    `registry_url` (the environment's `registry.url`) places a host-less app.yaml image in that registry.
    """
    given = [
        name for name, v in (("--image-tag", tag), ("--image-digest", digest), ("--from-build", build_record)) if v
    ]
    if len(given) > 1:
        raise ValidationError(
            [Problem(None, given[1], f"{' and '.join(given)} cannot be combined", "give one of them")]
        )
    image = in_registry(spec.image, registry_url) if spec.image else None
    if build_record is not None:
        wanted = repository(image) if image else None
        same = wanted is None or wanted == build_record.image
        if not same and not has_registry_host(wanted):  # host-less image, and no registry given to place it
            same = build_record.image.endswith("/" + wanted)
        if not same:
            message = f"the build record is for {build_record.image}, not {wanted}"
            hint = "push this app's image first, or point --from-build at its record"
            raise ValidationError([spec.problem("image", message, hint)])
        return build_record.pinned
    if (tag or digest) and not image:
        raise ValidationError([spec.problem("image", "is required to apply a tag or digest", "set image:")])
    if digest:
        if not DIGEST_RE.match(digest):
            raise ValidationError([Problem(None, "--image-digest", f"{digest!r} is not a digest", "sha256:<64 hex>")])
        return f"{repository(image)}@{digest}"
    if tag:
        if not TAG_RE.match(tag):
            raise ValidationError(
                [Problem(None, "--image-tag", f"{tag!r} is not a valid tag", "letters, digits, '.', '_', '-'")]
            )
        return f"{repository(image)}:{tag}"
    return image


def render_app(
    spec: AppSpec,
    environment: Environment,
    image: str | None,
    *,
    secrets: Mapping[str, str] | None = None,
    mask_secrets: bool = True,
    config_prefix: str | None = None,
    config_hash: str | None = None,
    deployed_by: str | None = None,
    git_sha: str | None = None,
) -> dict[str, Any]:
    """The Marathon app definition. `secrets` are resolved values (deploykit.spec.resolve_secrets);
    without them, or with mask_secrets, every secret shows as MASK. Raises InternalError if the
    result fails the official schema (a deploykit bug)."""
    if image is None:
        image = spec.image
    process = environment.marathon.command_tasks(image, spec.cmd, spec.args)
    if not process and not image:
        hint = "set image: in app.yaml (docker tasks need one)"
        raise ValidationError([spec.problem("image", f"no image to run in {environment.name!r}", hint)])
    app: dict[str, Any] = {"id": "/" + spec.id.strip("/")}
    if spec.cmd is not None:
        app["cmd"] = spec.cmd
    if spec.args is not None:
        app["args"] = list(spec.args)
    app["instances"] = spec.instances
    app["cpus"] = _num(spec.cpus)
    app["mem"] = _num(spec.mem)
    if spec.disk:
        app["disk"] = _num(spec.disk)
    app.update(_networking(spec, environment, image, process))
    if spec.fetch_uris:
        app["fetch"] = [{"uri": uri} for uri in spec.fetch_uris]
    env = {key: value for key, value in spec.env.items()}
    env.update({name: MASK for name in spec.secrets})
    if config_prefix:
        env[CONFIG_PREFIX_ENV] = config_prefix
    app["env"] = dict(sorted(env.items()))
    if spec.health is not None:
        app["healthChecks"] = [_health(spec)]
    if spec.readiness is not None:
        app["readinessChecks"] = [_readiness(spec)]
    app["upgradeStrategy"] = {
        "minimumHealthCapacity": _num(spec.upgrade.minimum_health_capacity),
        "maximumOverCapacity": _num(spec.upgrade.maximum_over_capacity),
    }
    if spec.constraints:
        app["constraints"] = [list(c) for c in spec.constraints]
    app["labels"] = _labels(spec, None if process else image, config_hash, deployed_by, git_sha)
    ours = app
    app = _merge(app, spec.marathon)
    app["labels"] = dict(sorted({**app.get("labels", {}), DEPLOYKIT_SPEC_HASH: spec_hash(app)}.items()))
    errors = schema_errors(app)
    if errors and spec.marathon and not schema_errors(ours):
        # Only the `marathon:` escape hatch made it invalid: the user's input, not a deploykit bug.
        hint = "the merged app fails the Marathon schema: " + "; ".join(errors[:5])
        raise ValidationError([spec.problem("marathon", "escape-hatch keys conflict with the app", hint)])
    validate_against_schema(app)
    if not mask_secrets and secrets:
        app = copy.deepcopy(app)
        for name in spec.secrets:
            if name in secrets:
                app["env"][name] = secrets[name]
    return app


def render_with_config(
    spec: AppSpec, environment: Environment, image: str | None, **render_kw: Any
) -> tuple[dict[str, Any], ConfigTree]:
    """The app definition pointing at its versioned Consul config, and that config tree.

    `deploykit render` and the deploy must agree on the config prefix and hash, so both take them from here;
    `render_kw` are render_app's other keywords (secrets, mask_secrets, deployed_by, git_sha).
    """
    from deploykit.render.config import config_prefix, config_tree

    tree = config_tree(spec)
    prefix = config_prefix(environment.consul.prefix, spec.id, tree.hash) if tree.hash else None
    return render_app(spec, environment, image, config_prefix=prefix, config_hash=tree.hash, **render_kw), tree


def _num(value: float) -> int | float:
    """256.0 -> 256: the JSON people read (and diff) shows what they wrote."""
    return int(value) if float(value).is_integer() else value


def spec_hash(app: Mapping[str, Any]) -> str:
    """Hash of the (masked) definition without provenance labels: same app, same hash, whoever deploys it."""
    doc = copy.deepcopy(dict(app))
    doc["labels"] = {k: v for k, v in doc.get("labels", {}).items() if k not in _PROVENANCE}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def _networking(spec: AppSpec, environment: Environment, image: str | None, process: bool) -> dict[str, Any]:
    port_defs = [{"port": p.service, "name": p.name, "protocol": p.protocol} for p in spec.ports]
    if process:
        return {"portDefinitions": port_defs}
    legacy = environment.marathon.network_shape == "legacy"
    docker: dict[str, Any] = {"image": image}
    if spec.security.privileged:
        docker["privileged"] = True
    parameters = _docker_parameters(spec)
    if parameters:
        docker["parameters"] = parameters
    container: dict[str, Any] = {"type": "DOCKER", "docker": docker}
    out: dict[str, Any] = {"container": container}
    if spec.network == "bridge":
        mappings = [
            {
                "containerPort": p.container,
                "hostPort": 0,
                "servicePort": p.service,
                "name": p.name,
                "protocol": p.protocol,
            }
            for p in spec.ports
        ]
        if legacy:
            docker["network"] = "BRIDGE"
            docker["portMappings"] = mappings
        else:
            container["portMappings"] = mappings
            out["networks"] = [{"mode": "container/bridge"}]
    else:
        if legacy:
            docker["network"] = "HOST"
        else:
            out["networks"] = [{"mode": "host"}]
        out["portDefinitions"] = port_defs
    return out


def _docker_parameters(spec: AppSpec) -> list[dict[str, str]]:
    sec = spec.security
    params: list[tuple[str, str]] = []
    if sec.user is not None:
        params.append(("user", sec.user))
    if sec.read_only_root:
        params.append(("read-only", "true"))
    if sec.no_new_privileges:
        params.append(("security-opt", "no-new-privileges:true"))
    params += [("cap-drop", cap) for cap in sec.cap_drop]
    params += [("cap-add", cap) for cap in sec.cap_add]
    params += [("ulimit", f"{name}={value}") for name, value in sorted(sec.ulimits.items())]
    return [{"key": k, "value": v} for k, v in params]


def _health(spec: AppSpec) -> dict[str, Any]:
    h = spec.health
    assert h is not None
    check: dict[str, Any] = {"protocol": h.protocol.upper()}
    if h.protocol != "tcp":
        check["path"] = h.path
    check["portIndex"] = spec.port_index(h.port)
    check["gracePeriodSeconds"] = int(h.grace)
    check["intervalSeconds"] = int(h.interval)
    check["timeoutSeconds"] = int(h.timeout)
    check["maxConsecutiveFailures"] = h.max_failures
    return check


def _readiness(spec: AppSpec) -> dict[str, Any]:
    r = spec.readiness
    assert r is not None
    return {
        "name": "readiness",
        "protocol": r.protocol.upper(),
        "path": r.path,
        "portName": spec.ports[spec.port_index(r.port)].name,
        "intervalSeconds": int(r.interval),
        "timeoutSeconds": int(r.timeout),
        "httpStatusCodesForReady": list(r.status_codes),
        "preserveLastResponse": False,
    }


def _labels(
    spec: AppSpec, image: str | None, config_hash: str | None, deployed_by: str | None, git_sha: str | None
) -> dict[str, str]:
    out: dict[str, str] = dict(spec.labels)
    hap = spec.haproxy
    if hap is not None:
        n = spec.port_index(hap.port)
        out[HAPROXY_GROUP] = hap.group
        if hap.vhost:
            out[haproxy_label(n, "VHOST")] = ",".join(hap.vhost)
        if hap.path:
            out[haproxy_label(n, "PATH")] = hap.path
        out[haproxy_label(n, "MODE")] = hap.mode
        out[haproxy_label(n, "BALANCE")] = hap.balance
        service = spec.ports[n].service
        if service:  # the port marathon-lb binds; 0 means Marathon assigns one, so there is nothing to pin yet
            out[haproxy_label(n, "PORT")] = str(service)
        check = _effective_check(spec)
        if check.path and hap.mode == "http":
            out[check_label(n, "PATH")] = check.path
        out[check_label(n, "INTERVAL_MS")] = str(round(check.interval * 1000))
        out[check_label(n, "RISE")] = str(check.rise)
        out[check_label(n, "FALL")] = str(check.fall)
    if config_hash:
        out[DEPLOYKIT_CONFIG_HASH] = config_hash
    if git_sha:
        out[DEPLOYKIT_GIT_SHA] = git_sha
    if deployed_by:
        out[DEPLOYKIT_DEPLOYED_BY] = deployed_by
    if image:
        out[DEPLOYKIT_IMAGE] = image
    return dict(sorted(out.items()))


def _effective_check(spec: AppSpec) -> HaproxyCheck:
    """haproxy.check, or by default the app's own health path (HTTP) checked every 2s."""
    from deploykit.spec.models import HaproxyCheck

    assert spec.haproxy is not None
    if spec.haproxy.check is not None:
        return spec.haproxy.check
    path = spec.health.path if spec.health is not None and spec.health.protocol != "tcp" else None
    return HaproxyCheck(path=path)


def _merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """The `marathon:` escape hatch: mappings merge, everything else replaces."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = copy.deepcopy(value)
    return out
