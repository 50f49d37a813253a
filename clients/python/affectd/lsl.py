"""affectd-lsl: a Lab Streaming Layer bridge, both ways.

Into affectd: LSL streams (EEG, EDA, ECG, PPG, respiration, markers; a webcam through
OpenCV) are resolved, opened and forwarded into one live session. Channel labels, units and
nominal rates come from each stream's info. Sample times are LSL times, mapped from each
outlet's clock onto this machine's LSL clock (pylsl.local_clock) with the inlet's
time_correction(), re-estimated every --clock-sync-every seconds; the session's client
clock IS this LSL clock, and its offset to the server's clock is measured and sent with
ClockSync at the same period, so the recording and its XDF export carry it.

Out of affectd: results come back as LSL outlets, timestamped in LSL time, so LabRecorder
records them in the same XDF as the raw data:
  <prefix>-faces         float32, one sample per face per frame: face_id, AU intensities,
                         expression probabilities (combined), valence, arousal;
  <prefix>-faces-json    string, one JSON per frame (boxes, pose, AUs, FER, prototypes);
  <prefix>-features      string, one JSON per feature window (at the window's end);
  <prefix>-fused         float32, valence, arousal and the label probabilities per hop;
  <prefix>-judgements    string, one JSON per explanation (at the moment asked about).

    affectd-lsl --eeg "type=EEG" --markers "name=PsychoPyMarkers" --participant p01

Samples travel as float32 (the wire's type): a double-precision LSL stream is rounded to
float32, and integer streams above 2^24 lose their low bits.

A stream that disappears gets a warning and is waited for; the session goes on with the
others. Ctrl-C (or SIGTERM) ends the session cleanly, after everything sent is
acknowledged. With no stream matching a query, it exits with status 2 within
--resolve-timeout, naming what it looked for.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from . import tables
from .client import Client
from .proto import session_pb2
from .session import Session, SessionBroken, stream

try:  # The bridge needs pylsl (pip install 'affectd[lsl]'); the rest of the package does not.
    import pylsl
    from pylsl.util import LostError, TimeoutError as LslTimeout  # not exported at the top
except ImportError:  # pragma: no cover - depends on the environment
    pylsl = None

SIGNAL_KINDS = ("eeg", "eda", "ecg", "ppg", "respiration")
#: A silence longer than this (and than 10 sample periods) is reported as a dropout.
DROPOUT_S = 2.0
#: A jump between consecutive chunks longer than this (and than 3 sample periods) is a gap:
#: the missing samples are declared to the server (first_sample_index) and filled with NaN.
GAP_S = 0.1
FACE_NUMERIC = ["face_id"] + [f"AU{n:02d}_r" for n in tables.AU_NUMBERS] + list(tables.LABELS) + ["valence", "arousal"]
FUSED_NUMERIC = ["valence", "arousal"] + [f"p.{label}" for label in tables.LABELS]


def log(message: str) -> None:
    print(f"affectd-lsl: {message}", file=sys.stderr, flush=True)


# -- resolving -----------------------------------------------------------------------------

QUERY_KEYS = {"name", "type", "source_id", "hostname"}


def predicate(query: str) -> str:
    """'type=EEG' or 'name=Amp,type=EEG' -> the XPath predicate liblsl resolves."""
    parts = []
    for item in query.split(","):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in QUERY_KEYS or not value:
            raise ValueError(f"{query!r}: expected key=value pairs with keys {sorted(QUERY_KEYS)}, e.g. \"type=EEG\"")
        if "'" in value:
            raise ValueError(f"{query!r}: a value may not contain a single quote")
        parts.append(f"{key}='{value}'")
    return " and ".join(parts)


def resolve(option: str, query: str, deadline: float) -> "pylsl.StreamInfo":
    """The first stream matching the query, as the resolver returns it (to open inlets
    from: an inlet cannot be opened from the full info that `description` reads)."""
    pred = predicate(query)
    found = pylsl.resolve_bypred(pred, 1, max(0.0, deadline - time.monotonic()))
    if not found:
        raise LookupError(f"no LSL stream matched {option} {query!r} (predicate {pred}) within the resolve timeout")
    if len(found) > 1:
        names = ", ".join(f"{i.name()} ({i.source_id() or 'no source_id'})" for i in found)
        log(f"{option} {query!r} matched {len(found)} streams ({names}); using the first")
    return found[0]


def description(option: str, query: str, info: "pylsl.StreamInfo", deadline: float) -> "pylsl.StreamInfo":
    """The outlet's full info, with the <desc> (channel labels, units) the resolver omits."""
    try:
        return pylsl.StreamInlet(info).info(timeout=max(1.0, deadline - time.monotonic()))
    except LslTimeout:
        raise LookupError(f"{option} {query!r} ({info.name()}) did not send its description in time") from None


def channel_labels_and_units(info: "pylsl.StreamInfo") -> tuple[List[str], List[str]]:
    """From the stream's desc/channels/channel (label, unit), as the XDF conventions have
    them; ch1..chN and no unit where the outlet says nothing."""
    n = info.channel_count()
    labels, units = [f"ch{i + 1}" for i in range(n)], [""] * n
    channel = info.desc().child("channels").child("channel")
    i = 0
    while not channel.empty() and i < n:
        label = channel.child_value("label")
        if label:
            labels[i] = label
        units[i] = channel.child_value("unit") or channel.child_value("units") or ""
        channel = channel.next_sibling("channel")
        i += 1
    return labels, units


# -- forwarding a signal stream ----------------------------------------------------------


@dataclass
class Forwarded:
    """Counts of what one input forwarded, for the final report and the tests."""

    samples: int = 0
    chunks: int = 0
    gaps: int = 0
    dropouts: int = 0
    markers: int = 0


class Input(threading.Thread):
    """Pulls one LSL stream and forwards it into the session, on its own thread."""

    def __init__(
        self,
        option: str,
        query: str,
        info: "pylsl.StreamInfo",
        session_ref: "Bridge",
        stream_id: str,
        clock_sync_every: float,
    ):
        super().__init__(name=f"affectd-lsl-{stream_id}", daemon=True)
        self.option, self.query, self.info = option, query, info
        self.bridge = session_ref
        self.stream_id = stream_id
        self.clock_sync_every = clock_sync_every
        self.rate = info.nominal_srate()
        self.channels = info.channel_count()
        self.is_markers = option == "--markers"
        self.counts = Forwarded()
        self.stop = threading.Event()
        self.time_correction = 0.0
        self.next_index = 0
        self.last_time: Optional[float] = None

    def open(self) -> "pylsl.StreamInlet":
        # recover=True: liblsl reconnects to an outlet with the same source_id by itself.
        inlet = pylsl.StreamInlet(self.info, max_buflen=360, recover=True)
        inlet.open_stream(timeout=10.0)
        self.time_correction = inlet.time_correction(timeout=5.0)
        return inlet

    def run(self) -> None:
        try:
            self.loop()
        except SessionBroken as e:
            self.bridge.fail(e)
        except Exception as e:  # a bug here must end the bridge loudly, not silently stop a stream
            self.bridge.fail(RuntimeError(f"{self.option} {self.query!r}: {e!r}"))

    def loop(self) -> None:
        inlet = self.open()
        next_correction = time.monotonic() + self.clock_sync_every
        last_data = time.monotonic()
        silent_reported = False
        dropout_after = max(DROPOUT_S, 10.0 / self.rate) if self.rate > 0 else None
        while True:
            stopping = self.stop.is_set()
            try:
                data, stamps = inlet.pull_chunk(timeout=0.0 if stopping else 0.05, max_samples=4096)
            except LostError:
                inlet = self.reconnect()
                if inlet is None:
                    return
                continue
            now = time.monotonic()
            if stamps:
                if silent_reported:
                    log(f"{self.option} {self.query!r} is back after {now - last_data:.1f} s")
                    silent_reported = False
                last_data = now
                self.forward(data, stamps)
            elif stopping:
                return  # everything LSL had buffered is forwarded
            elif dropout_after is not None and not silent_reported and now - last_data > dropout_after:
                self.counts.dropouts += 1
                silent_reported = True
                log(f"{self.option} {self.query!r} ({self.info.name()}): no samples for {now - last_data:.1f} s; "
                    "waiting for it, the session goes on with the other streams")
            if now >= next_correction:
                try:
                    self.time_correction = inlet.time_correction(timeout=1.0)
                except LslTimeout:
                    pass  # the outlet is away; keep the last estimate
                next_correction = now + self.clock_sync_every

    def reconnect(self) -> Optional["pylsl.StreamInlet"]:
        """The outlet is gone for good (no source_id to recover by): resolve it again."""
        self.counts.dropouts += 1
        log(f"{self.option} {self.query!r}: the stream was lost; waiting for it to come back")
        pred = predicate(self.query)
        while not self.stop.is_set():
            found = pylsl.resolve_bypred(pred, 1, 1.0)
            if found:
                self.info = found[0]
                log(f"{self.option} {self.query!r} found again")
                return self.open()
        return None

    def forward(self, data: Sequence[Sequence[Any]], stamps: Sequence[float]) -> None:
        times = np.asarray(stamps, dtype=np.float64) + self.time_correction
        session = self.bridge.session
        if self.is_markers:
            for row, t in zip(data, times):
                label = str(row[0]) if row else ""
                session.marker(float(t), label)
                self.counts.markers += 1
                self.bridge.marker_forwarded(label, float(t))
            return
        samples = np.asarray(data, dtype=np.float32)
        index = self.next_index
        if self.last_time is not None:
            # A jump beyond jitter is samples lost (an outlet that went away and came back):
            # declare them, so that the server fills NaN and times stay exact.
            missing = int(round((times[0] - self.last_time) * self.rate)) - 1
            if missing > max(3, GAP_S * self.rate):
                index += missing
                self.counts.gaps += 1
                log(f"{self.option} {self.query!r}: {missing} samples ({missing / self.rate:.2f} s) missing; marked as a gap")
        session.chunk(self.stream_id, float(times[0]), samples, first_sample_index=index)
        self.next_index = index + len(samples)
        self.last_time = float(times[-1])
        self.counts.samples += len(samples)
        self.counts.chunks += 1


# -- a webcam -------------------------------------------------------------------------------


class Camera(threading.Thread):
    """Frames from an OpenCV camera (or a video file played in real time), timestamped with
    pylsl.local_clock at capture and sent as JPEG."""

    def __init__(self, source: str, fps: float, bridge: "Bridge", capture: Any, cv2: Any):
        super().__init__(name="affectd-lsl-camera", daemon=True)
        self.source, self.period, self.bridge = source, 1.0 / fps, bridge
        self.capture, self.cv2 = capture, cv2
        self.is_file = not source.isdigit()
        self.stop = threading.Event()
        self.frames = 0

    @staticmethod
    def open(source: str) -> tuple[Any, Any]:
        try:
            import cv2
        except ImportError:
            raise LookupError("--camera needs OpenCV: pip install 'affectd[camera]'") from None
        capture = cv2.VideoCapture(int(source) if source.isdigit() else source)
        if not capture.isOpened():
            what = "no camera at that index" if source.isdigit() else "not a video OpenCV can read"
            raise LookupError(f"--camera {source}: {what}")
        return capture, cv2

    def run(self) -> None:
        try:
            next_frame = time.monotonic()
            waiting = False
            while not self.stop.is_set():
                ok, image = self.capture.read()
                t = pylsl.local_clock()
                if not ok:
                    if self.is_file:
                        log(f"--camera {self.source}: the video ended after {self.frames} frames; the session goes on")
                        return
                    if not waiting:
                        log(f"--camera {self.source}: no frame; waiting for the camera")
                        waiting = True
                    time.sleep(0.5)
                    continue
                waiting = False
                encoded, jpeg = self.cv2.imencode(".jpg", image, [self.cv2.IMWRITE_JPEG_QUALITY, 90])
                if encoded:
                    self.bridge.session.frame(t, jpeg.tobytes())
                    self.frames += 1
                next_frame += self.period
                time.sleep(max(0.0, next_frame - time.monotonic()))
        except SessionBroken as e:
            self.bridge.fail(e)
        finally:
            self.capture.release()


# -- results out ------------------------------------------------------------------------------


def outlet(name: str, kind: str, channels: Sequence[str], fmt: Any, source_id: str) -> "pylsl.StreamOutlet":
    info = pylsl.StreamInfo(name, kind, len(channels), pylsl.IRREGULAR_RATE, fmt, source_id)
    xml = info.desc().append_child("channels")
    for label in channels:
        xml.append_child("channel").append_child_value("label", label)
    info.desc().append_child_value("manufacturer", "affectd")
    return pylsl.StreamOutlet(info)


def face_samples(result: session_pb2.FaceFrameResult) -> List[List[float]]:
    rows = []
    for face in result.faces:
        aus = {a.number: a.intensity for a in face.action_units}
        row = [float(face.face_id)] + [aus.get(n, np.nan) for n in tables.AU_NUMBERS]
        if face.HasField("expression"):
            combined = {p.label: p.probability for p in face.expression.combined}
            row += [combined.get(label, np.nan) for label in tables.LABELS]
            row += [face.expression.valence, face.expression.arousal]
        else:
            row += [np.nan] * (len(tables.LABELS) + 2)
        rows.append(row)
    return rows


def message_json(message: Any, drop: Sequence[str] = ()) -> str:
    from google.protobuf import json_format

    value = json_format.MessageToDict(message, preserving_proto_field_name=True)
    for key in drop:
        for face in value.get("faces", []):
            face.pop(key, None)
    return json.dumps(value, separators=(",", ":"))


class Outlets:
    """affectd's results as LSL outlets (see the module's doc)."""

    def __init__(self, prefix: str, session_id: str, landmarks: bool):
        sid = f"affectd-{session_id}"
        self.faces = outlet(f"{prefix}-faces", "AffectFaces", FACE_NUMERIC, pylsl.cf_float32, sid + "-faces")
        self.faces_json = outlet(f"{prefix}-faces-json", "AffectFacesJSON", ["json"], pylsl.cf_string, sid + "-faces-json")
        self.features = outlet(f"{prefix}-features", "AffectFeatures", ["json"], pylsl.cf_string, sid + "-features")
        self.fused = outlet(f"{prefix}-fused", "AffectFused", FUSED_NUMERIC, pylsl.cf_float32, sid + "-fused")
        self.judgements = outlet(f"{prefix}-judgements", "AffectJudgements", ["json"], pylsl.cf_string, sid + "-judgements")
        self.all = [self.faces, self.faces_json, self.features, self.fused, self.judgements]
        self.drop = () if landmarks else ("landmarks",)
        self.pushed: Dict[str, int] = {"faces": 0, "features": 0, "fused": 0, "judgements": 0}

    def linger(self, seconds: float = 1.0) -> None:
        """liblsl sends asynchronously and drops what is unsent when an outlet closes: give
        connected consumers (LabRecorder) time to receive the last results."""
        if any(o.have_consumers() for o in self.all):
            time.sleep(seconds)

    def on_faces(self, result: session_pb2.FaceFrameResult) -> None:
        for row in face_samples(result):
            self.faces.push_sample(row, result.timestamp)
        self.faces_json.push_sample([message_json(result, self.drop)], result.timestamp)
        self.pushed["faces"] += 1

    def on_features(self, window: Any) -> None:
        self.features.push_sample([message_json(window)], window.end_time)
        self.pushed["features"] += 1

    def on_fused(self, estimate: Any) -> None:
        probabilities = {p.label: p.probability for p in estimate.labels}
        row = [estimate.valence if estimate.HasField("valence") else np.nan,
               estimate.arousal if estimate.HasField("arousal") else np.nan]
        row += [probabilities.get(label, np.nan) for label in tables.LABELS]
        self.fused.push_sample(row, estimate.end_time)
        self.pushed["fused"] += 1

    def on_judgement(self, result: Any, moment: float) -> None:
        self.judgements.push_sample([message_json(result)], moment)
        self.pushed["judgements"] += 1


# -- the bridge ---------------------------------------------------------------------------------


class Bridge:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.session: Session
        self.error: Optional[BaseException] = None
        self.done = threading.Event()
        self.explain_pattern = re.compile(args.explain_on_marker) if args.explain_on_marker else None
        self.explain_moments: Dict[int, float] = {}
        self.outlets: Optional[Outlets] = None

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.done.set()

    def marker_forwarded(self, label: str, t: float) -> None:
        if self.explain_pattern and self.explain_pattern.search(label):
            seq = self.session.explain(max_tokens=self.args.explain_max_tokens)
            self.explain_moments[seq] = t

    def on_response(self, response: session_pb2.StreamResponse) -> None:
        kind = response.WhichOneof("message")
        if kind == "signal_warning" or kind == "warning":
            log(f"server warning: {getattr(response, kind).message}")
        elif kind == "explain" and response.explain.HasField("result") and self.outlets is not None:
            moment = self.explain_moments.pop(response.client_seq, pylsl.local_clock())
            self.outlets.on_judgement(response.explain.result, moment)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="affectd-lsl",
        description="Forward Lab Streaming Layer streams into an affectd live session, and publish its results as LSL outlets.",
        epilog='Queries are key=value pairs (name, type, source_id, hostname), comma-separated: --eeg "type=EEG,name=Amp".',
    )
    p.add_argument("--address", default="127.0.0.1:50051", help="the affectd server (default %(default)s)")
    p.add_argument("--token", default=None, help="bearer token for a server with [[auth.tokens]] (default: $AFFECTD_TOKEN)")
    p.add_argument("--tls", action="store_true", help="connect with TLS (certificates signed by a public CA)")
    p.add_argument("--root-certificates", metavar="PEM", help="connect with TLS, trusting this CA file")
    p.add_argument("--client-certificate", metavar="PEM", help="client certificate chain, for mutual TLS (with --client-key)")
    p.add_argument("--client-key", metavar="PEM", help="the client certificate's private key")
    for kind in SIGNAL_KINDS:
        p.add_argument(f"--{kind}", action="append", default=[], metavar="QUERY", help=f"an LSL stream to forward as {kind.upper()} (repeatable)")
    p.add_argument("--markers", action="append", default=[], metavar="QUERY", help="an LSL string stream whose samples are markers (repeatable)")
    p.add_argument("--camera", metavar="INDEX|VIDEO", help="also send frames of this OpenCV camera, or of a video file played in real time (needs affectd[camera])")
    p.add_argument("--camera-fps", type=float, default=15.0, help="frames per second from the camera (default %(default)s)")
    p.add_argument("--participant", default="", help="the session's participant")
    p.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE", help="session metadata (repeatable)")
    p.add_argument("--no-record", action="store_true", help="do not record the session on the server")
    p.add_argument("--resolve-timeout", type=float, default=10.0, help="seconds to find every stream before giving up (default %(default)s)")
    p.add_argument("--clock-sync-every", type=float, default=5.0, help="seconds between clock re-estimates (default %(default)s)")
    p.add_argument("--outlet-prefix", default="affectd", help="name prefix of the result outlets (default %(default)s)")
    p.add_argument("--no-outlets", action="store_true", help="publish no result outlets")
    p.add_argument("--landmarks", action="store_true", help="include the 478 landmarks in <prefix>-faces-json")
    p.add_argument("--explain-on-marker", metavar="REGEX", help="ask for an explanation whenever a forwarded marker matches")
    p.add_argument("--explain-max-tokens", type=int, default=0, help="token budget of those explanations (0: the answer schema's)")
    p.add_argument("--duration", type=float, help="end after this many seconds (default: at Ctrl-C)")
    args = p.parse_args(argv)
    if not any(getattr(args, k) for k in SIGNAL_KINDS) and not args.markers and args.camera is None:
        p.error("nothing to forward: give at least one of --eeg, --eda, --ecg, --ppg, --respiration, --markers, --camera")
    for item in args.metadata:
        if "=" not in item:
            p.error(f"--metadata {item!r}: expected KEY=VALUE")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if pylsl is None:
        log("pylsl is not installed: pip install 'affectd[lsl]'")
        return 2
    # Resolve everything first: a missing stream ends the bridge before a session opens.
    deadline = time.monotonic() + args.resolve_timeout
    wanted = [(f"--{k}", q, k) for k in SIGNAL_KINDS for q in getattr(args, k)]
    wanted += [("--markers", q, "markers") for q in args.markers]
    found = []
    try:
        for option, query, kind in wanted:
            info = resolve(option, query, deadline)
            if kind != "markers" and info.nominal_srate() <= 0:
                raise LookupError(f"{option} {query!r} ({info.name()}) has an irregular rate; a signal stream needs a nominal rate")
            if kind == "markers" and info.channel_format() != pylsl.cf_string:
                raise LookupError(f"--markers {query!r} ({info.name()}) is not a string stream")
            found.append((option, query, kind, info))
        camera = Camera.open(args.camera) if args.camera is not None else None
    except (LookupError, ValueError) as e:
        log(str(e))
        return 2

    streams, ids = [], set()
    for option, query, kind, info in found:
        if kind == "markers":
            continue
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", info.name()) or kind
        stream_id, n = base, 2
        while stream_id in ids:
            stream_id, n = f"{base}_{n}", n + 1
        ids.add(stream_id)
        labels, units = channel_labels_and_units(description(option, query, info, time.monotonic() + 5.0))
        streams.append((option, query, info, stream_id, stream(stream_id, kind, info.nominal_srate(), labels, units)))

    bridge = Bridge(args)
    metadata = dict(item.split("=", 1) for item in args.metadata)
    metadata.setdefault("bridge", "affectd-lsl")
    client = Client(
        args.address,
        token=args.token,
        tls=args.tls,
        root_certificates=args.root_certificates,
        certificate_chain=args.client_certificate,
        private_key=args.client_key,
    )
    callbacks: Dict[str, Callable[[Any], None]] = {"*": bridge.on_response}
    try:
        session = client.session(
            participant=args.participant,
            streams=[s[4] for s in streams],
            metadata=metadata,
            no_record=args.no_record,
            keep_responses=False,
            callbacks=callbacks,
        )
    except SessionBroken as e:
        log(f"could not open a session at {args.address}: {e.details}")
        return 1
    bridge.session = session
    if not args.no_outlets:
        bridge.outlets = Outlets(args.outlet_prefix, session.session_id, args.landmarks)
        session.on("faces", bridge.outlets.on_faces)
        session.on("features", bridge.outlets.on_features)
        session.on("fused", bridge.outlets.on_fused)
    log(f"session {session.session_id} on {args.address}: "
        + ", ".join(f"{sid} ({info.channel_count()} ch, {info.nominal_srate():g} Hz)" for _, _, info, sid, _ in streams)
        + (f"; markers from {len(args.markers)} stream(s)" if args.markers else ""))

    inputs = [Input(o, q, info, bridge, sid, args.clock_sync_every) for o, q, info, sid, _ in streams]
    inputs += [Input(o, q, info, bridge, "markers", args.clock_sync_every) for o, q, k, info in found if k == "markers"]
    camera_thread = Camera(args.camera, args.camera_fps, bridge, *camera) if camera else None
    for t in inputs + ([camera_thread] if camera_thread else []):
        t.start()

    def stop(signum: int, _frame: Any) -> None:
        log(f"{signal.Signals(signum).name}: ending the session")
        bridge.done.set()

    faulthandler.register(signal.SIGUSR1)  # kill -USR1 prints every thread's stack
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    started = time.monotonic()
    next_sync = started
    status = 0
    try:
        while not bridge.done.is_set():
            now = time.monotonic()
            if now >= next_sync:
                client.clock_offset(probes=4, clock=pylsl.local_clock, session_id=session.session_id)
                next_sync = now + args.clock_sync_every
            if args.duration is not None and now - started >= args.duration:
                break
            bridge.done.wait(min(0.2, max(0.0, next_sync - now)))
        for t in inputs:
            t.stop.set()
        if camera_thread:
            camera_thread.stop.set()
        for t in inputs + ([camera_thread] if camera_thread else []):
            t.join(30)
        if bridge.error is not None:
            raise bridge.error
        if session.started.recording:
            session.wait_acknowledged(timeout=60)
        ended = session.end()
        log(f"ended: {ended.reason}; chunks {ended.chunks}, markers {ended.markers}, frames {ended.frames}; "
            f"acknowledged up to client_seq {session.last_acknowledged}")
        if camera_thread:
            log(f"  --camera {args.camera}: {camera_thread.frames} frames")
        for t in inputs:
            c = t.counts
            log(f"  {t.option} {t.query!r}: {c.samples} samples in {c.chunks} chunks, {c.markers} markers, "
                f"{c.gaps} gaps, {c.dropouts} dropouts")
        if bridge.outlets is not None:
            bridge.outlets.linger()
            log("  published: " + ", ".join(f"{k} {v}" for k, v in bridge.outlets.pushed.items()))
    except SessionBroken as e:
        log(str(e))
        status = 1
    except Exception as e:
        log(f"failed: {e}")
        try:
            session.cancel()
        except Exception:
            pass
        status = 1
    finally:
        client.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
