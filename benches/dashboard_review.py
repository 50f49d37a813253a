#!/usr/bin/env python3
"""The review page of a one-hour recording in a real browser: from asking for the page to
its overview drawn (every series fetched, parsed and drawn by uPlot), in Debian's Chromium
through Playwright, against a server this script starts on a database that
`cargo bench --bench dashboard -- --keep DIR` left (session `hour`).

    cargo bench --bench dashboard -- --keep /tmp/hour
    .venv/bin/python benches/dashboard_review.py --database /tmp/hour/sessions.sqlite \
        [--binary target/release/affectd] [--runs 5]

Each run is a fresh browser context (no cache). The issue's budget is 2 s; there is no peer.
"""

import argparse
import os
import pathlib
import statistics
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--database", required=True)
    p.add_argument("--binary", default=str(ROOT / "target/release/affectd"))
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--chromium", default="/usr/bin/chromium")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    folder = tempfile.mkdtemp(prefix="affectd-review-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFFECTD_")}
    env.update(AFFECTD_CACHE_DIR=folder, AFFECTD_DATABASE=args.database,
               AFFECTD_LOG_LEVEL="error", AFFECTD_HTTP_LISTEN="127.0.0.1:0")
    server = subprocess.Popen([args.binary, "serve", "--listen", "127.0.0.1:0"], env=env,
                              stdout=subprocess.PIPE, text=True)
    base = None
    for line in server.stdout:
        if line.startswith("affectd dashboard on "):
            base = line.split()[-1].rstrip("/")
        if line.startswith("affectd listening on "):
            break
    try:
        totals, requests = [], []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            for run in range(args.runs):
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                started = time.perf_counter()
                page.goto(f"{base}/recordings/hour")
                page.wait_for_function("() => window.affectd && window.affectd.state.loaded >= 1",
                                       timeout=60000, polling=10)
                totals.append((time.perf_counter() - started) * 1e3)
                requests.append(page.evaluate("window.affectd.state.overviewMs"))
                series = page.evaluate("JSON.stringify(window.affectd.state.overview.series)")
                context.close()
            browser.close()
    finally:
        server.terminate()
        server.wait(30)
    print(f"binary {args.binary}, {os.cpu_count()} cores; points per series {series}")
    print(f"page asked -> overview drawn: median {statistics.median(totals):.0f} ms "
          f"(range {min(totals):.0f}-{max(totals):.0f} ms over {args.runs} runs); "
          f"of which the overview request: median {statistics.median(requests):.0f} ms")
    os._exit(0)


if __name__ == "__main__":
    main()
