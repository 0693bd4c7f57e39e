"""Marathon's REST API (1.10 shapes) over the scheduler and deployment manager."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from deploykit.devcluster import appdef
from deploykit.devcluster.deployments import Deployment, DeploymentManager
from deploykit.devcluster.errors import ApiError, not_found_app
from deploykit.devcluster.events import EventBus, stream_events
from deploykit.devcluster.scheduler import AppRuntime, Scheduler
from deploykit.devcluster.util import VersionClock

log = logging.getLogger(__name__)

MARATHON_VERSION = "1.10.26"
SERVICE_PORT_MIN, SERVICE_PORT_MAX = 10000, 20000


def _flag(request: web.Request, name: str, default: bool) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    return raw.lower() in ("true", "1", "yes", "")


def json_response(doc: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(doc), content_type="application/json", headers=headers)


def _no_constants(name: str) -> Any:
    raise ValueError(f"Non-standard token '{name}': not valid JSON")


async def read_json(request: web.Request) -> Any:
    """Parse a body as strictly as Jackson: no NaN/Infinity; absurd nesting is a parse error, not a 500."""
    raw = await request.read()
    try:
        return json.loads(raw or b"", parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, "Invalid JSON", details=str(exc)[:500]) from exc


def _label_selector(expr: str):
    """marathon's label selector: `a`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x,y)`, comma separated."""
    terms = re.findall(r"[^,(]+(?:\([^)]*\))?", expr)
    tests = []
    for term in (t.strip() for t in terms if t.strip()):
        m = re.match(r"^(\S+)\s+(in|notin)\s+\((.*)\)$", term)
        if m:
            key, op, vals = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            tests.append(lambda lb, k=key, o=op, vs=vals: (lb.get(k) in vs) == (o == "in") and (k in lb or o != "in"))
        elif "!=" in term:
            k, v = (s.strip() for s in term.split("!=", 1))
            tests.append(lambda lb, k=k, v=v: lb.get(k) != v)
        elif "==" in term:
            k, v = (s.strip() for s in term.split("==", 1))
            tests.append(lambda lb, k=k, v=v: lb.get(k) == v)
        else:
            tests.append(lambda lb, k=term: k in lb)
    return lambda labels: all(t(labels) for t in tests)


class MarathonApi:
    """Request handlers; the app JSON views live here too (they mix scheduler and deployment state)."""

    def __init__(self, sched: Scheduler, deps: DeploymentManager, bus: EventBus, clock: VersionClock, *,
                 info: Callable[[], dict], heartbeat: float,
                 abdicate: Callable[[], Awaitable[None]] | None = None) -> None:
        self.sched = sched
        self.deps = deps
        self.bus = bus
        self.clock = clock
        self.info = info
        self.heartbeat = heartbeat
        self.abdicate = abdicate

    # --- views -------------------------------------------------------------------------------------------
    def app_json(self, rt: AppRuntime, embed: set[str], single: bool = False) -> dict:
        doc = dict(rt.app)
        doc.update(self.sched.counts(rt))
        doc["deployments"] = [{"id": d.id} for d in self.deps.for_app(rt.id)]
        if single or "tasks" in embed or "failures" in embed:
            doc["tasks"] = [t.to_json() for t in rt.tasks.values()]
        if (single or "lastTaskFailure" in embed or "failures" in embed) and rt.last_failure:
            doc["lastTaskFailure"] = rt.last_failure
        if "readiness" in embed:
            doc["readinessCheckResults"] = [r for t in rt.tasks.values() for r in t.readiness]
        if "taskStats" in embed:
            doc["taskStats"] = {}
        return doc

    @staticmethod
    def _embeds(request: web.Request, prefix: str) -> set[str]:
        return {e[len(prefix):] for e in request.query.getall("embed", []) if e.startswith(prefix)}

    def _rt(self, app_id: str) -> AppRuntime:
        rt = self.sched.apps.get(appdef.normalize_id(app_id))
        if rt is None:
            raise not_found_app(appdef.normalize_id(app_id))
        return rt

    def _deployment_result(self, dep: Deployment, status: int = 200, extra: dict | None = None) -> web.Response:
        return json_response({"version": dep.version, "deploymentId": dep.id}, status=status,
                             headers={"Marathon-Deployment-Id": dep.id, **(extra or {})})

    # --- app definitions ---------------------------------------------------------------------------------
    def _versioned(self, new: dict, old: dict | None, version: str, restart: bool = False) -> dict:
        """Stamp version/versionInfo; a scale-only change keeps lastConfigChangeAt."""
        doc = {k: v for k, v in new.items() if k not in appdef.RESPONSE_ONLY}
        self._assign_service_ports(doc, old)
        if old is None or restart or not appdef.config_equal(doc, old):
            info = {"lastScalingAt": version, "lastConfigChangeAt": version}
        elif doc["instances"] != old["instances"]:
            info = {"lastScalingAt": version, "lastConfigChangeAt": old["versionInfo"]["lastConfigChangeAt"]}
        else:
            info = dict(old["versionInfo"])
        doc["version"] = version
        doc["versionInfo"] = info
        return doc

    def _assign_service_ports(self, doc: dict, old: dict | None) -> None:
        """servicePort/port 0 gets a free port from 10000 up, keeping the previous one when there is one."""
        used = {p for rt in self.sched.apps.values() if rt.id != doc["id"]
                for p in (s.get("servicePort", s.get("port")) for s in appdef.host_port_specs(rt.app)) if p}
        key = "port" if doc.get("portDefinitions") else "servicePort"
        old_specs = appdef.host_port_specs(old) if old else []
        nxt = SERVICE_PORT_MIN
        for i, spec in enumerate(appdef.host_port_specs(doc)):
            if spec.get(key):
                used.add(spec[key])
                continue
            prev = old_specs[i].get(key) if i < len(old_specs) else None
            if prev and prev not in used:
                spec[key] = prev
            else:
                while nxt in used and nxt < SERVICE_PORT_MAX:
                    nxt += 1
                spec[key] = nxt
            used.add(spec[key])

    # --- handlers: apps ----------------------------------------------------------------------------------
    async def list_apps(self, request: web.Request) -> web.Response:
        embed = self._embeds(request, "apps.")
        rts = sorted(self.sched.apps.values(), key=lambda r: r.id)
        if "id" in request.query:
            rts = [r for r in rts if request.query["id"] in r.id]
        if "cmd" in request.query:
            rts = [r for r in rts if request.query["cmd"] in (r.app.get("cmd") or "")]
        if "label" in request.query:
            sel = _label_selector(request.query["label"])
            rts = [r for r in rts if sel(r.app.get("labels") or {})]
        return json_response({"apps": [self.app_json(r, embed) for r in rts]})

    async def create_app(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        app = appdef.parse_app(body)
        if app["id"] in self.sched.apps:
            raise ApiError(409, f"An app with id [{app['id']}] already exists.")
        force = _flag(request, "force", False)
        doc = self._versioned(app, None, self.clock.next())
        self.bus.publish("api_post_event", clientIp=request.remote, uri=str(request.rel_url), appDefinition=doc)
        dep = self.deps.deploy({doc["id"]: doc}, force=force, version=doc["version"])
        out = {**doc, "tasksStaged": 0, "tasksRunning": 0, "tasksHealthy": 0, "tasksUnhealthy": 0,
               "deployments": [{"id": dep.id}]}
        return json_response(out, status=201, headers={"Location": doc["id"], "Marathon-Deployment-Id": dep.id})

    async def get_app(self, request: web.Request, app_id: str) -> web.Response:
        if app_id.endswith("/*"):
            prefix = appdef.normalize_id(app_id[:-2]) + "/"
            rts = [r for r in self.sched.apps.values() if r.id.startswith(prefix)]
            return json_response({"*": [self.app_json(r, {"tasks"}) for r in rts]})
        rt = self._rt(app_id)
        return json_response({"app": self.app_json(rt, self._embeds(request, "app."), single=True)})

    async def put_app(self, request: web.Request, app_id: str, *, patch: bool = False) -> web.Response:
        body = await read_json(request)
        app_id = appdef.normalize_id(app_id)
        rt = self.sched.apps.get(app_id)
        if patch and rt is None:
            raise not_found_app(app_id)
        partial = True if patch else _flag(request, "partialUpdate", True)
        force = _flag(request, "force", False)
        if isinstance(body, dict) and set(body) == {"version"} and rt is not None:
            ver = body["version"]  # PUT {"version": ts} rolls back to a stored version
            if ver not in rt.versions:
                raise not_found_app(app_id, ver)
            new = self._versioned(rt.versions[ver], rt.app, self.clock.next())
        else:
            parsed = appdef.parse_app(body, path_id=app_id, base=rt.app if (partial and rt) else None)
            new = self._versioned(parsed, rt.app if rt else None, self.clock.next())
        self.bus.publish("api_post_event", clientIp=request.remote, uri=str(request.rel_url), appDefinition=new)
        dep = self.deps.deploy({app_id: new}, force=force, version=new["version"])
        if rt is None:
            return self._deployment_result(dep, status=201, extra={"Location": app_id})
        return self._deployment_result(dep)

    async def put_apps(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, list):
            raise ApiError(422, "Invalid JSON", details=[{"path": "/", "errors": ["error.expected.jsarray"]}])
        partial = _flag(request, "partialUpdate", True)
        version = self.clock.next()
        targets: dict[str, dict | None] = {}
        for i, item in enumerate(body):
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise ApiError(422, "Invalid JSON", details=[{"path": f"({i})/id", "errors": ["error.path.missing"]}])
            rt = self.sched.apps.get(appdef.normalize_id(item["id"]))
            parsed = appdef.parse_app(item, base=rt.app if (partial and rt) else None)
            targets[parsed["id"]] = self._versioned(parsed, rt.app if rt else None, version)
        dep = self.deps.deploy(targets, force=_flag(request, "force", False), version=version)
        return self._deployment_result(dep)

    async def delete_app(self, request: web.Request, app_id: str) -> web.Response:
        rt = self._rt(app_id)
        dep = self.deps.deploy({rt.id: None}, force=_flag(request, "force", True))
        return self._deployment_result(dep)

    async def restart_app(self, request: web.Request, app_id: str) -> web.Response:
        rt = self._rt(app_id)
        new = self._versioned(rt.app, rt.app, self.clock.next(), restart=True)
        dep = self.deps.deploy({rt.id: new}, force=_flag(request, "force", False), version=new["version"])
        return self._deployment_result(dep)

    async def app_versions(self, request: web.Request, app_id: str) -> web.Response:
        rt = self._rt(app_id)
        return json_response({"versions": sorted(rt.versions, reverse=True)})

    async def app_version(self, request: web.Request, app_id: str, version: str) -> web.Response:
        rt = self._rt(app_id)
        if version not in rt.versions:
            raise not_found_app(rt.id, version)
        return json_response(rt.versions[version])

    async def app_tasks(self, request: web.Request, app_id: str) -> web.Response:
        rt = self._rt(app_id)
        tasks = [t.to_json() for t in rt.tasks.values()]
        if "text/plain" in request.headers.get("Accept", "") and "json" not in request.headers.get("Accept", ""):
            lines = [f"{rt.id}\t{sp}\t" + "\t".join(f"{t['host']}:{t['ports'][i]}" for t in tasks
                                                    if i < len(t["ports"]))
                     for i, sp in enumerate(tasks[0]["servicePorts"] if tasks else [])]
            return web.Response(text="\n".join(lines) + ("\n" if lines else ""), content_type="text/plain")
        return json_response({"tasks": tasks})

    async def kill_app_tasks(self, request: web.Request, app_id: str, task_id: str | None) -> web.Response:
        rt = self._rt(app_id)
        if task_id is None:
            host = request.query.get("host")
            victims = [t for t in rt.tasks.values() if host in (None, "*", t.to_json()["host"])]
        else:
            victims = [t for t in rt.tasks.values() if task_id in (t.id, t.instance_id)]
            if not victims:
                raise ApiError(404, f"Task '{task_id}' does not exist")
        return await self._kill(rt, victims, _flag(request, "scale", False), _flag(request, "force", False),
                                single=task_id is not None)

    async def _kill(self, rt: AppRuntime, victims: list, scale: bool, force: bool, single: bool) -> web.Response:
        docs = [t.to_json() for t in victims]
        if scale:
            new = self._versioned({**rt.app, "instances": max(0, rt.app["instances"] - len(victims))}, rt.app,
                                  self.clock.next())
            dep = self.deps.deploy({rt.id: new}, force=force, version=new["version"])
            for t in victims:
                self.sched.kill(rt, t, "scale")
            return self._deployment_result(dep)
        for t in victims:
            self.sched.kill(rt, t, "api")
        return json_response({"task": docs[0]} if single else {"tasks": docs})

    # --- handlers: tasks, deployments, misc --------------------------------------------------------------
    async def list_tasks(self, request: web.Request) -> web.Response:
        wanted = set(request.query.getall("status", []) + request.query.getall("status[]", []))
        states = {"running": {"TASK_RUNNING"}, "staging": {"TASK_STAGING"}}
        allowed = set().union(*(states.get(w, set()) for w in wanted)) if wanted else None
        tasks = [t.to_json() for rt in self.sched.apps.values() for t in rt.tasks.values()
                 if allowed is None or t.state in allowed]
        if "text/plain" in request.headers.get("Accept", "") and "json" not in request.headers.get("Accept", ""):
            lines = []
            for rt in self.sched.apps.values():
                ts = [t.to_json() for t in rt.tasks.values()]
                for i, sp in enumerate(appdef.host_port_specs(rt.app)):
                    port = sp.get("servicePort", sp.get("port", 0))
                    hosts = [f"{t['host']}:{t['ports'][i]}" for t in ts if i < len(t["ports"])]
                    lines.append("\t".join([rt.id, str(port), *hosts]))
            return web.Response(text="\n".join(lines) + ("\n" if lines else ""), content_type="text/plain")
        return json_response({"tasks": tasks})

    async def delete_tasks(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("ids"), list):
            raise ApiError(422, "Invalid JSON", details=[{"path": "/ids", "errors": ["error.path.missing"]}])
        by_app: dict[str, tuple[AppRuntime, list]] = {}
        for tid in body["ids"]:
            found = self.sched.find_task(str(tid))
            if found:
                by_app.setdefault(found[0].id, (found[0], []))[1].append(found[1])
        scale, force = _flag(request, "scale", False), _flag(request, "force", False)
        if scale:
            last = None
            for rt, victims in by_app.values():
                last = await self._kill(rt, victims, True, force, False)
            return last or json_response({"tasks": []})
        docs = []
        for rt, victims in by_app.values():
            docs += [t.to_json() for t in victims]
            for t in victims:
                self.sched.kill(rt, t, "api")
        return json_response({"tasks": docs})

    async def list_deployments(self, request: web.Request) -> web.Response:
        # Listed once the plan has started, which is after the PUT/POST answer was sent (at once by
        # default; --deployment-start-delay widens that window to reproduce clients that poll too early).
        return json_response([self.deps.to_json(d) for d in self.deps.deployments.values() if d.runner is not None])

    async def delete_deployment(self, request: web.Request) -> web.Response:
        dep = self.deps.rollback(request.match_info["id"], _flag(request, "force", False))
        if dep is None:
            return web.Response(status=202)
        return self._deployment_result(dep)

    async def queue(self, request: web.Request) -> web.Response:
        """Apps waiting for instances, with the launch back-off still to run (`delay.timeLeftSeconds`)."""
        items = []
        for rt in self.sched.apps.values():
            missing = rt.app["instances"] - len(rt.alive())
            if missing > 0:
                left = max(0.0, rt.next_launch - time.monotonic())
                items.append({"count": missing, "delay": {"timeLeftSeconds": round(left), "overdue": left <= 0},
                              "since": rt.app["version"], "app": self.app_json(rt, set())})
        return json_response({"queue": items})

    async def groups(self, request: web.Request) -> web.Response:
        """GET /v2/groups[/{id}]: the group tree implied by app ids (groups are not managed separately)."""
        gid = appdef.normalize_id(request.match_info.get("id", "/")) if request.match_info.get("id") else "/"
        embed = self._embeds(request, "group.apps.")
        rts = [r for r in self.sched.apps.values() if gid == "/" or r.id.startswith(gid + "/")]
        if gid != "/" and not rts:
            raise ApiError(404, f"Group '{gid}' does not exist")

        def build(path: str) -> dict:
            depth = 0 if path == "/" else path.count("/")
            children = sorted({"/" + "/".join(r.id.strip("/").split("/")[: depth + 1]) for r in rts
                               if r.id.startswith(path.rstrip("/") + "/") and r.id.count("/") > depth + 1})
            apps = [self.app_json(r, embed) for r in sorted(rts, key=lambda r: r.id)
                    if r.id.rsplit("/", 1)[0] == ("" if path == "/" else path)]
            versions = [a["version"] for a in apps]
            return {"id": path, "apps": apps, "groups": [build(c) for c in children], "pods": [],
                    "dependencies": [], "version": max(versions, default=None)}

        return json_response(build(gid))

    async def events(self, request: web.Request) -> web.StreamResponse:
        # headers must be set before the stream starts; the leader middleware cannot add them afterwards
        leader = self.info()["leader"]
        headers = {"X-Frame-Options": "DENY", "X-XSS-Protection": "1; mode=block"}
        if leader:
            headers["X-Marathon-Leader"] = f"http://{leader}"
        return await stream_events(request, self.bus, self.heartbeat, headers)

    async def ping(self, request: web.Request) -> web.Response:
        return web.Response(text="pong", content_type="text/plain")

    async def get_info(self, request: web.Request) -> web.Response:
        return json_response(self.info())

    async def get_leader(self, request: web.Request) -> web.Response:
        leader = self.info()["leader"]
        if not leader:
            raise ApiError(404, "There is no leader")
        return json_response({"leader": leader})

    async def delete_leader(self, request: web.Request) -> web.Response:
        if self.abdicate is None:
            raise ApiError(400, "Leadership abdication needs --zk (this node is the only Marathon)")
        # Answer first, then step down, as Marathon does before it exits.
        asyncio.get_running_loop().call_later(0.1, lambda: asyncio.ensure_future(self.abdicate()))
        return json_response({"message": "Leadership abdicated"})

    # --- routing for ids with slashes ----------------------------------------------------------------------
    async def apps_tail(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        method = request.method
        if m := re.fullmatch(r"(.+)/restart", tail):
            if method == "POST":
                return await self.restart_app(request, m.group(1))
        elif m := re.fullmatch(r"(.+)/versions", tail):
            if method == "GET":
                return await self.app_versions(request, m.group(1))
        elif m := re.fullmatch(r"(.+)/versions/([^/]+)", tail):
            if method == "GET":
                return await self.app_version(request, m.group(1), m.group(2))
        elif m := re.fullmatch(r"(.+)/tasks", tail):
            if method == "GET":
                return await self.app_tasks(request, m.group(1))
            if method == "DELETE":
                return await self.kill_app_tasks(request, m.group(1), None)
        elif m := re.fullmatch(r"(.+)/tasks/([^/]+)", tail):
            if method == "DELETE":
                return await self.kill_app_tasks(request, m.group(1), m.group(2))
        else:
            handler = {"GET": self.get_app, "PUT": self.put_app, "DELETE": self.delete_app}.get(method)
            if method == "PATCH":
                return await self.put_app(request, tail, patch=True)
            if handler is not None:
                return await handler(request, tail)
        raise web.HTTPMethodNotAllowed(method, ["GET", "PUT", "PATCH", "DELETE", "POST"])

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/ping", self.ping),
            web.get("/v2/info", self.get_info),
            web.get("/v2/leader", self.get_leader),
            web.delete("/v2/leader", self.delete_leader),
            web.get("/v2/events", self.events),
            web.get("/v2/apps", self.list_apps),
            web.post("/v2/apps", self.create_app),
            web.put("/v2/apps", self.put_apps),
            web.route("*", "/v2/apps/{tail:.+}", self.apps_tail),
            web.get("/v2/tasks", self.list_tasks),
            web.post("/v2/tasks/delete", self.delete_tasks),
            web.get("/v2/deployments", self.list_deployments),
            web.delete("/v2/deployments/{id}", self.delete_deployment),
            web.get("/v2/queue", self.queue),
            web.get("/v2/groups", self.groups),
            web.get("/v2/groups/{id:.+}", self.groups),
        ]


def basic_auth_middleware(credentials: str):
    """`--http_credentials user:password`: every request needs HTTP basic auth, else 401 as Marathon's."""
    import base64
    import hmac

    expected = "Basic " + base64.b64encode(credentials.encode()).decode()

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        if not hmac.compare_digest(request.headers.get("Authorization", ""), expected):
            return json_response({"message": "Invalid username or password."}, status=401,
                                 headers={"WWW-Authenticate": 'Basic realm="Mesosphere Marathon"'})
        return await handler(request)

    return middleware


@web.middleware
async def marathon_errors(request: web.Request, handler) -> web.StreamResponse:
    """Every error as Marathon answers it: JSON `{"message": ...}`; unknown routes are 500 "URI not found"."""
    try:
        return await handler(request)
    except ApiError as exc:
        return json_response(exc.body, status=exc.status)
    except web.HTTPNotFound:
        return json_response({"message": "URI not found"}, status=500)
    except web.HTTPMethodNotAllowed:
        return json_response({"message": "HTTP 405 Method Not Allowed"}, status=405)
    except web.HTTPRequestEntityTooLarge as exc:
        return json_response({"message": f"Request entity too large: {exc.text}"}, status=413)
    except web.HTTPException:
        raise
    except Exception as exc:
        log.exception("error handling %s %s", request.method, request.path)
        return json_response({"message": f"{type(exc).__name__}: {exc}"}, status=500)
