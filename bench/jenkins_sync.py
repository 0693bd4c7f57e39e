"""Benchmark: render + sync N pipeline jobs against the Jenkins HTTP double.

Measures, for N apps: validating + rendering every Jenkinsfile and config.xml
(`prepare_jobs`), the first sync (creates folder + jobs), a no-op sync (reads only),
and the HTTP requests each needed. Run: .venv/bin/python bench/jenkins_sync.py [N]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploykit.clients.jenkins import JenkinsClient
from deploykit.jenkins.pipeline import PipelineOptions
from deploykit.jenkins.service import prepare_jobs, run_sync
from tests.harness.jenkins_double import JenkinsDouble, write_sample_tree


def main(n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="dk-bench-jenkins-") as tmp:
        tree = write_sample_tree(Path(tmp))
        template = tree["cart"].read_text()
        for i in range(n - 2):  # the sample tree has 2 apps already
            app = tree["apps"] / f"svc{i:03d}" / "app.yaml"
            app.parent.mkdir()
            app.write_text(template.replace("/shop/cart", f"/shop/svc{i:03d}"))
        options = PipelineOptions(envs=("staging", "prod"), repo_url="https://git.example.com/shop.git")
        t0 = time.perf_counter()
        jobs = prepare_jobs([str(tree["apps"])], options, folder="shop", env_dir=tree["envs"])
        t_render = time.perf_counter() - t0
        double = JenkinsDouble({"bench": "token"}).start()
        try:
            client = JenkinsClient(double.url, user="bench", token="token")
            t0 = time.perf_counter()
            first = run_sync(client, jobs, dry_run=False)
            t_create = time.perf_counter() - t0
            req_create = len(double.state.requests)
            client = JenkinsClient(double.url, user="bench", token="token")
            t0 = time.perf_counter()
            second = run_sync(client, jobs, dry_run=False)
            t_noop = time.perf_counter() - t0
            req_noop = len(double.state.requests) - req_create
        finally:
            double.stop()
    assert first["summary"]["create"] == n and second["summary"]["unchanged"] == n
    print(f"apps: {n}")
    print(f"validate + render {n} Jenkinsfiles and config.xml: {t_render:.3f} s ({t_render / n * 1000:.1f} ms/app)")
    print(f"first sync (create folder + {n} jobs): {t_create:.3f} s, {req_create} HTTP requests")
    print(f"no-op sync: {t_noop:.3f} s, {req_noop} HTTP requests, 0 writes")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
