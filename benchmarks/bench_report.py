"""The HTML report of the default run: what it holds, how long it takes, how a browser shows it.

Bars (issue 16): ``poisonlab report`` on the default run's folder writes one HTML
file with at least four figures and no reference to any http(s) resource, which
renders in headless Chromium with no console error and every figure drawn.

    python benchmarks/bench_report.py [--repeats N] [--run-dir DIR]

Runs the default grid (``poisonlab run``, a fresh process) once into a temporary
folder unless ``--run-dir`` names one it already wrote, then times ``poisonlab
report`` on it (median over repeats) and opens the result in headless Chromium
(Debian's ``chromium``; skipped, and counted a miss, where none is installed).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bars import report_bars

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from browser import chromium, open_page  # the test suite's DevTools driver


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--run-dir", help="a folder the default `poisonlab run` wrote (else run it here)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(args.run_dir) if args.run_dir else Path(tmp) / "default"
        if not args.run_dir:
            start = time.perf_counter()
            cmd = [sys.executable, "-m", "poisonlab", "run", "--out", str(run_dir)]
            subprocess.run(cmd, check=True, capture_output=True)
            print(f"default run (30 runs, with its report): {time.perf_counter() - start:.1f} s")
        out = Path(tmp) / "report.html"
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            cmd = [sys.executable, "-m", "poisonlab", "report", str(run_dir), "--out", str(out), "--force"]
            subprocess.run(cmd, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        page = out.read_text()
        titles = re.findall(r"<b>Figure \d+\. (.*?)</b>", page)
        links = re.findall(r"https?://", page)
        print(f"report: {len(page) / 1024:.0f} KiB, {len(titles)} figures, {len(links)} http(s) references")
        for title in titles:
            print(f"  - {title}")
        print(
            f"poisonlab report (a fresh process): median {statistics.median(times):.2f} s "
            f"[{min(times):.2f}–{max(times):.2f}] over {args.repeats}"
        )
        errors, drawn = float("nan"), float("nan")
        if chromium() is None:
            print("chromium: not installed (apt-get install chromium); the browser bars are misses")
        else:
            rendered = open_page(out)
            errors = float(len(rendered.errors))
            drawn = float(sum(f["pixels"] is not None and f["pixels"].std() > 10 for f in rendered.figures))
            sizes = ", ".join(f"{f['width']:.0f}×{f['height']:.0f}" for f in rendered.figures)
            print(f"chromium: {len(rendered.errors)} console errors; figures drawn at {sizes} px")
        missed = report_bars(
            [
                ("figures in the default run's report >= 4", float(len(titles)), lambda v: v >= 4),
                ("http(s) references == 0", float(len(links)), lambda v: v == 0),
                ("console errors in headless Chromium == 0", errors, lambda v: v == 0),
                ("figures drawn (not blank) == figures", drawn, lambda v: v == len(titles)),
            ]
        )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
