"""The generated Jenkinsfiles, checked by a real Groovy parser: npm-groovy-lint 15 (CodeNarc on the JRE).

One call lints every golden Jenkinsfile, the one examples/hello renders, and a deliberately broken
file (proof that a parse error is reported). Errors fail; so do warnings under templates/.groovylintrc.json,
which says which rules do not apply to a generated declarative pipeline and why (docs/jenkins.md).
scripts/setup.sh installs the tool into .tools/groovylint.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from deploykit.cli import main
from tests.harness.common import unavailable

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LOCAL_TOOL = REPO / ".tools" / "groovylint" / "node_modules" / ".bin" / "npm-groovy-lint"
BROKEN = "pipeline {\n    stages {\n        stage('x') {\n            steps { sh 'true' }\n    }\n"


def _tool() -> str:
    found = str(LOCAL_TOOL) if LOCAL_TOOL.exists() else shutil.which("npm-groovy-lint")
    if found and shutil.which("java"):
        return found
    unavailable("npm-groovy-lint (and java) are not installed (run scripts/setup.sh)")


@pytest.mark.timeout(600)
def test_generated_jenkinsfiles_pass_npm_groovy_lint(tmp_path):
    tool = _tool()
    files = tmp_path / "jenkinsfiles"
    files.mkdir()
    for golden in sorted((REPO / "tests" / "unit" / "golden" / "jenkins").glob("*.Jenkinsfile")):
        shutil.copy(golden, files / golden.name)
    r = CliRunner().invoke(main, ["jenkins", "jenkinsfile", str(REPO / "examples" / "hello" / "app.yaml"),
                                  "--env", "staging,prod", "--out", str(files / "hello.Jenkinsfile")])
    assert r.exit_code == 0, r.output
    (files / "broken.Jenkinsfile").write_text(BROKEN)
    done = subprocess.run(
        # --noserver: no CodeNarc server left running after the test
        [tool, "--noserver", "--config", str(REPO / "templates"), "--output", "json", "--failon", "none",
         *sorted(str(f) for f in files.iterdir())],
        capture_output=True, text=True, timeout=540, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    found = {Path(name).name: entries["errors"] for name, entries in report["files"].items()}
    assert any(e["severity"] == "error" for e in found.pop("broken.Jenkinsfile")), "a parse error went unnoticed"
    assert report["summary"]["totalFilesLinted"] == len(found) + 1
    problems = [f"{name}:{e['line']} {e['severity']} {e['rule']}: {e['msg']}"
                for name, errors in found.items() for e in errors if e["severity"] in ("error", "warning")]
    assert problems == [], "\n".join(problems)
