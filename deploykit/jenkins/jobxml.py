"""Pipeline job config.xml: render from templates/jenkins-job.xml.j2, normalise, compare, diff.

Jenkins never returns config.xml byte-for-byte as posted: it re-serialises it (XML 1.1
declaration, its own indentation), adds plugin="name@version" attributes, and a
declarative pipeline writes <actions> and <properties> (from its `options` and
`parameters`) into the job each time it runs. Comparing raw text would rewrite every
job on every sync, so comparison uses `normalise`, which drops exactly those parts;
and an update keeps the live <actions>/<properties> (`carry_runtime_state`) so a sync
does not wipe what the last build recorded.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

from deploykit.errors import InternalError, Problem, ValidationError
from deploykit.jenkins.templating import render

TEMPLATE = "jenkins-job.xml.j2"
RUNTIME_ELEMENTS = ("actions", "properties")  # written by Jenkins itself when the pipeline runs
DECLARATION = "<?xml version='1.1' encoding='UTF-8'?>\n"
PARAMETERS = "hudson.model.ParametersDefinitionProperty"


@dataclass(frozen=True)
class JobConfig:
    name: str  # full name, folders included: "team/shop-cart"
    description: str
    script: str  # the rendered Jenkinsfile
    source: str  # the app.yaml it came from (for reports)
    parameters: tuple[tuple[str, str, str], ...] = ()  # (name, default, description), as in the Jenkinsfile


def render_job_xml(job: JobConfig, templates_dir: str | Path | None = None) -> str:
    text = render(TEMPLATE, templates_dir, job=job)
    try:
        ET.fromstring(text.encode("utf-8"))
    except ET.ParseError as exc:
        problem = Problem(TEMPLATE, "", f"rendered config.xml is not well-formed: {exc}", line=exc.position[0])
        if templates_dir is None:
            raise InternalError(str(problem)) from None
        raise ValidationError([problem]) from None
    return text


def _parse(text: str) -> ET.Element:
    try:
        return ET.fromstring(text.encode("utf-8"))
    except ET.ParseError as exc:
        raise ValidationError([Problem("config.xml", "", f"not well-formed XML: {exc}")]) from None


def normalise(text: str) -> str:
    """Canonical text for comparison: no declaration, plugin attributes, runtime elements or layout whitespace."""
    root = _parse(text)
    for name in RUNTIME_ELEMENTS:
        for el in root.findall(name):
            root.remove(el)
    for el in root.iter():
        el.attrib.pop("plugin", None)
        el.attrib = dict(sorted(el.attrib.items()))
        if el.text is not None and not el.text.strip() and len(el):
            el.text = None
        if el.tail is not None and not el.tail.strip():
            el.tail = None
        if el.text is not None and not el.text.strip() and not len(el):
            el.text = None
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"


def same_config(live: str, desired: str) -> bool:
    return normalise(live) == normalise(desired)


def config_diff(live: str | None, desired: str, name: str) -> str:
    """Unified diff of the normalised configs (`live` None: the job does not exist yet)."""
    before = normalise(live).splitlines(keepends=True) if live is not None else []
    after = normalise(desired).splitlines(keepends=True)
    label = f"{name}/config.xml"
    return "".join(difflib.unified_diff(before, after, f"a/{label}" if live is not None else "/dev/null", f"b/{label}"))


def carry_runtime_state(desired: str, live: str) -> str:
    """`desired` with the live job's <actions> and <properties> put back, so an update keeps what runs recorded.

    The parameter definitions are the exception: ours replace the live ones, so a parameter just added
    to the pipeline already has its default on the next build.
    """
    new_root, live_root = _parse(desired), _parse(live)
    for name in RUNTIME_ELEMENTS:
        live_el = live_root.find(name)
        if live_el is None:
            continue
        ours = new_root.find(name)
        if name == "properties" and ours is not None:
            mine = ours.find(PARAMETERS)
            for el in live_el.findall(PARAMETERS):
                live_el.remove(el)
            if mine is not None:
                live_el.append(mine)
        children = list(new_root)
        for i, el in enumerate(children):
            if el.tag == name:
                new_root.remove(el)
                new_root.insert(i, live_el)
                break
        else:
            new_root.insert(0, live_el)
    return DECLARATION + ET.tostring(new_root, encoding="unicode") + "\n"
