"""No-change rebuild + push: `deploykit build --push` vs the same buildah commands run by hand.

Sets up a private buildah store (vfs) with the busybox base, a docker-registry on a free
port, and a git copy of examples/hello pointed at it; builds and pushes once to warm the
layer cache and the registry; then alternates N times:
  A) `deploykit build app.yaml --env staging --build-arg BASE=... --push -q` (a new process
     each time: CLI start-up, git, plan, buildah bud, inspect, tag, registry ping, push of
     both tags, digest read-back per tag, manifest GET by digest, build record);
  B) by hand: the identical `buildah bud` command line, then `buildah push` of both tags.
Reports min/median wall time of each and the overhead ratio of medians (A/B).

    .venv/bin/python bench/image_rebuild.py [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchkit import timed_run  # noqa: E402

from deploykit.image.backend import BuildSpec  # noqa: E402
from deploykit.image.buildah import BuildahBackend  # noqa: E402
from deploykit.image.pipeline import plan_build  # noqa: E402
from deploykit.image.runner import Runner  # noqa: E402
from tests.harness.buildah import BuildahStore  # noqa: E402
from tests.harness.registry import Registry  # noqa: E402

JENKINS = {"BRANCH_NAME": "main", "BUILD_NUMBER": "1"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dk-bench-image-") as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "registry").mkdir()
        registry = Registry(tmp / "registry")
        registry.start()
        store = BuildahStore(tmp / "buildah")
        try:
            store.make_base_image(shutil.which("busybox") or "/bin/busybox")
            app_dir = tmp / "hello"
            shutil.copytree(ROOT / "examples/hello", app_dir, ignore=shutil.ignore_patterns("__pycache__"))
            app = app_dir / "app.yaml"
            app.write_text(re.sub(r"(?m)^image: .*$", f"image: {registry.host}/bench/hello", app.read_text()))
            for args in (["init", "-q", "-b", "main"], ["add", "."],
                         ["-c", "user.email=b@example.com", "-c", "user.name=bench", "commit", "-q", "-m", "x"]):
                subprocess.run(["git", "-C", str(app_dir), *args], check=True, capture_output=True)
            env_doc = json.loads((ROOT / "chef_attrs/staging.json").read_text())
            env_doc["default_attributes"]["deploykit"]["registry"] = {"url": registry.host, "insecure": True}
            (tmp / "envs").mkdir()
            (tmp / "envs/staging.json").write_text(json.dumps(env_doc))
            env = {**os.environ, **store.env, **JENKINS}
            env.pop("CI", None)
            cli = [str(ROOT / ".venv/bin/deploykit"), "build", "app.yaml", "--env", "staging", "--env-dir",
                   str(tmp / "envs"), "--build-arg", f"BASE={store.base_image}", "--push", "--quiet",
                   "--build-record", str(tmp / "build.json")]

            # the hand-run commands: exactly what deploykit runs for this app
            plan = plan_build(image=f"{registry.host}/bench/hello", app_dir=app_dir,
                              build_args=[f"BASE={store.base_image}"], environ=JENKINS)
            backend = BuildahBackend(Runner(), root=str(store.root), runroot=str(store.runroot))
            spec = BuildSpec(context=plan.context, dockerfile=plan.dockerfile, refs=plan.refs,
                             build_args=plan.build_args, labels=plan.labels)
            hand = [backend.build_argv(spec, str(tmp / "iid"))]
            hand += [backend.push_argv(ref, authfile=None, insecure=True, digestfile=str(tmp / "digest"))
                     for ref in plan.refs]

            timed_run(cli, env=env, cwd=app_dir)  # warm: first build fills the layer cache and the registry
            a_times: list[float] = []
            b_times: list[float] = []
            digests: set[str] = set()
            for _ in range(opts.runs):
                a_times.append(timed_run(cli, env=env, cwd=app_dir))
                digests.add(json.loads((tmp / "build.json").read_text())["digest"])
                start = time.perf_counter()
                for argv in hand:
                    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                b_times.append(time.perf_counter() - start)
        finally:
            registry.stop()
            subprocess.run([*store.argv, "rm", "--all"], capture_output=True)
    a_med, b_med = statistics.median(a_times), statistics.median(b_times)
    result = {
        "runs": opts.runs,
        "tags": plan.tags,
        "distinct_digests_over_runs": len(digests),  # 1: a no-change rebuild pins the same digest
        "digest": sorted(digests)[0],
        "deploykit_build_push_s": {"min": round(min(a_times), 3), "median": round(a_med, 3)},
        "buildah_by_hand_s": {"min": round(min(b_times), 3), "median": round(b_med, 3)},
        "overhead_ratio_median": round(a_med / b_med, 2),
        "overhead_s_median": round(a_med - b_med, 3),
        "loadavg_1m_after": os.getloadavg()[0],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
