"""affectd-lsl with real liblsl (pylsl's wheel) on loopback and a real server: synthetic
outlets (EEG at 256 Hz and PsychoPy-style markers) feed the bridge, which feeds the server;
LSL inlets read the result outlets back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pylsl
from pylsl.util import LostError
import pytest

import affectd

RATE = 256.0
CHANNELS = ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "O1", "O2"]


def eeg_outlet(source_id: str, name: str) -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(name, "EEG", len(CHANNELS), RATE, pylsl.cf_float32, source_id)
    channels = info.desc().append_child("channels")
    for label in CHANNELS:
        c = channels.append_child("channel")
        c.append_child_value("label", label)
        c.append_child_value("unit", "microvolts")
        c.append_child_value("type", "EEG")
    return pylsl.StreamOutlet(info, chunk_size=32)


def bridge(*args: str, timeout: float = 120) -> subprocess.Popen:
    env = dict(os.environ)
    return subprocess.Popen(
        [sys.executable, "-m", "affectd.lsl", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


class Reader(threading.Thread):
    """Reads one result outlet until it goes away (recover=False: then LostError)."""

    def __init__(self, predicate: str):
        super().__init__(daemon=True)
        found = pylsl.resolve_bypred(predicate, 1, 20)
        assert found, f"no LSL stream {predicate}"
        self.inlet = pylsl.StreamInlet(found[0], max_buflen=360, recover=False)
        self.inlet.open_stream(timeout=10)
        self.correction = self.inlet.time_correction(timeout=10)
        self.samples: list = []
        self.stamps: list = []
        self.start()

    def run(self) -> None:
        while True:
            try:
                samples, stamps = self.inlet.pull_chunk(timeout=0.2, max_samples=1000)
            except LostError:
                return
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.samples.append(e)
                return
            self.samples += samples
            self.stamps += stamps


def test_no_matching_stream_exits_non_zero_within_the_resolve_timeout(server):
    start = time.monotonic()
    p = bridge("--address", server.address, "--eeg", f"type=EEG,name=absent-{uuid.uuid4().hex}", "--resolve-timeout", "1.5")
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2, err
    assert time.monotonic() - start < 1.5 + 8  # interpreter start-up included
    assert "no LSL stream matched --eeg 'type=EEG,name=absent-" in err and "within the resolve timeout" in err
    p = bridge("--address", server.address, "--eeg", "kind=EEG")
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "expected key=value pairs with keys" in err
    p = bridge("--address", server.address)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "nothing to forward" in err
    p = bridge("--address", server.address, "--camera", "no-such-video.mp4")
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "--camera no-such-video.mp4: not a video OpenCV can read" in err


def test_round_trip_samples_markers_timestamps_and_a_dropout(server, tmp_path):
    tag = uuid.uuid4().hex[:8]
    source_id = f"test-eeg-{tag}"
    prefix = f"affectd-{tag}"
    rng = np.random.default_rng(11)
    seconds, drop_at, drop_for = 14.0, 6.0, 2.5
    total = int(seconds * RATE)
    t = np.arange(total) / RATE
    data = (20 * np.sin(2 * np.pi * 10 * t)[:, None] + rng.normal(0, 5, (total, len(CHANNELS)))).astype(np.float32)
    dropped = (t >= drop_at) & (t < drop_at + drop_for)

    outlet = eeg_outlet(source_id, f"TestAmp-{tag}")
    markers = pylsl.StreamOutlet(pylsl.StreamInfo(f"PsychoPyMarkers-{tag}", "Markers", 1, 0, pylsl.cf_string, f"markers-{tag}"))
    p = bridge(
        "--address", server.address, "--eeg", f"type=EEG,source_id={source_id}",
        "--markers", f"name=PsychoPyMarkers-{tag}", "--participant", "lsl", "--outlet-prefix", prefix,
        "--clock-sync-every", "1", "--resolve-timeout", "20",
    )
    fused = Reader(f"name='{prefix}-fused'")
    features = Reader(f"name='{prefix}-features'")
    assert outlet.wait_for_consumers(30) and markers.wait_for_consumers(30)  # the bridge's inlets

    t0 = pylsl.local_clock() + 0.5
    stamps = t0 + t
    sent_markers = []
    state = {"outlet": outlet}
    del outlet  # the pusher holds the only reference: dropping it destroys the outlet

    def push() -> None:
        chunk = 32
        for start in range(0, total, chunk):
            due = stamps[start + chunk - 1]
            time.sleep(max(0.0, due - pylsl.local_clock()))
            if dropped[start]:
                if state["outlet"] is not None:
                    state["outlet"] = None  # the amplifier's outlet goes away...
                continue
            if state["outlet"] is None:  # ... and comes back with the same source_id
                state["outlet"] = eeg_outlet(source_id, f"TestAmp-{tag}")
                assert state["outlet"].wait_for_consumers(30)  # liblsl recovered the bridge's inlet
            state["outlet"].push_chunk(data[start:start + chunk].tolist(), float(stamps[start + chunk - 1]))
            if start % int(2 * RATE) == 0:
                label = f"stimulus {start // int(2 * RATE)}"
                markers.push_sample([label], float(stamps[start]))
                sent_markers.append((label, float(stamps[start])))

    pusher = threading.Thread(target=push)
    pusher.start()
    pusher.join()
    time.sleep(1.5)
    p.send_signal(signal.SIGINT)  # Ctrl-C
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGUSR1)  # the bridge prints its threads' stacks
        time.sleep(1)
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"the bridge did not end within 60 s of Ctrl-C:\n{err}")
    assert p.returncode == 0, err
    print(err)
    assert "ended: EndSession received" in err
    assert "no samples for" in err and "waiting for it" in err  # the dropout was reported

    # The recording: every sample that was pushed, unchanged; the gap as a gap.
    with affectd.Client(server.address) as client:
        summary = next(s for s in client.sessions() if s.participant == "lsl" and s.metadata.get("bridge") == "affectd-lsl")
        info = summary.streams[0]
        assert [c.label for c in info.channels] == CHANNELS and info.channels[0].unit == "microvolts"
        assert info.nominal_rate_hz == RATE
        path = client.recordings.export(summary.session_id, tmp_path)
    import pyxdf

    # Raw stamps: the session's client clock, which is this machine's LSL clock.
    streams, _ = pyxdf.load_xdf(path, dejitter_timestamps=False, synchronize_clocks=False)
    eeg = next(s for s in streams if s["info"]["type"][0] == "EEG")
    # The bridge's ClockSync reports are the XDF's clock offsets: server (Unix) - LSL time.
    lsl_to_unix = time.time() - pylsl.local_clock()
    offsets = np.asarray(eeg["clock_values"])
    assert offsets.size >= 5 and np.abs(offsets - lsl_to_unix).max() < 0.01
    recorded = np.asarray(eeg["time_series"])
    kept = data[~dropped]
    finite = np.isfinite(recorded).all(axis=1)
    np.testing.assert_array_equal(recorded[finite], kept)  # every sample pushed, bit for bit
    before = int((~dropped & (t < drop_at)).sum())
    # Times: the recorded stamps are the pushed LSL stamps (the bridge's clock is LSL's).
    recorded_times = np.asarray(eeg["time_stamps"])[finite]
    sample_error = np.abs(recorded_times - stamps[~dropped]).max()
    assert sample_error < 0.002
    mk = next(s for s in streams if s["info"]["name"][0] == "Markers")
    got = [(row[0], ts) for row, ts in zip(mk["time_series"], mk["time_stamps"])]
    assert [g[0] for g in got] == [m[0] for m in sent_markers]
    marker_error = max(abs(g[1] - m[1]) for g, m in zip(got, sent_markers))
    assert marker_error < 0.002

    # The result outlets, in LSL time: each feature window's sample is stamped with its end,
    # which is t0 + a whole number of hops after the first window.
    features.join(30)
    fused.join(30)
    windows, window_stamps, correction = features.samples, features.stamps, features.correction
    assert windows, "no feature windows came back over LSL"
    ends = np.asarray(window_stamps) + correction
    decoded = [json.loads(w[0]) for w in windows]
    assert all(d["stream_id"].startswith("TestAmp") for d in decoded)
    np.testing.assert_allclose(ends, [d["end_time"] for d in decoded], atol=1e-6)
    errors = [abs(e - (t0 + 4.0 + round(e - t0 - 4.0))) for e in ends]
    assert max(errors) < 0.002, errors
    assert len(fused.samples) == len(windows)  # EEG alone: one fused estimate per hop
    fused_ends = np.asarray(fused.stamps) + fused.correction
    # Fused hops are [k, k+1) s of the client clock (fusion.hop_s = 1): whole LSL seconds.
    fused_error = max(abs(e - round(e)) for e in fused_ends)
    assert fused_error < 0.002
    print(f"LSL round trip: {kept.shape[0]} of {kept.shape[0]} samples x {len(CHANNELS)} ch recorded unchanged, "
          f"gap of {int(dropped.sum())} samples declared; {len(got)} of {len(sent_markers)} markers; "
          f"max |time error|: samples {sample_error * 1e3:.3f} ms, markers {marker_error * 1e3:.3f} ms, "
          f"feature windows {max(errors) * 1e3:.3f} ms ({len(windows)}), fused {fused_error * 1e3:.3f} ms ({len(fused_ends)})")


def test_a_camera_s_faces_and_judgements_come_back_as_outlets(explaining_server, tmp_path):
    """A video file stands in for the webcam (OpenCV reads both); a marker matching
    --explain-on-marker asks for an explanation, whose judgement comes back over LSL at the
    marker's time."""
    from conftest import TESTDATA

    tag = uuid.uuid4().hex[:8]
    prefix = f"affectd-{tag}"
    markers = pylsl.StreamOutlet(pylsl.StreamInfo(f"Markers-{tag}", "Markers", 1, 0, pylsl.cf_string, f"m-{tag}"))
    p = bridge(
        "--address", explaining_server.address, "--markers", f"name=Markers-{tag}",
        "--camera", str(TESTDATA / "single_face.mp4"), "--camera-fps", "10",
        "--explain-on-marker", "^trial_end", "--explain-max-tokens", "0",
        "--outlet-prefix", prefix, "--participant", "camera",
    )
    faces = Reader(f"name='{prefix}-faces'")
    faces_json = Reader(f"name='{prefix}-faces-json'")
    judgements = Reader(f"name='{prefix}-judgements'")
    assert markers.wait_for_consumers(30)
    time.sleep(3.0)  # frames analysed
    asked_at = pylsl.local_clock()
    markers.push_sample(["trial_end 1"], asked_at)
    deadline = time.monotonic() + 240
    while not judgements.samples and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    for r in (faces, faces_json, judgements):
        r.join(30)
    assert "--camera" in err and " frames" in err
    # Faces: one float sample per face per frame: face_id, 19 AUs, 7 probabilities, V, A.
    assert faces.samples and all(len(row) == 1 + 19 + 7 + 2 for row in faces.samples)
    assert {row[0] for row in faces.samples} == {1.0}
    assert all(abs(sum(row[20:27]) - 1.0) < 1e-3 for row in faces.samples)
    frame = json.loads(faces_json.samples[0][0])
    assert frame["faces"][0]["face_id"] == 1 and "landmarks" not in frame["faces"][0]
    # Both stamped with the frame's capture time (the readers connected a few frames apart,
    # so compare the frames both saw).
    face_times = np.asarray(faces.stamps) + faces.correction
    json_times = [json.loads(f[0])["timestamp"] for f in faces_json.samples]
    matched = sum(1 for t in json_times if np.abs(face_times - t).min() < 0.001)
    assert matched >= 0.8 * min(len(face_times), len(json_times)) > 0
    # The judgement: JSON of the ExplainResult, stamped at the marker that asked for it.
    assert len(judgements.samples) == 1, err
    result = json.loads(judgements.samples[0][0])
    assert result.get("judgements") or result.get("parse_error")
    assert abs(judgements.stamps[0] + judgements.correction - asked_at) < 0.002


from test_security import TOKEN, pki, secure_server  # noqa: E402,F401 - fixtures for the next test


def test_the_bridge_reaches_a_server_with_mutual_tls_and_a_token(secure_server, pki):
    """affectd-lsl's --token, --root-certificates, --client-certificate and --client-key,
    end to end: a session recorded through a server that requires all of them."""
    tag = uuid.uuid4().hex[:8]
    source_id = f"tls-eeg-{tag}"
    outlet = eeg_outlet(source_id, f"TlsAmp-{tag}")
    p = bridge(
        "--address", secure_server.address, "--eeg", f"type=EEG,source_id={source_id}",
        "--participant", f"tls-{tag}", "--resolve-timeout", "20",
        "--token", TOKEN, "--root-certificates", str(pki["ca"]),
        "--client-certificate", str(pki["client_cert"]), "--client-key", str(pki["client_key"]),
    )
    assert outlet.wait_for_consumers(30), p.stderr.read() if p.poll() is not None else "no consumer"
    data = np.zeros((32, len(CHANNELS)), dtype=np.float32)
    for _ in range(int(3 * RATE / 32)):
        outlet.push_chunk(data.tolist())
        time.sleep(32 / RATE)
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert "ended: EndSession received" in err, err
    with affectd.Client(
        secure_server.address, token=TOKEN, root_certificates=pki["ca"],
        certificate_chain=pki["client_cert"], private_key=pki["client_key"].read_bytes(),
    ) as client:
        session = next(s for s in client.sessions() if s.participant == f"tls-{tag}")
        assert session.chunks > 0
