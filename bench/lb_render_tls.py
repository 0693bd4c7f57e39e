"""Benchmark `deploykit lb render --ssl-certs` (TLS on) against marathon-lb's generator (issue 14).

In ONE run, for 1,000 and 3,000 marathon-lb-style apps x 5 tasks (bench/gen_apps.py --style marathon-lb:
HAPROXY_GROUP + HAPROXY_0_VHOST, Marathon HTTP health checks, no DEPLOYKIT_* labels), interleaved and
repeated (medians): the whole `deploykit lb render --apps-json F --group external --ssl-certs CERT` command
in a subprocess (interpreter start, imports, decode, model, render with the https frontend, write), the same
without --ssl-certs, and marathon-lb's in-process generator on the same file (bench/mlb_generate.py, which
always renders its https frontend; vendored code in bench/marathon_lb/, Apache-2.0). The certificate is a
self-signed one made here with openssl; `haproxy -c` checks our output (it loads the certificate).

    .venv/bin/python bench/lb_render_tls.py [--runs 5] [--sizes 1000,3000] [--dir /tmp/dk-bench-tls]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import lb_render  # noqa: E402  (its subprocess timing helpers)
from gen_apps import make_apps  # noqa: E402


def _render(path: Path, out: Path, cert: Path | None) -> lb_render.Sample:
    deploykit = Path(sys.executable).parent / "deploykit"
    tls = ["--ssl-certs", str(cert)] if cert else []
    argv = [str(deploykit), "lb", "render", "--apps-json", str(path), "--group", "external", *tls,
            "--out", str(out), "-q"]
    return lb_render._run(argv)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="1000,3000")
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--dir", default="/tmp/dk-bench-tls")
    args = parser.parse_args()
    workdir = Path(args.dir)
    workdir.mkdir(parents=True, exist_ok=True)
    lb_render.CHILD_ENV.update(lb_render._child_env(workdir))
    cert = workdir / "cert.pem"
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(workdir / "k"),
                        "-out", str(workdir / "c"), "-days", "30", "-subj", "/CN=*.example.com"], check=True,
                       capture_output=True)
        cert.write_bytes((workdir / "c").read_bytes() + (workdir / "k").read_bytes())
    print("| apps | input MB | lb render --ssl-certs wall / CPU s | lb render (no TLS) wall / CPU s | "
          "marathon-lb generator wall / CPU s | ratio (marathon-lb / ours, CPU) | https routes | haproxy -c |")
    print("|---|---|---|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        path = workdir / f"mlb-apps-{size}x{args.tasks}.json"
        if not path.exists():
            path.write_text(json.dumps(make_apps(size, args.tasks, style="marathon-lb"), separators=(",", ":")))
        out = workdir / f"haproxy-{size}.cfg"
        _render(path, out, cert)  # warm the page cache and .pyc files
        samples: dict[str, list] = {"tls": [], "plain": [], "mlb": []}
        for _ in range(args.runs):  # interleaved, so machine load hits all alike
            samples["tls"].append(_render(path, out, cert))
            samples["plain"].append(_render(path, workdir / "plain.cfg", None))
            samples["mlb"].append(lb_render._marathon_lb(path))
        med = {k: (statistics.median(s.wall for s in v), statistics.median(s.cpu for s in v))
               for k, v in samples.items()}
        text = out.read_text()
        https = text.split("frontend https_in", 1)[1].split("\nfrontend ", 1)[0].count("use_backend ")
        valid = "n/a"
        if shutil.which("haproxy"):
            check = subprocess.run(["haproxy", "-c", "-q", "-f", str(out)], capture_output=True, text=True)
            valid = "valid" if check.returncode == 0 else "INVALID"
        print(f"| {size} | {path.stat().st_size / 1e6:.1f} | {med['tls'][0]:.3f} / {med['tls'][1]:.3f} | "
              f"{med['plain'][0]:.3f} / {med['plain'][1]:.3f} | {med['mlb'][0]:.3f} / {med['mlb'][1]:.3f} | "
              f"{med['mlb'][1] / med['tls'][1]:.1f}x | {https} | {valid} |")


if __name__ == "__main__":
    main()
