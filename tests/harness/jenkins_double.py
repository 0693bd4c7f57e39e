"""A Jenkins HTTP double: the part of Jenkins' REST API that python-jenkins calls for job sync.

Jenkins cannot be installed here, so this threaded http.server on 127.0.0.1 answers the
way Jenkins does, with its status codes and bodies (checked against python-jenkins 1.8
`jenkins/__init__.py` URL templates and error handling):

- security: with users configured, no credentials -> 403 "Authentication required"
  (X-You-Are-Authenticated-As: anonymous); a wrong API token -> 401
  "Invalid password/token for user: NAME";
- CSRF: GET /crumbIssuer/api/json gives a crumb; a POST without the Jenkins-Crumb header -> 403;
- /api/json, /me/api/json, /whoAmI/api/json;
- createItem (root or /job/F/createItem): XML body creates a job, form `mode=...Folder` creates a
  folder (302 to its configure page); duplicate -> 400 "A job already exists with the name (curly-quoted) X";
  missing parent folder -> 404;
- /job/X/config.xml GET/POST. Like Jenkins, a stored config is re-serialised (XML 1.1
  declaration, own indentation, plugin="name@version" attributes), so clients must not compare
  raw text; `record_pipeline_run` adds the <actions>/<properties> a declarative run writes;
- /job/X/api/json (?tree=name), /job/X/build -> 201 + Location queue item (the build
  "runs" at once and succeeds), /queue/item/N/api/json, /job/X/N/api/json; unknown -> 404.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.etree import ElementTree as ET

import pytest

FOLDER = "com.cloudbees.hudson.plugins.folder.Folder"
WORKFLOW_JOB = "org.jenkinsci.plugins.workflow.job.WorkflowJob"
WORKFLOW_RUN = "org.jenkinsci.plugins.workflow.job.WorkflowRun"
PLUGINS = {
    "flow-definition": "workflow-job@1400.v7fd111b_ec82f",
    "definition": "workflow-cps@3894.vd0f0248b_a_fc4",
}
VERSION = "2.440.3"


@dataclass
class Item:
    kind: str  # "folder" or "job"
    config: str = ""
    builds: dict[int, dict] = field(default_factory=dict)
    next_build: int = 1


@dataclass
class Request:
    method: str
    path: str
    user: str | None


class JenkinsState:
    def __init__(self, users: dict[str, str] | None = None):
        self.users = dict(users or {})  # user -> API token; empty: security off
        self.items: dict[str, Item] = {}
        self.queue: dict[int, dict] = {}
        self.next_queue = 1
        self.crumb = secrets.token_hex(16)
        self.requests: list[Request] = []
        self.lock = threading.Lock()

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST"]


def reserialise(xml_text: str) -> str:
    """What Jenkins does to a posted config.xml before storing it."""
    root = ET.fromstring(xml_text.encode("utf-8"))
    for el in root.iter():
        if el.tag in PLUGINS and "plugin" not in el.attrib:
            el.set("plugin", PLUGINS[el.tag])
        if el.text is not None and not el.text.strip() and len(el):
            el.text = None
        if el.tail is not None and not el.tail.strip():
            el.tail = None
    ET.indent(root, space="  ")
    return "<?xml version='1.1' encoding='UTF-8'?>\n" + ET.tostring(root, encoding="unicode")


class Handler(BaseHTTPRequestHandler):
    server_version = "Jetty(10.0.20)"
    state: JenkinsState  # set on the subclass made per server

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    # --- plumbing ----------------------------------------------------------------------------

    def _send(self, status: int, body: str | bytes = b"", ctype: str = "text/html;charset=utf-8",
              headers: dict[str, str] | None = None) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("X-Jenkins", VERSION)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, doc: dict, status: int = 200) -> None:
        self._send(status, json.dumps(doc), "application/json;charset=utf-8")

    def _error_page(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        body = f"<html><head><title>Error</title></head><body><h1>Error</h1><p>{message}</p></body></html>"
        self._send(status, body, headers=headers)

    def _root_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def _auth(self) -> tuple[bool, str | None]:
        """(allowed, user). Sends the 401/403 itself when not allowed."""
        header = self.headers.get("Authorization")
        users = self.state.users
        if header and header.startswith("Basic "):
            user, _, token = base64.b64decode(header[6:]).decode("utf-8").partition(":")
            if users.get(user) != token:
                self._send(401, f"Invalid password/token for user: {user}",
                           headers={"WWW-Authenticate": 'Basic realm="Jenkins"'})
                return False, None
            return True, user
        if users:
            self._error_page(403, "Authentication required",
                             headers={"X-You-Are-Authenticated-As": "anonymous",
                                      "X-Required-Permission": "hudson.model.Hudson.Read"})
            return False, None
        return True, None

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # --- dispatch ----------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        body = self._body() if method == "POST" else b""
        allowed, user = self._auth()
        with self.state.lock:
            self.state.requests.append(Request(method, self.path, user))
        if not allowed:
            return
        if method == "POST" and self.headers.get("Jenkins-Crumb") != self.state.crumb:
            self._error_page(403, "No valid crumb was included in the request")
            return
        folder, rest = _split_item_path(url.path)
        with self.state.lock:
            self._route(method, folder, rest, query, body, user)

    def _route(self, method: str, name: str, rest: str, query: dict, body: bytes, user: str | None) -> None:
        st = self.state
        if name and name not in st.items:
            self._error_page(404, "Not Found")
            return
        item = st.items.get(name) if name else None
        if method == "GET":
            if rest in ("", "/") and not name:
                self._send(200, "<html><body>Dashboard [Jenkins]</body></html>")
            elif rest == "/crumbIssuer/api/json" and not name:
                self._json({"_class": "hudson.security.csrf.DefaultCrumbIssuer", "crumb": st.crumb,
                            "crumbRequestField": "Jenkins-Crumb"})
            elif rest == "/api/json":
                self._json(self._item_json(name, item, query))
            elif rest == "/me/api/json" and not name:
                self._json({"_class": "hudson.model.User", "absoluteUrl": f"{self._root_url()}user/{user}",
                            "description": None, "fullName": user or "anonymous", "id": user or "anonymous"})
            elif rest == "/whoAmI/api/json" and not name:
                self._json({"_class": "hudson.security.WhoAmI", "anonymous": user is None,
                            "authenticated": user is not None, "authorities": ["authenticated"] if user else [],
                            "name": user or "anonymous"})
            elif rest == "/config.xml" and item is not None:
                self._send(200, item.config, "application/xml")
            elif rest == "/configure" and item is not None:
                self._send(200, f"<html><body>Configure {name}</body></html>")
            elif (m := _queue_path(rest)) is not None and not name:
                q = st.queue.get(m)
                self._json(q) if q else self._error_page(404, "Not Found")
            elif item is not None and (n := _build_path(rest)) is not None:
                b = item.builds.get(n)
                self._json(b) if b else self._error_page(404, "Not Found")
            else:
                self._error_page(404, "Not Found")
            return
        if rest == "/createItem":
            self._create_item(name, query, body)
        elif rest == "/config.xml" and item is not None:
            try:
                item.config = reserialise(body.decode("utf-8"))
            except ET.ParseError as exc:
                self._send(500, f"java.io.IOException: Unable to read {name}/config.xml: {exc}")
                return
            self._send(200)
        elif rest in ("/build", "/buildWithParameters") and item is not None and item.kind == "job":
            self._build(name, item, query, body)
        else:
            self._error_page(404, "Not Found")

    # --- behaviour ---------------------------------------------------------------------------

    def _create_item(self, parent: str, query: dict, body: bytes) -> None:
        st = self.state
        form = parse_qs(body.decode("utf-8", "replace")) if self.headers.get("Content-Type", "").startswith(
            "application/x-www-form-urlencoded") else {}
        short = (query.get("name") or form.get("name") or [""])[0]
        if not short:
            self._error_page(400, "No name is specified")
            return
        for bad in "/\\?*%!@#$^&|<>[];:":
            if bad in short:
                self._error_page(400, f"\u2018{bad}\u2019 is an unsafe character")
                return
        if parent and st.items[parent].kind != "folder":
            self._error_page(404, "Not Found")
            return
        full = f"{parent}/{short}" if parent else short
        if full in st.items:
            self._error_page(400, f"A job already exists with the name \u2018{short}\u2019")
            return
        mode = (query.get("mode") or form.get("mode") or [""])[0]
        if mode:
            if mode != FOLDER:
                self._error_page(400, f"No such job type: {mode}")
                return
            st.items[full] = Item("folder")
            self._send(302, headers={"Location": f"{self._root_url()}{_item_url(full)}configure"})
            return
        try:
            config = reserialise(body.decode("utf-8"))
        except (ET.ParseError, UnicodeDecodeError) as exc:
            self._send(500, f"java.io.IOException: Unable to read config.xml: {exc}")
            return
        st.items[full] = Item("job", config)
        self._send(200)

    def _build(self, name: str, item: Item, query: dict, body: bytes) -> None:
        st = self.state
        qid = st.next_queue
        st.next_queue += 1
        number = item.next_build
        item.next_build += 1
        run_url = f"{self._root_url()}{_item_url(name)}{number}/"
        params = {k: v[0] for k, v in {**query, **parse_qs(body.decode("utf-8", "replace"))}.items()}
        item.builds[number] = {
            "_class": WORKFLOW_RUN, "number": number, "id": str(number), "url": run_url,
            "fullDisplayName": f"{name.replace('/', ' » ')} #{number}", "building": False, "result": "SUCCESS",
            "duration": 1, "timestamp": int(time.time() * 1000),
            "actions": [{"_class": "hudson.model.ParametersAction",
                         "parameters": [{"name": k, "value": v} for k, v in params.items()]}],
        }
        st.queue[qid] = {
            "_class": "hudson.model.Queue$LeftItem", "id": qid, "cancelled": False, "blocked": False,
            "buildable": False, "why": None, "url": f"queue/item/{qid}/",
            "task": {"_class": WORKFLOW_JOB, "name": name.split("/")[-1], "url": self._item_abs(name)},
            "executable": {"_class": WORKFLOW_RUN, "number": number, "url": run_url},
        }
        self._send(201, headers={"Location": f"{self._root_url()}queue/item/{qid}/"})

    def _item_abs(self, name: str) -> str:
        return self._root_url() + _item_url(name)

    def _item_json(self, name: str, item: Item | None, query: dict) -> dict:
        st = self.state
        if item is None:
            return {"_class": "hudson.model.Hudson", "mode": "NORMAL", "nodeDescription": "the Jenkins controller",
                    "useSecurity": bool(st.users), "url": self._root_url(),
                    "jobs": self._children("")}
        cls = FOLDER if item.kind == "folder" else WORKFLOW_JOB
        short = name.split("/")[-1]
        if query.get("tree") == ["name"]:
            return {"_class": cls, "name": short}
        doc = {"_class": cls, "name": short, "fullName": name, "displayName": short,
               "url": self._item_abs(name), "description": None}
        if item.kind == "folder":
            doc["jobs"] = self._children(name)
            return doc
        builds = [{"_class": WORKFLOW_RUN, "number": n, "url": b["url"]} for n, b in sorted(item.builds.items(),
                                                                                       reverse=True)]
        doc.update({"buildable": True, "builds": builds, "color": "blue" if builds else "notbuilt",
                    "firstBuild": builds[-1] if builds else None, "lastBuild": builds[0] if builds else None,
                    "inQueue": False, "nextBuildNumber": item.next_build, "property": []})
        return doc

    def _children(self, parent: str) -> list[dict]:
        out = []
        for full, item in sorted(self.state.items.items()):
            head, _, short = full.rpartition("/")
            if head == parent:
                out.append({"_class": FOLDER if item.kind == "folder" else WORKFLOW_JOB, "name": short,
                            "url": self._item_abs(full), **({"color": "notbuilt"} if item.kind == "job" else {})})
        return out


def _split_item_path(path: str) -> tuple[str, str]:
    """'/job/a/job/b/config.xml' -> ('a/b', '/config.xml')."""
    parts = path.split("/")
    names = []
    i = 1
    while i + 1 < len(parts) and parts[i] == "job":
        names.append(unquote(parts[i + 1]))
        i += 2
    rest = "/" + "/".join(parts[i:]) if i < len(parts) else ""
    return "/".join(names), rest


def _item_url(full: str) -> str:
    return "".join(f"job/{quote(p)}/" for p in full.split("/"))


def _queue_path(rest: str) -> int | None:
    parts = rest.strip("/").split("/")
    if len(parts) == 5 and parts[:2] == ["queue", "item"] and parts[3:] == ["api", "json"] and parts[2].isdigit():
        return int(parts[2])
    return None


def _build_path(rest: str) -> int | None:
    parts = rest.strip("/").split("/")
    if len(parts) == 3 and parts[1:] == ["api", "json"] and parts[0].isdigit():
        return int(parts[0])
    return None


class JenkinsDouble:
    def __init__(self, users: dict[str, str] | None = None):
        self.state = JenkinsState(users)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="jenkins-double", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> JenkinsDouble:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def config(self, name: str) -> str:
        return self.state.items[name].config

    def record_pipeline_run(self, name: str, params: list[str]) -> None:
        """Write into the job what a declarative pipeline run writes: tracker action + properties."""
        with self.state.lock:
            item = self.state.items[name]
            root = ET.fromstring(item.config.encode("utf-8"))
            for tag in ("actions", "properties"):
                for el in root.findall(tag):
                    root.remove(el)
            actions = ET.Element("actions")
            ET.SubElement(actions, "org.jenkinsci.plugins.pipeline.modeldefinition.actions.DeclarativeJobAction",
                          plugin="pipeline-model-definition@2.2198.v41dd8ef6dd56")
            tracker = ET.SubElement(
                actions, "org.jenkinsci.plugins.pipeline.modeldefinition.actions.DeclarativeJobPropertyTrackerAction",
                plugin="pipeline-model-definition@2.2198.v41dd8ef6dd56")
            ET.SubElement(tracker, "jobProperties")
            ET.SubElement(tracker, "triggers")
            tracked = ET.SubElement(tracker, "parameters")
            for p in params:
                ET.SubElement(tracked, "string").text = p
            ET.SubElement(tracker, "options")
            props = ET.Element("properties")
            pdp = ET.SubElement(ET.SubElement(props, "hudson.model.ParametersDefinitionProperty"),
                                "parameterDefinitions")
            for p in params:
                spd = ET.SubElement(pdp, "hudson.model.StringParameterDefinition")
                ET.SubElement(spd, "name").text = p
                ET.SubElement(spd, "trim").text = "false"
            root.insert(0, actions)
            root.insert(3, props)
            item.config = reserialise(ET.tostring(root, encoding="unicode"))


@pytest.fixture
def jenkins_double() -> Iterator[JenkinsDouble]:
    """A Jenkins double with security on: user "deployer", API token in `.token`."""
    token = "11" + secrets.token_hex(16)
    double = JenkinsDouble({"deployer": token}).start()
    double.user, double.token = "deployer", token
    try:
        yield double
    finally:
        double.stop()


ENV_TEMPLATE = {
    "json_class": "Chef::Environment", "chef_type": "environment", "description": "jenkins tests",
    "cookbook_versions": {}, "override_attributes": {},
}


def write_sample_tree(root) -> dict:
    """Env files (staging, prod) and two apps under `root`; returns their paths. Used by the Jenkins tests."""
    from pathlib import Path

    root = Path(root)
    envs = root / "envs"
    envs.mkdir(parents=True, exist_ok=True)
    for name in ("staging", "prod"):
        dk = {
            "marathon": {"urls": [f"http://marathon.{name}.invalid:8080"]},
            "consul": {"url": f"http://consul.{name}.invalid:8500", "token_env": "CONSUL_HTTP_TOKEN"},
            "registry": {"url": "registry.example.com", "username_env": "REGISTRY_USER",
                         "password_env": "REGISTRY_PASSWORD"},
        }
        if name == "prod":
            dk["marathon"]["auth"] = {"user": "deployer", "password_env": "MARATHON_PASSWORD"}
        doc = {"name": name, **ENV_TEMPLATE, "default_attributes": {"deploykit": dk}}
        (envs / f"{name}.json").write_text(json.dumps(doc, indent=2))
    cart = root / "apps" / "cart" / "app.yaml"
    cart.parent.mkdir(parents=True, exist_ok=True)
    cart.write_text(
        "id: /shop/cart\n"
        "image: registry.example.com/shop/cart\n"
        "instances: 2\n"
        "secrets:\n"
        "  DB_PASSWORD: {from_env: CART_DB_PASSWORD}\n"
        "environments:\n"
        "  prod:\n"
        "    instances: 4\n"
        "    secrets: {PAYMENT_KEY: {from_env: CART_PAYMENT_KEY}}\n"
    )
    web = root / "apps" / "web" / "app.yaml"
    web.parent.mkdir(parents=True, exist_ok=True)
    web.write_text("id: /shop/web\nimage: registry.example.com/shop/web\n")
    return {"envs": envs, "cart": cart, "web": web, "apps": root / "apps"}
