"""A live session as an experiment script would run it: EEG chunks, webcam frames and a
stimulus marker up; face results, feature windows, acknowledgements and warnings down.
The EEG is synthetic (10 Hz alpha, 20 Hz beta on F3/F4); the frames are one image file.

    pip install clients/python
    python clients/python/examples/live_session.py [HOST:PORT] [IMAGE]
"""

import pathlib
import sys

import numpy as np

import affectd

address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
image = pathlib.Path(sys.argv[2]).read_bytes() if len(sys.argv) > 2 else None
RATE = 256.0
eeg = affectd.stream("eeg", kind="eeg", rate_hz=RATE, labels=["F3", "F4"], units="uV")


def samples(t: np.ndarray) -> np.ndarray:
    """(n_samples, 2): one row per sample, as pylsl's pull_chunk gives them."""
    alpha, beta = np.sin(2 * np.pi * 10 * t), np.sin(2 * np.pi * 20 * t)
    return np.stack([20 * alpha + 5 * beta, 12 * alpha + 6 * beta], axis=1)


with affectd.Client(address) as client:
    counts = {"faces": 0, "windows": 0}
    last = {}

    def on_faces(result):  # a FaceFrameResult
        counts["faces"] += 1
        last["faces"] = len(result.faces)

    def on_features(window):  # a FeatureWindow
        counts["windows"] += 1
        last["window"] = window

    def on_warning(warning):
        print("warning:", warning.message)

    # The callbacks run on the session's reader thread while this one sends.
    callbacks = {"faces": on_faces, "features": on_features, "warning": on_warning, "signal_warning": on_warning}
    with client.session(participant="demo", streams=[eeg], metadata={"task": "example"},
                        keep_responses=False, callbacks=callbacks) as session:
        print(f"session {session.session_id} started, recording={session.started.recording}")
        client.clock_offset(session_id=session.session_id)
        start = 1000.0  # the client's clock, e.g. pylsl.local_clock()
        for chunk in range(24):  # 6 s in quarter-second chunks
            t0 = start + chunk * 0.25
            session.chunk("eeg", t0, samples(t0 - start + np.arange(int(RATE / 4)) / RATE))
            if image is not None and chunk % 8 == 0:
                session.frame(t0, image)
            if chunk == 12:
                session.marker(t0, "stimulus onset")
        session.wait_acknowledged(timeout=30)
        print(f"acknowledged up to client_seq {session.last_acknowledged}")
    # Leaving the block ended the session: the last results have arrived.
    ended = session.ended
    window = last["window"]
    print(f"face results: {counts['faces']} (faces in the last: {last.get('faces', 0)})")
    print(f"feature windows: {counts['windows']}; last {window.start_time:.2f}-{window.end_time:.2f} s, "
          f"arousal index {window.eeg.arousal_index:.3f}, asymmetry {window.eeg.asymmetry[0].value:+.3f}")
    print(f"ended: {ended.reason}; frames {ended.frames}, chunks {ended.chunks}, markers {ended.markers}")
