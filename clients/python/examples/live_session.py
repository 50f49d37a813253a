"""A live session as an experiment script would run it: EEG chunks, webcam frames and a
stimulus marker up; face results, feature windows, acknowledgements and warnings down.
The EEG is synthetic (10 Hz alpha, 20 Hz beta on F3/F4); the frames are one image file.

    python clients/python/examples/live_session.py [HOST:PORT] [IMAGE]
"""

import math
import pathlib
import sys
import threading

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout

from affectd_client import Client, signals_pb2  # noqa: E402

address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
image = pathlib.Path(sys.argv[2]).read_bytes() if len(sys.argv) > 2 else None
RATE = 256.0

eeg = signals_pb2.StreamInfo(
    stream_id="eeg",
    kind=signals_pb2.SIGNAL_KIND_EEG,
    nominal_rate_hz=RATE,
    channels=[signals_pb2.ChannelInfo(label=label, unit="uV") for label in ("F3", "F4")],
)


def sample(t: float) -> list[float]:
    alpha, beta = math.sin(2 * math.pi * 10 * t), math.sin(2 * math.pi * 20 * t)
    return [20 * alpha + 5 * beta, 12 * alpha + 6 * beta]


with Client(address) as client:
    session = client.session(participant="demo", streams=[eeg], metadata={"task": "example"})
    print(f"session {session.session_id} started, recording={session.started.recording}")
    counts = {"faces": 0, "windows": 0, "warnings": 0}
    last = {}

    def read() -> None:
        for response in session.responses():
            kind = response.WhichOneof("message")
            if kind == "faces":
                counts["faces"] += 1
                last["faces"] = len(response.faces.faces)
            elif kind == "features":
                counts["windows"] += 1
                last["window"] = response.features
            elif kind == "ack":
                last["ack"] = response.ack.client_seq
            elif kind in ("warning", "signal_warning"):
                counts["warnings"] += 1
                print("warning:", getattr(response, kind).message)
            elif kind == "ended":
                last["ended"] = response.ended

    reader = threading.Thread(target=read)
    reader.start()
    client.clock_offset(session_id=session.session_id)
    start = 1000.0  # the client's clock, e.g. pylsl.local_clock()
    sent = 0
    for chunk in range(24):  # 6 s in quarter-second chunks
        t0 = start + chunk * 0.25
        session.chunk("eeg", t0, [sample(t0 + i / RATE - start) for i in range(int(RATE / 4))])
        if image is not None and chunk % 8 == 0:
            session.frame(t0, image)
        if chunk == 12:
            session.marker(t0, "stimulus onset")
        sent = chunk
    session.end()
    reader.join()
    ended = last["ended"]
    window = last["window"]
    print(f"face results: {counts['faces']} (faces in the last: {last.get('faces', 0)})")
    print(f"feature windows: {counts['windows']}; last {window.start_time:.2f}-{window.end_time:.2f} s, "
          f"arousal index {window.eeg.arousal_index:.3f}, asymmetry {window.eeg.asymmetry[0].value:+.3f}")
    print(f"acknowledged up to client_seq {last.get('ack', 0)}")
    print(f"ended: {ended.reason}; frames {ended.frames}, chunks {ended.chunks}, markers {ended.markers}")
