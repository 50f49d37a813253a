#!/usr/bin/env python3
"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright
(playwright from PyPI, pointed at /usr/bin/chromium; it downloads no browser).

Run by the Rust integration tests in tests/integration/dashboard.rs against a real
`affectd serve`; by hand:

    .venv/bin/python tests/browser/dashboard.py --http http://127.0.0.1:50052 \
        --grpc 127.0.0.1:50051 --screenshots target/dashboard [--explain-only]

A test session streams webcam frames (the single-face photo), 8-channel EEG, EDA and ECG
(synthetic, in real time) and a marker. The script checks, in the page:
- the sessions page lists it, and the keyboard opens it (Tab, arrow keys, Enter);
- the live page's marked frame updates (at least 5 times a second while frames arrive),
  the band-power chart has data, the quality map and the AU bars show, the marker is on
  the timeline, the theme switches;
- with --explain-only, and nothing else: the explain button streams tokens into the page,
  then a judgement (a reported parse failure fails this check);
- after the session ends: the review page's timelines, scrubbing (the frame at a time),
  and the two downloads;
- bad requests: an unknown session is a 404 page, malformed queries are 400s with a
  message, and no page shows a stack trace.
Screenshots of the live and review pages are written to --screenshots. Prints one line per
check; exits non-zero on the first failure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import sys
import threading
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "clients/python"))

import numpy as np  # noqa: E402

import affectd  # noqa: E402

EEG_CHANNELS = ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "O1", "O2"]
EEG_HZ, EDA_HZ, ECG_HZ = 250.0, 32.0, 250.0
FPS = 15.0


def check(ok: bool, what: str) -> None:
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        raise SystemExit(1)


class Streamer(threading.Thread):
    """A session in real time: frames, EEG, EDA, ECG and one marker, until stopped."""

    def __init__(self, address: str, photo: pathlib.Path, seconds: float):
        super().__init__(daemon=True)
        self.client = affectd.Client(address)
        self.photo = photo.read_bytes()
        self.seconds = seconds
        self.stop = threading.Event()
        self.session_id = None
        self.ready = threading.Event()
        self.error = None
        self.rng = np.random.default_rng(7)

    def run(self) -> None:
        try:
            self._run()
        except Exception as e:  # reported by the main thread
            self.error = e
            self.ready.set()

    def _run(self) -> None:
        streams = [
            affectd.stream("eeg", "eeg", EEG_HZ, labels=EEG_CHANNELS, units="uV"),
            affectd.stream("eda", "eda", EDA_HZ, labels=["EDA"], units="uS"),
            affectd.stream("ecg", "ecg", ECG_HZ, labels=["ECG"], units="mV"),
        ]
        with self.client.session(participant="P01", streams=streams, keep_responses=False,
                                 session_id=f"dashboard-{os.getpid()}") as session:
            self.session = session
            self.session_id = session.session_id
            self.ready.set()
            start = time.monotonic()
            sent = {"eeg": 0, "eda": 0, "ecg": 0}
            frames = 0
            marked = False
            while not self.stop.is_set() and time.monotonic() - start < self.seconds:
                now = time.monotonic() - start
                while frames / FPS <= now:
                    session.frame(frames / FPS, self.photo)
                    frames += 1
                for name, rate, make in (("eeg", EEG_HZ, self.eeg), ("eda", EDA_HZ, self.eda), ("ecg", ECG_HZ, self.ecg)):
                    due = int(now * rate)
                    if due > sent[name]:
                        t0 = sent[name] / rate
                        session.chunk(name, t0, make(sent[name], due))
                        sent[name] = due
                if not marked and now >= 4.0:
                    session.marker(4.0, "stimulus A")
                    marked = True
                time.sleep(0.02)
            session.end(timeout=60)

    def eeg(self, i0: int, i1: int) -> np.ndarray:
        t = np.arange(i0, i1) / EEG_HZ
        alpha = 20 * np.sin(2 * np.pi * 10 * t)[:, None]
        return (alpha + self.rng.normal(0, 5, (len(t), len(EEG_CHANNELS)))).astype(np.float32)

    def eda(self, i0: int, i1: int) -> np.ndarray:
        t = np.arange(i0, i1) / EDA_HZ
        # A tonic level with a skin conductance response every 6 s.
        phase = np.mod(t - 2.0, 6.0)
        scr = np.where(phase < 5.0, 0.4 * (1 - np.exp(-phase / 0.6)) * np.exp(-phase / 2.5), 0.0)
        return (5.0 + 0.3 * np.sin(2 * np.pi * t / 20.0) + scr + self.rng.normal(0, 0.003, len(t)))[:, None].astype(np.float32)

    def ecg(self, i0: int, i1: int) -> np.ndarray:
        t = np.arange(i0, i1) / ECG_HZ
        phase = np.mod(t, 60.0 / 72.0)  # 72 bpm
        r = np.exp(-((phase - 0.2) ** 2) / (2 * 0.008**2))
        return (r + 0.02 * np.sin(2 * np.pi * 0.3 * t) + self.rng.normal(0, 0.01, len(t)))[:, None].astype(np.float32)


def http_get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode("utf-8", "replace")


def no_trace(text: str) -> bool:
    return not any(s in text for s in ("panicked", "stack backtrace", "RUST_BACKTRACE", "at src/", "Traceback"))


def wait_for(page, expression: str, timeout_s: float, what: str):
    try:
        page.wait_for_function(f"() => ({expression})", timeout=timeout_s * 1000, polling=100)
    except Exception as e:
        errors = page.evaluate("window.affectd ? window.affectd.errors : []")
        check(False, f"{what} (waited {timeout_s} s: {e}; page errors: {errors})")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--http", required=True, help="the dashboard's address, http://HOST:PORT")
    p.add_argument("--grpc", required=True, help="the gRPC address, HOST:PORT")
    p.add_argument("--screenshots", required=True)
    p.add_argument("--explain-only", action="store_true",
                   help="open the live page, click the explain button and wait for a judgement; nothing else")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    args = p.parse_args()
    shots = pathlib.Path(args.screenshots)
    shots.mkdir(parents=True, exist_ok=True)
    base = args.http.rstrip("/")

    from playwright.sync_api import sync_playwright

    streamer = Streamer(args.grpc, ROOT / ".testdata/single_face.jpg", seconds=300)
    streamer.start()
    streamer.ready.wait(60)
    check(streamer.error is None and streamer.session_id is not None, f"a session streams ({streamer.error})")
    sid = streamer.session_id

    console_errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=args.chromium,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: console_errors.append(str(e)))

        if args.explain_only:
            page.goto(f"{base}/sessions/{sid}")
            wait_for(page, "window.affectd && window.affectd.state.imagesLoaded >= 1", 60, "the marked frame loads")
            page.click("#explain")
            wait_for(page, "document.querySelector('#judgement article.judgement, #judgement .error') !== null", 600, "the explanation ends")
            judgement = page.inner_text("#judgement")
            tokens = page.inner_text("#explain-tokens")
            page.screenshot(path=str(shots / "live-explained.png"), full_page=True)
            check(page.query_selector("#judgement article.judgement") is not None,
                  f"the explain button yields a judgement: {judgement[:400]!r}")
            check(len(tokens) > 20, f"the tokens streamed into the page before the judgement ({len(tokens)} characters)")
            streamer.stop.set()
            streamer.join(90)
            browser.close()
            os._exit(0)

        # The sessions page lists the session; the keyboard opens it.
        page.goto(base + "/")
        page.wait_for_selector(f'#live-sessions tr[data-href="/sessions/{sid}"]', timeout=30000)
        row_text = page.inner_text(f'#live-sessions tr[data-href="/sessions/{sid}"]')
        check("P01" in row_text and "eeg (eeg)" in row_text, f"the sessions page lists the live session: {row_text!r}")
        page.focus("#live-sessions tbody tr[tabindex]")
        page.keyboard.press("End")
        page.keyboard.press("Home")
        page.keyboard.press("Enter")
        page.wait_for_url(f"**/sessions/{sid}", timeout=10000)
        check(True, "the keyboard moves along the list and Enter opens the session")

        # The live page.
        wait_for(page, "window.affectd && window.affectd.state.imagesLoaded >= 2", 30, "the marked frame loads")
        first = page.evaluate("window.affectd.state.imagesLoaded")
        time.sleep(4.0)
        loads = page.evaluate("window.affectd.state.imagesLoaded") - first
        check(loads / 4.0 >= 5.0, f"the marked frame updates at least 5 times a second ({loads / 4.0:.1f}/s with frames at {FPS:g} fps)")
        wait_for(page, "window.affectd.charts.band_power && window.affectd.charts.band_power.data[0].length > 2", 30, "the band-power chart has data")
        bands = page.evaluate("window.affectd.charts.band_power.data.slice(1).map(s => s.filter(v => v !== null).length)")
        check(all(n > 0 for n in bands), f"every band has points in the band-power chart: {bands}")
        wait_for(page, "document.querySelectorAll('#quality [aria-label=\"Channel quality of eeg\"] .chip').length === 8", 30, "the quality map shows the 8 EEG channels")
        wait_for(page, "document.querySelectorAll('#faces .face .bar').length > 10", 30, "the face panel shows AU and expression bars")
        wait_for(page, "window.affectd.charts.eda.data[0].length > 0", 40, "the EDA trace has data")
        wait_for(page, "window.affectd.charts.heart_rate.data[1].some(v => v !== null)", 40, "the heart-rate trace has data")
        wait_for(page, "window.affectd.charts.heart_rate.data[2].some(v => v !== null)", 40, "the beat marks show")
        wait_for(page, "window.affectd.charts.valence_arousal.data[3].some(v => v !== null)", 30, "the valence/arousal timeline has the face's points")
        wait_for(page, "window.affectd.state.markers && window.affectd.state.markers.some(m => m.label === 'stimulus A')", 30, "the marker is on the timeline")
        status = page.inner_text("#status")
        check("P01" in status and "acknowledged client_seq" in status, f"the status line: {status!r}")
        theme = page.evaluate("document.documentElement.dataset.theme")
        page.click("#theme")
        check(page.evaluate("document.documentElement.dataset.theme") != theme, "the theme button switches dark and light")
        page.click("#theme")
        time.sleep(1.0)
        page.screenshot(path=str(shots / "live.png"), full_page=True)
        check(True, f"screenshot {shots / 'live.png'}")

        # The session ends; its review.
        streamer.stop.set()
        streamer.join(90)
        check(streamer.error is None, f"the session ended cleanly ({streamer.error})")
        wait_for(page, "document.querySelector('#status a') !== null", 30, "the live page says the session ended and links its review")
        page.goto(f"{base}/recordings/{sid}")
        wait_for(page, "window.affectd.state.loaded >= 1", 30, "the review's overview loads")
        overview = page.evaluate("window.affectd.state.overview")
        check(len(overview["series"]) >= 4 and all(n > 0 for n in overview["series"]), f"the review has its series: {overview}")
        wait_for(page, "window.affectd.state.moment !== undefined", 30, "scrubbing shows the recorded frame")
        src = page.get_attribute("#frame", "src") or ""
        check(src.startswith("data:image/jpeg;base64,"), "the recorded frame is shown")
        page.fill("#scrub", "2.0")
        page.dispatch_event("#scrub", "input")
        wait_for(page, "Math.abs(window.affectd.state.moment - 2.0) < 0.2", 30, "moving the slider shows the frame at that time")
        check(page.evaluate("window.affectd.state.markers.some(m => m.label === 'stimulus A')"), "the review's timeline has the marker")
        # Zoom to a range, then reset.
        loaded = page.evaluate("window.affectd.state.loaded")
        page.click("#pan-left")
        page.click("#reset")
        wait_for(page, f"window.affectd.state.loaded > {loaded}", 30, "reset reloads the overview")
        time.sleep(0.5)
        page.screenshot(path=str(shots / "review.png"), full_page=True)
        check(True, f"screenshot {shots / 'review.png'}")
        for name, magic in (("export.xdf", b"XDF:"), ("export.zip", b"PK")):
            href = page.get_attribute(f'a[href$="{name}"]', "href")
            response = page.request.get(base + href)
            body = response.body()
            check(response.status == 200 and body.startswith(magic), f"download {name}: {response.status}, {len(body)} bytes")

        # Bad requests.
        page.goto(f"{base}/sessions/no-such-session")
        text = page.inner_text("body")
        check("no session `no-such-session`" in text and no_trace(text), "an unknown session is a 404 page that says so")
        status, ctype, text = http_get(f"{base}/sessions/no-such-session")
        check(status == 404 and "text/html" in ctype, f"... with status 404 ({status}, {ctype})")
        status, ctype, text = http_get(f"{base}/recordings/no-such-session")
        check(status == 404 and no_trace(text), f"an unknown recording is a 404 page ({status})")
        for query, needle in (
            ("moment?t=abc", "`t` must be a finite number"),
            ("moment?t=NaN", "`t` must be a finite number"),
            ("moment", "`t` is required"),
            ("moment?when=3", "unknown query parameter `when`"),
            ("overview?points=1", "`points` must be a whole number"),
            ("overview?from=5&to=1", "must be before"),
        ):
            status, ctype, text = http_get(f"{base}/api/recordings/{sid}/{query}")
            message = json.loads(text).get("error", "") if "json" in ctype else text
            check(status == 400 and needle in message and no_trace(text), f"{query}: 400 {message!r}")
        status, _, text = http_get(f"{base}/sessions/bad%20id!")
        check(status == 400 and "session_id" in text and no_trace(text), f"a malformed session id is a 400 page ({status})")
        status, _, text = http_get(f"{base}/api/sessions/{sid}/feed")
        check(status == 404 and no_trace(text), f"the feed of an ended session is a 404 ({status})")
        browser.close()
    real_errors = [e for e in console_errors if "404" not in e and "400" not in e]
    check(not real_errors, f"no script errors in the pages: {real_errors}")
    os._exit(0)


if __name__ == "__main__":
    main()
